//! The fleet read model on every back end (a file-backed SQLite store, a PostgreSQL database),
//! seeded through the real services: the CA issues, renews, revokes and retires; the inventory
//! imports SBOMs, advisories and KEV, matches and triages; the director records releases and
//! rollouts. Then the dashboard's queries: filters, keyset pagination (every device exactly
//! once), the summary's counts, the PKI page, and the fleet-risk rows with their reasons and
//! rollout link. Last, the trigger-kept summary table is checked against a recomputation by the
//! migration's own backfill, and on PostgreSQL against replicas changing one device at once.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{csr, keys, ready};
use medsec_ca::{CaStore, Profile};
use medsec_core::{
    Actor, CertSerial, DeviceId, DeviceModel, DeviceSerial, FirmwareVersion, KeyAlgorithm, Name,
    RevocationReason,
};
use medsec_fleet::{
    CertQuery, CertStatus, Cursor, FleetError, FleetQuery, FleetRow, FleetStore, Page, RiskReason,
    RiskTier,
};
use medsec_inventory::{Inventory, InventoryStore, SupportLevel, VexScope};
use medsec_keys::KeySource;
use medsec_store::{AuditLog, PgSettings, PgStore, SqliteStore, Synchronous, verify_audit};
use medsec_updates::{Director, ReleaseRecord, RolloutPlan, RolloutState, UpdateStore};
use medsec_vuln::{Justification, VexStatus};
use time::{Duration, OffsetDateTime};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/inventory")
        .join(name)
}

fn osv_docs() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(data("osv"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    let mut docs: Vec<(String, Vec<u8>)> = v
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    // A critical (CVSS 9.8), not KEV-listed vulnerability for the monitor's firmware.
    docs.push((
        "inline:GHSA-crit-mini-mist".into(),
        br#"{"id": "GHSA-crit-mini-mist", "modified": "2024-03-01T00:00:00Z",
             "aliases": ["CVE-2021-44906"], "summary": "Prototype pollution in minimist",
             "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
             "affected": [{"package": {"ecosystem": "npm", "name": "minimist"},
               "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.2.6"}]}]}]}"#
            .to_vec(),
    ));
    docs
}

fn monitor_sbom(minimist: &str) -> Vec<u8> {
    format!(
        r#"{{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
            "components": [{{"type": "library", "bom-ref": "minimist", "name": "minimist",
              "version": "{minimist}", "purl": "pkg:npm/minimist@{minimist}"}}]}}"#
    )
    .into_bytes()
}

fn fw(s: &str) -> FirmwareVersion {
    FirmwareVersion::parse(s).unwrap()
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn profile(n: &str, model: &str, days: u32) -> Profile {
    Profile {
        name: name(n),
        model: DeviceModel::parse(model).unwrap(),
        validity_days: days,
        ..common::profile()
    }
}

fn no_progress(_: usize, _: usize) {}

/// Every page of a fleet query, following `next` until it runs out.
async fn all_pages<S: FleetStore>(store: &S, q: &FleetQuery, now: OffsetDateTime) -> Vec<FleetRow> {
    let mut q = q.clone();
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let p: Page<FleetRow> = store.fleet_page(&q, now).await.unwrap();
        assert!(p.rows.len() <= q.limit as usize);
        if p.next.is_some() {
            assert_eq!(
                p.rows.len(),
                q.limit as usize,
                "only the last page is short"
            );
        }
        out.extend(p.rows);
        pages += 1;
        assert!(pages < 100);
        match p.next {
            Some(c) => q.after = Some(c),
            None => return out,
        }
    }
}

fn serials(rows: &[FleetRow]) -> Vec<String> {
    rows.iter().map(|r| r.device.serial.to_string()).collect()
}

