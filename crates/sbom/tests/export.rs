//! The CycloneDX 1.5 export round-trips: every corpus file that parses, exported and parsed
//! again, gives back the same components and dependency graph, changed only where
//! `to_cyclonedx_json` documents that CycloneDX 1.5 cannot hold something.

mod common;

use std::collections::HashSet;

use common::meta;
use medsec_sbom::{Component, Format, Hash, SerialNumber, Timestamp, parse, to_cyclonedx_json};
use serde_json::json;

const CDX_ALGS: [&str; 12] = [
    "MD5",
    "SHA-1",
    "SHA-256",
    "SHA-384",
    "SHA-512",
    "SHA3-256",
    "SHA3-384",
    "SHA3-512",
    "BLAKE2b-256",
    "BLAKE2b-384",
    "BLAKE2b-512",
    "BLAKE3",
];

/// What `original` must come back as, given the bom-ref it was exported under: the documented
/// adaptations (hashes CycloneDX cannot name or whose length its schema refuses), and the id
/// where the export had to make one up.
fn expected(original: &Component, kept_id: bool, got_id: &Option<String>) -> Component {
    let mut c = original.clone();
    if !kept_id {
        c.id = got_id.clone();
    }
    c.hashes.retain(|h| {
        CDX_ALGS.contains(&h.alg.as_str()) && [32, 40, 64, 96, 128].contains(&h.value.len())
    });
    c
}

#[test]
fn every_parsing_fixture_round_trips() {
    let corpus = common::parsing_corpus();
    assert!(corpus.len() >= 40, "only {} fixtures parsed", corpus.len());
    for (f, s) in corpus {
        let name = f.display().to_string();
        let out = to_cyclonedx_json(&s, &meta());
        let back = parse(out.to_string().as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (back.format, back.spec_version.as_str()),
            (Format::CycloneDxJson, "1.5"),
            "{name}"
        );
        // The firmware the export describes comes first (the parser reads metadata.component
        // as a component); the original components follow, in order.
        assert_eq!(back.components.len(), s.components.len() + 1, "{name}");
        let product = &back.components[0];
        assert_eq!(
            (
                product.name.as_str(),
                product.version.as_deref(),
                product.supplier.as_deref()
            ),
            (
                "Infusion pump IP-300",
                Some("4.2.1"),
                Some("Acme Medical GmbH")
            ),
            "{name}"
        );
        let mut seen_ids = HashSet::new();
        for (orig, got) in s.components.iter().zip(&back.components[1..]) {
            let kept = orig
                .id
                .as_ref()
                .is_some_and(|id| !id.is_empty() && seen_ids.insert(id.clone()));
            assert_eq!(got, &expected(orig, kept, &got.id), "{name}");
        }
        let ids: Vec<&str> = back
            .components
            .iter()
            .map(|c| {
                c.id.as_deref()
                    .expect("every exported component has a bom-ref")
            })
            .collect();
        assert_eq!(
            ids.iter().collect::<HashSet<_>>().len(),
            ids.len(),
            "{name}: bom-refs not unique"
        );
        // The graph survives, less edges to things that are not components (SPDX documents
        // and files), which CycloneDX cannot point at.
        let component_ids: HashSet<&str> = s
            .components
            .iter()
            .filter_map(|c| c.id.as_deref())
            .collect();
        let want: HashSet<&(String, String)> = s
            .dependencies
            .iter()
            .filter(|(a, b)| {
                component_ids.contains(a.as_str()) && component_ids.contains(b.as_str())
            })
            .collect();
        let got: HashSet<&(String, String)> = back.dependencies.iter().collect();
        assert_eq!(got, want, "{name}");
        assert_eq!(
            out,
            to_cyclonedx_json(&s, &meta()),
            "{name}: export not deterministic"
        );
    }
}

fn component(name: &str) -> Component {
    Component {
        id: None,
        name: name.into(),
        version: None,
        supplier: None,
        purl: None,
        cpes: Vec::new(),
        hashes: Vec::new(),
        licenses: Vec::new(),
        support_level: None,
        end_of_support: None,
    }
}

