//! MDS2 XLSX export read back by an independent reader (Python openpyxl): every row of the
//! sheet says exactly what `to_json()` says, the header cells match, rebuilding is
//! byte-identical, and one changed fact changes exactly the answers it should.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use medsec_docs::mds2::{self, LinkAuthentication, Mds2, Mds2Facts, Mds2Link};
use serde_json::{Value, json};

const CASE: &str = "infusion_pump_v2";

fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn fixture(case: &str) -> (Mds2Facts, String) {
    let dir = tests_dir().join("data/mds2");
    let facts = std::fs::read_to_string(dir.join(format!("{case}.facts.json"))).unwrap();
    let answers = std::fs::read_to_string(dir.join(format!("{case}.answers.toml"))).unwrap();
    (serde_json::from_str(&facts).unwrap(), answers)
}

fn build(case: &str) -> Mds2 {
    let (facts, answers) = fixture(case);
    mds2::build(&facts, Some(&answers)).unwrap()
}

/// The workbook as openpyxl reads it, or `None` (after printing SKIPPED) when openpyxl is
/// missing outside CI. In CI (env `CI` set) openpyxl must be installed.
fn read_with_openpyxl(xlsx: &[u8]) -> Option<Value> {
    let available = Command::new("python3")
        .args(["-c", "import openpyxl"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        if std::env::var_os("CI").is_some() {
            panic!("python3 with openpyxl is required in CI (pip install openpyxl)");
        }
        println!("SKIPPED: python3 with openpyxl not available (pip install openpyxl)");
        return None;
    }
    let mut child = Command::new("python3")
        .arg(tests_dir().join("mds2_read_xlsx.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(xlsx).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "mds2_read_xlsx.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// The Questions sheet rows the JSON export implies, in sheet column order.
fn expected_question_rows(json: &Value) -> Vec<Value> {
    json["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            json!([
                q["section"],
                q["id"],
                q["question"],
                q["answer"],
                q["note"],
                q["source"]
            ])
        })
        .collect()
}

/// Asserts the workbook shows exactly what the JSON says; returns the sheet's answers by id.
fn assert_sheet_matches_json(sheet: &Value, json: &Value) -> BTreeMap<String, Value> {
    assert_eq!(sheet["sheetnames"], json!(["Header", "Questions"]));

    // Header sheet: the HN 1-2019 document fields.
    let header = &sheet["sheets"]["Header"];
    let h = &json["header"];
    let expected_header = json!([
        ["ID", "Field", "Value"],
        ["DOC-1", "Manufacturer Name", h["manufacturer"]],
        ["DOC-2", "Device Description", h["device_description"]],
        ["DOC-3", "Device Model", h["model"]],
        [null, "Firmware Version", h["firmware_version"]],
        ["DOC-4", "Document ID", h["document_id"]],
        [
            "DOC-5",
            "Manufacturer Contact Information",
            h["manufacturer_contact"]
        ],
        [
            "DOC-6",
            "Intended use of device in network-connected environment",
            h["intended_use"]
        ],
        ["DOC-7", "Document Release Date", h["release_date"]],
    ]);
    assert_eq!(header["rows"], expected_header);
    assert_eq!(header["heading_bold"], json!([true, true, true]));

    // Questions sheet: one row per question, every cell equal to the JSON.
    let questions = &sheet["sheets"]["Questions"];
    let rows = questions["rows"].as_array().unwrap();
    assert_eq!(
        rows[0],
        json!(["Section", "ID", "Question", "Answer", "Note", "Source"])
    );
    let expected = expected_question_rows(json);
    assert_eq!(rows.len(), expected.len() + 1);
    for (i, (got, want)) in rows[1..].iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "row {} differs", i + 2);
    }

    // Layout a reviewer relies on.
    assert_eq!(questions["freeze_panes"], "A2");
    assert_eq!(
        questions["auto_filter"],
        format!("A1:F{}", expected.len() + 1)
    );
    assert_eq!(
        questions["heading_bold"],
        json!([true, true, true, true, true, true])
    );
    assert_eq!(questions["data_wrapped"], true);
    let width = |col: &str| questions["widths"][col].as_f64().unwrap_or(0.0);
    assert!(
        width("C") >= 60.0,
        "question column too narrow: {}",
        width("C")
    );
    assert!(width("E") >= 40.0 && width("F") >= 40.0);
    assert!(width("B") >= 8.0 && width("B") < width("C"));

    rows[1..]
        .iter()
        .map(|r| (r[1].as_str().unwrap().to_owned(), r[3].clone()))
        .collect()
}