async fn fleet_story<S>(store: S, dir: &Path)
where
    S: CaStore + InventoryStore + UpdateStore + FleetStore + AuditLog + Clone + 'static,
{
    let (ca, actor) = ready(store.clone(), dir).await;
    let pump = DeviceModel::parse("pump-x2").unwrap();
    let monitor = DeviceModel::parse("monitor-m1").unwrap();
    for p in [
        profile("pump-20", "pump-x2", 20),
        profile("pump-10", "pump-x2", 10),
        profile("monitor", "monitor-m1", 365),
        profile("monitor-5", "monitor-m1", 5),
    ] {
        ca.put_profile(&p, &actor).await.unwrap();
    }
    let dev = |m: &DeviceModel, s: &str| DeviceId::new(m.clone(), DeviceSerial::parse(s).unwrap());

    // Devices and their certificates, through the CA.
    let mut first_cert = std::collections::HashMap::new();
    for (prof, sn) in [
        ("pump", "SN-01"),
        ("pump", "SN-02"),
        ("pump", "SN-03"),
        ("pump", "SN-04"),
        ("pump", "SN-05"),
        ("pump-20", "SN-06"),
        ("pump-20", "SN-07"),
        ("pump-10", "SN-08"),
        ("pump-20", "SN-09"),
        ("pump", "SN-10"),
        ("pump-20", "SN-11"),
        ("monitor", "MON-1"),
        ("monitor-5", "MON-2"),
        ("monitor-5", "MON-3"),
    ] {
        let c = ca
            .issue(
                &name(prof),
                &DeviceSerial::parse(sn).unwrap(),
                &csr(&rcgen::PKCS_ECDSA_P256_SHA256),
                &actor,
            )
            .await
            .unwrap();
        first_cert.insert(sn, c.record.serial.clone());
    }
    // SN-07 gets a year-long certificate, which is then revoked: its current certificate falls
    // back to the short one, still unrevoked.
    let long = ca
        .issue(
            &name("pump"),
            &DeviceSerial::parse("SN-07").unwrap(),
            &csr(&rcgen::PKCS_ECDSA_P256_SHA256),
            &actor,
        )
        .await
        .unwrap();
    ca.revoke(
        &long.record.serial,
        RevocationReason::KeyCompromise,
        None,
        &actor,
    )
    .await
    .unwrap();
    ca.revoke(
        &first_cert["SN-09"],
        RevocationReason::Superseded,
        None,
        &actor,
    )
    .await
    .unwrap();

    // Firmware, SBOMs, advisories, KEV, matching, triage, device firmware.
    let inv = Inventory::new(Arc::new(store.clone()));
    let date = |s: &str| {
        time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).unwrap()
    };
    inv.put_firmware(
        &actor,
        &pump,
        &fw("2.0"),
        Some(date("2024-01-10")),
        SupportLevel::Unsupported,
        Some(date("2025-06-30")),
    )
    .await
    .unwrap();
    let pump20 = std::fs::read(data("pump-2.0.cdx.json")).unwrap();
    let pump21 = std::fs::read(data("pump-2.1.cdx.json")).unwrap();
    for (m, v, sbom) in [
        (&pump, "2.0", pump20.clone()),
        // A security release that still ships the vulnerable lodash: not a fix.
        (&pump, "2.0.1", pump20),
        (&pump, "2.1", pump21),
        (&monitor, "1.0", monitor_sbom("1.2.5")),
        (&monitor, "1.1", monitor_sbom("1.2.8")),
    ] {
        inv.import_sbom(&actor, m, &fw(v), &sbom, None, false)
            .await
            .unwrap();
    }
    inv.import_osv(&actor, osv_docs(), &no_progress)
        .await
        .unwrap();
    inv.import_kev(&actor, &std::fs::read(data("kev-lodash.json")).unwrap())
        .await
        .unwrap();
    inv.rematch(&actor, &VexScope::default(), true, &no_progress)
        .await
        .unwrap();
    // Jinja2 is not affected in 2.0: 2.0 keeps zlib (CPE) and lodash (KEV) open.
    inv.triage(
        &Actor::parse("user:analyst").unwrap(),
        &pump,
        &fw("2.0"),
        "CVE-2019-10906",
        None,
        VexStatus::NotAffected {
            justification: Justification::VulnerableCodeNotInExecutePath,
        },
        "Templates are compiled at build time.",
        None,
    )
    .await
    .unwrap();
    for (m, sn, v) in [
        (&pump, "SN-01", "2.1"),
        (&pump, "SN-02", "2.1"),
        (&pump, "SN-03", "2.0"),
        (&pump, "SN-04", "2.0"),
        (&pump, "SN-06", "2.0"),
        (&pump, "SN-07", "2.0"),
        (&pump, "SN-08", "2.0"),
        (&pump, "SN-09", "2.0"),
        (&pump, "SN-10", "2.0"),
        (&pump, "SN-11", "2.0.1"),
        (&monitor, "MON-1", "1.0"),
        (&monitor, "MON-2", "1.0"),
        (&monitor, "MON-3", "1.1"),
    ] {
        inv.set_device_firmware(&actor, &dev(m, sn), &fw(v))
            .await
            .unwrap();
    }
    ca.retire(&dev(&pump, "SN-10"), &actor).await.unwrap();

    // Releases and rollouts, through the director.
    let key: Arc<dyn medsec_keys::Signer> = Arc::from(
        keys(&dir.join("director"))
            .generate("director", KeyAlgorithm::EcdsaP256)
            .unwrap(),
    );
    let director = Director::new(Arc::new(store.clone()), key);
    let t0 = OffsetDateTime::now_utc().unix_timestamp();
    for (m, v, sv, days_ago) in [
        ("pump-x2", "2.0", 1, 30),
        ("pump-x2", "2.0.1", 2, 20),
        ("pump-x2", "2.1", 3, 10),
        ("monitor-m1", "1.0", 1, 30),
        ("monitor-m1", "1.1", 2, 10),
    ] {
        director
            .record_release(
                &actor,
                &ReleaseRecord {
                    model: m.into(),
                    version: v.into(),
                    target: format!("{m}/{m}-{v}.bin"),
                    length: 1000,
                    sha256: "ab".repeat(32),
                    security_version: sv,
                    hardware_id: m.into(),
                    published_at: t0 - days_ago * 86_400,
                },
            )
            .await
            .unwrap();
    }
    let rollout = director
        .create_rollout(&actor, "pump-x2", "2.1", RolloutPlan::default())
        .await
        .unwrap();
    // An aborted rollout is no path to anything.
    let aborted = director
        .create_rollout(&actor, "monitor-m1", "1.1", RolloutPlan::default())
        .await
        .unwrap();
    director
        .control(&actor, &aborted.id, RolloutState::Aborted)
        .await
        .unwrap();

    let now = OffsetDateTime::now_utc();

    // --- Fleet pages ---------------------------------------------------------------------
    let active = [
        "MON-1", "MON-2", "MON-3", "SN-01", "SN-02", "SN-03", "SN-04", "SN-05", "SN-06", "SN-07",
        "SN-08", "SN-09", "SN-11",
    ];
    let q = FleetQuery {
        limit: 4,
        ..FleetQuery::default()
    };
    let first = store.fleet_page(&q, now).await.unwrap();
    assert_eq!(first.total, Some(13), "total on an unfiltered first page");
    assert_eq!(store.device_count().await.unwrap(), 13);
    let rows = all_pages(&store, &q, now).await;
    assert_eq!(serials(&rows), active, "every device once, in URN order");
    let second = store
        .fleet_page(
            &FleetQuery {
                after: first.next.clone(),
                ..q.clone()
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(second.total, None, "later pages are not counted again");

    // Retired devices only when asked for.
    let with_retired = all_pages(
        &store,
        &FleetQuery {
            include_retired: true,
            limit: 5,
            ..FleetQuery::default()
        },
        now,
    )
    .await;
    assert_eq!(with_retired.len(), 14);
    let sn10 = with_retired
        .iter()
        .find(|r| r.device.serial.as_str() == "SN-10")
        .unwrap();
    assert!(sn10.retired);
    assert_eq!(sn10.cert_status, CertStatus::Revoked);

    // A row in full.
    let sn03 = rows
        .iter()
        .find(|r| r.device.serial.as_str() == "SN-03")
        .unwrap();
    assert_eq!(sn03.firmware, Some(fw("2.0")));
    assert_eq!(sn03.end_of_support, Some(date("2025-06-30")));
    assert_eq!(sn03.cert_serial.as_ref(), Some(&first_cert["SN-03"]));
    assert_eq!(sn03.cert_status, CertStatus::Valid);
    assert!(sn03.cert_not_after.unwrap() > now + Duration::days(360));
    assert_eq!(
        (sn03.open_findings, sn03.kev_findings),
        (2, 1),
        "zlib and lodash open, jinja2 closed by the decision"
    );
    let sn11 = rows
        .iter()
        .find(|r| r.device.serial.as_str() == "SN-11")
        .unwrap();
    assert_eq!((sn11.open_findings, sn11.kev_findings), (3, 1));
    let sn05 = rows
        .iter()
        .find(|r| r.device.serial.as_str() == "SN-05")
        .unwrap();
    assert_eq!((sn05.firmware.as_ref(), sn05.open_findings), (None, 0));
    // The revoked long certificate does not hide the unrevoked short one.
    let sn07 = rows
        .iter()
        .find(|r| r.device.serial.as_str() == "SN-07")
        .unwrap();
    assert_eq!(sn07.cert_serial.as_ref(), Some(&first_cert["SN-07"]));
    assert_eq!(sn07.cert_status, CertStatus::Expiring);

    // Filters, alone and combined, each paged.
    let page_of = |q: FleetQuery| {
        let store = store.clone();
        async move { serials(&all_pages(&store, &FleetQuery { limit: 3, ..q }, now).await) }
    };
    let pump_only = page_of(FleetQuery {
        model: Some(pump.clone()),
        ..FleetQuery::default()
    })
    .await;
    assert_eq!(pump_only, &active[3..]);
    assert_eq!(
        store
            .fleet_page(
                &FleetQuery {
                    model: Some(pump.clone()),
                    ..FleetQuery::default()
                },
                now
            )
            .await
            .unwrap()
            .total,
        Some(10)
    );
    assert_eq!(
        page_of(FleetQuery {
            model: Some(pump.clone()),
            cert_status: Some(CertStatus::Expiring),
            ..FleetQuery::default()
        })
        .await,
        ["SN-06", "SN-07", "SN-08", "SN-11"]
    );
    assert_eq!(
        page_of(FleetQuery {
            cert_status: Some(CertStatus::Expiring),
            ..FleetQuery::default()
        })
        .await,
        ["MON-2", "MON-3", "SN-06", "SN-07", "SN-08", "SN-11"]
    );
    assert_eq!(
        page_of(FleetQuery {
            cert_status: Some(CertStatus::Valid),
            ..FleetQuery::default()
        })
        .await,
        ["MON-1", "SN-01", "SN-02", "SN-03", "SN-04", "SN-05"]
    );
    assert_eq!(
        page_of(FleetQuery {
            cert_status: Some(CertStatus::Revoked),
            ..FleetQuery::default()
        })
        .await,
        ["SN-09"]
    );
    assert_eq!(
        page_of(FleetQuery {
            cert_status: Some(CertStatus::Revoked),
            include_retired: true,
            ..FleetQuery::default()
        })
        .await,
        ["SN-09", "SN-10"]
    );
    assert!(
        page_of(FleetQuery {
            cert_status: Some(CertStatus::None),
            ..FleetQuery::default()
        })
        .await
        .is_empty()
    );
    // A narrower window turns the 20-day certificates valid; a later "now" expires them.
    assert_eq!(
        page_of(FleetQuery {
            cert_status: Some(CertStatus::Expiring),
            expiring_within_days: 15,
            ..FleetQuery::default()
        })
        .await,
        ["MON-2", "MON-3", "SN-08"]
    );
    let later = now + Duration::days(25);
    let expired = all_pages(
        &store,
        &FleetQuery {
            cert_status: Some(CertStatus::Expired),
            limit: 2,
            ..FleetQuery::default()
        },
        later,
    )
    .await;
    assert_eq!(
        serials(&expired),
        ["MON-2", "MON-3", "SN-06", "SN-07", "SN-08", "SN-11"]
    );
    let on_20 = ["SN-03", "SN-04", "SN-06", "SN-07", "SN-08", "SN-09"];
    assert_eq!(
        page_of(FleetQuery {
            model: Some(pump.clone()),
            firmware: Some(fw("2.0")),
            ..FleetQuery::default()
        })
        .await,
        on_20
    );
    assert_eq!(
        page_of(FleetQuery {
            firmware: Some(fw("2.0")),
            ..FleetQuery::default()
        })
        .await,
        on_20
    );
    assert_eq!(
        page_of(FleetQuery {
            firmware: Some(fw("2.0")),
            cert_status: Some(CertStatus::Expiring),
            ..FleetQuery::default()
        })
        .await,
        ["SN-06", "SN-07", "SN-08"]
    );
    assert_eq!(
        page_of(FleetQuery {
            past_end_of_support: true,
            ..FleetQuery::default()
        })
        .await,
        on_20
    );
    // Serial search: case-insensitive substring, wildcards taken literally.
    assert_eq!(
        page_of(FleetQuery {
            search: Some("sn-0".into()),
            ..FleetQuery::default()
        })
        .await,
        &active[3..12]
    );
    assert_eq!(
        page_of(FleetQuery {
            search: Some("on-".into()),
            model: Some(monitor.clone()),
            ..FleetQuery::default()
        })
        .await,
        ["MON-1", "MON-2", "MON-3"]
    );
    for wild in ["%", "_", "SN_0"] {
        assert!(
            page_of(FleetQuery {
                search: Some(wild.into()),
                ..FleetQuery::default()
            })
            .await
            .is_empty(),
            "{wild}"
        );
    }
    // Refused queries.
    let bad_cursor = FleetQuery {
        after: Some(Cursor::after_cert(&first_cert["SN-01"])),
        ..FleetQuery::default()
    };
    assert!(matches!(
        store.fleet_page(&bad_cursor, now).await,
        Err(FleetError::BadCursor(_))
    ));
    assert!(matches!(
        store
            .fleet_page(
                &FleetQuery {
                    limit: 201,
                    ..FleetQuery::default()
                },
                now
            )
            .await,
        Err(FleetError::Invalid { .. })
    ));

    // --- Summary ---------------------------------------------------------------------------
    let s = store.fleet_summary(now).await.unwrap();
    assert_eq!((s.devices, s.retired), (13, 1));
    assert_eq!(s.by_model, vec![(monitor.clone(), 3), (pump.clone(), 10)]);
    assert_eq!(
        s.by_firmware,
        vec![
            (monitor.clone(), fw("1.0"), 2),
            (monitor.clone(), fw("1.1"), 1),
            (pump.clone(), fw("2.0"), 6),
            (pump.clone(), fw("2.0.1"), 1),
            (pump.clone(), fw("2.1"), 2),
        ]
    );
    assert_eq!(s.firmware_unknown, 1);
    assert_eq!(
        (
            s.cert_status.valid,
            s.cert_status.expiring,
            s.cert_status.expired,
            s.cert_status.revoked,
            s.cert_status.none
        ),
        (6, 6, 0, 1, 0)
    );
    assert_eq!(s.cert_status.total(), s.devices);
    assert_eq!((s.expiring_30, s.expiring_60, s.expiring_90), (6, 6, 6));
    assert_eq!(s.past_end_of_support, 6);
    assert_eq!(s.expiry_histogram.len(), 12);
    assert_eq!(
        s.expiry_histogram[0].0,
        format!("{:04}-{:02}", now.year(), u8::from(now.month()))
    );
    assert_eq!(
        s.expiry_histogram.iter().map(|(_, n)| n).sum::<u64>(),
        6,
        "the year-long certificates expire in the 13th month"
    );
    let s_later = store.fleet_summary(later).await.unwrap();
    assert_eq!(
        (s_later.cert_status.expired, s_later.cert_status.expiring),
        (6, 0)
    );

    // --- PKI page ----------------------------------------------------------------------------
    let mut certs: Vec<CertSerial> = Vec::new();
    let mut cq = CertQuery {
        limit: 4,
        ..CertQuery::default()
    };
    loop {
        let p = store.cert_page(&cq, now).await.unwrap();
        certs.extend(p.rows.iter().map(|r| r.serial.clone()));
        match p.next {
            Some(c) => cq.after = Some(c),
            None => break,
        }
    }
    assert_eq!(certs.len(), 15, "14 first certificates and SN-07's second");
    let hex: Vec<String> = certs.iter().map(CertSerial::to_hex).collect();
    let mut sorted = hex.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(hex, sorted, "serial order, each once");
    let cert_serials = |q: CertQuery| {
        let store = store.clone();
        async move {
            store
                .cert_page(&q, now)
                .await
                .unwrap()
                .rows
                .into_iter()
                .map(|r| (r.device.serial.to_string(), r.status))
                .collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(
        cert_serials(CertQuery {
            revoked: Some(true),
            ..CertQuery::default()
        })
        .await,
        BTreeSet::from([
            ("SN-07".to_owned(), CertStatus::Revoked),
            ("SN-09".to_owned(), CertStatus::Revoked),
            ("SN-10".to_owned(), CertStatus::Revoked),
        ])
    );
    let expiring: BTreeSet<String> = cert_serials(CertQuery {
        expiring_within_days: Some(30),
        ..CertQuery::default()
    })
    .await
    .into_iter()
    .map(|(s, st)| {
        assert_eq!(st, CertStatus::Expiring);
        s
    })
    .collect();
    assert_eq!(
        expiring,
        BTreeSet::from(["MON-2", "MON-3", "SN-06", "SN-07", "SN-08", "SN-11"].map(String::from))
    );
    assert_eq!(
        cert_serials(CertQuery {
            search: Some("mon".into()),
            ..CertQuery::default()
        })
        .await
        .len(),
        3
    );
    assert_eq!(
        cert_serials(CertQuery {
            search: Some("SN-07".into()),
            revoked: Some(false),
            ..CertQuery::default()
        })
        .await,
        BTreeSet::from([("SN-07".to_owned(), CertStatus::Expiring)])
    );
    assert_eq!(
        cert_serials(CertQuery {
            issuer: Some(name("issuing")),
            limit: 200,
            ..CertQuery::default()
        })
        .await
        .len(),
        15
    );
    assert!(
        cert_serials(CertQuery {
            issuer: Some(name("root")),
            ..CertQuery::default()
        })
        .await
        .is_empty()
    );
    assert!(
        cert_serials(CertQuery {
            revoked: Some(true),
            expiring_within_days: Some(30),
            ..CertQuery::default()
        })
        .await
        .is_empty(),
        "the window holds unrevoked certificates only"
    );
    assert!(matches!(
        store
            .cert_page(
                &CertQuery {
                    after: first.next.clone(),
                    ..CertQuery::default()
                },
                now
            )
            .await,
        Err(FleetError::BadCursor(_))
    ));

    // --- Fleet risk --------------------------------------------------------------------------
    let risk = store.fleet_risk(now, 30, 50).await.unwrap();
    let order: Vec<&str> = risk.iter().map(|r| r.device.serial.as_str()).collect();
    // KEV before critical (MON-2 expires soonest but is critical only); among KEV devices the
    // sooner expiry (SN-08, 10 days) first; on equal days more vulnerable components (SN-11's
    // 2.0.1 has jinja2 open too) first; then by URN.
    assert_eq!(order, ["SN-08", "SN-11", "SN-06", "SN-07", "MON-2"]);
    assert_eq!(
        risk.iter().map(|r| r.rank).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let top = &risk[0];
    assert_eq!(top.score.tier, RiskTier::Kev);
    assert_eq!(top.firmware, fw("2.0"));
    assert_eq!(top.cert_status, CertStatus::Expiring);
    assert_eq!(top.cert_serial, first_cert["SN-08"]);
    assert_eq!(top.fix.version, fw("2.1"), "2.0.1 still carries lodash");
    assert_eq!(top.fix.security_version, 3);
    assert_eq!(top.fix.fixes, ["CVE-2021-23337"]);
    assert_eq!(top.fix.active_rollout.as_deref(), Some(rollout.id.as_str()));
    assert!(matches!(
        &top.reasons[0],
        RiskReason::KevFinding { vuln_id, component, .. }
            if vuln_id == "CVE-2021-23337" && component == "pkg:npm/lodash@4.17.20"
    ));
    assert!(matches!(
        &top.reasons[1],
        // Issued ten days' validity a moment ago: 9 or, within the same second, 10.
        RiskReason::CertExpiring { serial, days_left: 9..=10, .. } if *serial == first_cert["SN-08"]
    ));
    assert_eq!(
        top.reasons[2],
        RiskReason::FixNotTaken {
            release: fw("2.1"),
            security_version: 3,
            active_rollout: Some(rollout.id.clone()),
        }
    );
    assert_eq!(top.reasons.len(), 3);
    assert_eq!(risk[1].score.vulnerable_components, 3);
    assert_eq!(risk[2].score.vulnerable_components, 2);
    let mon = &risk[4];
    assert_eq!(mon.score.tier, RiskTier::Critical);
    assert_eq!(mon.fix.version, fw("1.1"));
    assert_eq!(mon.fix.active_rollout, None, "the only rollout was aborted");
    assert!(matches!(
        &mon.reasons[0],
        RiskReason::CriticalFinding { vuln_id, cvss_score: Some(s), .. }
            if vuln_id == "CVE-2021-44906" && *s >= 9.0
    ));
    // Once expired the devices stay in the view, ranked by how long ago.
    let risk_later = store.fleet_risk(later, 30, 50).await.unwrap();
    assert_eq!(risk_later.len(), 5);
    assert!(
        risk_later
            .iter()
            .all(|r| r.cert_status == CertStatus::Expired)
    );
    assert!(matches!(
        risk_later[0].reasons[1],
        RiskReason::CertExpired { .. }
    ));
    assert_eq!(store.fleet_risk(now, 30, 2).await.unwrap().len(), 2);
    assert!(store.fleet_risk(now, 30, 0).await.is_err());

    // Closing the KEV finding in 2.0 takes its devices out; 2.0.1's is still open.
    inv.triage(
        &Actor::parse("user:analyst").unwrap(),
        &pump,
        &fw("2.0"),
        "CVE-2021-23337",
        None,
        VexStatus::NotAffected {
            justification: Justification::VulnerableCodeNotPresent,
        },
        "lodash template() is not reachable from any input.",
        None,
    )
    .await
    .unwrap();
    let risk = store.fleet_risk(now, 30, 50).await.unwrap();
    let order: Vec<&str> = risk.iter().map(|r| r.device.serial.as_str()).collect();
    assert_eq!(order, ["SN-11", "MON-2"]);

    // The audit chain is intact.
    assert!(verify_audit(&store).await.unwrap().is_ok());
}

/// `fleet_devices` as a back end reads it, in key order.
type Summary = (
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

const SUMMARY: &str = "SELECT model, serial, retired, version, cert_serial, not_after, revoked
     FROM fleet_devices ORDER BY model, serial";

/// What follows "-- Databases that already hold devices." in a fleet migration: the backfill
/// an upgraded database gets.
fn backfill(migration: &'static str) -> &'static str {
    migration
        .split("-- Databases that already hold devices.")
        .nth(1)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_fleet_story() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("medsec.db"), Synchronous::Full)
        .await
        .unwrap();
    fleet_story(store.clone(), dir.path()).await;

    // The per-device summary table followed every write above: recomputing it from scratch
    // with the migration's own backfill (what an upgraded database gets) changes nothing.
    let read = || async {
        sqlx::query_as::<_, Summary>(SUMMARY)
            .fetch_all(store.pool())
            .await
            .unwrap()
    };
    let maintained = read().await;
    assert_eq!(maintained.len(), 14);
    sqlx::raw_sql("DELETE FROM fleet_devices")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(backfill(include_str!(
        "../migrations/sqlite/0010_fleet.sql"
    ))))
    .execute(store.pool())
    .await
    .unwrap();
    assert_eq!(read().await, maintained);
}

/// The summary table of a PostgreSQL store, checked against the migration's backfill.
async fn pg_summary_matches_backfill(store: &PgStore) -> Vec<Summary> {
    let read = || async {
        sqlx::query_as::<_, Summary>(SUMMARY)
            .fetch_all(store.pool())
            .await
            .unwrap()
    };
    let maintained = read().await;
    // In one transaction that is rolled back: the table is left as the triggers keep it.
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::raw_sql("DELETE FROM fleet_devices")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(backfill(include_str!(
        "../migrations/postgres/0010_fleet.sql"
    ))))
    .execute(&mut *tx)
    .await
    .unwrap();
    let recomputed = sqlx::query_as::<_, Summary>(SUMMARY)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(recomputed, maintained);
    maintained
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_fleet_story() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::pg().await;
    fleet_story(store.clone(), dir.path()).await;
    // The per-device summary table followed every write above.
    assert_eq!(pg_summary_matches_backfill(&store).await.len(), 14);
}

/// Two replicas change the same devices' certificates at once: replica A renews each device's
/// certificate over and over while replica B issues it further certificates, revokes them,
/// and retires one device. Some of these are refused (a renewal of a certificate B revoked
/// meanwhile, an issuance to a retired device); none may fail otherwise (no deadlock between
/// the summary triggers and the CA's locks), and the summary rows must come out exactly as a
/// recomputation from the base tables says.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_fleet_replicas_race() {
    let dir = tempfile::tempdir().unwrap();
    let url = medsec_store::pg_cluster::Cluster::fresh_database().unwrap();
    let a = PgStore::connect(&url, &PgSettings::default())
        .await
        .unwrap();
    let b = PgStore::connect(&url, &PgSettings::default())
        .await
        .unwrap();
    let (ca_a, actor) = ready(a.clone(), dir.path()).await;
    let ca_a = Arc::new(ca_a);
    let ca_b = Arc::new(medsec_ca::Ca::new(b.clone(), keys(dir.path())));
    let pump = DeviceModel::parse("pump-x2").unwrap();
    let serials: Vec<String> = (0..4).map(|i| format!("RACE-{i}")).collect();
    let mut first = Vec::new();
    for sn in &serials {
        let c = ca_a
            .issue(
                &name("pump"),
                &DeviceSerial::parse(sn).unwrap(),
                &csr(&rcgen::PKCS_ECDSA_P256_SHA256),
                &actor,
            )
            .await
            .unwrap();
        first.push(c.record.serial);
    }
    // Only refusals the CA explains are expected; a store failure (deadlock included) is not.
    let expected = |e: &medsec_ca::CaError| {
        matches!(
            e,
            medsec_ca::CaError::CertRevoked { .. } | medsec_ca::CaError::DeviceRetired(_)
        )
    };
    let renewed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let issued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut handles = Vec::new();
    for (i, sn) in serials.iter().enumerate() {
        let (ca_a, actor_a, renewed) = (ca_a.clone(), actor.clone(), renewed.clone());
        let mut current = first[i].clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..4 {
                match ca_a.renew(&current, &actor_a).await {
                    Ok(c) => {
                        current = c.record.serial;
                        renewed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) if expected(&e) => {}
                    Err(e) => panic!("renewal: {e:?}"),
                }
            }
        }));
        let sn = DeviceSerial::parse(sn).unwrap();
        let first = first[i].clone();
        let device = DeviceId::new(pump.clone(), sn.clone());
        let (ca_b, actor, issued) = (ca_b.clone(), actor.clone(), issued.clone());
        handles.push(tokio::spawn(async move {
            for k in 0..3 {
                match ca_b
                    .issue(
                        &name("pump"),
                        &sn,
                        &csr(&rcgen::PKCS_ECDSA_P256_SHA256),
                        &actor,
                    )
                    .await
                {
                    Ok(c) if k == 1 => {
                        issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        ca_b.revoke(
                            &c.record.serial,
                            RevocationReason::KeyCompromise,
                            None,
                            &actor,
                        )
                        .await
                        .map(|_| ())
                        .or_else(|e| if expected(&e) { Ok(()) } else { Err(e) })
                        .unwrap()
                    }
                    Ok(_) => {
                        issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) if expected(&e) => {}
                    Err(e) => panic!("issuance: {e:?}"),
                }
                if k == 0 {
                    match ca_b
                        .revoke(&first, RevocationReason::Superseded, None, &actor)
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if expected(&e) => {}
                        Err(e) => panic!("revocation: {e:?}"),
                    }
                }
                if i == 3 && k == 1 {
                    ca_b.retire(&device, &actor).await.unwrap();
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let (renewed, issued) = (
        renewed.load(std::sync::atomic::Ordering::Relaxed),
        issued.load(std::sync::atomic::Ordering::Relaxed),
    );
    eprintln!("{renewed} renewals and {issued} issuances landed");
    assert!(
        renewed > 0 && issued > 0,
        "both replicas changed certificates"
    );
    let rows = pg_summary_matches_backfill(&a).await;
    assert_eq!(rows.len(), 4);
    assert_eq!(rows.iter().filter(|r| r.2 == 1).count(), 1, "one retired");
    assert!(verify_audit(&b).await.unwrap().is_ok());
}
