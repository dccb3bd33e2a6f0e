//! OSV advisories and the matching index: purl -> OSV package key -> affected ranges, and the
//! lower-confidence fallback for components known only by a CPE: CPE product -> OSV packages of
//! that name -> affected ranges.

use std::collections::{BTreeSet, HashMap};

use medsec_core::Purl;
use serde::Deserialize;

use crate::cpe::{Cpe, CpePart, CpeValue};
use crate::range::{Event, Range, affected};
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
    /// The highest CVSS score among this record's severities, if any parses: v3.x base scores
    /// and v4.0 scores compete on the same 0-10 scale. v2 vectors and qualitative entries
    /// (Ubuntu's `"low"`) are not scored.
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
            .map_err(|e| VulnError::BadFeed(format!("not an OSV record: {e}")))
    }

    /// Every record in an OSV zip dump (as osv.dev publishes per ecosystem: one JSON file per
    /// advisory). A record that does not parse fails the whole import, naming the entry.
    pub fn from_zip(bytes: &[u8]) -> Result<Vec<Self>, VulnError> {
        zip_records(bytes)?
            .into_iter()
            .map(|(name, buf)| {
                Self::from_json(&buf).map_err(|e| VulnError::BadFeed(format!("{name}: {e}")))
            })
            .collect()
    }
}

