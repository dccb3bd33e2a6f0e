//! Interoperability with the reference Python SBOM tools: cyclonedx-python-lib validates and
//! reads our CycloneDX export, and pyspdxtools (spdx-tools) agrees with us on which SPDX files
//! are valid and converts SPDX in ways we parse back to the same components.
//!
//! The Python side is tests/interop.py. A missing package fails the test with the pip command
//! to run: skipping would let a broken export pass unnoticed.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use medsec_core::Purl;
use medsec_sbom::{Sbom, parse, to_cyclonedx_json};
use serde_json::Value;

const PIP: &str = "pip install 'cyclonedx-python-lib[json-validation]' spdx-tools";

/// Runs tests/interop.py with `args`; panics with the pip advice when python3 or a package is
/// missing.
fn python(args: &[&Path]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop.py");
    let o = Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): install Python 3, then run: {PIP}"));
    if o.status.code() == Some(3) {
        panic!(
            "the interop tests need Python packages: run `{PIP}`\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    o
}

/// Runs the script and parses its JSON answer, failing on a non-zero exit.
fn python_json(args: &[&Path]) -> Value {
    let o = python(args);
    assert!(
        o.status.success(),
        "interop.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `pyspdxtools ARGS` (the spdx-tools CLI).
fn pyspdxtools(args: &[&Path]) -> Output {
    let mut all: Vec<&Path> = vec![Path::new("pyspdxtools")];
    all.extend(args);
    python(&all)
}

/// Every corpus file that parses, exported, written to `dir`: (path, what was exported).
fn exports(dir: &Path) -> Vec<(PathBuf, Sbom)> {
    let corpus = common::parsing_corpus();
    assert!(corpus.len() >= 40, "only {} fixtures parse", corpus.len());
    corpus
        .into_iter()
        .enumerate()
        .map(|(i, (f, s))| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let out = dir.join(format!("{i:02}-{name}.cdx.json"));
            let v = to_cyclonedx_json(&s, &common::meta());
            std::fs::write(&out, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
            (out, s)
        })
        .collect()
}

/// (a) Every export is valid CycloneDX 1.5 to cyclonedx-python-lib's strict JSON validator and to
/// the vendored bom-1.5.schema.json; a deliberately broken export is caught by both, so the check
/// cannot pass by checking nothing.
#[test]
fn exports_validate_as_cyclonedx_1_5() {
    let dir = common::scratch("validate");
    let files = exports(&dir);
    let mut v = to_cyclonedx_json(&files[0].1, &common::meta());
    v["components"][0]["type"] = "gadget".into();
    let broken = dir.join("broken.cdx.json");
    std::fs::write(&broken, v.to_string()).unwrap();
    let schemas = common::data().join("schemas/cyclonedx");
    let mut args: Vec<&Path> = vec![Path::new("cdx-validate"), &schemas];
    args.extend(files.iter().map(|(p, _)| p.as_path()));
    args.push(&broken);
    let report = python_json(&args);
    for (p, _) in &files {
        let r = &report[p.to_str().unwrap()];
        for validator in ["cyclonedx-python-lib", "schema"] {
            assert_eq!(
                r[validator],
                serde_json::json!([]),
                "{}: {validator} finds the export invalid",
                p.display()
            );
        }
    }
    let r = &report[broken.to_str().unwrap()];
    for validator in ["cyclonedx-python-lib", "schema"] {
        assert!(
            r[validator].as_array().is_some_and(|e| !e.is_empty()),
            "{validator} accepted a component of type \"gadget\": {r}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// (b) cyclonedx-python-lib deserializes every export (Bom.from_json) and sees our firmware as the
/// BOM's subject, every component, and the same purls.
#[test]
fn cyclonedx_python_lib_reads_exports() {
    let dir = common::scratch("load");
    let files = exports(&dir);
    let mut args: Vec<&Path> = vec![Path::new("cdx-load")];
    args.extend(files.iter().map(|(p, _)| p.as_path()));
    let report = python_json(&args);
    let mut purls_seen = 0;
    for (p, s) in &files {
        let r = &report[p.to_str().unwrap()];
        assert_eq!(
            r["metadata_component"],
            "Infusion pump IP-300",
            "{}",
            p.display()
        );
        assert_eq!(
            r["components"].as_u64(),
            Some(s.components.len() as u64),
            "{}",
            p.display()
        );
        // Compared parsed: packageurl-python and medsec-core write some characters differently
        // (`1:2.29` vs `1%3A2.29` in a Debian version), which is the same purl.
        let theirs: Vec<Purl> = r["purls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| Purl::parse(p.as_str().unwrap()).unwrap())
            .collect();
        let ours: Vec<Purl> = s.components.iter().filter_map(|c| c.purl.clone()).collect();
        let key = |v: Vec<Purl>| {
            v.into_iter()
                .map(|p| p.to_string())
                .collect::<BTreeSet<_>>()
        };
        let (theirs, ours) = (key(theirs), key(ours));
        assert_eq!(theirs, ours, "{}", p.display());
        purls_seen += ours.len();
    }
    assert!(purls_seen > 2000, "{purls_seen}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Real SPDX fixtures we accept but pyspdxtools refuses, with the reason it gives: real tools
/// write them, so we read them. The test checks pyspdxtools still refuses them, so the list
/// cannot outlive its reason.
const SPDX_PYSPDXTOOLS_REFUSES: [(&str, &str); 2] = [
    // Trivy omits PackageDownloadLocation (mandatory in SPDX 2.2) and writes Created without
    // the "Z" the spec's format requires.
    ("spdx-2.2-trivy-centos7-rpm.spdx", "download_location"),
    // Declares licenseInfoFromFiles on a package with filesAnalyzed false, which SPDX 2.3
    // forbids.
    (
        "spdx-2.3-acme-npm-alpine-security-refs.spdx.json",
        "license_info_from_files",
    ),
];

fn spdx_fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(common::data().join("spdx"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    assert!(v.len() >= 8, "{v:?}");
    v
}

fn refused_by_pyspdxtools(f: &Path) -> Option<&'static str> {
    let name = f.file_name()?.to_str()?;
    SPDX_PYSPDXTOOLS_REFUSES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, why)| *why)
}

/// (c) `pyspdxtools -i X` validates every real SPDX fixture we accept, except the listed ones,
/// which it refuses for the listed reason.
#[test]
fn pyspdxtools_validates_the_spdx_we_accept() {
    for f in spdx_fixtures() {
        parse(&std::fs::read(&f).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let o = pyspdxtools(&[Path::new("-i"), &f]);
        let err = String::from_utf8_lossy(&o.stderr);
        match refused_by_pyspdxtools(&f) {
            None => assert!(
                o.status.success(),
                "pyspdxtools refuses {}:\n{err}",
                f.display()
            ),
            Some(why) => assert!(
                !o.status.success() && err.contains(why),
                "{}: pyspdxtools was expected to refuse it for {why}:\n{err}",
                f.display()
            ),
        }
    }
}

/// Compares what two SPDX files parse to: components in order, and the dependency graph.
fn assert_same_content(a: &Sbom, b: &Sbom, what: &str) {
    assert_eq!(a.components, b.components, "{what}");
    let set = |s: &Sbom| s.dependencies.iter().cloned().collect::<HashSet<_>>();
    assert_eq!(set(a), set(b), "{what}");
}

/// (c) Each fixture pyspdxtools accepts, converted by it JSON -> tag-value or tag-value -> JSON,
/// parses in our crate to the same components and dependencies as the original.
#[test]
fn spdx_converted_by_pyspdxtools_parses_the_same() {
    let dir = common::scratch("spdx-convert");
    let mut converted = 0;
    for f in spdx_fixtures() {
        if refused_by_pyspdxtools(&f).is_some() {
            continue;
        }
        let original = parse(&std::fs::read(&f).unwrap()).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let json_in = name.ends_with(".json");
        let out = dir.join(if json_in {
            format!("{name}.spdx")
        } else {
            format!("{name}.json")
        });
        let o = pyspdxtools(&[Path::new("-i"), &f, Path::new("-o"), &out]);
        assert!(
            o.status.success(),
            "pyspdxtools cannot convert {name}:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let back = parse(&std::fs::read(&out).unwrap())
            .unwrap_or_else(|e| panic!("{name} as converted by pyspdxtools: {e}"));
        assert_eq!(
            back.format,
            if json_in {
                medsec_sbom::Format::SpdxTagValue
            } else {
                medsec_sbom::Format::SpdxJson
            }
        );
        assert_same_content(&original, &back, &name);
        converted += 1;
    }
    assert!(converted >= 6, "{converted}");
    let _ = std::fs::remove_dir_all(dir);
}

/// medsec's support annotations (SPDX package annotations) survive pyspdxtools' conversion to
/// tag-value, which moves them to a document-level block naming the package by SPDXREF.
#[test]
fn support_annotations_survive_pyspdxtools_conversion() {
    let dir = common::scratch("spdx-annotations");
    let doc = serde_json::json!({
        "spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "ip-300-firmware",
        "dataLicense": "CC0-1.0", "documentNamespace": "https://example.com/spdx/ip-300-4.2.1",
        "creationInfo": {"created": "2025-03-01T12:00:00Z", "creators": ["Tool: medsec"]},
        "packages": [
            {"SPDXID": "SPDXRef-openssl", "name": "openssl", "versionInfo": "3.0.13",
             "downloadLocation": "NOASSERTION", "filesAnalyzed": false, "primaryPackagePurpose": "LIBRARY",
             "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                               "referenceLocator": "pkg:generic/openssl@3.0.13"}],
             "annotations": [{"annotationType": "OTHER", "annotator": "Tool: medsec",
                              "annotationDate": "2025-03-01T12:00:00Z",
                              "comment": "medsec:support-level=security-only; medsec:end-of-support=2026-09-07"}]},
            {"SPDXID": "SPDXRef-zlib", "name": "zlib", "versionInfo": "1.3.1",
             "downloadLocation": "NOASSERTION", "filesAnalyzed": false,
             "annotations": [{"annotationType": "OTHER", "annotator": "Tool: medsec",
                              "annotationDate": "2025-03-01T12:00:00Z",
                              "comment": "medsec:support-level=supported"}]}
        ],
        "relationships": [
            {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-openssl"},
            {"spdxElementId": "SPDXRef-openssl", "relationshipType": "DEPENDS_ON", "relatedSpdxElement": "SPDXRef-zlib"}
        ]
    });
    let f = dir.join("annotated.spdx.json");
    std::fs::write(&f, doc.to_string()).unwrap();
    let original = parse(doc.to_string().as_bytes()).unwrap();
    assert_eq!(
        original.components[0].support_level.as_deref(),
        Some("security-only")
    );
    let tv = dir.join("annotated.spdx");
    let o = pyspdxtools(&[Path::new("-i"), &f, Path::new("-o"), &tv]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&tv).unwrap();
    assert!(text.contains("SPDXREF: SPDXRef-zlib"), "{text}");
    let back = parse(text.as_bytes()).unwrap();
    assert_same_content(&original, &back, "annotated.spdx");
    let _ = std::fs::remove_dir_all(dir);
}

/// (c) Malformed SPDX that pyspdxtools refuses, we refuse too.
#[test]
fn malformed_spdx_is_refused_by_both() {
    for name in [
        // The document's SPDXID removed (JSON).
        "missing-required-spdxid.spdx.json",
        // The first package's SPDXID line removed (tag-value).
        "missing-package-spdxid.spdx",
    ] {
        let f = common::data().join("malformed").join(name);
        let o = pyspdxtools(&[Path::new("-i"), &f]);
        assert!(!o.status.success(), "pyspdxtools accepts {name}");
        let e = parse(&std::fs::read(&f).unwrap()).expect_err(name);
        assert!(e.to_string().contains("SPDXID"), "{name}: {e}");
    }
}
