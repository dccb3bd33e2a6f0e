//! What the fleet read model's two back ends share: the SQL fragments that read the same on
//! SQLite and PostgreSQL, its tuning thresholds, and the conversions from stored values.

use std::str::FromStr;

use medsec_core::{DeviceId, DeviceModel, DeviceSerial};
use time::{Date, Month, OffsetDateTime};

use crate::StoreError;
use crate::sqlite::{corrupt, from_ts, ts};

pub(crate) const DATE: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

pub(crate) const DAY: i64 = 86_400;

/// `x` (a findings row) is open: see the module documentation.
pub(crate) const OPEN: &str = "coalesce((SELECT v.state FROM vex_decisions v
        WHERE v.model = x.model AND v.version = x.version AND v.vuln_id = x.vuln_id
          AND (v.component IS NULL OR v.component = x.component)
        ORDER BY v.id DESC LIMIT 1), 'in_triage') NOT IN ('not_affected', 'false_positive', 'fixed')";

/// A search matching at most this many devices is answered from those devices' certificates
/// (about ten each, read and sorted); a broader one walks certificates in serial order, where
/// it finds a page within a few thousand rows. Both cost about the same here (~7,000 row reads).
pub(crate) const DEVICE_DRIVE_MAX: usize = 700;

/// An expiring window holding at most this many certificates is read through the expiry index
/// and sorted by serial; a wider one is dense enough to walk in serial order.
pub(crate) const EXPIRY_DRIVE_MAX: i64 = 20_000;

/// The certificate columns a PKI page shows (never the DER).
pub(crate) const CERT_COLS: &str =
    "c.serial, c.issuer, c.device_model, c.device_serial, c.profile, c.kind,
    c.not_before, c.not_after, c.issued_at, c.revoked_at, c.revoked_reason";

pub(crate) fn parsed<T: FromStr>(what: &str, s: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| corrupt(what, e))
}

pub(crate) fn device_of(model: &str, serial: &str) -> Result<DeviceId, StoreError> {
    Ok(DeviceId::new(
        parsed::<DeviceModel>("device model", model)?,
        parsed::<DeviceSerial>("device serial", serial)?,
    ))
}

pub(crate) fn count(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|e| corrupt("count", e))
}

pub(crate) fn count32(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|e| corrupt("count", e))
}

/// `%term%` for `LIKE ... ESCAPE '\'` (SQLite, whose LIKE folds ASCII case) and
/// `ILIKE ... ESCAPE '\'` (PostgreSQL), with the term's own wildcards taken literally.
pub(crate) fn like_contains(term: &str) -> String {
    let mut p = String::with_capacity(term.len() + 2);
    p.push('%');
    for ch in term.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

/// `now` to the whole second: stored times are whole seconds, and SQL comparisons and the
/// statuses derived in Rust must agree at the boundary.
pub(crate) fn whole_seconds(now: OffsetDateTime) -> Result<OffsetDateTime, StoreError> {
    from_ts(ts(now))
}

pub(crate) fn window_end(now: i64, days: u32) -> i64 {
    now.saturating_add(i64::from(days).saturating_mul(DAY))
}

pub(crate) fn today(now: OffsetDateTime) -> Result<String, StoreError> {
    now.date().format(DATE).map_err(|e| corrupt("date", e))
}

pub(crate) fn date_from(s: Option<String>) -> Result<Option<Date>, StoreError> {
    s.map(|s| Date::parse(&s, DATE).map_err(|e| corrupt("date", e)))
        .transpose()
}

/// The first day of the month `n` months after `d`'s month.
pub(crate) fn month_start(d: Date, n: u32) -> Result<Date, StoreError> {
    let idx = i64::from(d.year()) * 12 + i64::from(u8::from(d.month()) - 1) + i64::from(n);
    let year = i32::try_from(idx.div_euclid(12)).map_err(|e| corrupt("date", e))?;
    let month = u8::try_from(idx.rem_euclid(12) + 1).map_err(|e| corrupt("date", e))?;
    let month = Month::try_from(month).map_err(|e| corrupt("date", e))?;
    Date::from_calendar_date(year, month, 1).map_err(|e| corrupt("date", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_contains("sn-1"), "%sn-1%");
        assert_eq!(like_contains("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }

    #[test]
    fn months_roll_over_years() {
        let d = Date::from_calendar_date(2026, Month::November, 23).unwrap();
        assert_eq!(
            month_start(d, 0).unwrap(),
            Date::from_calendar_date(2026, Month::November, 1).unwrap()
        );
        assert_eq!(
            month_start(d, 2).unwrap(),
            Date::from_calendar_date(2027, Month::January, 1).unwrap()
        );
        assert_eq!(
            month_start(d, 12).unwrap(),
            Date::from_calendar_date(2027, Month::November, 1).unwrap()
        );
    }
}
