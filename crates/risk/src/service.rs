//! Risk management over stored documents: a model's inventory and register, the global policy
//! and threat rules, each checked before it is stored (a bad file stores nothing) and kept
//! with its history; threats, findings, sign-off, traceability and reports computed from them.

use std::sync::Arc;

use medsec_core::{Actor, AuditAction, AuditRecord, DeviceModel};
use serde_json::json;
use time::OffsetDateTime;

use crate::store::{DocKind, GLOBAL, RiskStore, StoredDoc};
use crate::{
    Finding, FindingInputs, Inventory, Policy, Register, RiskError, RiskId, RiskReport, RuleSet,
    ThreatModel, Traceability, compute_findings, trace,
};

pub struct RiskService {
    store: Arc<dyn RiskStore>,
}

fn audit(actor: &Actor, scope: &str, kind: DocKind, body: &str) -> AuditRecord {
    use sha2::{Digest, Sha256};
    AuditRecord::new(
        actor,
        AuditAction::RiskDocumentChanged,
        format!("{scope}:{}", kind.as_str()),
        json!({"sha256": hex::encode(Sha256::digest(body.as_bytes()))}),
    )
}

impl RiskService {
    pub fn new(store: Arc<dyn RiskStore>) -> Self {
        RiskService { store }
    }

    pub fn store(&self) -> &dyn RiskStore {
        &*self.store
    }

    async fn put(
        &self,
        actor: &Actor,
        scope: &str,
        kind: DocKind,
        body: &str,
    ) -> Result<u64, RiskError> {
        let current = self.store.get_doc(scope, kind).await?.map(|d| d.version);
        Ok(self
            .store
            .put_doc(
                scope,
                kind,
                body,
                current,
                actor,
                &audit(actor, scope, kind, body),
            )
            .await?)
    }

    /// Stores a model's trust-relationship inventory (TOML) after checking it whole.
    pub async fn put_inventory(
        &self,
        actor: &Actor,
        model: &DeviceModel,
        toml: &str,
    ) -> Result<(Inventory, u64), RiskError> {
        let inv = Inventory::from_toml(toml)?;
        if &inv.model != model {
            return Err(RiskError::Invalid {
                file: "inventory",
                line: None,
                field: "model".into(),
                message: format!("the file is for model {}, not {model}", inv.model),
            });
        }
        let v = self
            .put(actor, model.as_str(), DocKind::Inventory, toml)
            .await?;
        Ok((inv, v))
    }

    /// The stored inventory of a model.
    pub async fn inventory(
        &self,
        model: &DeviceModel,
    ) -> Result<(Inventory, StoredDoc), RiskError> {
        let doc = self
            .store
            .get_doc(model.as_str(), DocKind::Inventory)
            .await?
            .ok_or_else(|| RiskError::NotFound {
                kind: "inventory of model",
                id: model.to_string(),
            })?;
        Ok((Inventory::from_toml(&doc.body)?, doc))
    }

    /// Stores a model's risk register (TOML), refusing one the current policy cannot rate.
    pub async fn put_register(
        &self,
        actor: &Actor,
        model: &DeviceModel,
        toml: &str,
    ) -> Result<(Register, u64), RiskError> {
        let reg = Register::from_toml(toml)?;
        reg.assess(&self.policy().await?)?;
        let v = self
            .put(actor, model.as_str(), DocKind::Register, toml)
            .await?;
        Ok((reg, v))
    }

    /// The stored register of a model; empty when none was stored.
    pub async fn register(&self, model: &DeviceModel) -> Result<Register, RiskError> {
        match self
            .store
            .get_doc(model.as_str(), DocKind::Register)
            .await?
        {
            Some(d) => Register::from_toml(&d.body),
            None => Ok(Register::default()),
        }
    }

