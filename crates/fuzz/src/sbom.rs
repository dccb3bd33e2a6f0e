//! SBOM targets: CycloneDX JSON and XML, SPDX JSON and tag-value, all through
//! `medsec_sbom::parse` (the format is detected from the content, as on upload); the four
//! targets differ by their seed corpus.
//!
//! An accepted SBOM is exported with `to_cyclonedx_json` and parsed back: the export must be
//! accepted and come back as the firmware component followed by every component, each keeping
//! its name, version, supplier, purl, CPEs, licences, support fields and the hashes CycloneDX
//! can hold; exporting the re-parsed components gives the same document (a fixed point), and
//! `diff` between the two is empty.

use medsec_sbom::{ExportMeta, Format, Sbom, SerialNumber, Timestamp};

fn meta() -> ExportMeta {
    ExportMeta {
        product: "fuzz-pump".into(),
        firmware_version: "1.0.0".into(),
        manufacturer: "medsec fuzz".into(),
        timestamp: Timestamp::parse("2026-01-01T00:00:00Z").expect("timestamp"),
        serial_number: SerialNumber::parse("urn:uuid:00000000-0000-4000-8000-000000000000")
            .expect("serial"),
    }
}

fn check(data: &[u8]) {
    let Ok(sbom) = medsec_sbom::parse(data) else {
        return;
    };
    // The detected format is the one the content starts with.
    let t = std::str::from_utf8(data)
        .expect("accepted SBOMs are UTF-8")
        .trim_start_matches('\u{feff}')
        .trim_start();
    match sbom.format {
        Format::CycloneDxJson | Format::SpdxJson => assert!(t.starts_with('{')),
        Format::CycloneDxXml => assert!(t.starts_with('<')),
        Format::SpdxTagValue => assert!(!t.starts_with('{') && !t.starts_with('<')),
    }
    // A byte-order mark changes nothing.
    let mut bom = "\u{feff}".as_bytes().to_vec();
    bom.extend_from_slice(data);
    assert_eq!(
        medsec_sbom::parse(&bom).as_ref(),
        Ok(&sbom),
        "a BOM changed the result"
    );
    round_trip(&sbom);
}

fn round_trip(sbom: &Sbom) {
    let m = meta();
    let doc = medsec_sbom::to_cyclonedx_json(sbom, &m);
    let bytes = serde_json::to_vec(&doc).expect("serialize export");
    let mut back = match medsec_sbom::parse(&bytes) {
        Ok(b) => b,
        Err(e) => panic!("our own CycloneDX export is refused: {e}"),
    };
    assert_eq!(back.format, Format::CycloneDxJson);
    // The export's metadata.component (the firmware) comes back first, as every CycloneDX
    // product component does.
    assert!(
        !back.components.is_empty(),
        "the firmware component is missing"
    );
    let product = back.components.remove(0);
    assert_eq!(product.name, m.product);
    assert_eq!(
        product.version.as_deref(),
        Some(m.firmware_version.as_str())
    );
    assert_eq!(
        back.components.len(),
        sbom.components.len(),
        "components lost or added by the export"
    );
    for (a, b) in sbom.components.iter().zip(&back.components) {
        assert_eq!(a.name, b.name, "name");
        assert_eq!(a.version, b.version, "version of {}", a.name);
        assert_eq!(a.supplier, b.supplier, "supplier of {}", a.name);
        assert_eq!(a.purl, b.purl, "purl of {}", a.name);
        assert_eq!(a.cpes, b.cpes, "CPEs of {}", a.name);
        assert_eq!(a.licenses, b.licenses, "licences of {}", a.name);
        assert_eq!(
            a.support_level, b.support_level,
            "support level of {}",
            a.name
        );
        assert_eq!(
            a.end_of_support, b.end_of_support,
            "end of support of {}",
            a.name
        );
        for h in &b.hashes {
            assert!(
                a.hashes.contains(h),
                "hash {h:?} of {} was not in the input",
                a.name
            );
        }
    }
    let d = medsec_sbom::diff(sbom, &back);
    assert!(
        d.added.is_empty() && d.removed.is_empty() && d.changed.is_empty(),
        "diff after export: {d:?}"
    );
    let again = medsec_sbom::to_cyclonedx_json(&back, &m);
    assert_eq!(again, doc, "export is not a fixed point");
}

/// CycloneDX JSON (1.2-1.6).
pub fn sbom_cyclonedx_json(data: &[u8]) {
    check(data);
}

/// CycloneDX XML (1.2-1.6).
pub fn sbom_cyclonedx_xml(data: &[u8]) {
    check(data);
}

/// SPDX 2.2/2.3 JSON.
pub fn sbom_spdx_json(data: &[u8]) {
    check(data);
}

/// SPDX 2.2/2.3 tag-value.
pub fn sbom_spdx_tag_value(data: &[u8]) {
    check(data);
}
