//! End-to-end check of the PDF renderer with poppler: text extraction finds every heading, table
//! cell and diagram label, every page renders without complaint, and output is deterministic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use medsec_docs::doc::{Block, Diagram, Document, Edge, EdgeStyle, Node, NodeKind, Section, Table};
use medsec_docs::pdf::render_pdf;

const LONG_ROWS: usize = 140;

fn node(id: &str, label: &str, sub: Option<&str>, kind: NodeKind, r: [f32; 4]) -> Node {
    Node {
        id: id.into(),
        label: label.into(),
        sublabel: sub.map(Into::into),
        kind,
        x: r[0],
        y: r[1],
        w: r[2],
        h: r[3],
    }
}

fn edge(
    from: &str,
    to: &str,
    label: &str,
    style: EdgeStyle,
    pts: &[(f32, f32)],
    both: bool,
) -> Edge {
    Edge {
        from: from.into(),
        to: to.into(),
        label: Some(label.into()),
        style,
        points: pts.to_vec(),
        both_ways: both,
    }
}

fn diagram() -> Diagram {
    Diagram {
        id: "dfd".into(),
        title: "Figure 1: Data flows of the infusion pump".into(),
        width: 760.0,
        height: 420.0,
        nodes: vec![
            node(
                "hosp",
                "Hospital network",
                Some("trust boundary"),
                NodeKind::Boundary,
                [20.0, 20.0, 460.0, 380.0],
            ),
            node(
                "pump",
                "Infusion pump IP-200",
                Some("firmware 2.1.0"),
                NodeKind::Device,
                [60.0, 80.0, 160.0, 70.0],
            ),
            node(
                "nurse",
                "Clinician",
                None,
                NodeKind::Person,
                [60.0, 280.0, 140.0, 50.0],
            ),
            node(
                "ehr",
                "Electronic health record",
                Some("HL7 v2 interface"),
                NodeKind::External,
                [290.0, 260.0, 160.0, 80.0],
            ),
            node(
                "upd",
                "Update server",
                Some("TUF repository"),
                NodeKind::Server,
                [560.0, 60.0, 170.0, 80.0],
            ),
            node(
                "lib",
                "Drug library service",
                None,
                NodeKind::Server,
                [560.0, 280.0, 170.0, 70.0],
            ),
        ],
        edges: vec![
            edge(
                "pump",
                "upd",
                "mTLS 1.3",
                EdgeStyle::Secure,
                &[(220.0, 110.0), (560.0, 100.0)],
                true,
            ),
            edge(
                "pump",
                "ehr",
                "HL7 cleartext",
                EdgeStyle::Weak,
                &[(200.0, 150.0), (370.0, 200.0), (370.0, 260.0)],
                false,
            ),
            edge(
                "nurse",
                "pump",
                "programs infusion",
                EdgeStyle::Flow,
                &[(130.0, 280.0), (130.0, 150.0)],
                false,
            ),
            edge(
                "lib",
                "pump",
                "drug library download",
                EdgeStyle::Secure,
                &[
                    (560.0, 315.0),
                    (500.0, 315.0),
                    (500.0, 140.0),
                    (220.0, 140.0),
                ],
                false,
            ),
        ],
        legend: vec![
            (EdgeStyle::Secure, "authenticated and encrypted".into()),
            (EdgeStyle::Weak, "finding: weak or no protection".into()),
            (EdgeStyle::Flow, "use-case step".into()),
        ],
    }
}

fn long_table() -> Table {
    let rows = (1..=LONG_ROWS)
        .map(|i| {
            vec![
                format!("CMP-{i:03}"),
                format!("libcomponent{i}"),
                format!("{}.{}.{}", i % 4, i % 10, i),
                format!("Supplier {}", i % 7),
                if i % 5 == 0 {
                    format!("Row {i} carries a longer remark that has to wrap inside its cell over more than one line")
                } else {
                    format!("remark {i}")
                },
            ]
        })
        .collect();
    Table {
        caption: Some("Table 1: Software components".into()),
        header: ["Id", "Component", "Version", "Supplier", "Remarks"]
            .map(String::from)
            .to_vec(),
        rows,
    }
}

const LONG_PARAGRAPH: &str = "The infusion pump communicates with the hospital’s electronic health record, the \
manufacturer’s update server and a drug library service. This paragraph is deliberately long so that it \
wraps over many lines: it describes the café-style étude of the device’s security architecture — with \
em dashes, “curly quotes”, parentheses (like these), a backslash \\ and an arrow A→B that WinAnsi cannot \
show. ";

