//! Every real SBOM in the corpus parses; every malformed one is refused with an error that says
//! where.

use std::path::{Path, PathBuf};

fn files(dir: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(dir),
    ];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.to_string_lossy().ends_with(".md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn real_sboms_parse() {
    let mut n = 0;
    let mut with_purls = 0;
    for f in files("cyclonedx").into_iter().chain(files("spdx")) {
        let s = medsec_sbom::parse(&std::fs::read(&f).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        n += 1;
        if s.components.iter().any(|c| c.purl.is_some()) {
            with_purls += 1;
        }
    }
    assert!(n >= 35, "{n}");
    assert!(with_purls >= 15, "{with_purls}");
}

#[test]
fn malformed_sboms_are_refused_with_a_location() {
    for f in files("malformed") {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let r = medsec_sbom::parse(&std::fs::read(&f).unwrap());
        if name == "with-duplicates.cdx.xml" {
            // Duplicate components are legal CycloneDX; they must parse, duplicates kept.
            assert!(r.is_ok(), "{name}: {r:?}");
            continue;
        }
        match r.expect_err(&name) {
            medsec_sbom::SbomError::Invalid { at, reason } => {
                assert!(!at.is_empty() && !reason.is_empty(), "{name}")
            }
            other => panic!("{name}: expected an error with a location, got {other}"),
        }
    }
}

#[test]
fn specific_errors_name_the_field() {
    let read = |p: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/malformed")
                .join(p),
        )
        .unwrap()
    };
    let e = |p: &str| medsec_sbom::parse(&read(p)).unwrap_err().to_string();
    assert!(e("missing-required-bomformat.cdx.json").contains("bomFormat"));
    assert!(e("wrong-specversion-9.9.cdx.json").contains("9.9"));
    assert!(e("missing-required-spdxid.spdx.json").contains("SPDXID"));
    assert!(e("truncated-json.cdx.json").contains("line"));
    assert!(
        e("upstream-spec-fixtures/invalid-component-type-1.6.json").contains("components[0].type")
    );
    assert!(e("upstream-spec-fixtures/invalid-hash-sha256-1.6.json").contains("hashes"));
    assert!(e("upstream-spec-fixtures/invalid-serialnumber-1.6.json").contains("serialNumber"));
    assert!(e("upstream-spec-fixtures/invalid-namespace-1.6.xml").contains("namespace"));
    assert!(e("invalid-purl.cdx.xml").contains("purl"));
}

#[test]
fn components_carry_what_matching_needs() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/spdx/SPDXTagExample-v2.3.spdx");
    let s = medsec_sbom::parse(&std::fs::read(p).unwrap()).unwrap();
    assert_eq!(s.format, medsec_sbom::Format::SpdxTagValue);
    assert!(s.components.iter().any(|c| c.purl.is_some()));
    // medsec's support properties are read from CycloneDX properties.
    let bom = serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"type": "library", "name": "zlib", "version": "1.2.13",
        "purl": "pkg:generic/zlib@1.2.13", "properties": [{"name": "medsec:support-level", "value": "security-only"}, {"name": "medsec:end-of-support", "value": "2027-06-30"}]}]});
    let s = medsec_sbom::parse(bom.to_string().as_bytes()).unwrap();
    assert_eq!(
        s.components[0].support_level.as_deref(),
        Some("security-only")
    );
    assert_eq!(
        s.components[0].end_of_support.as_deref(),
        Some("2027-06-30")
    );
}
