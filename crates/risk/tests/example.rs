//! The shipped infusion-pump example: findings, threats, ratings and traceability written out
//! by hand from reading examples/infusion-pump/*.toml and the default rules and policy.

use medsec_core::{DeviceId, DeviceModel, DeviceSerial, FirmwareVersion};
use medsec_risk::*;
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

const INVENTORY: &str = include_str!("../../../examples/infusion-pump/inventory.toml");
const REGISTER: &str = include_str!("../../../examples/infusion-pump/register.toml");
const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

fn device(model: &str, serial: &str) -> DeviceId {
    DeviceId::new(
        DeviceModel::parse(model).unwrap(),
        DeviceSerial::parse(serial).unwrap(),
    )
}

fn inputs() -> FindingInputs {
    FindingInputs {
        now: NOW,
        certificates: vec![
            // Expires in 10 days: inside the 30-day window.
            DeviceCertificate {
                device: device("infusion-pump-x2", "SN0001"),
                not_after: NOW + Duration::days(10),
            },
            DeviceCertificate {
                device: device("infusion-pump-x2", "SN0002"),
                not_after: NOW + Duration::days(400),
            },
            // Another model's certificate must not count.
            DeviceCertificate {
                device: device("ventilator-v1", "SN9"),
                not_after: NOW + Duration::days(1),
            },
        ],
        expiry_window_days: 30,
        firmware_support: vec![
            FirmwareSupport {
                version: FirmwareVersion::parse("1.4.2").unwrap(),
                end_of_support: date!(2025 - 12 - 31),
            },
            FirmwareSupport {
                version: FirmwareVersion::parse("2.0.0").unwrap(),
                end_of_support: date!(2030 - 01 - 01),
            },
        ],
    }
}

fn inventory() -> Inventory {
    Inventory::from_toml(INVENTORY).unwrap()
}

#[test]
fn inventory_round_trips_through_toml() {
    let inv = inventory();
    assert_eq!(inv.model.as_str(), "infusion-pump-x2");
    assert_eq!(inv.endpoints.len(), 6);
    assert_eq!(inv.links.len(), 5);
    let again = Inventory::from_toml(&inv.to_toml().unwrap()).unwrap();
    assert_eq!(again, inv);
    let cloud = EndpointId::parse("cloud-analytics").unwrap();
    assert_eq!(
        inv.via_chain(&cloud),
        vec![EndpointId::parse("hospital-server").unwrap()]
    );
}

#[test]
fn findings_match_hand_analysis() {
    let got: Vec<(String, &str, SeverityHint)> = compute_findings(&inventory(), &inputs())
        .iter()
        .map(|f| (f.link.to_string(), f.kind.as_str(), f.severity))
        .collect();
    use SeverityHint::*;
    let want = vec![
        // mTLS + TLS 1.3 is fine in itself; SN0001 expires within 30 days and 1.4.2 is past support.
        ("pump-server", "certificate-expiring", Medium),
        ("pump-server", "end-of-support", High),
        // HL7 MLLP in clear without authentication; carries PHI. Not a device link: no EOS.
        ("server-ehr", "plaintext-link", High),
        ("server-ehr", "unauthenticated", High),
        // Only the pump is authenticated, yet therapy commands flow.
        ("tablet-pump", "one-way-authentication", Medium),
        ("tablet-pump", "therapy-without-mutual-auth", Critical),
        ("tablet-pump", "end-of-support", High),
        // API key shared by all pumps over TLS 1.1.
        ("pump-cloud", "shared-credential", High),
        ("pump-cloud", "one-way-authentication", Medium),
        ("pump-cloud", "weak-tls", Medium),
        ("pump-cloud", "end-of-support", High),
        // Fleet-wide service password over an unencrypted USB serial line (no PHI/therapy: medium).
        ("pump-usb", "shared-credential", High),
        ("pump-usb", "plaintext-link", Medium),
        ("pump-usb", "one-way-authentication", Medium),
        ("pump-usb", "end-of-support", High),
    ];
    let want: Vec<(String, &str, SeverityHint)> = want
        .into_iter()
        .map(|(l, k, s)| (l.to_owned(), k, s))
        .collect();
    assert_eq!(got, want);

    let all = compute_findings(&inventory(), &inputs());
    let exp = all
        .iter()
        .find(|f| f.kind == FindingKind::CertificateExpiring)
        .unwrap();
    assert_eq!(exp.id.as_str(), "F-certificate-expiring-pump-server");
    assert!(
        exp.explanation.contains("1 device certificate(s)"),
        "{}",
        exp.explanation
    );
    assert!(
        exp.explanation.contains("2026-12-08"),
        "{}",
        exp.explanation
    );
}

