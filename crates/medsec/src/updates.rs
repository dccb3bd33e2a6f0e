//! `medsec rollout|director` and the director's key: secure-update commands over the store.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use medsec_core::KeyAlgorithm;
use medsec_keys::{KeyRef, KeySource};
use medsec_updates::repo::{Image, NewRelease, RepoOptions, Repository, RoleRef};
use medsec_updates::{Cohort, Director, ReleaseRecord, RolloutPlan, RolloutState};
use serde_json::json;

use crate::cli::{DirectorCmd, ReleaseCmd, RolloutCmd, TufCmd};
use crate::{App, out, write_or_print};

/// The director, with its signing key: created on first use (an online key, like TUF's
/// timestamp key) in the configured key source; its reference is kept in the data directory.
pub fn director(app: &App) -> Result<Director> {
    let refp = app.data_dir.join("director.keyref");
    let signer = if refp.exists() {
        let r: KeyRef = std::fs::read_to_string(&refp)
            .with_context(|| format!("reading {}", refp.display()))?
            .trim()
            .parse()
            .with_context(|| format!("{} does not hold a key reference", refp.display()))?;
        app.keys.load(&r).context("loading the director key")?
    } else {
        let s = match app.keys.generate("director", KeyAlgorithm::EcdsaP256) {
            Ok(s) => s,
            // A run killed between creating the key and recording its reference left the key
            // behind (keys are never overwritten): it is the director's.
            Err(medsec_keys::KeyError::AlreadyExists { .. }) => {
                let r = match app.cfg.keys.backend {
                    crate::config::KeyBackend::File => KeyRef::File {
                        label: "director".into(),
                    },
                    crate::config::KeyBackend::Pkcs11 => KeyRef::Pkcs11 {
                        label: "director".into(),
                    },
                };
                app.keys.load(&r).context("loading the director key")?
            }
            Err(e) => return Err(e).context("creating the director key"),
        };
        // Written whole or not at all (a temporary file renamed into place).
        let tmp = refp.with_extension("keyref.tmp");
        std::fs::write(&tmp, s.key_ref().to_string())
            .and_then(|()| std::fs::rename(&tmp, &refp))
            .with_context(|| format!("writing {}", refp.display()))?;
        s
    };
    Ok(Director::new(app.store.clone(), Arc::from(signer)))
}

fn parse_cohort(s: &str) -> Result<Cohort> {
    let (kind, v) = s
        .split_once(':')
        .context("--cohort is percent:N, tag:NAME or devices:URN[,URN...]")?;
    Ok(match kind {
        "percent" => Cohort::Percent(v.parse().context("percent:N needs 1-100")?),
        "tag" => Cohort::Tag(medsec_core::Name::parse(v)?.to_string()),
        "devices" => Cohort::Devices(
            v.split(',')
                .map(|d| Ok(medsec_core::DeviceId::parse_urn(d.trim())?.urn()))
                .collect::<Result<Vec<_>>>()?,
        ),
        other => bail!("unknown cohort kind {other:?}: percent, tag or devices"),
    })
}

