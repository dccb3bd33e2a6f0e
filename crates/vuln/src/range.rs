//! OSV `affected[].ranges` and `versions` evaluation (OSV schema 1.6, "Evaluation").

use std::cmp::Ordering;

use serde::Deserialize;

use crate::{Ecosystem, VulnError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RangeKind {
    Semver,
    Ecosystem,
    /// Commit ranges: not evaluable against a version string, so never matched here.
    Git,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
    Limit(String),
}

impl Event {
    pub(crate) fn version(&self) -> &str {
        match self {
            Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => v,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Range {
    #[serde(rename = "type")]
    pub kind: RangeKind,
    pub events: Vec<Event>,
}

/// Compares under a range's rules: SEMVER ranges use SemVer whatever the ecosystem; "0" is the
/// lowest version of every ecosystem.
fn cmp(kind: RangeKind, eco: Ecosystem, a: &str, b: &str) -> Result<Ordering, VulnError> {
    match (a, b) {
        ("0", "0") => Ok(Ordering::Equal),
        ("0", _) => Ok(Ordering::Less),
        (_, "0") => Ok(Ordering::Greater),
        _ => match kind {
            RangeKind::Semver => Ecosystem::Npm.compare(a, b),
            _ => eco.compare(a, b),
        },
    }
}

/// Is `version` affected by an OSV `affected` entry with these `ranges` and explicit `versions`?
pub fn affected(
    eco: Ecosystem,
    version: &str,
    ranges: &[Range],
    versions: &[String],
) -> Result<bool, VulnError> {
    // An explicit list is authoritative for the versions it names.
    for v in versions {
        if v == version || eco.compare(v, version).is_ok_and(|o| o == Ordering::Equal) {
            return Ok(true);
        }
    }
    for r in ranges {
        if r.kind == RangeKind::Git {
            continue;
        }
        // Comparisons with "0" never parse the version, so check it once here.
        if version != "0" {
            cmp(r.kind, eco, version, version)?;
        }
        let mut events = r.events.clone();
        let mut err = None;
        events.sort_by(|a, b| {
            cmp(r.kind, eco, a.version(), b.version()).unwrap_or_else(|e| {
                err.get_or_insert(e);
                Ordering::Equal
            })
        });
        if let Some(e) = err {
            return Err(e);
        }
        let mut hit = false;
        for e in &events {
            let o = cmp(r.kind, eco, version, e.version())?;
            match e {
                Event::Introduced(_) if o != Ordering::Less => hit = true,
                Event::Fixed(_) | Event::Limit(_) if o != Ordering::Less => hit = false,
                Event::LastAffected(_) if o == Ordering::Greater => hit = false,
                _ => {}
            }
        }
        if hit {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: RangeKind, ev: &[(&str, &str)]) -> Range {
        Range {
            kind,
            events: ev
                .iter()
                .map(|(k, v)| match *k {
                    "introduced" => Event::Introduced(v.to_string()),
                    "fixed" => Event::Fixed(v.to_string()),
                    "last_affected" => Event::LastAffected(v.to_string()),
                    _ => Event::Limit(v.to_string()),
                })
                .collect(),
        }
    }

    #[test]
    fn fixed_and_last_affected_boundaries() {
        let fixed = [r(
            RangeKind::Semver,
            &[("introduced", "0"), ("fixed", "1.10.0")],
        )];
        let a = |v| affected(Ecosystem::Npm, v, &fixed, &[]).unwrap();
        assert!(
            a("1.9.0"),
            "1.9 < 1.10: a string compare would call it unaffected"
        );
        assert!(!a("1.10.0"));
        assert!(a("1.10.0-rc.1"));
        let last = [r(
            RangeKind::Ecosystem,
            &[("introduced", "1.0"), ("last_affected", "1.4")],
        )];
        let b = |v| affected(Ecosystem::PyPI, v, &last, &[]).unwrap();
        assert!(b("1.4"));
        assert!(b("1.4.0"));
        assert!(!b("1.4.post1"), "post releases come after 1.4");
        assert!(!b("1.4.1"));
        assert!(!b("0.9"));
        assert!(b("1.0"));
        assert!(!b("1.0rc1"), "the pre-release comes before 1.0");
    }

    #[test]
    fn multiple_intervals_and_versions_list() {
        let ranges = [r(
            RangeKind::Ecosystem,
            &[
                ("introduced", "1.0"),
                ("fixed", "1.2"),
                ("introduced", "2.0"),
                ("fixed", "2.0.5"),
            ],
        )];
        let a = |v| affected(Ecosystem::Maven, v, &ranges, &[]).unwrap();
        assert!(a("1.1") && a("2.0.4") && a("2.0"));
        assert!(!a("1.2") && !a("1.5") && !a("2.0.5") && !a("0.9"));
        assert!(affected(Ecosystem::Debian, "1:2.0-1", &[], &["1:2.0-1".into()]).unwrap());
        assert!(!affected(Ecosystem::Debian, "2.0-1", &[], &["1:2.0-1".into()]).unwrap());
        let deb = [r(
            RangeKind::Ecosystem,
            &[("introduced", "0"), ("fixed", "1.0~rc2")],
        )];
        assert!(affected(Ecosystem::Debian, "1.0~rc1", &deb, &[]).unwrap());
        assert!(!affected(Ecosystem::Debian, "1.0", &deb, &[]).unwrap());
        let twice = [r(
            RangeKind::Semver,
            &[("introduced", "0"), ("introduced", "0"), ("fixed", "2.0.0")],
        )];
        assert!(affected(Ecosystem::Npm, "1.0.0", &twice, &[]).unwrap());
        let git = [r(
            RangeKind::Git,
            &[("introduced", "0"), ("fixed", "abcdef")],
        )];
        assert!(!affected(Ecosystem::Go, "v1.0.0", &git, &[]).unwrap());
        assert!(
            affected(
                Ecosystem::Npm,
                "not-a-version",
                &[r(RangeKind::Semver, &[("introduced", "0")])],
                &[]
            )
            .is_err()
        );
    }

    #[test]
    fn parses_osv_json() {
        let v: Range = serde_json::from_str(
            r#"{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.1"}]}"#,
        )
        .unwrap();
        assert_eq!(v.events.len(), 2);
    }
}