#[test]
fn without_dates_only_structural_findings_remain() {
    let f = compute_findings(&inventory(), &FindingInputs::at(NOW));
    assert_eq!(f.len(), 10);
    assert!(f.iter().all(|f| !matches!(
        f.kind,
        FindingKind::CertificateExpiring | FindingKind::EndOfSupport
    )));
}

#[test]
fn threats_match_hand_analysis() {
    let model = RuleSet::default_rules().unwrap().generate(&inventory());
    let got: Vec<(&str, Stride, LifecyclePhase)> = model
        .threats
        .iter()
        .map(|t| (t.id.as_str(), t.category, t.phase))
        .collect();
    use LifecyclePhase::*;
    use Stride::*;
    let want = vec![
        ("T-config-repudiation-pump-server", Repudiation, Operation),
        ("T-config-repudiation-pump-usb", Repudiation, Operation),
        (
            "T-device-credential-provisioning-pump-server",
            Spoofing,
            Manufacturing,
        ),
        ("T-eavesdrop-pump-usb", InformationDisclosure, Operation),
        ("T-eavesdrop-server-ehr", InformationDisclosure, Operation),
        ("T-impersonation-pump-cloud", Spoofing, Operation),
        ("T-impersonation-pump-usb", Spoofing, Operation),
        ("T-impersonation-server-ehr", Spoofing, Operation),
        ("T-impersonation-tablet-pump", Spoofing, Operation),
        (
            "T-insecure-default-deployment-pump",
            ElevationOfPrivilege,
            Deployment,
        ),
        ("T-link-dos-pump-cloud", DenialOfService, Operation),
        ("T-link-dos-pump-server", DenialOfService, Operation),
        ("T-link-dos-pump-usb", DenialOfService, Operation),
        ("T-lost-mobile-device-clinician-tablet", Spoofing, Operation),
        (
            "T-malicious-firmware-pump-usb",
            Tampering,
            MaintenanceUpdate,
        ),
        (
            "T-phi-disclosure-pump-server",
            InformationDisclosure,
            Operation,
        ),
        (
            "T-residual-data-pump",
            InformationDisclosure,
            Decommissioning,
        ),
        (
            "T-service-port-privilege-usb-port",
            ElevationOfPrivilege,
            MaintenanceUpdate,
        ),
        ("T-tamper-in-transit-pump-cloud", Tampering, Operation),
        ("T-tamper-in-transit-pump-usb", Tampering, Operation),
        ("T-tamper-in-transit-server-ehr", Tampering, Operation),
        ("T-therapy-injection-pump-server", Tampering, Operation),
        ("T-therapy-injection-tablet-pump", Tampering, Operation),
        (
            "T-third-party-compromise-cloud-analytics",
            Tampering,
            SupplyChain,
        ),
        ("T-third-party-compromise-ehr", Tampering, SupplyChain),
    ];
    assert_eq!(got, want);
    let t = model
        .get(&ThreatId::parse("T-eavesdrop-server-ehr").unwrap())
        .unwrap();
    assert_eq!(t.title, "Eavesdropping on server-ehr (hl7-mllp)");
    assert_eq!(
        t.target,
        ThreatTarget::Link(LinkId::parse("server-ehr").unwrap())
    );
    assert!(model.threats.iter().all(|t| t.status == ThreatStatus::Open));
}

