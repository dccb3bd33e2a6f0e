//! Exploitability x severity rating of a finding, per a risk policy (ISO 14971 style matrix,
//! AAMI TIR57: security risk is rated by exploitability, not probability, since attacks are not
//! random events).

use serde::Serialize;

/// Qualitative severity from the CVSS base score (FIRST's bands); `Unknown` when no advisory
/// carries a usable vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SeverityLevel {
    None,
    Low,
    Medium,
    High,
    Critical,
    Unknown,
}

impl SeverityLevel {
    pub fn from_score(score: Option<f64>) -> Self {
        match score {
            None => SeverityLevel::Unknown,
            Some(s) if s >= 9.0 => SeverityLevel::Critical,
            Some(s) if s >= 7.0 => SeverityLevel::High,
            Some(s) if s >= 4.0 => SeverityLevel::Medium,
            Some(s) if s > 0.0 => SeverityLevel::Low,
            Some(_) => SeverityLevel::None,
        }
    }
}

/// How easily the vulnerability can be exploited in the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Exploitability {
    /// Local or physical access needed.
    Low,
    /// Reachable over a network, but needing privileges, user interaction or special
    /// conditions; or nothing is known about the attack vector.
    Medium,
    /// Known exploited (CISA KEV), or reachable over the network with no privileges, no user
    /// interaction and low attack complexity.
    High,
}

impl Exploitability {
    /// From a CVSS v3.x or v4.0 vector's exploitability metrics and KEV membership.
    pub fn assess(vector: Option<&str>, kev: bool) -> Self {
        if kev {
            return Exploitability::High;
        }
        let Some(v) = vector else {
            return Exploitability::Medium;
        };
        let metric = |name: &str| {
            v.split('/')
                .filter_map(|p| p.split_once(':'))
                .find(|(k, _)| *k == name)
                .map(|(_, x)| x)
        };
        match metric("AV") {
            Some("L" | "P") => Exploitability::Low,
            Some("N")
                if metric("AC") == Some("L")
                    && metric("PR") == Some("N")
                    && metric("UI") == Some("N")
                    && metric("AT").is_none_or(|a| a == "N") =>
            {
                Exploitability::High
            }
            _ => Exploitability::Medium,
        }
    }
}

/// The outcome of rating a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    Acceptable,
    /// Reduce as far as possible; accept only with a documented benefit-risk rationale.
    Review,
    Unacceptable,
}

/// The manufacturer's risk acceptability matrix: severity (rows) by exploitability (columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskPolicy {
    /// Rows: none, low, medium, high, critical. Columns: low, medium, high exploitability.
    pub matrix: [[RiskLevel; 3]; 5],
    /// A finding whose severity is unknown is rated as this row, so an unscored advisory is
    /// never silently acceptable.
    pub unknown_severity_as: SeverityLevel,
}

impl Default for RiskPolicy {
    fn default() -> Self {
        use RiskLevel::{Acceptable as A, Review as R, Unacceptable as U};
        RiskPolicy {
            matrix: [
                [A, A, A], // none
                [A, A, R], // low
                [A, R, R], // medium
                [R, R, U], // high
                [R, U, U], // critical
            ],
            unknown_severity_as: SeverityLevel::High,
        }
    }
}

/// Rates one finding under `policy`.
pub fn rate(
    policy: &RiskPolicy,
    severity: SeverityLevel,
    exploitability: Exploitability,
) -> RiskLevel {
    let sev = if severity == SeverityLevel::Unknown {
        policy.unknown_severity_as
    } else {
        severity
    };
    let row = match sev {
        SeverityLevel::None => 0,
        SeverityLevel::Low => 1,
        SeverityLevel::Medium => 2,
        SeverityLevel::High | SeverityLevel::Unknown => 3,
        SeverityLevel::Critical => 4,
    };
    let col = match exploitability {
        Exploitability::Low => 0,
        Exploitability::Medium => 1,
        Exploitability::High => 2,
    };
    policy.matrix[row][col]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exploitability_from_vectors() {
        let net = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
        assert_eq!(
            Exploitability::assess(Some(net), false),
            Exploitability::High
        );
        let ui = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H";
        assert_eq!(
            Exploitability::assess(Some(ui), false),
            Exploitability::Medium
        );
        let phys = "CVSS:3.1/AV:P/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
        assert_eq!(
            Exploitability::assess(Some(phys), false),
            Exploitability::Low
        );
        // Known exploitation beats any vector.
        assert_eq!(
            Exploitability::assess(Some(phys), true),
            Exploitability::High
        );
        let v4 = "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N";
        assert_eq!(
            Exploitability::assess(Some(v4), false),
            Exploitability::Medium
        );
        assert_eq!(Exploitability::assess(None, false), Exploitability::Medium);
    }

    #[test]
    fn matrix_and_unknown_severity() {
        let p = RiskPolicy::default();
        assert_eq!(
            SeverityLevel::from_score(Some(9.8)),
            SeverityLevel::Critical
        );
        assert_eq!(SeverityLevel::from_score(Some(7.0)), SeverityLevel::High);
        assert_eq!(SeverityLevel::from_score(Some(0.0)), SeverityLevel::None);
        assert_eq!(
            rate(&p, SeverityLevel::Critical, Exploitability::High),
            RiskLevel::Unacceptable
        );
        assert_eq!(
            rate(&p, SeverityLevel::Low, Exploitability::Low),
            RiskLevel::Acceptable
        );
        // Unscored is rated as high, never waved through.
        assert_eq!(
            rate(&p, SeverityLevel::Unknown, Exploitability::High),
            RiskLevel::Unacceptable
        );
    }
}
