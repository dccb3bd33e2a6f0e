//! Real OSV records (copied from the OSV, GitHub, PyPA, RustSec, Go, Debian, Ubuntu and Alpine
//! databases; provenance in tests/data/README.md): every version they use must parse and order
//! under its ecosystem, and their own boundaries must evaluate as the records state.

use std::path::Path;

use medsec_vuln::{Ecosystem, Event, Range, affected};

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
