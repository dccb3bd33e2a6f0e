//! `medsec events|incident|cvd`: post-market surveillance from the command line, on the same
//! service the server runs.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::{Context, Result};
use medsec_core::{Actor, DeviceId, DeviceModel};
use medsec_postmarket::advisory::ProviderBaseUrl;
use medsec_postmarket::clock::Obligation;
use medsec_postmarket::cvd::{CvdPolicy, CvdReport, CvdStatus, SecurityTxt, TrackingId};
use medsec_postmarket::incident::{
    Incident, IncidentId, IncidentStatus, Note, Reference, Reportability,
};
use medsec_postmarket::report::{ReportKind, draft};
use medsec_postmarket::service::PostmarketService;
use medsec_postmarket::store::EventQuery;
use medsec_server::PostmarketSettings;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::cli::{CvdCmd, EventsCmd, IncidentCmd};
use crate::config::Config;
use crate::{App, out, write_or_print};

pub fn cvd_policy(cfg: &Config) -> CvdPolicy {
    CvdPolicy {
        acknowledge_days: cfg.postmarket.acknowledge_days,
        disclosure_days: cfg.postmarket.disclosure_days,
    }
}

/// The CSAF provider origin: configured, else the first server name on the HTTPS port.
pub fn csaf_base(cfg: &Config, https_port: u16) -> Result<ProviderBaseUrl> {
    let s = match &cfg.postmarket.csaf_base_url {
        Some(u) => u.clone(),
        None => {
            let host = cfg
                .server
                .names
                .first()
                .map(String::as_str)
                .unwrap_or("localhost");
            if https_port == 443 {
                format!("https://{host}")
            } else {
                format!("https://{host}:{https_port}")
            }
        }
    };
    ProviderBaseUrl::parse(&s).with_context(|| format!("postmarket.csaf_base_url {s:?}"))
}

