//! Regulatory reporting clocks started from the time the manufacturer became aware.
//!
//! Due dates are computed as calendar arithmetic in UTC: the awareness instant is converted to
//! UTC and N calendar days (or hours) are added to the UTC date and time. UTC has no daylight
//! saving, so "10 days" is always exactly 240 hours and the result does not depend on where the
//! operator sits; a deadline shown in a local zone across a DST change therefore moves by one
//! wall-clock hour (e.g. 23:30 EDT instead of 00:30). The awareness day is day 0, so a deadline
//! of "within 10 days" falls on the same time of day 10 days later. Organisations wanting margin
//! should use [`ClockBoard::due_soon`] rather than shift the legal dates.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::PostmarketError;
use crate::incident::IncidentId;

/// A reporting obligation with a fixed period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Obligation {
    /// Canada MDR s.59-61.1: incident led to death or serious deterioration in health: 10 days.
    MdrDeathOrSeriousDeterioration,
    /// Canada MDR s.59-61.1: incident could lead to death or serious deterioration if it
    /// recurred: 30 days.
    MdrCouldLeadIfRecurred,
    /// Canada MDR s.61.2: notice of a serious risk communicated or acted on by a foreign
    /// regulator: 72 hours.
    ForeignRiskNotice,
    /// FDA postmarket cybersecurity guidance, uncontrolled risk: customers and users informed
    /// within 30 days of learning of the vulnerability.
    FdaCustomerNotification,
    /// FDA postmarket cybersecurity guidance, uncontrolled risk: fix (or compensating control)
    /// validated and distributed within 60 days.
    FdaFixValidated,
}

/// A period in whole calendar units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Days(u16),
    Hours(u16),
}

impl Obligation {
    pub const ALL: [Obligation; 5] = [
        Obligation::MdrDeathOrSeriousDeterioration,
        Obligation::MdrCouldLeadIfRecurred,
        Obligation::ForeignRiskNotice,
        Obligation::FdaCustomerNotification,
        Obligation::FdaFixValidated,
    ];

    /// The kebab-case name used in files, the CLI and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Obligation::MdrDeathOrSeriousDeterioration => "mdr-death-or-serious-deterioration",
            Obligation::MdrCouldLeadIfRecurred => "mdr-could-lead-if-recurred",
            Obligation::ForeignRiskNotice => "foreign-risk-notice",
            Obligation::FdaCustomerNotification => "fda-customer-notification",
            Obligation::FdaFixValidated => "fda-fix-validated",
        }
    }

    pub fn parse(s: &str) -> Result<Self, PostmarketError> {
        Obligation::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| PostmarketError::Invalid {
                what: "obligation",
                message: format!(
                    "{s:?} is not one of {}",
                    Obligation::ALL.map(Obligation::as_str).join(", ")
                ),
            })
    }

    pub fn period(self) -> Period {
        match self {
            Obligation::MdrDeathOrSeriousDeterioration => Period::Days(10),
            Obligation::MdrCouldLeadIfRecurred => Period::Days(30),
            Obligation::ForeignRiskNotice => Period::Hours(72),
            Obligation::FdaCustomerNotification => Period::Days(30),
            Obligation::FdaFixValidated => Period::Days(60),
        }
    }

    pub fn citation(self) -> &'static str {
        match self {
            Obligation::MdrDeathOrSeriousDeterioration => {
                "Medical Devices Regulations s.59-61.1 (10 days)"
            }
            Obligation::MdrCouldLeadIfRecurred => "Medical Devices Regulations s.59-61.1 (30 days)",
            Obligation::ForeignRiskNotice => "Medical Devices Regulations s.61.2 (72 hours)",
            Obligation::FdaCustomerNotification => {
                "FDA Postmarket Management of Cybersecurity in Medical Devices, uncontrolled risk (30 days)"
            }
            Obligation::FdaFixValidated => {
                "FDA Postmarket Management of Cybersecurity in Medical Devices, uncontrolled risk (60 days)"
            }
        }
    }

    /// The due instant, in UTC, for an awareness instant given in any offset.
    pub fn due(self, aware_at: OffsetDateTime) -> Result<OffsetDateTime, PostmarketError> {
        let utc = aware_at.to_offset(UtcOffset::UTC);
        let out = match self.period() {
            Period::Days(d) => utc
                .date()
                .checked_add(Duration::days(i64::from(d)))
                .map(|date| date.with_time(utc.time()).assume_utc()),
            Period::Hours(h) => utc.checked_add(Duration::hours(i64::from(h))),
        };
        out.ok_or(PostmarketError::DateOutOfRange("a regulatory due date"))
    }
}

impl fmt::Display for Obligation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.citation())
    }
}

/// One running (or met) clock for one incident and obligation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegulatoryClock {
    pub incident: IncidentId,
    pub obligation: Obligation,
    /// Awareness time, normalised to UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub aware_at: OffsetDateTime,
    /// Due time in UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub due: OffsetDateTime,
    /// When the obligation was met (report filed, customers told, fix validated).
    #[serde(with = "time::serde::rfc3339::option")]
    pub met_at: Option<OffsetDateTime>,
}

