//! STRIDE threat model generated from an editable rule set, with hand-maintained statuses.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::RiskError;
use crate::error::{line_col, toml_error, toml_ser_error};
use crate::findings::{auth_str, data_class_str, enc_str};
use crate::ids::{EndpointId, LinkId, RuleId, ThreatId};
use crate::inventory::{
    AuthMethod, DataClass, Encryption, Endpoint, EndpointKind, Inventory, Link,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stride {
    Spoofing,
    Tampering,
    Repudiation,
    InformationDisclosure,
    DenialOfService,
    ElevationOfPrivilege,
}

impl Stride {
    pub fn as_str(self) -> &'static str {
        match self {
            Stride::Spoofing => "spoofing",
            Stride::Tampering => "tampering",
            Stride::Repudiation => "repudiation",
            Stride::InformationDisclosure => "information-disclosure",
            Stride::DenialOfService => "denial-of-service",
            Stride::ElevationOfPrivilege => "elevation-of-privilege",
        }
    }
}

/// Product lifecycle phase in which the threat materialises (as in IEC 81001-5-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LifecyclePhase {
    SupplyChain,
    Manufacturing,
    Deployment,
    Operation,
    MaintenanceUpdate,
    Decommissioning,
}

impl LifecyclePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            LifecyclePhase::SupplyChain => "supply-chain",
            LifecyclePhase::Manufacturing => "manufacturing",
            LifecyclePhase::Deployment => "deployment",
            LifecyclePhase::Operation => "operation",
            LifecyclePhase::MaintenanceUpdate => "maintenance-update",
            LifecyclePhase::Decommissioning => "decommissioning",
        }
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ThreatStatus {
    #[default]
    Open,
    Mitigated,
    Accepted,
    NotApplicable,
}

impl ThreatStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ThreatStatus::Open => "open",
            ThreatStatus::Mitigated => "mitigated",
            ThreatStatus::Accepted => "accepted",
            ThreatStatus::NotApplicable => "not-applicable",
        }
    }
}

/// What a threat is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "id")]
pub enum ThreatTarget {
    Link(LinkId),
    Endpoint(EndpointId),
}

impl ThreatTarget {
    pub fn id_str(&self) -> &str {
        match self {
            ThreatTarget::Link(l) => l.as_str(),
            ThreatTarget::Endpoint(e) => e.as_str(),
        }
    }
}

/// Where a threat came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "id")]
pub enum ThreatOrigin {
    Rule(RuleId),
    ThreatDragon(String),
    Manual,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threat {
    pub id: ThreatId,
    pub target: ThreatTarget,
    pub category: Stride,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub assumptions: Vec<String>,
    pub phase: LifecyclePhase,
    #[serde(default)]
    pub status: ThreatStatus,
    /// Mitigation text carried over from an imported model; controls live in the register.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitigation: Option<String>,
    pub origin: ThreatOrigin,
}

/// The threats of one model, ordered by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreatModel {
    pub threats: Vec<Threat>,
}

impl ThreatModel {
    pub fn get(&self, id: &ThreatId) -> Option<&Threat> {
        self.threats.iter().find(|t| &t.id == id)
    }

    /// Copies statuses decided earlier (by id) onto freshly generated threats, so regenerating
    /// after an inventory edit does not lose review work. Returns the ids that no longer exist.
    pub fn apply_statuses(&mut self, statuses: &BTreeMap<ThreatId, ThreatStatus>) -> Vec<ThreatId> {
        let mut seen = BTreeSet::new();
        for t in &mut self.threats {
            if let Some(s) = statuses.get(&t.id) {
                t.status = *s;
                seen.insert(t.id.clone());
            }
        }
        statuses
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect()
    }

    /// Adds threats (e.g. imported ones); an id already present is replaced.
    pub fn merge(&mut self, others: impl IntoIterator<Item = Threat>) {
        for t in others {
            self.threats.retain(|x| x.id != t.id);
            self.threats.push(t);
        }
        self.threats.sort_by(|a, b| a.id.cmp(&b.id));
    }

    pub fn to_json(&self) -> Result<String, RiskError> {
        serde_json::to_string_pretty(self).map_err(|e| RiskError::Serialize {
            what: "threat model",
            message: e.to_string(),
        })
    }
}

