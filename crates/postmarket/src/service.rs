//! The post-market service over a [`PostmarketStore`]: ingest (store, then detect), incidents
//! and their regulatory clocks, detection rules, CVD reports. The caller passes "now", so the
//! service reads no clock and tests replay exact times.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use medsec_core::{Actor, AuditAction, AuditRecord, DeviceId, DeviceModel, StoreError};
use serde::Serialize;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::PostmarketError;
use crate::clock::{Obligation, RegulatoryClock};
use crate::cvd::{CvdPolicy, CvdReport, CvdStatus, Submission, TrackingId};
use crate::event::{AttributedEvent, Event};
use crate::incident::{Incident, IncidentId, IncidentStatus, Note, Reference, Reportability};
use crate::rules::{Detection, Engine, RuleSet};
use crate::store::{EventQuery, EventSource, PostmarketStore, VersionedIncident, VersionedReport};

/// Optimistic updates retry this often before reporting a conflict; two writers racing on one
/// incident settle in one retry, so more would only hide a livelock.
const RETRIES: usize = 5;

/// What one ingest call did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestOutcome {
    /// Events stored by this call.
    pub accepted: usize,
    /// Events already stored (replays) and skipped.
    pub duplicates: usize,
    /// Incidents opened or updated by detections on the accepted events.
    pub incidents: Vec<IncidentTouch>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IncidentTouch {
    pub incident: IncidentId,
    pub rule: String,
    pub opened: bool,
}

/// One fielded exposure to a vulnerability newly listed in KEV.
#[derive(Debug, Clone)]
pub struct KevExposure {
    pub vulnerability: Reference,
    pub model: DeviceModel,
    pub firmware: String,
    pub devices: Vec<DeviceId>,
}

/// Clocks across all incidents at one instant.
#[derive(Debug, Clone, Serialize)]
pub struct ClockView {
    pub overdue: Vec<RegulatoryClock>,
    pub due_soon: Vec<RegulatoryClock>,
    pub running: Vec<RegulatoryClock>,
    pub met: Vec<RegulatoryClock>,
}

pub struct PostmarketService {
    store: Arc<dyn PostmarketStore>,
    engine: Mutex<Engine>,
    cvd_policy: CvdPolicy,
    /// Serialises incident read-modify-writes in this process: concurrent batches detecting
    /// for the same open incident would otherwise keep invalidating each other's version
    /// while waiting for the database, and a batch already stored would be answered 409.
    /// Version checks still guard against other processes (replicas, the CLI).
    incident_writes: tokio::sync::Mutex<()>,
}

fn audit(
    actor: &Actor,
    action: AuditAction,
    subject: impl Into<String>,
    d: serde_json::Value,
) -> AuditRecord {
    AuditRecord::new(actor, action, subject, d)
}

impl PostmarketService {
    /// Loads the stored rules (or the built-in set) and rebuilds the detection state from the
    /// events received within the longest rule window before `now`, so a restart neither
    /// forgets a burst in progress nor fires twice for one already recorded.
    pub async fn open(
        store: Arc<dyn PostmarketStore>,
        cvd_policy: CvdPolicy,
        now: OffsetDateTime,
    ) -> Result<Self, PostmarketError> {
        let rules = match store.rules().await? {
            Some(r) => RuleSet::from_json(&r.body)?,
            None => RuleSet::default_set(),
        };
        let svc = PostmarketService {
            store,
            engine: Mutex::new(Engine::new(rules)),
            cvd_policy,
            incident_writes: tokio::sync::Mutex::new(()),
        };
        svc.warm_up(now).await?;
        Ok(svc)
    }

