//! Helpers shared by the export and interop tests: the fixture corpus and fixed export metadata.

#![allow(dead_code)] // each test crate uses part of this

use std::path::{Path, PathBuf};

use medsec_sbom::{ExportMeta, SerialNumber, Timestamp};

pub fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Every SBOM-like file under tests/data (real, spec fixtures and malformed), not the vendored
/// schemas, sorted.
pub fn corpus() -> Vec<PathBuf> {
    let root = data();
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p == root.join("schemas") {
                continue;
            }
            let s = p.to_string_lossy();
            if p.is_dir() {
                stack.push(p);
            } else if !s.ends_with(".md") && !s.ends_with(".tsv") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Corpus files that parse, with what they parse to.
pub fn parsing_corpus() -> Vec<(PathBuf, medsec_sbom::Sbom)> {
    corpus()
        .into_iter()
        .filter_map(|f| {
            let s = medsec_sbom::parse(&std::fs::read(&f).unwrap()).ok()?;
            Some((f, s))
        })
        .collect()
}

pub fn meta() -> ExportMeta {
    ExportMeta {
        product: "Infusion pump IP-300".into(),
        firmware_version: "4.2.1".into(),
        manufacturer: "Acme Medical GmbH".into(),
        timestamp: Timestamp::parse("2025-03-01T12:00:00Z").unwrap(),
        serial_number: SerialNumber::parse("urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79")
            .unwrap(),
    }
}

/// A fresh directory under the system temp dir for one test's files.
pub fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("medsec-sbom-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