impl RegulatoryClock {
    pub fn is_met(&self) -> bool {
        self.met_at.is_some()
    }

    /// Met, but after the due time: kept visible for the compliance record.
    pub fn met_late(&self) -> bool {
        self.met_at.is_some_and(|m| m > self.due)
    }
}

/// All regulatory clocks; at most one per incident and obligation.
#[derive(Debug, Clone, Default)]
pub struct ClockBoard {
    clocks: Vec<RegulatoryClock>,
}

impl ClockBoard {
    pub fn new() -> Self {
        ClockBoard::default()
    }

    /// Starts a clock. Starting it again with an earlier awareness time moves it earlier
    /// (the law counts from first awareness); a later awareness time is ignored.
    pub fn start(
        &mut self,
        incident: IncidentId,
        obligation: Obligation,
        aware_at: OffsetDateTime,
    ) -> Result<&RegulatoryClock, PostmarketError> {
        let due = obligation.due(aware_at)?;
        let aware_at = aware_at.to_offset(UtcOffset::UTC);
        let pos = self
            .clocks
            .iter()
            .position(|c| c.incident == incident && c.obligation == obligation);
        let i = match pos {
            Some(i) => {
                if let Some(c) = self.clocks.get_mut(i)
                    && aware_at < c.aware_at
                {
                    c.aware_at = aware_at;
                    c.due = due;
                }
                i
            }
            None => {
                self.clocks.push(RegulatoryClock {
                    incident,
                    obligation,
                    aware_at,
                    due,
                    met_at: None,
                });
                self.clocks.len() - 1
            }
        };
        self.clocks
            .get(i)
            .ok_or(PostmarketError::UnknownIncident(incident.to_string()))
    }

    /// Starts both FDA uncontrolled-risk clocks.
    pub fn start_fda_uncontrolled_risk(
        &mut self,
        incident: IncidentId,
        aware_at: OffsetDateTime,
    ) -> Result<(), PostmarketError> {
        self.start(incident, Obligation::FdaCustomerNotification, aware_at)?;
        self.start(incident, Obligation::FdaFixValidated, aware_at)?;
        Ok(())
    }

    /// Records that an obligation was met.
    pub fn mark_met(
        &mut self,
        incident: IncidentId,
        obligation: Obligation,
        at: OffsetDateTime,
    ) -> Result<(), PostmarketError> {
        let c = self
            .clocks
            .iter_mut()
            .find(|c| c.incident == incident && c.obligation == obligation)
            .ok_or_else(|| {
                PostmarketError::UnknownIncident(format!("{incident} ({obligation:?})"))
            })?;
        c.met_at = Some(at.to_offset(UtcOffset::UTC));
        Ok(())
    }

    pub fn clocks(&self) -> &[RegulatoryClock] {
        &self.clocks
    }

    /// Unmet clocks not yet due but due within `within` of `now`, soonest first.
    pub fn due_soon(&self, now: OffsetDateTime, within: Duration) -> Vec<&RegulatoryClock> {
        let horizon = now.saturating_add(within);
        self.sorted(|c| !c.is_met() && c.due >= now && c.due <= horizon)
    }

    /// Unmet clocks whose due time has passed, most overdue first. Due exactly at `now` is
    /// not overdue yet: "within 10 days" includes the last instant.
    pub fn overdue(&self, now: OffsetDateTime) -> Vec<&RegulatoryClock> {
        self.sorted(|c| !c.is_met() && c.due < now)
    }

    fn sorted(&self, keep: impl Fn(&RegulatoryClock) -> bool) -> Vec<&RegulatoryClock> {
        let mut v: Vec<&RegulatoryClock> = self.clocks.iter().filter(|c| keep(c)).collect();
        v.sort_by_key(|c| (c.due, c.incident, c.obligation));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn periods() {
        let a = datetime!(2026-01-01 00:00 UTC);
        assert_eq!(
            Obligation::MdrDeathOrSeriousDeterioration.due(a).unwrap(),
            datetime!(2026-01-11 00:00 UTC)
        );
        assert_eq!(
            Obligation::ForeignRiskNotice.due(a).unwrap(),
            datetime!(2026-01-04 00:00 UTC)
        );
        assert!(
            Obligation::FdaFixValidated
                .due(datetime!(9999-12-30 00:00 UTC))
                .is_err()
        );
    }

    #[test]
    fn met_clocks_drop_out_of_listings() {
        let mut b = ClockBoard::new();
        let a = datetime!(2026-01-01 00:00 UTC);
        b.start(IncidentId(1), Obligation::ForeignRiskNotice, a)
            .unwrap();
        let late = datetime!(2026-01-05 00:00 UTC);
        assert_eq!(b.overdue(late).len(), 1);
        b.mark_met(IncidentId(1), Obligation::ForeignRiskNotice, late)
            .unwrap();
        assert!(b.overdue(late).is_empty());
        assert!(b.clocks()[0].met_late());
        assert!(
            b.mark_met(IncidentId(2), Obligation::ForeignRiskNotice, late)
                .is_err()
        );
    }
}