    pub fn store(&self) -> &dyn PostmarketStore {
        self.store.as_ref()
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        // A panic while holding the lock leaves the sliding windows at worst stale; detection
        // continues rather than taking ingest down with it.
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn warm_up(&self, now: OffsetDateTime) -> Result<(), PostmarketError> {
        let window = self.engine().rules().longest_window();
        if window.is_zero() {
            return Ok(());
        }
        let mut q = EventQuery {
            received_since: Some(now - window - Duration::minutes(1)),
            limit: 10_000,
            ..EventQuery::default()
        };
        loop {
            let page = self.store.events(&q).await?;
            let Some(last) = page.last().map(|e| e.seq) else {
                break;
            };
            let mut engine = self.engine();
            for e in &page {
                // Detections here were already recorded when the events first arrived.
                let _ = engine.observe(&e.device, &e.event);
            }
            q.after_seq = Some(last);
        }
        Ok(())
    }

    pub fn rules(&self) -> RuleSet {
        self.engine().rules().clone()
    }

    /// Replaces the detection rules (admins). The engine restarts with the new rules and
    /// replays the recent events, so a tightened threshold applies to the burst in progress.
    pub async fn set_rules(
        &self,
        actor: &Actor,
        json: &str,
        expected: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<(RuleSet, u64), PostmarketError> {
        let rules = RuleSet::from_json(json)?;
        let expected = match expected {
            Some(v) => Some(v),
            None => self.store.rules().await?.map(|r| r.version),
        };
        let version = self
            .store
            .put_rules(
                json,
                expected,
                actor,
                &audit(
                    actor,
                    AuditAction::DetectionRulesChanged,
                    "detection-rules",
                    json!({ "rules": rules.rules().len() }),
                ),
            )
            .await?;
        *self.engine() = Engine::new(rules.clone());
        self.warm_up(now).await?;
        Ok((rules, version))
    }

    /// Stores events from one authenticated device, then runs detection on the new ones.
    /// The device comes from the authenticated channel, never from the events.
    pub async fn ingest(
        &self,
        device: &DeviceId,
        source: EventSource,
        events: Vec<Event>,
        now: OffsetDateTime,
    ) -> Result<IngestOutcome, PostmarketError> {
        let attributed: Vec<AttributedEvent> = events
            .into_iter()
            .map(|e| e.attribute(device.clone()))
            .collect();
        self.ingest_attributed(source, attributed, now).await
    }

    /// Like [`ingest`](Self::ingest) for events already attributed (a gateway authorised to
    /// speak for several devices).
    pub async fn ingest_attributed(
        &self,
        source: EventSource,
        events: Vec<AttributedEvent>,
        now: OffsetDateTime,
    ) -> Result<IngestOutcome, PostmarketError> {
        let stored = self.store.append_events(source, now, &events).await?;
        let mut detections = Vec::new();
        {
            let mut engine = self.engine();
            for &i in &stored {
                if let Some(ev) = events.get(i) {
                    detections.extend(engine.observe_attributed(ev));
                }
            }
        }
        let mut out = IngestOutcome {
            accepted: stored.len(),
            duplicates: events.len() - stored.len(),
            incidents: Vec::new(),
        };
        for d in &detections {
            let (id, opened) = self.record_detection(d, &[]).await?;
            out.incidents.push(IncidentTouch {
                incident: id,
                rule: d.rule.to_string(),
                opened,
            });
        }
        Ok(out)
    }

    /// Attaches a detection to the open incident for its rule and model, or opens one. The
    /// store's uniqueness rule decides races between replicas or tasks.
    async fn record_detection(
        &self,
        d: &Detection,
        links: &[Reference],
    ) -> Result<(IncidentId, bool), PostmarketError> {
        let system = Actor::system();
        let _serial = self.incident_writes.lock().await;
        for _ in 0..RETRIES {
            if let Some(VersionedIncident {
                mut incident,
                version,
            }) = self.store.open_incident(&d.rule, &d.device.model).await?
            {
                incident.attach(d);
                for l in links {
                    incident.link_vulnerability(l.clone(), system.clone(), d.at);
                }
                let rec = audit(
                    &system,
                    AuditAction::IncidentChanged,
                    incident.id().to_string(),
                    json!({ "detection": d.rule.as_str(), "device": d.device.urn() }),
                );
                match self.store.update_incident(&incident, version, &rec).await {
                    Ok(_) => return Ok((incident.id(), false)),
                    Err(StoreError::Conflict(_)) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let mut incident = Incident::from_detection(d);
            for l in links {
                incident.link_vulnerability(l.clone(), system.clone(), d.at);
            }
            let rec = audit(
                &system,
                AuditAction::IncidentOpened,
                d.device.model.as_str(),
                json!({ "rule": d.rule.as_str(), "device": d.device.urn() }),
            );
            match self.store.insert_incident(&incident, &rec).await {
                Ok(v) => return Ok((v.incident.id(), true)),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(PostmarketError::Conflict(format!(
            "incident for rule {} on {}",
            d.rule, d.device.model
        )))
    }

    /// Opens (or updates) one incident per model for vulnerabilities newly listed in KEV that
    /// fielded devices run, when the rule set enables the kev-listed rule.
    pub async fn kev_listed(
        &self,
        exposures: &[KevExposure],
        now: OffsetDateTime,
    ) -> Result<Vec<IncidentTouch>, PostmarketError> {
        let Some(rule) = self.engine().rules().kev_rule().cloned() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for x in exposures {
            let Some(first) = x.devices.first() else {
                continue;
            };
            let d = Detection {
                rule: rule.id.clone(),
                title: rule.title.clone(),
                severity: rule.severity,
                device: first.clone(),
                at: now,
                events: Vec::new(),
            };
            let (id, opened) = self
                .record_detection(&d, std::slice::from_ref(&x.vulnerability))
                .await?;
            let note = Note::parse(&format!(
                "{} is newly listed in CISA KEV; {} fielded device(s) of {} run firmware {}",
                x.vulnerability,
                x.devices.len(),
                x.model,
                x.firmware
            ))?;
            let devices = x.devices.clone();
            self.modify(id, &Actor::system(), now, move |inc| {
                inc.add_devices(devices.iter().cloned());
                inc.record_action(note.clone(), Actor::system(), now);
                Ok(())
            })
            .await?;
            out.push(IncidentTouch {
                incident: id,
                rule: rule.id.to_string(),
                opened,
            });
        }
        Ok(out)
    }

    /// Applies `f` to the newest version of an incident and stores it, retrying on a
    /// concurrent change so a person's action is never lost to a detection landing first.
    pub async fn modify(
        &self,
        id: IncidentId,
        actor: &Actor,
        _now: OffsetDateTime,
        f: impl Fn(&mut Incident) -> Result<(), PostmarketError>,
    ) -> Result<Incident, PostmarketError> {
        let _serial = self.incident_writes.lock().await;
        for _ in 0..RETRIES {
            let VersionedIncident {
                mut incident,
                version,
            } = self
                .store
                .incident(id)
                .await?
                .ok_or_else(|| PostmarketError::UnknownIncident(id.to_string()))?;
            let before = incident.timeline().len();
            f(&mut incident)?;
            let what: Vec<_> = incident
                .timeline()
                .iter()
                .skip(before)
                .filter_map(|e| serde_json::to_value(&e.what).ok())
                .collect();
            let rec = audit(
                actor,
                AuditAction::IncidentChanged,
                id.to_string(),
                json!({ "changes": what }),
            );
            match self.store.update_incident(&incident, version, &rec).await {
                Ok(_) => return Ok(incident),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(PostmarketError::Conflict(id.to_string()))
    }

    pub async fn open_manual(
        &self,
        actor: &Actor,
        title: &str,
        model: DeviceModel,
        now: OffsetDateTime,
    ) -> Result<Incident, PostmarketError> {
        let inc = Incident::open_manual(title, model.clone(), actor.clone(), now)?;
        let rec = audit(
            actor,
            AuditAction::IncidentOpened,
            model.as_str(),
            json!({ "rule": "manual", "title": inc.title() }),
        );
        Ok(self.store.insert_incident(&inc, &rec).await?.incident)
    }

    pub async fn incident(&self, id: IncidentId) -> Result<Incident, PostmarketError> {
        Ok(self
            .store
            .incident(id)
            .await?
            .ok_or_else(|| PostmarketError::UnknownIncident(id.to_string()))?
            .incident)
    }

    pub async fn incidents(
        &self,
        open_only: bool,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<Incident>, PostmarketError> {
        Ok(self
            .store
            .incidents(open_only, limit, offset)
            .await?
            .into_iter()
            .map(|v| v.incident)
            .collect())
    }

    pub async fn transition(
        &self,
        id: IncidentId,
        to: IncidentStatus,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Incident, PostmarketError> {
        self.modify(id, actor, now, |inc| inc.transition(to, actor.clone(), now))
            .await
    }

    /// Sets the owner.
    pub async fn assign(
        &self,
        id: IncidentId,
        owner: Actor,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Incident, PostmarketError> {
        self.modify(id, actor, now, |i| {
            i.assign(owner.clone(), actor.clone(), now);
            Ok(())
        })
        .await
    }

    /// Records a response action.
    pub async fn record_action(
        &self,
        id: IncidentId,
        note: Note,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Incident, PostmarketError> {
        self.modify(id, actor, now, |i| {
            i.record_action(note.clone(), actor.clone(), now);
            Ok(())
        })
        .await
    }

    /// Links vulnerabilities, risk register entries and other affected models.
    pub async fn link(
        &self,
        id: IncidentId,
        vulnerabilities: &[Reference],
        risks: &[Reference],
        models: &[DeviceModel],
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Incident, PostmarketError> {
        self.modify(id, actor, now, |i| {
            for v in vulnerabilities {
                i.link_vulnerability(v.clone(), actor.clone(), now);
            }
            for r in risks {
                i.link_risk(r.clone(), actor.clone(), now);
            }
            for m in models {
                i.add_model(m.clone());
            }
            Ok(())
        })
        .await
    }

    pub async fn decide_reportability(
        &self,
        id: IncidentId,
        decision: Reportability,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Incident, PostmarketError> {
        self.modify(id, actor, now, |inc| {
            inc.decide_reportability(decision.clone(), actor.clone(), now)
        })
        .await
    }

    pub async fn mark_met(
        &self,
        id: IncidentId,
        obligation: Obligation,
        note: Note,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Incident, PostmarketError> {
        self.modify(id, actor, now, |inc| {
            inc.mark_met(obligation, note.clone(), actor.clone(), now)
        })
        .await
    }

    /// Every clock of every incident with a reportable decision, sorted by due time.
    pub async fn clocks(
        &self,
        now: OffsetDateTime,
        due_within: Duration,
    ) -> Result<ClockView, PostmarketError> {
        let mut all = Vec::new();
        let mut offset = 0u64;
        loop {
            let page = self.store.incidents(false, 500, offset).await?;
            if page.is_empty() {
                break;
            }
            offset += page.len() as u64;
            for v in page {
                all.extend(v.incident.clocks()?);
            }
        }
        all.sort_by_key(|c| (c.due, c.incident, c.obligation));
        let horizon = now.saturating_add(due_within);
        let mut view = ClockView {
            overdue: Vec::new(),
            due_soon: Vec::new(),
            running: Vec::new(),
            met: Vec::new(),
        };
        for c in all {
            if c.is_met() {
                view.met.push(c);
            } else if c.due < now {
                view.overdue.push(c);
            } else if c.due <= horizon {
                view.due_soon.push(c);
            } else {
                view.running.push(c);
            }
        }
        Ok(view)
    }

    pub fn cvd_policy(&self) -> CvdPolicy {
        self.cvd_policy
    }

    /// Stores a researcher's report under a fresh unguessable tracking id.
    pub async fn submit_report(
        &self,
        submission: Submission,
        random: [u8; 16],
        now: OffsetDateTime,
    ) -> Result<CvdReport, PostmarketError> {
        let id = TrackingId::from_random(random);
        let report = CvdReport::receive(id, submission, now, self.cvd_policy)?;
        let rec = audit(
            &Actor::system(),
            AuditAction::CvdReportReceived,
            report.id.as_str(),
            json!({ "title": report.submission.title }),
        );
        self.store.insert_report(&report, &rec).await?;
        Ok(report)
    }

    pub async fn report(&self, id: &TrackingId) -> Result<CvdReport, PostmarketError> {
        Ok(self
            .store
            .report(id)
            .await?
            .ok_or_else(|| PostmarketError::UnknownReport(id.to_string()))?
            .report)
    }

    pub async fn reports(
        &self,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<CvdReport>, PostmarketError> {
        Ok(self
            .store
            .reports(limit, offset)
            .await?
            .into_iter()
            .map(|v| v.report)
            .collect())
    }

    /// Applies `f` to the newest version of a report, retrying on a concurrent change.
    pub async fn modify_report(
        &self,
        id: &TrackingId,
        actor: &Actor,
        f: impl Fn(&mut CvdReport) -> Result<(), PostmarketError>,
    ) -> Result<CvdReport, PostmarketError> {
        for _ in 0..RETRIES {
            let VersionedReport {
                mut report,
                version,
            } = self
                .store
                .report(id)
                .await?
                .ok_or_else(|| PostmarketError::UnknownReport(id.to_string()))?;
            f(&mut report)?;
            let rec = audit(
                actor,
                AuditAction::CvdReportChanged,
                id.as_str(),
                json!({ "status": report.status.as_str() }),
            );
            match self.store.update_report(&report, version, &rec).await {
                Ok(_) => return Ok(report),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(PostmarketError::Conflict(id.to_string()))
    }

    pub async fn set_report_status(
        &self,
        id: &TrackingId,
        to: CvdStatus,
        note: Option<Note>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<CvdReport, PostmarketError> {
        self.modify_report(id, actor, |r| {
            r.set_status(to, note.clone(), actor.clone(), now)
        })
        .await
    }

    /// Links a report to findings and incidents (both ways for incidents, so the incident's
    /// timeline shows where it came from).
    pub async fn link_report(
        &self,
        id: &TrackingId,
        findings: &BTreeSet<Reference>,
        incidents: &BTreeSet<IncidentId>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<CvdReport, PostmarketError> {
        for &inc in incidents {
            self.incident(inc).await?;
        }
        let report = self
            .modify_report(id, actor, |r| {
                for f in findings {
                    r.link_finding(f.clone());
                }
                for &i in incidents {
                    r.link_incident(i);
                }
                Ok(())
            })
            .await?;
        let reference = Reference::parse(id.as_str())?;
        for &inc in incidents {
            self.modify(inc, actor, now, |i| {
                i.link_vulnerability(reference.clone(), actor.clone(), now);
                for f in findings {
                    i.link_vulnerability(f.clone(), actor.clone(), now);
                }
                Ok(())
            })
            .await?;
        }
        Ok(report)
    }

    /// Deletes events received more than `retention` before `now`.
    pub async fn purge_events(
        &self,
        retention: Duration,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<u64, PostmarketError> {
        let before = now - retention;
        let rec = audit(
            actor,
            AuditAction::EventsPurged,
            "events",
            json!({ "received_before": before.unix_timestamp() }),
        );
        Ok(self.store.purge_events(before, &rec).await?)
    }

    pub async fn events(
        &self,
        q: &EventQuery,
    ) -> Result<Vec<crate::store::StoredEvent>, PostmarketError> {
        Ok(self.store.events(q).await?)
    }
}