#[test]
fn register_rates_and_traces() {
    let inv = inventory();
    let mut model = RuleSet::default_rules().unwrap().generate(&inv);
    let register = Register::from_toml(REGISTER).unwrap();
    let stale = model.apply_statuses(&register.threat_status);
    assert!(stale.is_empty());
    let policy = Policy::default_policy().unwrap();

    let got: Vec<(String, String, String, bool)> = register
        .assess(&policy)
        .unwrap()
        .into_iter()
        .map(|a| {
            (
                a.risk.to_string(),
                a.initial.level.to_string(),
                a.residual.level.to_string(),
                a.controlled,
            )
        })
        .collect();
    let want = [
        ("R-001", "high", "low", true), // moderate x catastrophic -> very-low x critical
        ("R-002", "medium", "medium", false), // high x minor, no controls
        ("R-003", "high", "low", true), // CVSS AV:N/AC:L/PR:N/UI:N + KEV = very-high x serious
        ("R-004", "medium", "low", true), // low x catastrophic -> very-low x serious
        ("R-005", "medium", "low", true), // low x catastrophic -> very-low x critical
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), *d))
        .collect();
    assert_eq!(got, want);

    let findings = compute_findings(&inv, &inputs());
    let t = trace(&model, &register, &findings);
    // C-AUDIT-LOG has no test; C-SAFE-STANDALONE is cited by no risk.
    assert_eq!(
        t.controls_without_tests,
        vec![ControlId::parse("C-AUDIT-LOG").unwrap()]
    );
    assert_eq!(
        t.unused_controls,
        vec![ControlId::parse("C-SAFE-STANDALONE").unwrap()]
    );
    assert!(t.unknown_threats.is_empty());
    // 25 threats; 7 are cited by risks with controls; R-002's
    // threat has no control; 2 are accepted / not applicable.
    let without: Vec<&str> = t
        .threats_without_controls
        .iter()
        .map(ThreatId::as_str)
        .collect();
    assert_eq!(without.len(), 25 - 7 - 2);
    assert!(without.contains(&"T-eavesdrop-server-ehr"));
    assert!(without.contains(&"T-phi-disclosure-pump-server")); // mitigated, yet no control traced
    assert!(!without.contains(&"T-residual-data-pump")); // accepted
    assert!(!without.contains(&"T-therapy-injection-tablet-pump"));

    let row = t
        .rows
        .iter()
        .find(|r| r.threat.as_str() == "T-therapy-injection-tablet-pump")
        .unwrap();
    assert_eq!(
        row.controls
            .iter()
            .map(ControlId::as_str)
            .collect::<Vec<_>>(),
        ["C-DOSE-LIMITS", "C-TABLET-MTLS"]
    );
    assert_eq!(
        row.tests.iter().map(TestRef::as_str).collect::<Vec<_>>(),
        ["TC-SAF-020", "TC-SEC-010"]
    );
    assert_eq!(
        row.findings
            .iter()
            .map(FindingId::as_str)
            .collect::<Vec<_>>(),
        [
            "F-one-way-authentication-tablet-pump",
            "F-therapy-without-mutual-auth-tablet-pump",
            "F-end-of-support-tablet-pump"
        ]
    );
    assert_eq!(
        row.vulnerabilities[0].as_str(),
        "F-therapy-without-mutual-auth-tablet-pump"
    );
}

#[test]
fn register_round_trips_and_example_sign_off_is_valid() {
    let register = Register::from_toml(REGISTER).unwrap();
    let again = Register::from_toml(&register.to_toml().unwrap()).unwrap();
    assert_eq!(again, register);
    let policy = Policy::default_policy().unwrap();
    assert!(
        register
            .is_signed_off_valid(&RiskId::parse("R-001").unwrap(), &policy)
            .unwrap()
    );
    assert!(
        !register
            .is_signed_off_valid(&RiskId::parse("R-002").unwrap(), &policy)
            .unwrap()
    );
}

#[test]
fn reports_render_in_every_format() {
    let inv = inventory();
    let mut model = RuleSet::default_rules().unwrap().generate(&inv);
    let register = Register::from_toml(REGISTER).unwrap();
    model.apply_statuses(&register.threat_status);
    let findings = compute_findings(&inv, &inputs());
    let policy = Policy::default_policy().unwrap();
    let report = RiskReport::build(
        "Infusion pump X2 <risk> report",
        NOW,
        &inv,
        &findings,
        &model,
        &register,
        &policy,
    )
    .unwrap();

    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert_eq!(json["assessments"].as_array().unwrap().len(), 5);
    assert_eq!(json["findings"].as_array().unwrap().len(), 15);

    let text = report.to_text();
    assert!(text.contains("Risk acceptability matrix"));
    assert!(text.contains("very-high"));
    assert!(text.contains("C-AUDIT-LOG"));

    let md = report.to_markdown();
    assert!(md.contains("## Risk register"));
    assert!(
        md.contains("| very-high | low | medium | high | high | high |"),
        "{md}"
    );
    assert!(md.contains("&lt;risk&gt;"));

    let html = report.to_html();
    assert!(html.contains("<title>Infusion pump X2 &lt;risk&gt; report</title>"));
    assert!(!html.contains("<risk>"));
    assert!(html.contains("<th>catastrophic</th>"));
    assert!(html.contains("<td>cli:j.doe (risk manager), 2026-11-20</td>"));
    assert!(!html.contains("INVALIDATED"));
}

#[test]
fn html_escapes_user_text_everywhere() {
    let mut inv = inventory();
    inv.endpoints[0].name = "<script>alert('x')</script> & \"q\"".to_owned();
    inv.description = "<img src=x onerror=alert(1)>".to_owned();
    let model = RuleSet::default_rules().unwrap().generate(&inv);
    let policy = Policy::default_policy().unwrap();
    let report =
        RiskReport::build("t", NOW, &inv, &[], &model, &Register::default(), &policy).unwrap();
    let html = report.to_html();
    assert!(!html.contains("<script>"));
    assert!(!html.contains("<img"));
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"));
    let md = report.to_markdown();
    assert!(!md.contains("<script>"));
}