/// The adaptations the export documents, on a hand-made SBOM that needs all of them.
#[test]
fn export_maps_each_field() {
    let sha1 = "a".repeat(40);
    let mut zlib = component("zlib");
    zlib.id = Some("SPDXRef-zlib".into());
    zlib.version = Some("1.2.13".into());
    zlib.supplier = Some("zlib authors".into());
    zlib.purl = Some(medsec_core::Purl::parse("pkg:generic/zlib@1.2.13?b=2&a=1").unwrap());
    zlib.cpes = vec![
        "cpe:2.3:a:zlib:zlib:1.2.13:*:*:*:*:*:*:*".into(),
        "cpe:/a:gnu:zlib:1.2.13".into(),
    ];
    zlib.hashes = vec![
        Hash {
            alg: "SHA-1".into(),
            value: sha1.clone(),
        },
        Hash {
            alg: "SHA224".into(),
            value: "b".repeat(56),
        },
        Hash {
            alg: "BLAKE3".into(),
            value: "c".repeat(10),
        },
    ];
    zlib.licenses = vec!["Zlib".into()];
    zlib.support_level = Some("security-only".into());
    zlib.end_of_support = Some("2027-06-30".into());
    let mut rtos = component("rtos");
    rtos.id = Some("SPDXRef-zlib".into()); // duplicate id: must get a fresh bom-ref
    rtos.cpes = vec!["cpe:2.3:o:amazon:freertos:10.5:*:*:*:*:*:*:*".into()];
    rtos.version = Some("10.5".into());
    rtos.licenses = vec!["MIT OR Apache-2.0".into()];
    let mut anon = component("anon");
    anon.purl = Some(medsec_core::Purl::parse("pkg:npm/%40acme/anon@1.0.0").unwrap());
    anon.licenses = vec!["Acme EULA".into(), "LicenseRef-x AND MIT".into()];
    let mut image = component("alpine");
    image.purl = Some(medsec_core::Purl::parse("pkg:oci/alpine@sha256%3Aabc123").unwrap());
    let mut board = component("mainboard");
    board.cpes = vec!["cpe:/h:acme:mainboard:2".into()];
    let sbom = medsec_sbom::Sbom {
        format: Format::SpdxJson,
        spec_version: "2.3".into(),
        components: vec![
            zlib,
            rtos,
            anon,
            component("Infusion pump IP-300"),
            image,
            board,
        ],
        dependencies: vec![
            ("SPDXRef-zlib".into(), "SPDXRef-zlib".into()),
            ("SPDXRef-DOCUMENT".into(), "SPDXRef-zlib".into()),
            ("SPDXRef-zlib".into(), "SPDXRef-zlib".into()),
        ],
    };
    let v = to_cyclonedx_json(&sbom, &meta());
    assert_eq!(v["specVersion"], "1.5");
    assert_eq!(
        v["serialNumber"],
        "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79"
    );
    assert_eq!(v["metadata"]["timestamp"], "2025-03-01T12:00:00Z");
    assert_eq!(v["metadata"]["manufacture"]["name"], "Acme Medical GmbH");
    let product = &v["metadata"]["component"];
    assert_eq!(product["type"], "firmware");
    assert_eq!(product["bom-ref"], "Infusion pump IP-300@4.2.1");
    let c = &v["components"];
    assert_eq!(
        c[0],
        json!({
            "type": "library",
            "bom-ref": "SPDXRef-zlib",
            "name": "zlib",
            "version": "1.2.13",
            "supplier": {"name": "zlib authors"},
            "purl": "pkg:generic/zlib@1.2.13?a=1&b=2",
            "cpe": "cpe:2.3:a:zlib:zlib:1.2.13:*:*:*:*:*:*:*",
            "hashes": [{"alg": "SHA-1", "content": sha1}],
            "licenses": [{"license": {"id": "Zlib"}}],
            "properties": [
                {"name": "medsec:cpe", "value": "cpe:/a:gnu:zlib:1.2.13"},
                {"name": "medsec:support-level", "value": "security-only"},
                {"name": "medsec:end-of-support", "value": "2027-06-30"},
            ],
        })
    );
    assert_eq!(c[1]["type"], "operating-system");
    assert_eq!(c[1]["bom-ref"], "rtos@10.5");
    assert_eq!(
        c[1]["licenses"],
        json!([{"expression": "MIT OR Apache-2.0"}])
    );
    assert_eq!(c[2]["bom-ref"], "pkg:npm/%40acme/anon@1.0.0");
    assert_eq!(
        c[2]["licenses"],
        json!([{"license": {"name": "Acme EULA"}}, {"license": {"name": "LicenseRef-x AND MIT"}}])
    );
    // A component named like the firmware does not take the firmware's bom-ref.
    assert_eq!(c[3]["bom-ref"], "Infusion pump IP-300");
    // The type follows the purl type or the CPE part when they say; library otherwise.
    let types: Vec<&str> = (0..6).map(|i| c[i]["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "library",
            "operating-system",
            "library",
            "library",
            "container",
            "device"
        ]
    );
    assert_eq!(
        v["dependencies"],
        json!([{"ref": "SPDXRef-zlib", "dependsOn": ["SPDXRef-zlib"]}])
    );
    // Parsed back, the second CPE returns from its property and the licenses as they were.
    let back = parse(v.to_string().as_bytes()).unwrap();
    assert_eq!(back.components[1].cpes, sbom.components[0].cpes);
    assert_eq!(
        back.components[1].support_level.as_deref(),
        Some("security-only")
    );
    for (got, want) in back.components[1..].iter().zip(&sbom.components) {
        assert_eq!(got.licenses, want.licenses);
    }
    // An id equal to the firmware's natural bom-ref keeps it; the firmware's moves aside.
    let mut holder = component("x");
    holder.id = Some("Infusion pump IP-300@4.2.1".into());
    let clash = medsec_sbom::Sbom {
        components: vec![holder],
        ..sbom
    };
    let v = to_cyclonedx_json(&clash, &meta());
    assert_eq!(
        v["metadata"]["component"]["bom-ref"],
        "Infusion pump IP-300@4.2.1 (2)"
    );
    assert_eq!(v["components"][0]["bom-ref"], "Infusion pump IP-300@4.2.1");
    assert!(v.get("dependencies").is_none());
}