/// The server-side settings from `[postmarket]`, checked.
pub fn settings(cfg: &Config, https_port: u16) -> Result<PostmarketSettings> {
    let p = &cfg.postmarket;
    let gateways = p
        .syslog_gateways
        .iter()
        .map(|u| {
            DeviceId::parse_urn(u).with_context(|| format!("postmarket.syslog_gateways {u:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let licences = p
        .licences
        .iter()
        .map(|(m, l)| {
            Ok((
                DeviceModel::parse(m).with_context(|| format!("postmarket.licences {m:?}"))?,
                l.clone(),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let t = &p.security_txt;
    let txt = SecurityTxt {
        contact: t.contact.clone(),
        expires: None,
        encryption: t.encryption.clone(),
        acknowledgments: t.acknowledgments.clone(),
        preferred_languages: t.preferred_languages.clone(),
        canonical: t.canonical.clone(),
        policy: t.policy.clone(),
    };
    if !txt.contact.is_empty() {
        // Refuse a bad file at start-up rather than serve 404s later.
        let now = OffsetDateTime::now_utc();
        SecurityTxt {
            expires: Some(now + Duration::days(i64::from(t.expires_days))),
            ..txt.clone()
        }
        .render(now)
        .context("postmarket.security_txt")?;
    }
    Ok(PostmarketSettings {
        security_txt: txt,
        security_txt_expires_days: t.expires_days,
        syslog_gateways: gateways,
        manufacturer_address: p.manufacturer_address.clone(),
        licences,
        cvd_per_hour: p.cvd_per_hour,
        cvd_burst: p.cvd_burst,
        retention_days: (p.retention_days > 0).then_some(p.retention_days),
        csaf_base: Some(csaf_base(cfg, https_port)?),
    })
}

pub async fn service(app: &App) -> Result<PostmarketService> {
    Ok(PostmarketService::open(
        app.store.clone(),
        cvd_policy(&app.cfg),
        OffsetDateTime::now_utc(),
    )
    .await?)
}

fn fmt(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn incident_id(s: &str) -> Result<IncidentId> {
    Ok(IncidentId::parse(s)?)
}

fn incident_line(i: &Incident) -> String {
    format!(
        "{}  {:<10} {:<22} {:<12} devices={:<4} {}",
        i.id(),
        i.status().as_str(),
        i.rule().as_str(),
        i.model().as_str(),
        i.devices().count(),
        i.title()
    )
}

fn show_incident(app: &App, i: &Incident) {
    let now = OffsetDateTime::now_utc();
    let mut v = json!(i);
    v["clocks"] = json!(i.clocks().unwrap_or_default());
    out(app, v, || {
        let mut s = incident_line(i);
        if let Some(o) = i.owner() {
            s.push_str(&format!("\nowner: {o}"));
        }
        for c in i.clocks().unwrap_or_default() {
            let state = match c.met_at {
                Some(m) if m > c.due => format!("met late {}", fmt(m)),
                Some(m) => format!("met {}", fmt(m)),
                None if c.due < now => "OVERDUE".into(),
                None => "running".into(),
            };
            s.push_str(&format!(
                "\nclock {}: due {} ({state})",
                c.obligation.as_str(),
                fmt(c.due)
            ));
        }
        for e in i.timeline() {
            let what = serde_json::to_string(&e.what).unwrap_or_default();
            s.push_str(&format!("\n  {} {} {what}", fmt(e.at), e.by));
        }
        s
    });
}

pub async fn events_cmd(app: &App, c: EventsCmd) -> Result<ExitCode> {
    let svc = service(app).await?;
    match c {
        EventsCmd::List { device, limit } => {
            let device = device.as_deref().map(DeviceId::parse_urn).transpose()?;
            let ev = svc
                .events(&EventQuery {
                    device,
                    newest_first: true,
                    limit: limit.clamp(1, 10_000),
                    ..EventQuery::default()
                })
                .await?;
            out(app, json!({ "events": ev }), || {
                ev.iter()
                    .map(|e| {
                        format!(
                            "{:>8} {} {} {:<26} {:<8} {} ({})",
                            e.seq,
                            fmt(e.event.at),
                            e.device.urn(),
                            e.event.event_type().as_str(),
                            e.event.severity.as_str(),
                            e.event.id.as_str(),
                            e.source.as_str()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        EventsCmd::Purge { older_than_days } => {
            anyhow::ensure!(older_than_days > 0, "--older-than-days must be at least 1");
            let n = svc
                .purge_events(
                    Duration::days(i64::from(older_than_days)),
                    &app.actor,
                    OffsetDateTime::now_utc(),
                )
                .await?;
            out(app, json!({ "purged": n }), || format!("purged {n} events"));
        }
        EventsCmd::Rules { out: path } => {
            let body = match svc.store().rules().await? {
                Some(r) => r.body,
                None => medsec_postmarket::rules::RuleSet::default_json().to_string(),
            };
            write_or_print(path.as_deref(), &body)?;
        }
        EventsCmd::SetRules { file } => {
            let text = String::from_utf8(crate::vuln::read_bounded(&file, 1024 * 1024)?)
                .with_context(|| format!("{} is not UTF-8", file.display()))?;
            let (rules, v) = svc
                .set_rules(&app.actor, &text, None, OffsetDateTime::now_utc())
                .await
                .with_context(|| format!("rules {}", file.display()))?;
            out(
                app,
                json!({ "version": v, "rules": rules.rules().len() }),
                || {
                    format!(
                        "stored {} detection rules (version {v})",
                        rules.rules().len()
                    )
                },
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn refs(v: &[String]) -> Result<Vec<Reference>> {
    Ok(v.iter()
        .map(|s| Reference::parse(s))
        .collect::<Result<_, _>>()?)
}

pub async fn incident_cmd(app: &App, c: IncidentCmd) -> Result<ExitCode> {
    let svc = service(app).await?;
    let now = OffsetDateTime::now_utc();
    let actor = app.actor.clone();
    match c {
        IncidentCmd::List { open, limit } => {
            let list = svc.incidents(open, limit.clamp(1, 10_000), 0).await?;
            out(app, json!({ "incidents": list }), || {
                list.iter()
                    .map(incident_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        IncidentCmd::Show { id } => {
            let i = svc.incident(incident_id(&id)?).await?;
            show_incident(app, &i);
        }
        IncidentCmd::Open { model, title } => {
            let i = svc
                .open_manual(&actor, &title, DeviceModel::parse(&model)?, now)
                .await?;
            show_incident(app, &i);
        }
        IncidentCmd::Status { id, status } => {
            let i = svc
                .transition(
                    incident_id(&id)?,
                    IncidentStatus::parse(&status)?,
                    &actor,
                    now,
                )
                .await?;
            show_incident(app, &i);
        }
        IncidentCmd::Assign { id, owner } => {
            let owner = Actor::parse(&owner)?;
            let i = svc.assign(incident_id(&id)?, owner, &actor, now).await?;
            show_incident(app, &i);
        }
        IncidentCmd::Note { id, note } => {
            let note = Note::parse(&note)?;
            let i = svc
                .record_action(incident_id(&id)?, note, &actor, now)
                .await?;
            show_incident(app, &i);
        }
        IncidentCmd::Link {
            id,
            vulns,
            risks,
            models,
        } => {
            let (vulns, risks) = (refs(&vulns)?, refs(&risks)?);
            let models = models
                .iter()
                .map(|m| DeviceModel::parse(m))
                .collect::<Result<Vec<_>, _>>()?;
            let i = svc
                .link(incident_id(&id)?, &vulns, &risks, &models, &actor, now)
                .await?;
            show_incident(app, &i);
        }
        IncidentCmd::Decide {
            id,
            obligations,
            not_reportable,
            rationale,
            aware_at,
        } => {
            anyhow::ensure!(
                not_reportable || !obligations.is_empty(),
                "give --obligation (one or more) for a reportable incident, or --not-reportable"
            );
            let obligations = obligations
                .iter()
                .map(|o| Obligation::parse(o))
                .collect::<Result<BTreeSet<_>, _>>()?;
            let aware = match aware_at {
                Some(s) => OffsetDateTime::parse(&s, &Rfc3339)
                    .with_context(|| format!("--aware-at {s:?} is not RFC 3339"))?,
                None => now,
            };
            anyhow::ensure!(
                aware <= now + Duration::minutes(5),
                "--aware-at is in the future"
            );
            let d = Reportability::new(
                !not_reportable,
                obligations,
                Note::parse(&rationale)?,
                aware,
            )?;
            let i = svc
                .decide_reportability(incident_id(&id)?, d, &actor, now)
                .await?;
            show_incident(app, &i);
        }
        IncidentCmd::Met {
            id,
            obligation,
            note,
        } => {
            let i = svc
                .mark_met(
                    incident_id(&id)?,
                    Obligation::parse(&obligation)?,
                    Note::parse(&note)?,
                    &actor,
                    now,
                )
                .await?;
            show_incident(app, &i);
        }
        IncidentCmd::Report {
            id,
            kind,
            consequences,
            out: path,
        } => {
            let i = svc.incident(incident_id(&id)?).await?;
            let s = settings(&app.cfg, app.cfg.server.https_addr.port())?;
            let (publisher, _) = crate::inventory::publisher(&app.cfg);
            let mut ctx = medsec_server::report_context(Some(&app.inv), &publisher, &s, &i).await;
            ctx.consequences = consequences
                .as_deref()
                .map(Note::parse)
                .transpose()?
                .map(|n| n.as_str().to_string());
            let md = draft(&i, ReportKind::parse(&kind)?, &ctx, now)?;
            write_or_print(path.as_deref(), &md)?;
        }
        IncidentCmd::Clocks { due_within_days } => {
            let v = svc
                .clocks(now, Duration::days(i64::from(due_within_days.min(365))))
                .await?;
            out(app, json!(v), || {
                let mut s = String::new();
                for (label, list) in [
                    ("OVERDUE", &v.overdue),
                    ("due soon", &v.due_soon),
                    ("running", &v.running),
                    ("met", &v.met),
                ] {
                    for c in list {
                        s.push_str(&format!(
                            "{label:<9} {} {:<36} due {}\n",
                            c.incident,
                            c.obligation.as_str(),
                            fmt(c.due)
                        ));
                    }
                }
                s.trim_end().to_string()
            });
            if !v.overdue.is_empty() {
                // Scripts and monitoring can alert on overdue obligations by exit status.
                return Ok(ExitCode::from(4));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report_line(r: &CvdReport, now: OffsetDateTime) -> String {
    format!(
        "{}  {:<12} received {}  ack by {}{}  disclose by {}  {}",
        r.id,
        r.status.as_str(),
        fmt(r.received_at),
        fmt(r.acknowledge_by),
        if r.acknowledgement_overdue(now) {
            " (OVERDUE)"
        } else {
            ""
        },
        fmt(r.disclose_by),
        r.submission.title
    )
}

pub async fn cvd_cmd(app: &App, c: CvdCmd) -> Result<ExitCode> {
    let svc = service(app).await?;
    let now = OffsetDateTime::now_utc();
    let actor = app.actor.clone();
    let tid = |s: &str| TrackingId::parse(s);
    let r = match c {
        CvdCmd::List { limit } => {
            let list = svc.reports(limit.clamp(1, 10_000), 0).await?;
            out(app, json!({ "reports": list }), || {
                list.iter()
                    .map(|r| report_line(r, now))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            return Ok(ExitCode::SUCCESS);
        }
        CvdCmd::Show { id } => svc.report(&tid(&id)?).await?,
        CvdCmd::Status { id, status, note } => {
            let note = note.as_deref().map(Note::parse).transpose()?;
            svc.set_report_status(&tid(&id)?, CvdStatus::parse(&status)?, note, &actor, now)
                .await?
        }
        CvdCmd::Link {
            id,
            findings,
            incidents,
        } => {
            let f: BTreeSet<Reference> = refs(&findings)?.into_iter().collect();
            let i = incidents
                .iter()
                .map(|s| incident_id(s))
                .collect::<Result<BTreeSet<_>>>()?;
            svc.link_report(&tid(&id)?, &f, &i, &actor, now).await?
        }
        CvdCmd::Disclosure { id, date } => {
            let d = OffsetDateTime::parse(&date, &Rfc3339)
                .with_context(|| format!("{date:?} is not RFC 3339"))?;
            svc.modify_report(&tid(&id)?, &actor, |r| {
                r.set_disclosure_target(d, actor.clone(), now)
            })
            .await?
        }
    };
    out(app, json!(r), || {
        let mut s = report_line(&r, now);
        s.push_str(&format!("\n\n{}\n", r.submission.description));
        for n in &r.notes {
            s.push_str(&format!("\n  {} {} {}", fmt(n.at), n.by, n.note.as_str()));
        }
        s
    });
    Ok(ExitCode::SUCCESS)
}