/// The `.json` entries of an OSV zip dump as (entry name, raw bytes), for callers that keep the
/// original records (the store does, so a newer medsec can re-read them).
pub fn zip_records(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, VulnError> {
    use std::io::Read;
    /// No single advisory comes near this; a larger entry is a zip bomb or not OSV.
    const MAX_ENTRY: u64 = 16 * 1024 * 1024;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| VulnError::BadFeed(format!("not a zip archive: {e}")))?;
    let mut out = Vec::new();
    for i in 0..z.len() {
        let mut f = z
            .by_index(i)
            .map_err(|e| VulnError::BadFeed(format!("zip entry {i}: {e}")))?;
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
            .map_err(|e| VulnError::BadFeed(format!("{name}: {e}")))?;
        if buf.len() as u64 > MAX_ENTRY {
            return Err(VulnError::BadFeed(format!(
                "{name}: larger than {MAX_ENTRY} bytes"
            )));
        }
        out.push((name, buf));
    }
    Ok(out)
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

/// CPE product names and OSV package names are compared case-insensitively, with `_` and `-`
/// the same (NVD writes `http_server` where a package is `http-server`).
fn cpe_norm(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The CPE product an OSV package would be named by, normalised: the distribution source
/// package; the plain PyPI, crates.io and RubyGems name; the npm name without its scope; the
/// Packagist name without its vendor; the Maven artifactId; the Go module's last path element
/// (a `/vN` major-version suffix skipped).
fn cpe_key(eco: Ecosystem, name: &str) -> Option<String> {
    let product = match eco {
        Ecosystem::Npm | Ecosystem::Packagist => name.rsplit('/').next()?,
        Ecosystem::Maven => name.split_once(':')?.1,
        Ecosystem::Go => {
            let mut it = name.rsplit('/');
            let last = it.next()?;
            let major = last.len() > 1
                && last.starts_with('v')
                && last[1..].bytes().all(|b| b.is_ascii_digit());
            match it.next() {
                Some(before) if major => before,
                _ => last,
            }
        }
        _ => name,
    };
    (!product.is_empty()).then(|| cpe_norm(product))
}

/// Whether a CPE vendor fits an OSV package where the package name says who publishes it:
/// a Packagist vendor must equal it, a Go module path must contain it. Elsewhere the name
/// carries no vendor and any fits (a Maven groupId often contains the vendor, but as often not:
/// `log4j:log4j` is Apache's).
fn vendor_fits(eco: Ecosystem, name: &str, vendor: Option<&str>) -> bool {
    match eco {
        Ecosystem::Packagist => name
            .split_once('/')
            .zip(vendor)
            .is_some_and(|((v, _), cv)| cpe_norm(v) == cv),
        Ecosystem::Go => vendor.is_some_and(|cv| cpe_norm(name).contains(cv)),
        _ => true,
    }
}

/// The version a CPE stands for in one ecosystem. NVD splits some upstream versions into
/// version and update (`1.1.1` + `k`, `7.4` + `p1`, `3.8.0` + `rc1`): they are joined back
/// without a separator, which is how those upstreams and the distributions spell them
/// (`1.1.1k`, `7.4p1`); SemVer ecosystems only accept the suffix as a pre-release, so there it
/// is joined with `-` (`2.0.0` + `rc1` -> `2.0.0-rc1`).
fn cpe_version(eco: Ecosystem, version: &str, update: Option<&str>) -> String {
    match update {
        None => version.to_owned(),
        Some(u) if matches!(eco, Ecosystem::Npm | Ecosystem::CratesIo | Ecosystem::Go) => {
            format!("{version}-{u}")
        }
        Some(u) => format!("{version}{u}"),
    }
}

/// A Debian version without its epoch (`1:7.4p1-10` -> `7.4p1-10`).
fn without_epoch(v: &str) -> &str {
    match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => v,
    }
}

/// Is an upstream (CPE) version inside an affected entry? As `range::affected`, except that
/// Debian and Ubuntu epochs are dropped from the entry: an epoch is the distribution's own
/// correction of its version history, upstream versions never carry one, and with it every
/// upstream version would sort below `1:...` and look affected.
fn upstream_affected(
    eco: Ecosystem,
    version: &str,
    aff: &AffectedPackage,
) -> Result<bool, VulnError> {
    let has_epoch = |v: &str| without_epoch(v).len() != v.len();
    let epochs = matches!(eco, Ecosystem::Debian | Ecosystem::Ubuntu)
        && (aff.versions.iter().any(|v| has_epoch(v))
            || aff
                .ranges
                .iter()
                .flat_map(|r| &r.events)
                .any(|e| has_epoch(e.version())));
    if !epochs {
        return affected(eco, version, &aff.ranges, &aff.versions);
    }
    let strip = |v: &str| without_epoch(v).to_owned();
    let ranges: Vec<Range> = aff
        .ranges
        .iter()
        .map(|r| Range {
            kind: r.kind,
            events: r
                .events
                .iter()
                .map(|e| match e {
                    Event::Introduced(v) => Event::Introduced(strip(v)),
                    Event::Fixed(v) => Event::Fixed(strip(v)),
                    Event::LastAffected(v) => Event::LastAffected(strip(v)),
                    Event::Limit(v) => Event::Limit(strip(v)),
                })
                .collect(),
        })
        .collect();
    let versions: Vec<String> = aff.versions.iter().map(|v| strip(v)).collect();
    affected(eco, version, &ranges, &versions)
}

/// Advisories indexed by package, built once and used for any number of SBOMs.
#[derive(Default)]
pub struct Index {
    advisories: Vec<Advisory>,
    by_key: HashMap<Key, Vec<(usize, usize)>>,
    /// Normalised CPE product name (see `cpe_key`) -> (advisory, affected entry).
    by_cpe: HashMap<String, Vec<(usize, usize)>>,
    by_id: HashMap<String, usize>,
}

impl Index {
    pub fn new(advisories: Vec<Advisory>) -> Self {
        let mut by_key: HashMap<Key, Vec<(usize, usize)>> = HashMap::new();
        let mut by_cpe: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        for (ai, a) in advisories.iter().enumerate() {
            if a.withdrawn.is_some() {
                continue;
            }
            for (pi, aff) in a.affected.iter().enumerate() {
                let Some(p) = aff.package.as_ref() else {
                    continue;
                };
                if let Some(k) = osv_key(&p.ecosystem, &p.name) {
                    if let Some(c) = cpe_key(k.0, &p.name) {
                        by_cpe.entry(c).or_default().push((ai, pi));
                    }
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
            by_cpe,
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
        Ok(self.findings(hits))
    }

    /// Lower-confidence findings for a component known only by a CPE. OSV records carry no
    /// CPEs, so this guesses: the CPE product (normalised: lowercase, `_` = `-`) names an OSV
    /// package, which is any of a Debian, Ubuntu or Alpine source package (any release), a
    /// PyPI, crates.io or RubyGems package, an npm package (scope ignored), a Packagist package
    /// whose vendor is the CPE vendor, a Maven artifactId, or a Go module whose last path
    /// element is the product and whose path contains the vendor.
    ///
    /// The version is the CPE's version with its update appended (see `cpe_version`); a CPE
    /// without a plain version (`*`, `-`, a pattern) or with an update pattern matches nothing,
    /// never "all versions", and so does a hardware CPE. Each candidate compares the version by
    /// its own ecosystem's ordering; one that cannot read it is skipped, since the guess may
    /// simply be wrong there (unlike `match_purl`, which reports it). Distribution versions
    /// are compared as given, so upstream `1.1.1k` sorts before Debian's `1.1.1k-1`: a fix
    /// that Debian shipped as `1.1.1k-1`, or backported into a `1.1.1k-1+deb11u1`, leaves
    /// upstream 1.1.1k affected (the conservative reading); epochs are ignored.
    ///
    /// Nothing here fails today; the `Result` mirrors `match_purl`.
    pub fn match_cpe(&self, cpe: &Cpe) -> Result<Vec<Finding>, VulnError> {
        let (Some(product), Some(version)) = (cpe.product().literal(), cpe.version().literal())
        else {
            return Ok(Vec::new());
        };
        let update = match cpe.update() {
            CpeValue::Any | CpeValue::NotApplicable => None,
            CpeValue::Literal(u) => Some(u.as_str()),
            CpeValue::Pattern(_) => return Ok(Vec::new()),
        };
        if cpe.part() == CpePart::Hardware {
            return Ok(Vec::new());
        }
        let vendor = cpe.vendor().literal().map(cpe_norm);
        let mut hits: BTreeSet<usize> = BTreeSet::new();
        let candidates = self.by_cpe.get(&cpe_norm(product));
        for &(ai, pi) in candidates.map(Vec::as_slice).unwrap_or(&[]) {
            let aff = &self.advisories[ai].affected[pi];
            let Some(p) = &aff.package else { continue };
            let Ok(eco) = Ecosystem::from_osv(&p.ecosystem) else {
                continue;
            };
            if !vendor_fits(eco, &p.name, vendor.as_deref()) {
                continue;
            }
            let v = cpe_version(eco, version, update);
            if upstream_affected(eco, &v, aff).unwrap_or(false) {
                hits.insert(ai);
            }
        }
        Ok(self.findings(hits))
    }

    /// One finding per vulnerability: matched advisories that share any identifier (id or
    /// alias) are merged, sorted by advisory ids.
    fn findings(&self, hits: BTreeSet<usize>) -> Vec<Finding> {
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
        findings
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

    fn advisory(
        id: &str,
        aliases: &[&str],
        eco: &str,
        name: &str,
        events: serde_json::Value,
    ) -> Advisory {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "aliases": aliases,
            "affected": [{"package": {"ecosystem": eco, "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": events}]}]
        }))
        .unwrap()
    }

    fn fixed(v: &str) -> serde_json::Value {
        serde_json::json!([{"introduced": "0"}, {"fixed": v}])
    }

    fn cpe_ids(idx: &Index, cpe: &str) -> Vec<BTreeSet<String>> {
        idx.match_cpe(&Cpe::parse(cpe).unwrap())
            .unwrap()
            .into_iter()
            .map(|f| f.advisories)
            .collect()
    }

    fn ids(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cpe_matches_distribution_source_packages() {
        let idx = Index::new(vec![
            // Fixed by packaging the new upstream release: upstream 1.1.1k sorts before
            // 1.1.1k-1, so it counts as affected (documented on match_cpe).
            advisory(
                "DSA-1",
                &["CVE-2021-1"],
                "Debian:11",
                "openssl",
                fixed("1.1.1k-1"),
            ),
            // The same CVE for another release: merged into the same finding.
            advisory(
                "DLA-1",
                &["CVE-2021-1"],
                "Debian:10",
                "openssl",
                fixed("1.1.1n-0+deb10u1"),
            ),
            advisory(
                "DSA-2",
                &["CVE-2021-2"],
                "Debian:11",
                "openssl",
                fixed("1.1.1j-1"),
            ),
            advisory(
                "DSA-3",
                &["CVE-2021-3"],
                "Debian:11",
                "openssl",
                fixed("1.1.1n-0+deb11u1"),
            ),
            advisory(
                "USN-1",
                &["CVE-2021-3"],
                "Ubuntu:20.04:LTS",
                "openssl",
                fixed("1.1.1n-0ubuntu1"),
            ),
            advisory(
                "USN-2",
                &[],
                "Ubuntu:20.04:LTS",
                "openssl",
                fixed("1.1.1f-1ubuntu2.12"),
            ),
            // Epoch 1: without dropping it, every upstream zlib would look older than the fix.
            advisory(
                "DLA-9",
                &[],
                "Debian:11",
                "zlib",
                fixed("1:1.2.11.dfsg-2+deb11u2"),
            ),
            // The same name on PyPI, whose ordering cannot read "1.1.1k".
            advisory("PYSEC-1", &[], "PyPI", "openssl", fixed("2.0")),
        ]);
        let want = vec![ids(&["DLA-1", "DSA-1"]), ids(&["DSA-3", "USN-1"])];
        assert_eq!(
            cpe_ids(&idx, "cpe:2.3:a:openssl:openssl:1.1.1k:*:*:*:*:*:*:*"),
            want
        );
        // NVD's split form (version 1.1.1, update k) and the 2.2 URIs mean the same.
        assert_eq!(
            cpe_ids(&idx, "cpe:2.3:a:openssl:openssl:1.1.1:k:*:*:*:*:*:*"),
            want
        );
        assert_eq!(cpe_ids(&idx, "cpe:/a:openssl:openssl:1.1.1:k"), want);
        assert_eq!(cpe_ids(&idx, "cpe:/a:OpenSSL:OpenSSL:1.1.1K"), want);
        // 1.1.1n is past DSA-1, and below the 1.1.1n-0+deb... fixes.
        assert_eq!(
            cpe_ids(&idx, "cpe:2.3:a:openssl:openssl:1.1.1n:*:*:*:*:*:*:*"),
            vec![ids(&["DLA-1"]), ids(&["DSA-3", "USN-1"])]
        );
        // Plain 1.1.1 is below every fix, and PyPI can read it.
        assert_eq!(
            cpe_ids(&idx, "cpe:2.3:a:openssl:openssl:1.1.1:*:*:*:*:*:*:*"),
            vec![
                ids(&["DLA-1", "DSA-1"]),
                ids(&["DSA-2"]),
                ids(&["DSA-3", "USN-1"]),
                ids(&["PYSEC-1"]),
                ids(&["USN-2"]),
            ]
        );
        assert!(cpe_ids(&idx, "cpe:2.3:a:openssl:openssl:3.0.2:*:*:*:*:*:*:*").is_empty());
        assert_eq!(
            cpe_ids(&idx, "cpe:2.3:a:gnu:zlib:1.2.11:*:*:*:*:*:*:*"),
            vec![ids(&["DLA-9"])]
        );
        assert!(cpe_ids(&idx, "cpe:2.3:a:gnu:zlib:1.3.1:*:*:*:*:*:*:*").is_empty());
        // No version, any version, a version pattern, an update pattern, hardware: no match.
        for none in [
            "cpe:2.3:a:openssl:openssl:*:*:*:*:*:*:*:*",
            "cpe:2.3:a:openssl:openssl:-:*:*:*:*:*:*:*",
            "cpe:2.3:a:openssl:openssl:1.1.*:*:*:*:*:*:*:*",
            "cpe:2.3:a:openssl:openssl:1.1.1:?:*:*:*:*:*:*",
            "cpe:/a:openssl:openssl",
            "cpe:/a:openssl:openssl::k",
            "cpe:2.3:h:openssl:openssl:1.1.1k:*:*:*:*:*:*:*",
            "cpe:2.3:a:openssl:libressl:1.1.1k:*:*:*:*:*:*:*",
        ] {
            assert!(cpe_ids(&idx, none).is_empty(), "{none}");
        }
    }

    #[test]
    fn cpe_matches_language_packages() {
        let idx = Index::new(vec![
            advisory(
                "GO-1",
                &[],
                "Go",
                "github.com/gin-gonic/gin",
                fixed("1.9.1"),
            ),
            advisory("GO-2", &[], "Go", "github.com/jackc/pgx/v5", fixed("5.5.4")),
            advisory(
                "GHSA-m1",
                &[],
                "Maven",
                "com.h2database:h2",
                fixed("2.0.206"),
            ),
            advisory("GHSA-m2", &[], "Maven", "log4j:log4j", fixed("2.0")),
            advisory("GHSA-n1", &[], "npm", "@babel/traverse", fixed("7.23.2")),
            advisory("GHSA-p1", &[], "PyPI", "zope.interface", fixed("5.0.0")),
            advisory("GHSA-c1", &[], "crates.io", "tokio_util", fixed("0.7.1")),
            advisory("GHSA-r1", &[], "RubyGems", "nokogiri", fixed("1.13.10")),
            advisory(
                "GHSA-k1",
                &[],
                "Packagist",
                "league/flysystem",
                fixed("1.1.4"),
            ),
        ]);
        let hit = |cpe: &str, want: &[&str]| {
            let got: BTreeSet<String> = cpe_ids(&idx, cpe).into_iter().flatten().collect();
            assert_eq!(got, ids(want), "{cpe}");
        };
        // Go: last path element (or the one before /vN), path containing the vendor.
        hit("cpe:2.3:a:gin-gonic:gin:1.9.0:*:*:*:*:*:*:*", &["GO-1"]);
        hit("cpe:2.3:a:gin_gonic:gin:1.9.0:*:*:*:*:*:*:*", &["GO-1"]);
        hit("cpe:2.3:a:gin-gonic:gin:1.9.1:*:*:*:*:*:*:*", &[]);
        hit("cpe:2.3:a:golang:gin:1.9.0:*:*:*:*:*:*:*", &[]);
        hit("cpe:2.3:a:*:gin:1.9.0:*:*:*:*:*:*:*", &[]);
        hit("cpe:2.3:a:jackc:pgx:5.5.3:*:*:*:*:*:*:*", &["GO-2"]);
        hit("cpe:2.3:a:jackc:pgx:5.5.0:rc1:*:*:*:*:*:*", &["GO-2"]); // 5.5.0-rc1
        // Maven: the artifactId, whatever the groupId says.
        hit(
            "cpe:2.3:a:h2database:h2:2.0.204:*:*:*:*:*:*:*",
            &["GHSA-m1"],
        );
        hit("cpe:2.3:a:h2database:h2:2.0.206:*:*:*:*:*:*:*", &[]);
        hit("cpe:2.3:a:apache:log4j:1.2.17:*:*:*:*:*:*:*", &["GHSA-m2"]);
        // npm without its scope; PyPI with an escaped (but harmless) dot; `_` = `-`.
        hit(
            "cpe:2.3:a:babeljs:traverse:7.23.0:*:*:*:*:*:*:*",
            &["GHSA-n1"],
        );
        hit(
            r"cpe:2.3:a:zope:zope\.interface:4.7.2:*:*:*:*:*:*:*",
            &["GHSA-p1"],
        );
        hit("cpe:/a:tokio:tokio-util:0.7.0", &["GHSA-c1"]);
        hit(
            "cpe:2.3:a:nokogiri:nokogiri:1.13.9:*:*:*:*:*:*:*",
            &["GHSA-r1"],
        );
        hit("cpe:2.3:a:nokogiri:nokogiri:1.13.10:*:*:*:*:*:*:*", &[]);
        // Packagist: the vendor must be the package's vendor.
        hit(
            "cpe:2.3:a:league:flysystem:1.1.3:*:*:*:*:*:*:*",
            &["GHSA-k1"],
        );
        hit("cpe:2.3:a:thephpleague:flysystem:1.1.3:*:*:*:*:*:*:*", &[]);
    }

    #[test]
    fn cvss_base_takes_the_highest_of_v3_and_v4() {
        let rec = |scores: &[&str]| -> Advisory {
            let sev: Vec<_> = scores
                .iter()
                .map(|s| serde_json::json!({"type": "CVSS_V3", "score": s}))
                .collect();
            serde_json::from_value(serde_json::json!({"id": "X", "severity": sev})).unwrap()
        };
        let v3 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"; // 7.5
        let v4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"; // 9.3
        let v4_low = "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:A/VC:N/VI:N/VA:N/SC:L/SI:N/SA:N"; // 2.1
        assert_eq!(rec(&[v3, v4]).cvss_base(), Some(9.3));
        assert_eq!(rec(&[v4_low, v3]).cvss_base(), Some(7.5));
        assert_eq!(rec(&[v4_low]).cvss_base(), Some(2.1));
        assert_eq!(
            rec(&["AV:N/AC:L/Au:N/C:P/I:P/A:P", "low"]).cvss_base(),
            None
        );
    }
}