fn document() -> Document {
    let s1 = Section::new("device", "Device description")
        .push(Block::Paragraph(LONG_PARAGRAPH.repeat(4)))
        .push(Block::Bullets(vec![
            "Wi-Fi (WPA2-Enterprise) to the hospital network".into(),
            "USB service port, disabled in clinical mode".into(),
            "Bluetooth LE for the clinician tablet — pairing with passkey".into(),
        ]))
        .push(Block::KeyValue(vec![
            ("Model".into(), "IP-200".into()),
            ("Firmware".into(), "2.1.0".into()),
            ("Manufacturer".into(), "Médical Devices GmbH".into()),
        ]))
        .child(Section::new("use", "Intended use").push(Block::Callout(
            "Gap: the EHR interface sends HL7 messages without encryption.".into(),
        )));
    let s2 = Section::new("arch", "Security architecture")
        .push(Block::Paragraph(
            "The figure shows every external interface.".into(),
        ))
        .push(Block::Diagram(diagram()));
    let s3 = Section::new("sbom", "Software bill of materials")
        .push(Block::Paragraph(
            "All components shipped in firmware 2.1.0.".into(),
        ))
        .push(Block::Table(long_table()))
        .child(
            Section::new("sbom-support", "Support levels").child(
                Section::new("eos", "End of support")
                    .push(Block::Paragraph("None ends before 2030.".into())),
            ),
        );
    let s4 = Section::new("risks", "Residual risks")
        .push(Block::Paragraph(LONG_PARAGRAPH.into()))
        .push(Block::Callout(
            "Residual risk accepted by the risk owner (Anaïs Müller).".into(),
        ));
    Document {
        slug: "premarket-cybersecurity".into(),
        title: "Premarket cybersecurity file — IP-200".into(),
        subtitle: Some("Infusion pump, firmware 2.1.0 — données de sécurité".into()),
        meta: vec![
            ("Model".into(), "IP-200".into()),
            ("Snapshot".into(), "2025-03-04".into()),
            ("Generator".into(), "medsec 0.1.0".into()),
        ],
        sections: vec![s1, s2, s3, s4],
    }
}

fn created() -> time::OffsetDateTime {
    time::macros::datetime!(2025-03-04 12:00:00 UTC)
}

/// True when poppler-utils is installed; outside CI a missing poppler skips the test.
fn poppler_available() -> bool {
    let found = Command::new("pdftotext").arg("-v").output().is_ok()
        && Command::new("pdftoppm").arg("-v").output().is_ok()
        && Command::new("pdfinfo").arg("-v").output().is_ok()
        && Command::new("pdftohtml").arg("-v").output().is_ok();
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("poppler-utils (pdftotext, pdftoppm, pdfinfo, pdftohtml) is required in CI");
        }
        println!("SKIPPED: poppler-utils not installed (apt-get install poppler-utils)");
    }
    found
}

fn run(cmd: &str, args: &[&str]) -> Output {
    match Command::new(cmd).args(args).output() {
        Ok(out) => out,
        Err(e) => panic!("{cmd}: {e}"),
    }
}