/// What a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleScope {
    Link,
    Endpoint,
}

/// Conditions; all given conditions must hold (AND), each list matches any of its values (OR).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Vec<AuthMethod>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Vec<Encryption>>,
    /// The link carries at least one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<DataClass>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutual: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crosses_boundary: Option<bool>,
    /// Protocol names, compared case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Vec<String>>,
    /// For link rules: either end is of one of these kinds. For endpoint rules: the endpoint is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_kind: Option<Vec<EndpointKind>>,
}

/// The threat a matching rule produces. `title`, `description` and `assumptions` may use
/// `{link}`, `{from}`, `{to}`, `{endpoint}`, `{protocol}`, `{boundary}`, `{auth}`,
/// `{encryption}`, `{data}`, `{model}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub category: Stride,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub assumptions: Vec<String>,
    pub phase: LifecyclePhase,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: RuleId,
    pub scope: RuleScope,
    #[serde(default, rename = "when")]
    pub when: Match,
    pub threat: Template,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    #[serde(rename = "rule")]
    pub rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuleSet {
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<RuleId>,
    scope: RuleScope,
    #[serde(default)]
    when: Match,
    threat: Template,
}

const DEFAULT_RULES: &str = include_str!("default_rules.toml");

impl RuleSet {
    pub fn from_toml(src: &str) -> Result<RuleSet, RiskError> {
        let raw: RawRuleSet = toml::from_str(src).map_err(|e| toml_error("rules", src, &e))?;
        let mut seen = BTreeSet::new();
        let mut rules = Vec::with_capacity(raw.rule.len());
        for r in raw.rule {
            if !seen.insert(r.id.get_ref().clone()) {
                return Err(RiskError::Invalid {
                    file: "rules",
                    line: Some(line_col(src, r.id.span().start).0),
                    field: "rule.id".to_owned(),
                    message: format!("duplicate rule id {:?}", r.id.get_ref().as_str()),
                });
            }
            rules.push(Rule {
                id: r.id.into_inner(),
                scope: r.scope,
                when: r.when,
                threat: r.threat,
            });
        }
        Ok(RuleSet { rules })
    }

    pub fn to_toml(&self) -> Result<String, RiskError> {
        toml::to_string(self).map_err(|e| toml_ser_error("rules", e))
    }

    /// The built-in rule set (`src/default_rules.toml`), a starting point to copy and edit.
    pub fn default_rules() -> Result<RuleSet, RiskError> {
        RuleSet::from_toml(DEFAULT_RULES)
    }

    /// The built-in rule set as TOML text, for `init`-style commands.
    pub fn default_rules_toml() -> &'static str {
        DEFAULT_RULES
    }

    /// Generates threats: one per (rule, matching link/endpoint), id `T-<rule>-<target>`,
    /// status open. Sorted by id.
    pub fn generate(&self, inv: &Inventory) -> ThreatModel {
        let mut threats = Vec::new();
        for r in &self.rules {
            match r.scope {
                RuleScope::Link => {
                    for l in inv.links.iter().filter(|l| link_matches(&r.when, inv, l)) {
                        let vars = link_vars(inv, l);
                        threats.push(instantiate(r, ThreatTarget::Link(l.id.clone()), &vars));
                    }
                }
                RuleScope::Endpoint => {
                    for e in inv
                        .endpoints
                        .iter()
                        .filter(|e| endpoint_matches(&r.when, inv, e))
                    {
                        let vars = endpoint_vars(inv, e);
                        threats.push(instantiate(r, ThreatTarget::Endpoint(e.id.clone()), &vars));
                    }
                }
            }
        }
        threats.sort_by(|a, b| a.id.cmp(&b.id));
        // Ids join rule and target ids with `-`, which ids contain too, so two (rule, target)
        // pairs can derive one id (rule "r" on link "tablet-pump", rule "r-tablet" on endpoint
        // "pump"). The first, in rule then inventory order, keeps it; the others get a suffix
        // from their own rule and target instead of being dropped (found by the `risk_rules`
        // fuzz target).
        let mut taken = BTreeSet::new();
        for t in &mut threats {
            if !taken.insert(t.id.clone()) {
                t.id = clash_free_id(t);
                taken.insert(t.id.clone());
            }
        }
        threats.sort_by(|a, b| a.id.cmp(&b.id));
        ThreatModel { threats }
    }
}

