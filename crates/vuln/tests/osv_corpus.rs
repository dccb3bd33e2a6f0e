//! Real OSV records (copied from the OSV, GitHub, PyPA, RustSec, Go, Debian, Ubuntu, Alpine and
//! Drupal databases; provenance in tests/data/README.md): every version they use must parse and
//! order under its ecosystem, their own boundaries must evaluate as the records state, and every
//! CVSS v3.x/v4.0 vector they carry must score.

use std::path::Path;

use medsec_vuln::{Advisory, Ecosystem, Event, Range, affected};

#[derive(serde::Deserialize)]
struct Record {
    id: String,
    #[serde(default)]
    affected: Vec<Affected>,
}

#[derive(serde::Deserialize)]
struct Affected {
    package: Option<Package>,
    #[serde(default)]
    ranges: Vec<Range>,
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(serde::Deserialize)]
struct Package {
    ecosystem: String,
}

fn records() -> Vec<(String, Record)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/osv");
    let mut out = Vec::new();
    for eco in std::fs::read_dir(&root).unwrap() {
        let eco = eco.unwrap().path();
        if !eco.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(eco).unwrap() {
            let p = f.unwrap().path();
            let r: Record = serde_json::from_slice(&std::fs::read(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            out.push((p.display().to_string(), r));
        }
    }
    out
}

#[test]
fn every_version_in_the_corpus_orders() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for (path, rec) in records() {
        for a in &rec.affected {
            let Some(eco) = a
                .package
                .as_ref()
                .and_then(|p| Ecosystem::from_osv(&p.ecosystem).ok())
            else {
                continue;
            };
            for r in &a.ranges {
                // Each event boundary evaluated against itself: introduced is affected, fixed is not.
                for e in &r.events {
                    let (v, want) = match e {
                        Event::Introduced(v) if v != "0" => (v, Some(true)),
                        Event::Fixed(v) => (v, Some(false)),
                        Event::LastAffected(v) => (v, Some(true)),
                        _ => continue,
                    };
                    checked += 1;
                    match affected(eco, v, std::slice::from_ref(r), &[]) {
                        Ok(got) if r.kind == medsec_vuln::RangeKind::Git => assert!(!got),
                        Ok(got) => {
                            // A fixed version can be re-introduced by a later event of the same
                            // range; only the simple two-event ranges are held to the rule.
                            if r.events.len() == 2 && Some(got) != want {
                                failures.push(format!(
                                    "{} {}: {eco} {v} evaluated {got}",
                                    rec.id, path
                                ));
                            }
                        }
                        Err(e) => failures.push(format!("{} {}: {e}", rec.id, path)),
                    }
                }
            }
            for v in &a.versions {
                if let Err(e) = affected(eco, v, &[], &a.versions) {
                    failures.push(format!("{}: {e}", rec.id));
                }
            }
        }
    }
    assert!(checked > 300, "only {checked} boundaries checked");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_cvss_vector_in_the_corpus_scores() {
    let mut v4 = 0;
    let mut best = std::collections::BTreeMap::new();
    for (path, _) in records() {
        let a = Advisory::from_json(&std::fs::read(&path).unwrap()).unwrap();
        for s in &a.severity {
            if !s.score.starts_with("CVSS:3") && !s.score.starts_with("CVSS:4") {
                continue;
            }
            let c = medsec_vuln::cvss::parse(&s.score).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(c.base_score.is_some(), "{path}: {}", s.score);
            v4 += usize::from(c.version == "4.0");
        }
        best.insert(a.id.clone(), a.cvss_base());
    }
    assert!(v4 >= 4, "only {v4} v4.0 vectors");
    // Scores cross-checked with Red Hat's `cvss` library (the FIRST calculators' algorithms);
    // cvss_base is the highest of v3 and v4.
    for (id, want) in [
        ("GHSA-qwcr-r2fm-qrc7", Some(8.7)),  // v3.1 7.5, v4.0 8.7
        ("GHSA-25hc-qcg6-38wj", Some(7.3)),  // v3.1 7.3, v4.0 6.9
        ("GHSA-3pxv-7cmr-fjr4", Some(6.9)),  // v4.0 only
        ("RUSTSEC-2026-0009", Some(6.8)),    // v4.0 only
        ("UBUNTU-CVE-2025-6297", Some(8.2)), // v3.1 8.2 and Ubuntu's "low", not a vector
    ] {
        assert_eq!(best[id], want, "{id}");
    }
}