fn work_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create work dir");
    dir
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn pdf_renders_extracts_and_is_deterministic() {
    let doc = document();
    let pdf = render_pdf(&doc, created()).expect("render");
    let again = render_pdf(&doc, created()).expect("render again");
    assert!(
        pdf == again,
        "same document and date must give the same bytes"
    );
    assert!(pdf.starts_with(b"%PDF-"));

    if !poppler_available() {
        return;
    }
    let dir = work_dir("pdf_render");
    let file = dir.join("doc.pdf");
    std::fs::write(&file, &pdf).expect("write pdf");
    let path = file.to_str().expect("utf-8 path");

    // Page count and info dictionary.
    let info = run("pdfinfo", &[path]);
    assert!(
        info.status.success(),
        "pdfinfo: {}",
        String::from_utf8_lossy(&info.stderr)
    );
    assert!(
        info.stderr.is_empty(),
        "pdfinfo stderr: {}",
        String::from_utf8_lossy(&info.stderr)
    );
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    let pages: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("pdfinfo Pages");
    assert!(
        (6..=14).contains(&pages),
        "implausible page count {pages}\n{info}"
    );
    assert!(
        info.contains("Premarket cybersecurity file — IP-200"),
        "{info}"
    );
    assert!(info.contains("Producer:        medsec"), "{info}");
    assert!(
        info.contains("Page size:       595.28 x 841.89 pts (A4)"),
        "{info}"
    );

    // Text, in content-stream order so each table cell's wrapped lines stay together.
    let out = run("pdftotext", &["-raw", "-enc", "UTF-8", path, "-"]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "pdftotext: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 text");
    let flat = squash(&text);
    let dense: String = text.split_whitespace().collect();
    let has = |needle: &str| {
        flat.contains(&squash(needle))
            || dense.contains(&needle.split_whitespace().collect::<String>())
    };

    for heading in [
        "1 Device description",
        "1.1 Intended use",
        "2 Security architecture",
        "3 Software bill of materials",
        "3.1 Support levels",
        "3.1.1 End of support",
        "4 Residual risks",
    ] {
        assert!(has(heading), "heading {heading:?} missing");
    }
    let table = long_table();
    for h in &table.header {
        assert!(has(h), "header cell {h:?} missing");
    }
    for row in &table.rows {
        for cell in row {
            assert!(has(cell), "table cell {cell:?} missing");
        }
    }
    // The header row is repeated on every page the table continues on.
    let header_rows = text
        .matches("Id Component Version Supplier Remarks")
        .count();
    assert!(header_rows >= 3, "header row seen {header_rows} times");
    let d = diagram();
    for n in &d.nodes {
        assert!(has(&n.label), "node label {:?} missing", n.label);
        if let Some(sub) = &n.sublabel {
            assert!(has(sub), "sublabel {sub:?} missing");
        }
    }
    for e in &d.edges {
        let label = e.label.as_deref().unwrap_or_default();
        assert!(has(label), "edge label {label:?} missing");
    }
    for (_, legend) in &d.legend {
        assert!(has(legend), "legend {legend:?} missing");
    }
    // WinAnsi characters survive, the arrow becomes '?', PDF string escapes hold.
    for s in [
        "Médical Devices GmbH",
        "café-style étude",
        "— with em dashes",
        "“curly quotes”",
        "Anaïs Müller",
        "A?B",
        "(like these), a backslash \\ and",
    ] {
        assert!(has(s), "{s:?} missing from extracted text");
    }
    assert!(has(&format!("page 1 of {pages}")) && has(&format!("page {pages} of {pages}")));

    // One bookmark per section, nested like the sections, pointing at the heading's page.
    let out = run("pdftohtml", &["-xml", "-stdout", "-i", "-q", path]);
    assert!(
        out.status.success(),
        "pdftohtml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = String::from_utf8_lossy(&out.stdout);
    let outline = xml
        .split_once("<outline>")
        .map(|(_, o)| squash(o))
        .expect("an outline");
    let expected = squash(
        r#"<item page="1">1 Device description</item> <outline> <item page="1">1.1 Intended use</item> </outline>
        <item page="1">2 Security architecture</item> <item page="2">3 Software bill of materials</item>
        <outline> <item page="PAGE">3.1 Support levels</item> <outline> <item page="PAGE">3.1.1 End of support</item>
        </outline> </outline> <item page="PAGE">4 Residual risks</item> </outline>"#,
    )
    .replace("PAGE", &pages.to_string());
    assert!(
        outline.starts_with(&expected),
        "outline:\n{outline}\nexpected:\n{expected}"
    );

    // Every page renders without a warning.
    let prefix = dir.join("page");
    let out = run(
        "pdftoppm",
        &[
            "-r",
            "50",
            "-png",
            path,
            prefix.to_str().expect("utf-8 path"),
        ],
    );
    assert!(
        out.status.success(),
        "pdftoppm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "pdftoppm stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pngs = std::fs::read_dir(&dir)
        .expect("read dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .count();
    assert_eq!(pngs, pages);
}

#[test]
fn oversized_blocks_render_cleanly() {
    let huge = "overflowing text ".repeat(1500);
    let mut s = Section::new("big", "Oversized content");
    s.blocks = vec![
        Block::Table(Table {
            caption: Some("A row taller than a page".into()),
            header: vec!["Key".into(), "Text".into()],
            rows: vec![
                vec!["first".into(), "short".into()],
                vec!["second".into(), huge.clone()],
                vec!["third".into(), "short".into()],
            ],
        }),
        Block::Callout(huge.clone()),
        Block::Paragraph(format!(
            "{}{}",
            "x".repeat(400),
            " (unbalanced ( parenthesis \\"
        )),
    ];
    let doc = Document {
        slug: "big".into(),
        title: "Oversized ".repeat(30),
        subtitle: None,
        meta: vec![],
        sections: vec![s],
    };
    let pdf = render_pdf(&doc, created()).expect("render");
    if !poppler_available() {
        return;
    }
    let dir = work_dir("pdf_render_oversized");
    let file = dir.join("big.pdf");
    std::fs::write(&file, &pdf).expect("write pdf");
    let path = file.to_str().expect("utf-8 path");
    let out = run("pdftotext", &["-raw", path, "-"]);
    assert!(out.status.success() && out.stderr.is_empty());
    let text = String::from_utf8_lossy(&out.stdout);
    for cell in ["first", "second", "third", "(unbalanced ( parenthesis \\"] {
        assert!(text.contains(cell), "{cell:?} missing");
    }
    let prefix = dir.join("page");
    let out = run(
        "pdftoppm",
        &[
            "-r",
            "50",
            "-png",
            path,
            prefix.to_str().expect("utf-8 path"),
        ],
    );
    assert!(
        out.status.success(),
        "pdftoppm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "pdftoppm stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