pub async fn rollout_cmd(app: &App, c: RolloutCmd) -> Result<ExitCode> {
    let d = director(app)?;
    match c {
        RolloutCmd::Create {
            model,
            version,
            cohort,
            stages,
            promote,
            halt,
            min_reports,
        } => {
            let plan = RolloutPlan {
                cohort: parse_cohort(&cohort)?,
                stages,
                promote_success_rate: promote,
                halt_failure_rate: halt,
                min_reports,
            };
            let r = d.create_rollout(&app.actor, &model, &version, plan).await?;
            out(app, json!(r), || {
                format!(
                    "rollout {} of {} started (stages {:?})",
                    r.id, r.target, r.stages
                )
            });
        }
        RolloutCmd::List { model } => {
            let list = d.store().list_rollouts(model.as_deref()).await?;
            out(app, json!(list), || {
                list.iter()
                    .map(|r| {
                        format!(
                            "{} {:<10} {:<40} stage {}/{} {:?}",
                            r.id,
                            r.state.as_str(),
                            r.target,
                            r.current_stage + 1,
                            r.stages.len(),
                            r.cohort
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        RolloutCmd::Show { id } => {
            let v = d.view(&id).await?;
            out(app, json!(v), || {
                let mut l = vec![format!(
                    "{} {} {} (cohort {} devices)",
                    v.rollout.id,
                    v.rollout.state.as_str(),
                    v.rollout.target,
                    v.cohort_size
                )];
                for (i, s) in v.stages.iter().enumerate() {
                    l.push(format!(
                        "  stage {} ({}%): {} devices {:?}{}",
                        i + 1,
                        s.share,
                        s.devices,
                        s.by_status,
                        if i == v.rollout.current_stage {
                            "  <- current"
                        } else {
                            ""
                        }
                    ));
                }
                for (k, t) in &v.time_to_percent {
                    l.push(format!(
                        "  time to {k} updated: {}",
                        t.map(|s| format!("{s} s"))
                            .unwrap_or_else(|| "not yet".into())
                    ));
                }
                l.join("\n")
            });
        }
        RolloutCmd::Pause { id } => control(app, &d, &id, RolloutState::Paused).await?,
        RolloutCmd::Resume { id } => control(app, &d, &id, RolloutState::Active).await?,
        RolloutCmd::Abort { id } => control(app, &d, &id, RolloutState::Aborted).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn control(app: &App, d: &Director, id: &str, to: RolloutState) -> Result<()> {
    let r = d.control(&app.actor, id, to).await?;
    out(app, json!(r), || {
        format!("rollout {} is {}", r.id, r.state.as_str())
    });
    Ok(())
}

pub async fn director_cmd(app: &App, c: DirectorCmd) -> Result<ExitCode> {
    let DirectorCmd::Key { out: path } = c;
    let k = director(app)?.public_key();
    write_or_print(path.as_deref(), &serde_json::to_string_pretty(&k)?)?;
    Ok(ExitCode::SUCCESS)
}

/// Where the TUF repository lives (and what `medsec serve` serves under `/tuf/`).
pub fn tuf_dir(app: &App) -> std::path::PathBuf {
    app.data_dir.join("tuf")
}

fn open_repo(app: &App) -> Result<Repository> {
    let dir = tuf_dir(app);
    if !dir.join("repo.json").exists() {
        bail!(
            "no TUF repository in {}: run `medsec tuf init`",
            dir.display()
        );
    }
    Ok(Repository::open(dir, app.keys.clone())?)
}

/// Runs blocking repository work (signing, fsync) off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("repository task failed")?
}

fn parse_role(s: &str) -> Result<RoleRef> {
    Ok(match s {
        "root" => RoleRef::Root,
        "targets" => RoleRef::Targets,
        "snapshot" => RoleRef::Snapshot,
        "timestamp" => RoleRef::Timestamp,
        model => RoleRef::Release(medsec_core::DeviceModel::parse(model)?),
    })
}

fn audit_tuf(app: &App, what: &str, details: serde_json::Value) -> medsec_core::AuditRecord {
    medsec_core::AuditRecord::new(
        &app.actor,
        medsec_core::AuditAction::TufMetadataChanged,
        what,
        details,
    )
}

pub async fn tuf_cmd(app: &App, c: TufCmd) -> Result<ExitCode> {
    use medsec_ca::CaStore;
    match c {
        TufCmd::Init {
            root_keys,
            root_threshold,
            timestamp_hours,
        } => {
            let dir = tuf_dir(app);
            if dir.join("repo.json").exists() {
                bail!("{} already holds a TUF repository", dir.display());
            }
            let mut opts = RepoOptions {
                root_keys,
                root_threshold,
                ..RepoOptions::default()
            };
            opts.expiries.timestamp_secs = timestamp_hours.max(1) * 3600;
            let keys = app.keys.clone();
            let d2 = dir.clone();
            let repo = blocking(move || Ok(Repository::init(d2, keys, opts)?)).await?;
            app.store
                .append_audit(&audit_tuf(
                    app,
                    "tuf:root",
                    json!({"init": true, "root_keys": root_keys, "threshold": root_threshold}),
                ))
                .await?;
            out(
                app,
                json!({"dir": dir, "root_version": repo.root_version()}),
                || {
                    format!(
                        "TUF repository in {} (root {root_threshold}-of-{root_keys}); serve it with `medsec serve` under /tuf/",
                        dir.display()
                    )
                },
            );
        }
        TufCmd::Root { version, out: path } => {
            let repo = open_repo(app)?;
            let v = version.unwrap_or(repo.root_version());
            write_or_print(
                path.as_deref(),
                &String::from_utf8(repo.root_json(v)?).context("root.json is not UTF-8")?,
            )?;
        }
        TufCmd::RotateRoot {
            add,
            retire,
            threshold,
        } => {
            let mut repo = open_repo(app)?;
            let r2 = retire.clone();
            let ch = blocking(move || Ok(repo.rotate_root(add, &r2, threshold)?)).await?;
            app.store
                .append_audit(&audit_tuf(
                    app,
                    "tuf:root",
                    json!({"rotate": ch.root_version, "added": ch.added, "removed": ch.removed}),
                ))
                .await?;
            out(
                app,
                json!({"root_version": ch.root_version, "added": ch.added, "removed": ch.removed}),
                || {
                    format!(
                        "root version {}: added {:?}, removed {:?}",
                        ch.root_version, ch.added, ch.removed
                    )
                },
            );
        }
        TufCmd::RevokeKey { role, keyid } => {
            let r = parse_role(&role)?;
            let mut repo = open_repo(app)?;
            let k2 = keyid.clone();
            let ch = blocking(move || Ok(repo.revoke_key(&r, &k2)?)).await?;
            app.store
                .append_audit(&audit_tuf(
                    app,
                    &format!("tuf:{role}"),
                    json!({"revoked": keyid, "root_version": ch.root_version}),
                ))
                .await?;
            out(
                app,
                json!({"role": role, "removed": ch.removed, "root_version": ch.root_version}),
                || {
                    format!(
                        "revoked {keyid} from {role}; root version {}",
                        ch.root_version
                    )
                },
            );
        }
        TufCmd::Keys => {
            let repo = open_repo(app)?;
            let mut v = serde_json::Map::new();
            let mut roles = vec![
                ("root".to_owned(), RoleRef::Root),
                ("targets".to_owned(), RoleRef::Targets),
                ("snapshot".to_owned(), RoleRef::Snapshot),
                ("timestamp".to_owned(), RoleRef::Timestamp),
            ];
            for m in repo.models() {
                roles.push((
                    m.clone(),
                    RoleRef::Release(medsec_core::DeviceModel::parse(&m)?),
                ));
            }
            for (name, r) in roles {
                v.insert(name, json!(repo.role_keyids(&r)?));
            }
            let v = serde_json::Value::Object(v);
            out(app, v.clone(), || {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            });
        }
        TufCmd::Refresh { within_hours } => {
            let mut repo = open_repo(app)?;
            blocking(move || Ok(repo.refresh_expiring(within_hours * 3600)?)).await?;
            out(app, json!({"refreshed": true}), || {
                "metadata refreshed".into()
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn release_cmd(app: &App, c: ReleaseCmd) -> Result<ExitCode> {
    match c {
        ReleaseCmd::Publish {
            model,
            version,
            security_version,
            hardware_id,
            sbom,
            image,
        } => {
            let m = medsec_core::DeviceModel::parse(&model)?;
            let v = medsec_core::FirmwareVersion::parse(&version)?;
            let sbom_bytes = match &sbom {
                Some(p) => Some(crate::vuln::read_bounded(p, medsec_sbom::MAX_BYTES as u64)?),
                None => None,
            };
            // The SBOM is checked before anything is signed, so a bad one publishes nothing;
            // it is stored once the release exists.
            if let Some(b) = &sbom_bytes {
                medsec_sbom::parse(b).with_context(|| {
                    format!(
                        "SBOM {}",
                        sbom.as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default()
                    )
                })?;
            }
            let sbom_for_store = sbom_bytes.clone();
            let mut repo = open_repo(app)?;
            let (m2, v2, hw) = (m.clone(), v.clone(), hardware_id.clone());
            let rel = blocking(move || {
                if !repo.models().iter().any(|x| x == m2.as_str()) {
                    repo.add_model(&m2, 1, 1)?;
                }
                Ok(repo.publish(&NewRelease {
                    model: &m2,
                    version: &v2,
                    security_version,
                    hardware_id: hw.as_deref(),
                    image: Image::Path(&image),
                    sbom: sbom_bytes.as_deref(),
                })?)
            })
            .await?;
            let mut rec = ReleaseRecord {
                model: m.to_string(),
                version: v.to_string(),
                target: rel.target_name.clone(),
                length: rel.length,
                sha256: rel.sha256.clone(),
                security_version,
                hardware_id: rel.custom.hardware_id.clone(),
                published_at: time::OffsetDateTime::now_utc().unix_timestamp(),
            };
            // The SBOM is stored before the release is recorded: the record makes the release
            // known to the director, so once it exists everything it names does. A publish
            // killed part way (signed, not recorded) is completed by running it again.
            if let Some(b) = sbom_for_store {
                match app
                    .inv
                    .import_sbom(&app.actor, &m, &v, &b, None, false)
                    .await
                {
                    Ok(_) => {}
                    Err(medsec_inventory::InventoryError::Store(
                        medsec_core::StoreError::Conflict(_),
                    )) => eprintln!(
                        "note: firmware {m}@{v} already has an SBOM; it was kept (replace it with `medsec sbom import --replace`)"
                    ),
                    Err(e) => return Err(e.into()),
                }
            }
            let d = director(app)?;
            match d.store().get_release(m.as_str(), v.as_str()).await? {
                // Recorded by an earlier run of the same publish.
                Some(old)
                    if old.target == rec.target
                        && old.length == rec.length
                        && old.sha256 == rec.sha256
                        && old.security_version == rec.security_version
                        && old.hardware_id == rec.hardware_id =>
                {
                    rec = old
                }
                Some(old) => bail!(
                    "{m}@{v} is already recorded as a release with different content (sha256 {})",
                    old.sha256
                ),
                None => d.record_release(&app.actor, &rec).await?,
            }
            out(app, json!(rec), || {
                format!(
                    "published {} ({} bytes, sha256 {}, security version {security_version})",
                    rec.target, rec.length, rec.sha256
                )
            });
        }
        ReleaseCmd::List { model } => {
            let list = director(app)?
                .store()
                .list_releases(model.as_deref())
                .await?;
            out(app, json!(list), || {
                list.iter()
                    .map(|r| {
                        format!(
                            "{:<44} sv {:<4} {} bytes {}",
                            r.target, r.security_version, r.length, r.sha256
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
