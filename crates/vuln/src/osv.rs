//! OSV advisories and the matching index: purl -> OSV package key -> affected ranges.

use std::collections::{BTreeSet, HashMap};

use medsec_core::Purl;
use serde::Deserialize;

use crate::range::{Range, affected};
use crate::{Ecosystem, VulnError};

/// One OSV record, reduced to what matching needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Advisory {
    pub id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub modified: String,
    /// Set when the advisory was withdrawn: it must never produce a finding.
    #[serde(default)]
    pub withdrawn: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub affected: Vec<AffectedPackage>,
    #[serde(default)]
    pub severity: Vec<Severity>,
}

/// An OSV severity entry: `{"type": "CVSS_V3", "score": "CVSS:3.1/..."}`. Real feeds also
/// carry entries without a type (Ubuntu: `{"score": "low"}`), so both fields are optional.
#[derive(Debug, Clone, Deserialize)]
pub struct Severity {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub score: String,
}

impl Advisory {
    /// The highest CVSS v3 base score among this record's severities, if any parses.
    pub fn cvss_base(&self) -> Option<f64> {
        self.severity
            .iter()
            .filter_map(|s| crate::cvss::parse(&s.score).ok()?.base_score)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct AffectedPackage {
    pub package: Option<OsvPackage>,
    #[serde(default)]
    pub ranges: Vec<Range>,
    #[serde(default)]
    pub versions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OsvPackage {
    pub ecosystem: String,
    pub name: String,
}

impl Advisory {
    /// Parses one OSV JSON record.
    pub fn from_json(bytes: &[u8]) -> Result<Self, VulnError> {
        serde_json::from_slice(bytes)
            .map_err(|e| VulnError::BadRange(format!("not an OSV record: {e}")))
    }

    /// Every record in an OSV zip dump (as osv.dev publishes per ecosystem: one JSON file per
    /// advisory). A record that does not parse fails the whole import, naming the entry.
    pub fn from_zip(bytes: &[u8]) -> Result<Vec<Self>, VulnError> {
        use std::io::Read;
        /// No single advisory comes near this; a larger entry is a zip bomb or not OSV.
        const MAX_ENTRY: u64 = 16 * 1024 * 1024;
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| VulnError::BadRange(format!("not a zip archive: {e}")))?;
        let mut out = Vec::new();
        for i in 0..z.len() {
            let mut f = z
                .by_index(i)
                .map_err(|e| VulnError::BadRange(format!("zip entry {i}: {e}")))?;
            // Entry names are not trusted (they could be anything); they are only reported.
            let name = f
                .name()
                .map(|n| n.into_owned())
                .unwrap_or_else(|_| format!("entry {i}"));
            if !f.is_file() || !name.ends_with(".json") {
                continue;
            }
            let mut buf = Vec::new();
            (&mut f)
                .take(MAX_ENTRY + 1)
                .read_to_end(&mut buf)
                .map_err(|e| VulnError::BadRange(format!("{name}: {e}")))?;
            if buf.len() as u64 > MAX_ENTRY {
                return Err(VulnError::BadRange(format!(
                    "{name}: larger than {MAX_ENTRY} bytes"
                )));
            }
            out.push(
                Self::from_json(&buf).map_err(|e| VulnError::BadRange(format!("{name}: {e}")))?,
            );
        }
        Ok(out)
    }
}

/// The lookup key of a package: ecosystem, distribution release (Debian "9", Alpine "v3.17";
/// `None` for language ecosystems or release-independent records), and normalized name.
type Key = (Ecosystem, Option<String>, String);

/// PEP 503 normalization: case-insensitive, runs of `-`, `_`, `.` are one `-`.
fn pep503(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if "-_.".contains(c) {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn normalize(eco: Ecosystem, name: &str) -> String {
    match eco {
        Ecosystem::PyPI => pep503(name),
        _ => name.to_owned(),
    }
}

/// Splits an OSV ecosystem such as "Debian:9", "Alpine:v3.17" or "Ubuntu:22.04:LTS".
fn osv_key(ecosystem: &str, name: &str) -> Option<Key> {
    let eco = Ecosystem::from_osv(ecosystem).ok()?;
    let release = ecosystem.split(':').nth(1).map(str::to_owned);
    Some((eco, release, normalize(eco, name)))
}

const DEBIAN_CODENAMES: [(&str, &str); 8] = [
    ("jessie", "8"),
    ("stretch", "9"),
    ("buster", "10"),
    ("bullseye", "11"),
    ("bookworm", "12"),
    ("trixie", "13"),
    ("forky", "14"),
    ("wheezy", "7"),
];

/// The OSV package key(s) a purl maps to, with the version to evaluate.
fn purl_keys(p: &Purl) -> Option<(Ecosystem, Vec<Key>, String)> {
    let version = p.version.clone()?;
    let mut eco = Ecosystem::from_purl_type(&p.ty)?;
    let ns = p.namespace.as_deref();
    let name = match eco {
        Ecosystem::Npm | Ecosystem::Go => match ns {
            Some(ns) => format!("{ns}/{}", p.name),
            None => p.name.clone(),
        },
        Ecosystem::Maven => format!("{}:{}", ns?, p.name),
        // Distribution advisories are about source packages, which the purl names in
        // `upstream` (with an optional version after a space or '@').
        Ecosystem::Debian | Ecosystem::Alpine => p
            .qualifiers
            .get("upstream")
            .map(|u| u.split([' ', '@']).next().unwrap_or(u).to_owned())
            .unwrap_or_else(|| p.name.clone()),
        _ => p.name.clone(),
    };
    if eco == Ecosystem::Debian && ns == Some("ubuntu") {
        eco = Ecosystem::Ubuntu;
    }
    let release = p.qualifiers.get("distro").and_then(|d| {
        let d = d.to_ascii_lowercase();
        match eco {
            Ecosystem::Debian => {
                let r = d.strip_prefix("debian-").unwrap_or(&d);
                let r = DEBIAN_CODENAMES
                    .iter()
                    .find(|(c, _)| *c == r)
                    .map(|(_, n)| *n)
                    .unwrap_or(r);
                Some(r.split('.').next().unwrap_or(r).to_owned())
            }
            Ecosystem::Ubuntu => Some(d.strip_prefix("ubuntu-").unwrap_or(&d).to_owned()),
            Ecosystem::Alpine => {
                let r = d.strip_prefix("alpine-").unwrap_or(&d);
                let mut it = r.trim_start_matches('v').split('.');
                Some(format!("v{}.{}", it.next()?, it.next()?))
            }
            _ => None,
        }
    });
    let name = normalize(eco, &name);
    let mut keys = vec![(eco, None, name.clone())];
    if let Some(r) = release {
        keys.push((eco, Some(r), name));
    }
    Some((eco, keys, version))
}

/// One finding for one component: every advisory that matched, merged when they share an
/// identifier (a GHSA and a PYSEC record both aliasing the same CVE are one vulnerability).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Advisory ids that matched (sorted).
    pub advisories: BTreeSet<String>,
    /// Every identifier known for the vulnerability: ids and aliases (sorted).
    pub identifiers: BTreeSet<String>,
}

/// Advisories indexed by package, built once and used for any number of SBOMs.
#[derive(Default)]
pub struct Index {
    advisories: Vec<Advisory>,
    by_key: HashMap<Key, Vec<(usize, usize)>>,
    by_id: HashMap<String, usize>,
}

impl Index {
    pub fn new(advisories: Vec<Advisory>) -> Self {
        let mut by_key: HashMap<Key, Vec<(usize, usize)>> = HashMap::new();
        for (ai, a) in advisories.iter().enumerate() {
            if a.withdrawn.is_some() {
                continue;
            }
            for (pi, aff) in a.affected.iter().enumerate() {
                if let Some(k) = aff
                    .package
                    .as_ref()
                    .and_then(|p| osv_key(&p.ecosystem, &p.name))
                {
                    by_key.entry(k).or_default().push((ai, pi));
                }
            }
        }
        let by_id = advisories
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id.clone(), i))
            .collect();
        Index {
            advisories,
            by_key,
            by_id,
        }
    }

    pub fn advisory(&self, id: &str) -> Option<&Advisory> {
        self.by_id.get(id).map(|&i| &self.advisories[i])
    }

    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    /// The findings for one component. A purl of an unsupported type, or without a version,
    /// yields none; a version its ecosystem cannot parse is an error (never a silent miss).
    pub fn match_purl(&self, purl: &Purl) -> Result<Vec<Finding>, VulnError> {
        let Some((eco, keys, version)) = purl_keys(purl) else {
            return Ok(Vec::new());
        };
        let mut hits: BTreeSet<usize> = BTreeSet::new();
        for k in &keys {
            for &(ai, pi) in self.by_key.get(k).map(Vec::as_slice).unwrap_or(&[]) {
                let aff = &self.advisories[ai].affected[pi];
                if affected(eco, &version, &aff.ranges, &aff.versions)? {
                    hits.insert(ai);
                }
            }
        }
        // Merge advisories that share any identifier.
        let mut findings: Vec<Finding> = Vec::new();
        for ai in hits {
            let a = &self.advisories[ai];
            let ids: BTreeSet<String> = std::iter::once(a.id.clone())
                .chain(a.aliases.iter().cloned())
                .collect();
            let (mut merged, rest): (Vec<Finding>, Vec<Finding>) = findings
                .into_iter()
                .partition(|f| !f.identifiers.is_disjoint(&ids));
            let mut f = Finding {
                advisories: BTreeSet::from([a.id.clone()]),
                identifiers: ids,
            };
            for m in merged.drain(..) {
                f.advisories.extend(m.advisories);
                f.identifiers.extend(m.identifiers);
            }
            findings = rest;
            findings.push(f);
        }
        findings.sort_by(|a, b| a.advisories.cmp(&b.advisories));
        Ok(findings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_normalization_and_distro_keys() {
        assert_eq!(pep503("Jinja2"), "jinja2");
        assert_eq!(pep503("zope.interface__x"), "zope-interface-x");
        let p = Purl::parse(
            "pkg:deb/debian/libssl1.1@1.1.0l-1~deb9u5?upstream=openssl&distro=debian-9.13",
        )
        .unwrap();
        let (_, keys, _) = purl_keys(&p).unwrap();
        assert!(keys.contains(&(Ecosystem::Debian, Some("9".into()), "openssl".into())));
        let p = Purl::parse("pkg:apk/alpine/musl@1.2.3-r4?distro=alpine-3.17.2").unwrap();
        let (_, keys, _) = purl_keys(&p).unwrap();
        assert!(keys.contains(&(Ecosystem::Alpine, Some("v3.17".into()), "musl".into())));
        let p = Purl::parse("pkg:maven/org.example/lib@1.0").unwrap();
        assert_eq!(purl_keys(&p).unwrap().1[0].2, "org.example:lib");
    }

    #[test]
    fn aliases_merge_and_withdrawn_ignored() {
        let rec = |id: &str, alias: &str, withdrawn: bool| -> Advisory {
            let mut v = serde_json::json!({"id": id, "aliases": [alias], "affected": [{"package": {"ecosystem": "PyPI", "name": "Demo_Pkg"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}]}]});
            if withdrawn {
                v["withdrawn"] = "2024-01-01T00:00:00Z".into();
            }
            serde_json::from_value(v).unwrap()
        };
        let idx = Index::new(vec![
            rec("GHSA-1", "CVE-1", false),
            rec("PYSEC-1", "CVE-1", false),
            rec("GHSA-2", "CVE-2", true),
        ]);
        let f = idx
            .match_purl(&Purl::parse("pkg:pypi/demo-pkg@1.10").unwrap())
            .unwrap();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            f[0].advisories,
            BTreeSet::from(["GHSA-1".to_owned(), "PYSEC-1".to_owned()])
        );
        assert!(
            idx.match_purl(&Purl::parse("pkg:pypi/demo-pkg@2.0").unwrap())
                .unwrap()
                .is_empty()
        );
        assert!(
            idx.match_purl(&Purl::parse("pkg:pypi/demo-pkg").unwrap())
                .unwrap()
                .is_empty()
        );
    }
}
