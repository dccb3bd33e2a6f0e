//! `medsec serve`: binds the listeners, prepares a demo CA on an empty data directory, and runs
//! the server.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use medsec_ca::{CaInitSpec, CaRole, CaUrls, Profile};
use medsec_core::{DeviceModel, KeyAlgorithm, Name};
use medsec_server::{AppState, Bound, Listeners, ServerIdentity};
use time::Duration;

use crate::App;
use crate::cli::ServeArgs;

pub async fn run(app: App, args: &ServeArgs) -> Result<()> {
    let cfg = &app.cfg.server;
    let want = Listeners {
        http: args.http.unwrap_or(cfg.http_addr),
        https: args.https.unwrap_or(cfg.https_addr),
        device: args.device.unwrap_or(cfg.device_addr),
        syslog: args.syslog.or(app.cfg.postmarket.syslog_addr),
    };
    let bound = Bound::bind(&want).await?;
    let addrs = bound.addrs();

    // An empty data directory gets a working demo: a CA whose CRL and OCSP URLs point here,
    // and a default profile for EST requests without a label.
    if app.ca.list_cas().await?.is_empty() {
        let pki = &app.cfg.pki;
        let base = format!("http://{}", addrs.http);
        let spec = CaInitSpec {
            root_name: Name::parse("root")?,
            root_common_name: format!("{} Device Root CA", pki.organization),
            issuing_name: Name::parse("issuing")?,
            issuing_common_name: format!("{} Device Issuing CA", pki.organization),
            organization: pki.organization.clone(),
            country: pki.country.clone(),
            key_algorithm: pki.key_algorithm.parse()?,
            root_validity_days: pki.root_validity_days,
            issuing_validity_days: pki.issuing_validity_days,
            root_crl_validity: Duration::hours(pki.root_crl_hours.into()),
            issuing_crl_validity: Duration::hours(pki.issuing_crl_hours.into()),
            urls: CaUrls {
                crl_url_template: Some(pki.crl_url_template(&format!("{base}/crl/{{ca}}.crl"))),
                ocsp_url: Some(pki.ocsp_url.clone().unwrap_or(format!("{base}/ocsp"))),
                crl_shards: pki.crl_shards,
            },
        };
        app.ca
            .init(&spec, &app.actor)
            .await
            .context("initializing the demo CA")?;
        crate::logging::note("initialized a demo CA (root, issuing) in this data directory");
    }
    if app.ca.list_profiles().await?.is_empty() {
        let issuer = app
            .ca
            .list_cas()
            .await?
            .into_iter()
            .find(|c| c.role == CaRole::Issuing)
            .map(|c| c.name)
            .context("no issuing CA: run `medsec ca add-issuing`")?;
        let p = Profile {
            name: Name::parse("default")?,
            model: DeviceModel::parse("demo-device")?,
            issuer,
            key_types: vec![
                KeyAlgorithm::EcdsaP256,
                KeyAlgorithm::EcdsaP384,
                KeyAlgorithm::Ed25519,
            ],
            validity_days: 365,
            server_auth: false,
            organization: app.cfg.pki.organization.clone(),
            cn_template: "{model}-{serial}".into(),
            requires_bootstrap: true,
            rekey_overlap_days: 7,
        };
        app.ca.put_profile(&p, &app.actor).await?;
        crate::logging::note("created profile `default` (model demo-device)");
    }
    let default_profile = match &cfg.default_profile {
        Some(p) => Some(Name::parse(p)?),
        None => {
            let ps = app.ca.list_profiles().await?;
            ps.iter()
                .find(|p| p.name.as_str() == "default")
                .or(ps.first())
                .map(|p| p.name.clone())
        }
    };
    let server_issuer = match &default_profile {
        Some(p) => app.ca.get_profile(p).await?.issuer,
        None => bail!("no certificate profile exists: create one with `medsec profile set`"),
    };
    let tls_cert = cfg.tls_cert.clone();
    let tls_key = cfg.tls_key.clone();
    let names = cfg.names.clone();
    let auth: Arc<dyn medsec_auth::AuthStore> = app.store.clone();
    let (publisher, namespace) = crate::inventory::publisher(&app.cfg);
    let director = Arc::new(crate::updates::director(&app)?);
    let tuf_dir = app.data_dir.join("tuf");
    let risk = Arc::new(medsec_risk::service::RiskService::new(app.store.clone()));
    let (tuf_keys, tuf_dir_job) = (app.keys.clone(), tuf_dir.clone());
    let pm_settings = crate::postmarket::settings(&app.cfg, addrs.https.port())?;
    let evidence: Arc<dyn medsec_docs::evidence::EvidenceStore> = app.store.clone();
    let postmarket = Arc::new(crate::postmarket::service(&app).await?);
    let idevid_cas = match &cfg.idevid_ca {
        Some(p) => {
            let pem = std::fs::read(p)
                .with_context(|| format!("reading server.idevid_ca {}", p.display()))?;
            let cas: Vec<Vec<u8>> = ::pem::parse_many(&pem)
                .with_context(|| format!("parsing {}", p.display()))?
                .into_iter()
                .filter(|b| b.tag() == "CERTIFICATE")
                .map(|b| b.into_contents())
                .collect();
            if cas.is_empty() {
                bail!("server.idevid_ca {} holds no certificate", p.display());
            }
            cas
        }
        None => Vec::new(),
    };
    // Pool gauges for /metrics, from whichever store this process opened.
    let pool_stats = {
        let store = app.store.clone();
        let f: medsec_server::PoolStatsFn = Arc::new(move || {
            let (size, idle, max) = store.pool_gauges();
            medsec_server::PoolStats { size, idle, max }
        });
        Some(f)
    };
    let state = Arc::new(
        AppState::new(app.ca, default_profile, auth)
            .with_inventory(Arc::new(app.inv), publisher, namespace)
            .with_updates(director, Some(tuf_dir))
            .with_risk(risk)
            .with_postmarket(postmarket, pm_settings)
            .with_evidence(evidence)
            .with_dashboard(
                app.store.clone(),
                app.store.clone(),
                Arc::new(crate::ui::StoreAudit(app.store.clone())),
            )
            .with_idevid_cas(idevid_cas)
            .with_ocsp_cache_ttl(std::time::Duration::from_secs(cfg.ocsp_cache_secs))
            .with_server_cert(
                std::time::Duration::from_secs(cfg.self_issued_cert_secs),
                std::time::Duration::from_secs(cfg.self_issued_cert_check_secs),
            )
            .with_rate_limit(cfg.est_rate_per_sec, cfg.est_rate_burst)
            .with_metrics(cfg.metrics)
            .with_jobs(
                std::time::Duration::from_secs(cfg.jobs_interval_secs),
                Some(app.store.clone()),
            )
            .with_pool_stats(pool_stats),
    );
    let identity = match (tls_cert, tls_key) {
        (Some(c), Some(k)) => ServerIdentity::from_pem(
            &std::fs::read(&c).with_context(|| format!("reading {}", c.display()))?,
            &std::fs::read(&k).with_context(|| format!("reading {}", k.display()))?,
        )?,
        (None, None) => ServerIdentity::issue(&state, &server_issuer, &names).await?,
        _ => bail!("server.tls_cert and server.tls_key go together"),
    };
    // One line on stdout that scripts and tests can parse.
    match addrs.syslog {
        Some(s) => println!(
            "medsec listening http={} https={} device={} syslog={s}",
            addrs.http, addrs.https, addrs.device
        ),
        None => println!(
            "medsec listening http={} https={} device={}",
            addrs.http, addrs.https, addrs.device
        ),
    }
    tokio::spawn(refresh_tuf(tuf_keys, tuf_dir_job));
    medsec_server::serve(bound, state, identity).await?;
    Ok(())
}

/// Keeps the TUF repository's online metadata (timestamp, snapshot) from expiring: devices
/// refuse expired metadata, so a server that stopped re-signing would freeze its own fleet.
async fn refresh_tuf(keys: Arc<crate::keys::Keys>, dir: std::path::PathBuf) {
    loop {
        if dir.join("repo.json").exists() {
            let (k, d) = (keys.clone(), dir.clone());
            let r = tokio::task::spawn_blocking(move || {
                let mut repo = medsec_updates::repo::Repository::open(d, k)?;
                repo.refresh_expiring(6 * 3600)
            })
            .await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("TUF metadata refresh failed: {e}"),
                Err(e) => tracing::warn!("TUF metadata refresh task failed: {e}"),
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(600)).await;
    }
}
