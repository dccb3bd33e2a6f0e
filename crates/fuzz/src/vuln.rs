//! Advisory feed targets: one OSV JSON record, an OSV zip dump and the CISA KEV catalog, read
//! as `medsec_vuln` reads them for `medsec-inventory`'s imports.
//!
//! Beyond parsing, an OSV record drives the code that consumes it: CVSS scores stay in 0..=10,
//! each ecosystem's version ordering is reflexive, antisymmetric and transitive on the versions
//! the record names, an explicitly listed version is affected, and matching a purl against an
//! index of the record only ever names that record (never a withdrawn one).

use std::cmp::Ordering;

use medsec_vuln::{Advisory, Ecosystem, Event, Index, Kev};

/// At most this many versions of a record are compared pairwise (and in triples).
const MAX_VERSIONS: usize = 8;

fn event_version(e: &Event) -> &str {
    match e {
        Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => v,
    }
}

fn check_ordering(eco: Ecosystem, versions: &[&str]) {
    let cmp = |a: &str, b: &str| eco.compare(a, b).ok();
    for a in versions {
        if let Some(o) = cmp(a, a) {
            assert_eq!(o, Ordering::Equal, "{eco:?}: {a:?} is not equal to itself");
        }
        for b in versions {
            if let (Some(x), Some(y)) = (cmp(a, b), cmp(b, a)) {
                assert_eq!(
                    x,
                    y.reverse(),
                    "{eco:?}: {a:?} vs {b:?} is not antisymmetric"
                );
            }
            for c in versions {
                if let (Some(Ordering::Less), Some(Ordering::Less)) = (cmp(a, b), cmp(b, c)) {
                    assert_eq!(
                        cmp(a, c),
                        Some(Ordering::Less),
                        "{eco:?}: {a:?} < {b:?} < {c:?} but not {a:?} < {c:?}"
                    );
                }
            }
        }
    }
}

/// The purl type of an ecosystem whose purls map to OSV packages by name.
fn purl_type(eco: Ecosystem) -> Option<&'static str> {
    Some(match eco {
        Ecosystem::Npm => "npm",
        Ecosystem::CratesIo => "cargo",
        Ecosystem::PyPI => "pypi",
        _ => return None,
    })
}

fn check_advisory(a: &Advisory) {
    // What the inventory's import adds (medsec-inventory `parse_modified`): any string is
    // either an RFC 3339 time or refused.
    let _ =
        time::OffsetDateTime::parse(&a.modified, &time::format_description::well_known::Rfc3339);
    if let Some(s) = a.cvss_base() {
        assert!((0.0..=10.0).contains(&s), "CVSS score {s}");
    }
    for sev in &a.severity {
        if let Ok(c) = medsec_vuln::cvss::parse(&sev.score) {
            if let Some(s) = c.base_score {
                assert!(
                    (0.0..=10.0).contains(&s),
                    "CVSS score {s} of {:?}",
                    sev.score
                );
            }
            let _ = (c.severity(), c.nomenclature());
        }
    }
    let index = Index::new(vec![a.clone()]);
    for p in &a.affected {
        let Some(pkg) = &p.package else { continue };
        let Ok(eco) = Ecosystem::from_osv(&pkg.ecosystem) else {
            continue;
        };
        let mut versions: Vec<&str> = p.versions.iter().map(String::as_str).collect();
        for r in &p.ranges {
            versions.extend(r.events.iter().map(event_version));
        }
        versions.truncate(MAX_VERSIONS);
        check_ordering(eco, &versions);
        for v in p.versions.iter().take(MAX_VERSIONS) {
            assert_eq!(
                medsec_vuln::affected(eco, v, &p.ranges, &p.versions),
                Ok(true),
                "explicitly listed version {v:?} is not affected"
            );
        }
        let Some(ty) = purl_type(eco) else { continue };
        for v in versions {
            let Ok(purl) = medsec_core::Purl::parse(&format!("pkg:{ty}/{}@{v}", pkg.name)) else {
                continue;
            };
            let Ok(found) = index.match_purl(&purl) else {
                continue;
            };
            if a.withdrawn.is_some() {
                assert!(found.is_empty(), "a withdrawn advisory matched");
            }
            for f in &found {
                assert!(
                    f.advisories.iter().all(|id| *id == a.id),
                    "a finding names another advisory"
                );
                assert!(f.identifiers.contains(&a.id));
            }
        }
    }
}

/// One OSV record (JSON), as `import_osv` reads a body or a file.
pub fn osv_record(data: &[u8]) {
    if let Ok(a) = Advisory::from_json(data) {
        check_advisory(&a);
    }
}

/// An OSV zip dump: `zip_records` keeps the `.json` entries (bounded), `from_zip` parses them
/// all or refuses the dump.
pub fn osv_zip(data: &[u8]) {
    let Ok(records) = medsec_vuln::zip_records(data) else {
        assert!(Advisory::from_zip(data).is_err());
        return;
    };
    for (name, raw) in &records {
        assert!(name.ends_with(".json"), "non-JSON entry {name:?} kept");
        assert!(
            raw.len() <= 16 * 1024 * 1024,
            "entry {name:?} over the bound"
        );
    }
    match Advisory::from_zip(data) {
        Ok(all) => {
            assert_eq!(all.len(), records.len());
            for a in all.iter().take(4) {
                check_advisory(a);
            }
        }
        Err(_) => assert!(
            records
                .iter()
                .any(|(_, raw)| Advisory::from_json(raw).is_err()),
            "from_zip refused a dump whose every record parses"
        ),
    }
}

/// The CISA KEV catalog (JSON feed).
pub fn kev_catalog(data: &[u8]) {
    let Ok(kev) = Kev::from_json(data) else {
        return;
    };
    let cves: Vec<String> = kev.cves().map(str::to_owned).collect();
    assert_eq!(cves.len(), kev.len());
    assert_eq!(kev.is_empty(), cves.is_empty());
    for c in cves.iter().take(64) {
        assert!(kev.contains(c));
        let e = kev
            .lookup(std::iter::once(c))
            .expect("lookup of a listed CVE");
        assert_eq!(&e.cve, c);
    }
}