    /// Replaces the acceptability policy (global); registers are re-rated against it.
    pub async fn put_policy(&self, actor: &Actor, toml: &str) -> Result<(Policy, u64), RiskError> {
        let p = Policy::from_toml(toml)?;
        let v = self.put(actor, GLOBAL, DocKind::Policy, toml).await?;
        Ok((p, v))
    }

    /// The stored policy, or the default.
    pub async fn policy(&self) -> Result<Policy, RiskError> {
        match self.store.get_doc(GLOBAL, DocKind::Policy).await? {
            Some(d) => Policy::from_toml(&d.body),
            None => Policy::default_policy(),
        }
    }

    /// Replaces the threat rule set (global).
    pub async fn put_rules(&self, actor: &Actor, toml: &str) -> Result<(RuleSet, u64), RiskError> {
        let r = RuleSet::from_toml(toml)?;
        let v = self.put(actor, GLOBAL, DocKind::Rules, toml).await?;
        Ok((r, v))
    }

    /// The stored rule set, or the built-in one.
    pub async fn rules(&self) -> Result<RuleSet, RiskError> {
        match self.store.get_doc(GLOBAL, DocKind::Rules).await? {
            Some(d) => RuleSet::from_toml(&d.body),
            None => RuleSet::default_rules(),
        }
    }

    /// The threat model of a model: generated from its inventory by the rules, with the
    /// register's review statuses applied.
    pub async fn threats(&self, model: &DeviceModel) -> Result<ThreatModel, RiskError> {
        let (inv, _) = self.inventory(model).await?;
        let mut tm = self.rules().await?.generate(&inv);
        tm.apply_statuses(&self.register(model).await?.threat_status);
        Ok(tm)
    }

    /// Findings computed from the inventory and `inputs` (certificates, firmware support).
    pub async fn findings(
        &self,
        model: &DeviceModel,
        inputs: &FindingInputs,
    ) -> Result<Vec<Finding>, RiskError> {
        let (inv, _) = self.inventory(model).await?;
        Ok(compute_findings(&inv, inputs))
    }

    /// Signs off one register entry: binds who and when to a hash of its inputs and the policy,
    /// stored as a new register version.
    pub async fn sign_off(
        &self,
        actor: &Actor,
        model: &DeviceModel,
        risk: &RiskId,
        at: OffsetDateTime,
    ) -> Result<u64, RiskError> {
        let policy = self.policy().await?;
        let current = self
            .store
            .get_doc(model.as_str(), DocKind::Register)
            .await?;
        let Some(doc) = current else {
            return Err(RiskError::NotFound {
                kind: "register of model",
                id: model.to_string(),
            });
        };
        let mut reg = Register::from_toml(&doc.body)?;
        reg.sign_off(risk, actor.clone(), at, &policy)?;
        let body = reg.to_toml()?;
        Ok(self
            .store
            .put_doc(
                model.as_str(),
                DocKind::Register,
                &body,
                Some(doc.version),
                actor,
                &audit(actor, model.as_str(), DocKind::Register, &body),
            )
            .await?)
    }

    /// Threat <-> control <-> test <-> finding links, and the gaps.
    pub async fn trace(
        &self,
        model: &DeviceModel,
        inputs: &FindingInputs,
    ) -> Result<Traceability, RiskError> {
        let threats = self.threats(model).await?;
        let reg = self.register(model).await?;
        let findings = self.findings(model, inputs).await?;
        Ok(trace(&threats, &reg, &findings))
    }

    /// The risk management report of a model.
    pub async fn report(
        &self,
        model: &DeviceModel,
        title: &str,
        inputs: &FindingInputs,
    ) -> Result<RiskReport, RiskError> {
        let (inv, _) = self.inventory(model).await?;
        let findings = compute_findings(&inv, inputs);
        let mut tm = self.rules().await?.generate(&inv);
        let reg = self.register(model).await?;
        tm.apply_statuses(&reg.threat_status);
        RiskReport::build(
            title,
            inputs.now,
            &inv,
            &findings,
            &tm,
            &reg,
            &self.policy().await?,
        )
    }
}
