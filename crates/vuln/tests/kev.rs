//! The real CISA KEV catalog parses and flags findings through their CVE aliases.

use std::path::Path;

use medsec_core::Purl;
use medsec_vuln::{Advisory, Index, Kev};

#[test]
fn real_catalog_flags_findings_by_alias() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let kev =
        Kev::from_json(&std::fs::read(dir.join("known_exploited_vulnerabilities.json")).unwrap())
            .unwrap();
    assert!(kev.len() > 1000, "{}", kev.len());
    assert!(
        kev.lookup(&["CVE-2021-44228".to_owned()]).is_some(),
        "Log4Shell is in KEV"
    );
    assert!(kev.lookup(&["CVE-1999-0000".to_owned()]).is_none());
    // A GHSA record whose CVE alias is KEV-listed is flagged through the merged identifiers.
    let adv: Advisory = serde_json::from_value(serde_json::json!({
        "id": "GHSA-jfh8-c2jp-5v3q", "aliases": ["CVE-2021-44228"],
        "affected": [{"package": {"ecosystem": "Maven", "name": "org.apache.logging.log4j:log4j-core"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.0-beta9"}, {"fixed": "2.15.0"}]}]}]
    }))
    .unwrap();
    let idx = Index::new(vec![adv]);
    let f = idx
        .match_purl(&Purl::parse("pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1").unwrap())
        .unwrap();
    assert_eq!(f.len(), 1);
    assert!(kev.lookup(&f[0].identifiers).is_some());
    assert!(Kev::from_json(b"{\"nope\": 1}").is_err());
}

#[test]
fn osv_zip_dump_imports() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let advs = Advisory::from_zip(&std::fs::read(dir.join("osv-npm-all.zip")).unwrap()).unwrap();
    let plain = std::fs::read_dir(dir.join("osv/npm")).unwrap().count();
    assert_eq!(
        advs.len(),
        plain,
        "the zip holds the same records as the folder"
    );
    assert!(Advisory::from_zip(b"PK not really").is_err());
}