fn answers_by_id(json: &Value) -> BTreeMap<String, Value> {
    json["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (q["id"].as_str().unwrap().to_owned(), q["answer"].clone()))
        .collect()
}

#[test]
fn sheet_matches_json_for_infusion_pump_v2() {
    let m = build(CASE);
    let json = m.to_json();

    // The fixture exercises every kind of source.
    let source = |id: &str| m.answer(id).unwrap().source.to_string();
    assert_eq!(
        source("SBOM-2.2"),
        "manufacturer override of derived answer See Notes (derived: SBOM — 139 of 142 components with supplier)"
    );
    assert_eq!(source("ALOF-1"), "manufacturer answers file");
    assert_eq!(
        source("NAUT-1"),
        "derived: trust inventory — 4 of 5 links mutually authenticated; not: clinician-tablet"
    );
    assert_eq!(source("PLOK-1"), "unanswered");
    assert!(
        m.answer("NAUT-3")
            .unwrap()
            .note
            .as_deref()
            .unwrap()
            .ends_with("\nDevice certificates are renewed automatically before expiry.")
    );
    assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    assert_eq!(
        json["header"]["device_description"],
        "Volumetric infusion pump with drug library and wireless connectivity"
    );
    assert_eq!(json["summary"]["override"], 1);
    assert_eq!(
        json["summary"]["unanswered"].as_u64().unwrap() as usize,
        m.unanswered().len()
    );

    let xlsx = m.to_xlsx().unwrap();
    let Some(sheet) = read_with_openpyxl(&xlsx) else {
        return;
    };
    assert_sheet_matches_json(&sheet, &json);
    let props = &sheet["properties"];
    assert_eq!(props["creator"], "Acme Medical Devices GmbH");
    assert_eq!(props["title"], "MDS2 Acme InfuSafe 500 2.4.1");
    assert!(
        props["created"]
            .as_str()
            .unwrap()
            .starts_with("2025-03-14T00:00:00"),
        "{props}"
    );
}

#[test]
fn two_builds_are_byte_identical() {
    let a = build(CASE).to_xlsx().unwrap();
    let b = build(CASE).to_xlsx().unwrap();
    assert_eq!(a.len(), b.len());
    assert!(a == b, "rebuilding unchanged data changed the XLSX bytes");
    assert_eq!(build(CASE).to_json(), build(CASE).to_json());
}

#[test]
fn adding_an_unencrypted_link_changes_exactly_the_txcf_txig_answers() {
    let (mut facts, answers) = fixture(CASE);
    let before = mds2::build(&facts, Some(&answers)).unwrap();
    facts.links.push(Mds2Link {
        name: "ehr-hl7".into(),
        protocol: "HL7 v2 MLLP".into(),
        encrypted: false,
        authentication: LinkAuthentication::None,
        carries_phi: true,
        external: false,
        remote_service: false,
    });
    let after = mds2::build(&facts, Some(&answers)).unwrap();
    let (before_json, after_json) = (before.to_json(), after.to_json());
    let (old, new) = (answers_by_id(&before_json), answers_by_id(&after_json));

    let changed: BTreeSet<&str> = old
        .iter()
        .filter(|(id, answer)| new.get(*id) != Some(*answer))
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(changed, BTreeSet::from(["TXCF-2", "TXCF-4", "TXIG-1"]));
    assert!(
        changed
            .iter()
            .all(|id| id.starts_with("TXCF-") || id.starts_with("TXIG-"))
    );
    assert_eq!(new["TXCF-2"], "No");
    assert_eq!(new["TXCF-4"], "No");
    assert_eq!(new["TXIG-1"], "See Notes");
    let txcf2 = after.answer("TXCF-2").unwrap();
    assert_eq!(
        txcf2.source.to_string(),
        "derived: trust inventory — 1 of 3 PHI links unencrypted (ehr-hl7)"
    );

    // The workbook of the changed build shows the same change.
    let (Some(old_sheet), Some(new_sheet)) = (
        read_with_openpyxl(&before.to_xlsx().unwrap()),
        read_with_openpyxl(&after.to_xlsx().unwrap()),
    ) else {
        return;
    };
    let old_rows = assert_sheet_matches_json(&old_sheet, &before_json);
    let new_rows = assert_sheet_matches_json(&new_sheet, &after_json);
    let sheet_changed: BTreeSet<&str> = old_rows
        .iter()
        .filter(|(id, answer)| new_rows.get(*id) != Some(*answer))
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(sheet_changed, changed);
}
