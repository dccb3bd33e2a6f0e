//! Differences between two SBOMs (e.g. two firmware versions), and the support-level addendum.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Component, Sbom, SbomError};

/// A component's identity across SBOMs: its purl without version and qualifiers when it has
/// one, else its name.
fn identity(c: &Component) -> String {
    match &c.purl {
        Some(p) => p.package(),
        None => format!("name:{}", c.name),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub component: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub added: Vec<Change>,
    pub removed: Vec<Change>,
    pub changed: Vec<Change>,
}

/// Compares by identity; a component present in several versions compares its version set.
pub fn diff(old: &Sbom, new: &Sbom) -> Diff {
    let index = |s: &Sbom| {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for c in &s.components {
            m.entry(identity(c))
                .or_default()
                .push(c.version.clone().unwrap_or_default());
        }
        for v in m.values_mut() {
            v.sort();
            v.dedup();
        }
        m
    };
    let (a, b) = (index(old), index(new));
    let join = |v: &Vec<String>| v.join(", ");
    let mut d = Diff::default();
    for (k, va) in &a {
        match b.get(k) {
            None => d.removed.push(Change {
                component: k.clone(),
                from: Some(join(va)),
                to: None,
            }),
            Some(vb) if vb != va => d.changed.push(Change {
                component: k.clone(),
                from: Some(join(va)),
                to: Some(join(vb)),
            }),
            Some(_) => {}
        }
    }
    for (k, vb) in &b {
        if !a.contains_key(k) {
            d.added.push(Change {
                component: k.clone(),
                from: None,
                to: Some(join(vb)),
            });
        }
    }
    d
}

/// Applies a support addendum: CSV with a header `component,version,support_level,end_of_support`
/// where `component` is a purl without version (`pkg:npm/lodash`) or a plain name, and `version`
/// may be `*` for all versions. Every row must match at least one component, so a typo is an
/// error rather than a silently unsupported component.
pub fn apply_support_csv(sbom: &mut Sbom, csv: &str) -> Result<usize, SbomError> {
    let mut lines = csv
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let header = lines
        .next()
        .map(|(_, h)| h.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if header.replace(' ', "") != "component,version,support_level,end_of_support" {
        return Err(SbomError::at(
            "line 1",
            "header must be component,version,support_level,end_of_support",
        ));
    }
    let mut applied = 0;
    for (i, line) in lines {
        let at = format!("line {}", i + 1);
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let [component, version, level, eos] = f[..] else {
            return Err(SbomError::at(at, "expected 4 comma-separated fields"));
        };
        if !["supported", "security-only", "unsupported", "end-of-life"].contains(&level)
            && !level.is_empty()
        {
            return Err(SbomError::at(
                &at,
                format!(
                    "support_level {level:?} is not supported, security-only, unsupported or end-of-life"
                ),
            ));
        }
        if !eos.is_empty() && !is_iso_date(eos) {
            return Err(SbomError::at(
                &at,
                format!("end_of_support {eos:?} is not YYYY-MM-DD"),
            ));
        }
        let mut hit = false;
        for c in sbom.components.iter_mut() {
            let id = identity(c);
            let name_match =
                id == component || (!component.starts_with("pkg:") && c.name == component);
            let version_match = version == "*" || c.version.as_deref() == Some(version);
            if name_match && version_match {
                if !level.is_empty() {
                    c.support_level = Some(level.to_owned());
                }
                if !eos.is_empty() {
                    c.end_of_support = Some(eos.to_owned());
                }
                hit = true;
            }
        }
        if !hit {
            return Err(SbomError::at(
                at,
                format!("{component} {version} matches no component"),
            ));
        }
        applied += 1;
    }
    Ok(applied)
}

fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && matches!(s[5..7].parse::<u8>(), Ok(1..=12))
        && matches!(s[8..10].parse::<u8>(), Ok(1..=31))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bom(components: &[(&str, &str)]) -> Sbom {
        let v = serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components":
            components.iter().map(|(p, ver)| serde_json::json!({"type": "library", "name": p.rsplit('/').next().unwrap(), "version": ver, "purl": format!("{p}@{ver}")})).collect::<Vec<_>>()});
        crate::parse(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn added_removed_changed() {
        let a = bom(&[
            ("pkg:npm/lodash", "4.17.20"),
            ("pkg:npm/left-pad", "1.0.0"),
            ("pkg:pypi/jinja2", "3.1.3"),
        ]);
        let b = bom(&[
            ("pkg:npm/lodash", "4.17.21"),
            ("pkg:pypi/jinja2", "3.1.3"),
            ("pkg:cargo/tokio", "1.38.0"),
        ]);
        let d = diff(&a, &b);
        assert_eq!(
            d.added,
            vec![Change {
                component: "pkg:cargo/tokio".into(),
                from: None,
                to: Some("1.38.0".into())
            }]
        );
        assert_eq!(d.removed[0].component, "pkg:npm/left-pad");
        assert_eq!(
            d.changed,
            vec![Change {
                component: "pkg:npm/lodash".into(),
                from: Some("4.17.20".into()),
                to: Some("4.17.21".into())
            }]
        );
        assert_eq!(diff(&a, &a), Diff::default());
    }

    #[test]
    fn support_addendum() {
        let mut s = bom(&[("pkg:npm/lodash", "4.17.21"), ("pkg:pypi/jinja2", "3.1.3")]);
        let csv = "component,version,support_level,end_of_support\npkg:npm/lodash,*,security-only,2027-12-31\njinja2,3.1.3,supported,\n";
        assert_eq!(apply_support_csv(&mut s, csv).unwrap(), 2);
        assert_eq!(
            s.components[0].support_level.as_deref(),
            Some("security-only")
        );
        assert_eq!(
            s.components[0].end_of_support.as_deref(),
            Some("2027-12-31")
        );
        assert_eq!(s.components[1].support_level.as_deref(), Some("supported"));
        for (bad, want) in [
            ("name,ver\n", "header"),
            (
                "component,version,support_level,end_of_support\npkg:npm/nothere,*,supported,\n",
                "matches no component",
            ),
            (
                "component,version,support_level,end_of_support\npkg:npm/lodash,*,maybe,\n",
                "maybe",
            ),
            (
                "component,version,support_level,end_of_support\npkg:npm/lodash,*,supported,2027-13-01\n",
                "YYYY-MM-DD",
            ),
            (
                "component,version,support_level,end_of_support\npkg:npm/lodash,*\n",
                "4 comma",
            ),
        ] {
            let e = apply_support_csv(&mut s.clone(), bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }
}
