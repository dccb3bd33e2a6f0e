//! Time and peak memory to build one documentation set for a large model: 2,000 SBOM
//! components, 500 findings, about 200 threats. `cargo bench -p medsec-docs --bench build_set`
//! (results in bench/RESULTS.md). Not a timed test: it measures and prints, it does not assert.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Instant;

use medsec_core::{DeviceModel, FirmwareVersion};
use medsec_docs::inputs::*;
use medsec_docs::set::{Format, build_documents};
use medsec_risk::{Inventory, Policy, Register, RiskReport, RuleSet};
use time::macros::{date, datetime};

fn inventory(links: usize) -> Inventory {
    let mut t = String::from(
        "model = \"big-pump\"\n[[endpoint]]\nid = \"pump\"\nname = \"Pump\"\nkind = \"device\"\nzone = \"ward\"\n",
    );
    for i in 0..links {
        let kind = [
            "backend-server",
            "ehr-interface",
            "cloud-service",
            "clinician-tablet",
        ][i % 4];
        let _ = write!(
            t,
            "[[endpoint]]\nid = \"peer{i}\"\nname = \"Peer {i}\"\nkind = \"{kind}\"\nzone = \"zone{}\"\n",
            i % 5
        );
        let (auth, enc) = if i % 3 == 0 {
            ("none", "none")
        } else {
            ("mtls-our-pki", "tls-1.3")
        };
        let _ = write!(
            t,
            "[[link]]\nid = \"l{i}\"\nfrom = \"pump\"\nto = \"peer{i}\"\ndirection = \"bidirectional\"\nprotocol = \"https\"\nport = {}\nauth = \"{auth}\"\nencryption = \"{enc}\"\ndata = [\"phi\"]\n",
            1000 + i
        );
    }
    Inventory::from_toml(&t).expect("generated inventory parses")
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let inv = inventory(82);
    let threats = RuleSet::default_rules().expect("rules").generate(&inv);
    let policy = Policy::default_policy().expect("policy");
    let report = RiskReport::build(
        "bench",
        datetime!(2026-11-01 0:00 UTC),
        &inv,
        &[],
        &threats,
        &Register::default(),
        &policy,
    )
    .expect("report");
    let components = (0..2000)
        .map(|i| ComponentRow {
            name: format!("component-{i:04}"),
            version: Some(format!("1.{}.{}", i % 17, i % 5)),
            supplier: (i % 7 != 0).then(|| format!("Supplier {}", i % 40)),
            purl: Some(format!("pkg:generic/acme/component-{i:04}@1.0")),
            support_level: (i % 5 != 0).then(|| "supported".into()),
            end_of_support: Some(date!(2030 - 01 - 01)),
            licenses: vec!["MIT".into()],
        })
        .collect();
    let findings = (0..500)
        .map(|i| VulnRow {
            id: format!("CVE-2026-{:05}", 10000 + i),
            aliases: vec![format!("GHSA-{i:04}")],
            component: format!("pkg:generic/acme/component-{:04}@1.0", i * 3),
            summary: Some("Out-of-bounds write in a parser".into()),
            cvss_score: Some(5.0 + (i % 50) as f64 / 10.0),
            severity: "high".into(),
            kev: i % 25 == 0,
            state: ["in_triage", "affected", "not_affected", "fixed"][i % 4].into(),
            justification: (i % 4 == 2).then(|| "vulnerable_code_not_in_execute_path".into()),
            rationale: Some("decided in triage".into()),
            risk: Some("review".into()),
        })
        .collect();
    let inputs = DocInputs {
        manufacturer: "Acme Medical".into(),
        manufacturer_address: None,
        device_name: "Big pump".into(),
        model: DeviceModel::parse("big-pump").expect("model"),
        version: FirmwareVersion::parse("9.0.0").expect("version"),
        as_of: date!(2026 - 11 - 01),
        firmware: None,
        risk: Some(report),
        components,
        findings,
        releases: Vec::new(),
        pki: PkiFacts::default(),
        evidence: Vec::new(),
        cvd: CvdFacts::default(),
        monitoring: MonitoringFacts::default(),
        updates: UpdateFacts::default(),
    };
    println!(
        "inputs: {} components, {} findings, {} threats",
        inputs.components.len(),
        inputs.findings.len(),
        threats.threats.len()
    );
    let created = datetime!(2026-11-01 0:00 UTC);
    for (label, formats) in [("html+md", "html,md"), ("html+md+pdf", "html,md,pdf")] {
        let f: BTreeSet<Format> = Format::parse_list(formats).expect("formats");
        let t = Instant::now();
        let files = build_documents(&inputs, &f, None, created).expect("build");
        let secs = t.elapsed().as_secs_f64();
        let bytes: usize = files.iter().map(|f| f.bytes.len()).sum();
        println!(
            "{label}: {secs:.3} s, {} files, {} KiB, peak RSS so far {} MiB",
            files.len(),
            bytes / 1024,
            peak_rss_kib() / 1024
        );
    }
}