/// `T-<rule>-<target>-<16 hex digits of SHA-256 of (rule, target)>`, for a threat whose plain
/// id another (rule, target) pair already derived.
fn clash_free_id(t: &Threat) -> ThreatId {
    use sha2::Digest;
    let rule = match &t.origin {
        ThreatOrigin::Rule(r) => r.as_str(),
        _ => "",
    };
    let key = format!("{rule}\0{:?}", t.target);
    let h = hex::encode(sha2::Sha256::digest(key.as_bytes()));
    ThreatId::derived(&["T", rule, t.target.id_str(), &h[..16]])
}

fn any_in<T: PartialEq>(want: &Option<Vec<T>>, have: &T) -> bool {
    want.as_ref().is_none_or(|w| w.contains(have))
}

fn link_matches(m: &Match, inv: &Inventory, l: &Link) -> bool {
    let kind_of = |e| inv.endpoint(e).map(|x| x.kind);
    any_in(&m.auth, &l.auth)
        && any_in(&m.encryption, &l.encryption)
        && m.data
            .as_ref()
            .is_none_or(|d| d.iter().any(|c| l.carries(*c)))
        && m.mutual.is_none_or(|want| l.is_mutual() == want)
        && m.crosses_boundary
            .is_none_or(|want| l.crosses_boundary() == want)
        && m.protocol
            .as_ref()
            .is_none_or(|p| p.iter().any(|x| x.eq_ignore_ascii_case(&l.protocol)))
        && m.endpoint_kind.as_ref().is_none_or(|k| {
            [kind_of(&l.from), kind_of(&l.to)]
                .into_iter()
                .flatten()
                .any(|x| k.contains(&x))
        })
}

fn endpoint_matches(m: &Match, inv: &Inventory, e: &Endpoint) -> bool {
    // Link conditions on an endpoint rule mean "some link of this endpoint satisfies them".
    let link_conds = Match {
        endpoint_kind: None,
        ..m.clone()
    };
    let needs_link = link_conds != Match::default();
    any_in(&m.endpoint_kind, &e.kind)
        && (!needs_link
            || inv
                .links_of(&e.id)
                .any(|l| link_matches(&link_conds, inv, l)))
}

fn link_vars(inv: &Inventory, l: &Link) -> Vec<(&'static str, String)> {
    let data: Vec<&str> = l.data.iter().map(|d| data_class_str(*d)).collect();
    vec![
        ("link", l.id.to_string()),
        ("from", l.from.to_string()),
        ("to", l.to.to_string()),
        ("endpoint", l.to.to_string()),
        ("protocol", l.protocol.clone()),
        (
            "boundary",
            l.boundary
                .clone()
                .unwrap_or_else(|| "no boundary".to_owned()),
        ),
        ("auth", auth_str(l.auth).to_owned()),
        ("encryption", enc_str(l.encryption).to_owned()),
        (
            "data",
            if data.is_empty() {
                "unclassified data".to_owned()
            } else {
                data.join(", ")
            },
        ),
        ("model", inv.model.to_string()),
    ]
}

fn endpoint_vars(inv: &Inventory, e: &Endpoint) -> Vec<(&'static str, String)> {
    vec![
        ("endpoint", e.id.to_string()),
        ("name", e.name.clone()),
        ("model", inv.model.to_string()),
    ]
}

fn fill(template: &str, vars: &[(&'static str, String)]) -> String {
    let mut s = template.to_owned();
    for (k, v) in vars {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

fn instantiate(r: &Rule, target: ThreatTarget, vars: &[(&'static str, String)]) -> Threat {
    // Deterministic, so statuses recorded against the id survive regeneration.
    let id = ThreatId::derived(&["T", r.id.as_str(), target.id_str()]);
    Threat {
        id,
        target,
        category: r.threat.category,
        title: fill(&r.threat.title, vars),
        description: fill(&r.threat.description, vars),
        assumptions: r.threat.assumptions.iter().map(|a| fill(a, vars)).collect(),
        phase: r.threat.phase,
        status: ThreatStatus::Open,
        mitigation: None,
        origin: ThreatOrigin::Rule(r.id.clone()),
    }
}