/// medsec's own annotations survive SPDX -> model -> CycloneDX -> model.
#[test]
fn support_annotations_survive_spdx_to_cyclonedx() {
    let doc = json!({
        "spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "fw", "dataLicense": "CC0-1.0",
        "documentNamespace": "https://example.com/fw", "creationInfo": {"created": "2025-01-01T00:00:00Z", "creators": ["Tool: x"]},
        "packages": [{"SPDXID": "SPDXRef-openssl", "name": "openssl", "versionInfo": "3.0.13", "downloadLocation": "NOASSERTION",
            "primaryPackagePurpose": "LIBRARY",
            "checksums": [{"algorithm": "SHA256", "checksumValue": "d".repeat(64)}],
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": "pkg:generic/openssl@3.0.13"}],
            "annotations": [{"annotationType": "OTHER", "annotator": "Tool: medsec", "annotationDate": "2025-01-01T00:00:00Z",
                "comment": "medsec:support-level=security-only; medsec:end-of-support=2026-09-07"}]}]
    });
    let s = parse(doc.to_string().as_bytes()).unwrap();
    assert_eq!(s.components[0].hashes[0].alg, "SHA-256");
    let back = parse(to_cyclonedx_json(&s, &meta()).to_string().as_bytes()).unwrap();
    assert_eq!(back.components[1], s.components[0]);
}

#[test]
fn export_meta_values_are_checked() {
    assert!(SerialNumber::parse("not-a-uuid").is_err());
    let e = Timestamp::parse("yesterday").unwrap_err().to_string();
    assert!(e.contains("timestamp"), "{e}");
}
