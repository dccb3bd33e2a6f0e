//! The update client's normal life against loopback servers: instruction from the mTLS
//! gateway, TUF refresh over keep-alive HTTP, install into the inactive slot, confirm, revert,
//! status reports, and nothing to do when the device already runs the instructed image.

mod update_support;

use medsec_agent::update::{Progress, ReportedStatus, Slot};
use medsec_agent::{AgentError, Refusal};
use update_support::*;

#[tokio::test(flavor = "multi_thread")]
async fn install_confirm_revert_through_gateway_and_repository() {
    let d = Device::new().await;
    let spec = honest(&d.repo_dir(), &d.keys, 1).await;
    let c = d.client();
    assert_eq!(c.identity().unwrap().device, urn(MODEL, SERIAL));

    // 204: nothing to do.
    assert!(c.check().await.unwrap().is_none());

    // 200: the director wants 1.0 installed.
    let v1 = &spec.releases[0];
    *d.gateway.state.instruction.lock().unwrap() = Some(d.director.instruct(v1, 1));
    let offer = c.check().await.unwrap().expect("an offer");
    assert_eq!(offer.instruction.target, v1.target());
    assert_eq!(offer.release.security_version, 1);
    let mut seen = Vec::new();
    let mut cb = |p: &Progress| seen.push(p.clone());
    let done = c.install(&offer, Some(&mut cb)).await.unwrap();
    assert_eq!(done.slot, Slot::A);
    assert!(matches!(seen.first(), Some(Progress::Downloading { .. })));
    assert!(seen.contains(&Progress::Verifying));
    assert_eq!(seen.last(), Some(&Progress::Installed { slot: Slot::A }));
    assert_eq!(d.slot_bytes(Slot::A), v1.bytes);
    let st = c.status().unwrap();
    assert!(st.pending);
    assert_eq!(st.active, Some(Slot::A));
    assert_eq!(
        st.trusted_root_version, 2,
        "the root chain was walked to v2"
    );

    c.report_status(
        &offer.instruction.rollout,
        &offer.instruction.target,
        ReportedStatus::Installed,
        "slot a",
    )
    .await
    .unwrap();
    let reports = d.gateway.state.reports.lock().unwrap().clone();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["status"], "installed");
    assert_eq!(reports[0]["rollout"], offer.instruction.rollout.as_str());
    assert_eq!(reports[0]["target"], v1.target().as_str());
    assert_eq!(reports[0]["detail"], "slot a");

    let confirmed = c.confirm().await.unwrap();
    assert_eq!(confirmed.security_version, 1);
    assert!(!c.status().unwrap().pending);
    assert_eq!(c.status().unwrap().installed_security_version, 1);
    assert!(matches!(c.confirm().await, Err(AgentError::State { .. })));

    // The director has not moved on: the device already runs this image.
    assert!(c.check().await.unwrap().is_none());

    // 2.0 into slot b, then reverted by hand: a is active again, b is kept.
    let v2 = &spec.releases[1];
    *d.gateway.state.instruction.lock().unwrap() = Some(d.director.instruct(v2, 2));
    let offer = c.check().await.unwrap().expect("an offer");
    let done = c.install(&offer, None).await.unwrap();
    assert_eq!((done.slot, done.previous), (Slot::B, Some(Slot::A)));
    assert_eq!(d.active_bytes(&c), v2.bytes);
    let r = c.revert().await.unwrap();
    assert_eq!(r.slot, Slot::A);
    assert_eq!(d.active_bytes(&c), v1.bytes);
    assert_eq!(d.slot_bytes(Slot::B), v2.bytes);
    assert_eq!(c.status().unwrap().installed_security_version, 1);

    // Installed again and never confirmed: the next check switches back before anything else.
    let offer = c.check().await.unwrap().expect("an offer");
    c.install(&offer, None).await.unwrap();
    assert!(c.status().unwrap().pending);
    let again = c.check().await.unwrap().expect("still to do");
    assert_eq!(c.status().unwrap().active, Some(Slot::A));
    assert!(!c.status().unwrap().pending);
    c.install(&again, None).await.unwrap();
    c.confirm().await.unwrap();
    assert_eq!(d.active_bytes(&c), v2.bytes);
    assert_eq!(c.status().unwrap().installed_security_version, 2);
    assert_eq!(c.status().unwrap().last_director_counter, Some(2));

    // Keep-alive: many metadata and image requests over few connections.
    let requests = d
        .repo
        .state
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    let conns = d
        .repo
        .state
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(requests >= 20, "{requests} requests");
    assert!(
        conns * 4 <= requests,
        "{conns} connections for {requests} requests: keep-alive is not working"
    );
    assert_eq!(conns, c.repository_connections());
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_protection_survives_a_new_client() {
    // State persists across runs: a new client (a restarted agent) still refuses older metadata.
    let d = Device::new().await;
    let dir = d.next_repo_dir("v2");
    honest(&dir, &d.keys, 2).await;
    d.client()
        .check_instruction(Some(&d.director.instruct(&pump("1.0", 1), 1)))
        .await
        .unwrap();
    let old = d.next_repo_dir("v1");
    honest(&old, &d.keys, 1).await;
    let again = d.client();
    let r = again
        .check_instruction(Some(&d.director.instruct(&pump("1.0", 1), 2)))
        .await;
    assert_eq!(refusal(r), Refusal::Rollback);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_configuration_is_refused() {
    let d = Device::new().await;
    let mut cfg = d.cfg.clone();
    cfg.metadata_url = "ftp://example.invalid/metadata".into();
    assert!(matches!(
        medsec_agent::UpdateClient::new(cfg),
        Err(AgentError::Config(_))
    ));
    let mut cfg = d.cfg.clone();
    cfg.director_keys = d.tmp.path().join("missing.json");
    assert!(medsec_agent::UpdateClient::new(cfg).is_err());
}
