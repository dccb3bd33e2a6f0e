//! Risk-management targets: the trust-relationship inventory, the risk register, the
//! acceptability policy and the STRIDE rule set (TOML, as uploaded through the API or read by
//! the CLI), and OWASP Threat Dragon models (JSON).
//!
//! Accepted documents round-trip through their own writer (`from_toml(to_toml(x)) == x`, which
//! the crate documents for the inventory) and feed the computations that consume them:
//! findings, generated threats, assessments against the policy, ratings.

use std::collections::BTreeMap;

use medsec_core::DeviceModel;
use medsec_risk::{
    EndpointId, FindingInputs, Inventory, LinkId, Policy, Register, Rule, RuleId, RuleSet,
    ThreatTarget, compute_findings,
};

/// The shipped example inventory, for targets that need one to run against.
const EXAMPLE_INVENTORY: &str = include_str!("../../../examples/infusion-pump/inventory.toml");

fn example_inventory() -> Inventory {
    Inventory::from_toml(EXAMPLE_INVENTORY).expect("the shipped example inventory")
}

fn check_inventory(inv: &Inventory) {
    inv.validate().expect("an accepted inventory validates");
    let text = inv.to_toml().expect("an accepted inventory serializes");
    let back = Inventory::from_toml(&text).unwrap_or_else(|e| panic!("own TOML refused: {e}"));
    assert_eq!(&back, inv, "from_toml(to_toml(x)) != x");
    for e in &inv.endpoints {
        // `via` chains are acyclic once accepted, so each walk ends within the endpoints.
        assert!(inv.via_chain(&e.id).len() <= inv.endpoints.len());
        assert!(inv.endpoint(&e.id).is_some());
        for l in inv.links_of(&e.id) {
            assert!(l.other_end(&e.id).is_some());
        }
    }
    let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let findings = compute_findings(inv, &FindingInputs::at(now));
    let ids: std::collections::BTreeSet<_> = findings.iter().map(|f| &f.id).collect();
    assert_eq!(ids.len(), findings.len(), "two findings share an id");
    let rules = RuleSet::default_rules().expect("default rules");
    let model = rules.generate(inv);
    check_threat_targets(inv, model.threats.iter().map(|t| &t.target));
    // One threat per (rule, matching target) whatever the ids are called: the same inventory
    // with short ids yields as many threats.
    assert_eq!(
        model.threats.len(),
        rules.generate(&short_ids(inv)).threats.len(),
        "threats lost to their ids (derived threat ids collide)"
    );
}

/// `inv` with every endpoint and link renamed `E<n>` / `L<n>`, references following.
fn short_ids(inv: &Inventory) -> Inventory {
    let ep: BTreeMap<EndpointId, EndpointId> = inv
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (
                e.id.clone(),
                EndpointId::parse(&format!("E{i}")).expect("id"),
            )
        })
        .collect();
    let rename = |id: &EndpointId| ep.get(id).cloned().unwrap_or_else(|| id.clone());
    let mut out = inv.clone();
    for e in &mut out.endpoints {
        e.id = rename(&e.id);
        e.via = e.via.as_ref().map(rename);
    }
    for (i, l) in out.links.iter_mut().enumerate() {
        l.id = LinkId::parse(&format!("L{i}")).expect("id");
        l.from = rename(&l.from);
        l.to = rename(&l.to);
    }
    out
}

fn check_threat_targets<'a>(inv: &Inventory, targets: impl Iterator<Item = &'a ThreatTarget>) {
    for t in targets {
        let known = match t {
            ThreatTarget::Link(l) => inv.link(l).is_some(),
            ThreatTarget::Endpoint(e) => inv.endpoint(e).is_some(),
        };
        assert!(known, "threat on unknown {}", t.id_str());
    }
}

/// A trust-relationship inventory (`inventory.toml`).
pub fn risk_inventory(data: &[u8]) {
    if let Ok(inv) = Inventory::from_toml(&crate::as_text(data)) {
        check_inventory(&inv);
    }
}

/// A risk register (`register.toml`), assessed against the default policy.
pub fn risk_register(data: &[u8]) {
    let Ok(reg) = Register::from_toml(&crate::as_text(data)) else {
        return;
    };
    let text = reg.to_toml().expect("an accepted register serializes");
    let back = Register::from_toml(&text).unwrap_or_else(|e| panic!("own TOML refused: {e}"));
    assert_eq!(back, reg, "register round trip");
    let policy = Policy::default_policy().expect("default policy");
    if let Ok(all) = reg.assess(&policy) {
        assert_eq!(all.len(), reg.risks.len());
    }
    for r in &reg.risks {
        let _ = reg.inputs_digest(r, &policy);
        let _ = reg.sign_off_state(r, &policy);
    }
}

/// An acceptability policy (`PUT /api/v1/risk/policy`): every cell rates.
pub fn risk_policy(data: &[u8]) {
    let Ok(p) = Policy::from_toml(&crate::as_text(data)) else {
        return;
    };
    let text = p.to_toml().expect("an accepted policy serializes");
    assert_eq!(
        Policy::from_toml(&text).ok().as_ref(),
        Some(&p),
        "policy round trip"
    );
    for e in &p.exploitability {
        for s in &p.severity {
            let r = p
                .rate(e, s)
                .unwrap_or_else(|err| panic!("no rating for ({e}, {s}): {err}"));
            assert!(p.levels.iter().any(|l| l.name == r.level), "unknown level");
        }
    }
    for rank in 0..=5 {
        if let Some(l) = p.exploitability_for_rank(rank) {
            assert!(p.exploitability.contains(l));
        }
    }
}

/// A STRIDE rule set (`PUT /api/v1/risk/rules`), generating threats for the example inventory.
pub fn risk_rules(data: &[u8]) {
    let Ok(rules) = RuleSet::from_toml(&crate::as_text(data)) else {
        return;
    };
    let text = rules.to_toml().expect("an accepted rule set serializes");
    assert_eq!(
        RuleSet::from_toml(&text).ok().as_ref(),
        Some(&rules),
        "rule set round trip"
    );
    let inv = example_inventory();
    let model = rules.generate(&inv);
    check_threat_targets(&inv, model.threats.iter().map(|t| &t.target));
    // One threat per (rule, matching target): a rule yields as many threats under a short id,
    // and no rule's threats hide another's.
    let short = RuleId::parse("R").expect("id");
    let mut total = 0;
    for r in &rules.rules {
        let alone = RuleSet {
            rules: vec![r.clone()],
        }
        .generate(&inv)
        .threats
        .len();
        let renamed = RuleSet {
            rules: vec![Rule {
                id: short.clone(),
                ..r.clone()
            }],
        }
        .generate(&inv)
        .threats
        .len();
        assert_eq!(alone, renamed, "rule {} loses threats to its id", r.id);
        total += alone;
    }
    assert_eq!(
        model.threats.len(),
        total,
        "threats of different rules share ids"
    );
}

/// An OWASP Threat Dragon v2 model, imported for a fixed device model: the inventory it yields
/// is valid and round-trips, and its threats name its endpoints and links.
pub fn threat_dragon(data: &[u8]) {
    let model = DeviceModel::parse("fuzz-pump").expect("model");
    let Ok(imp) = medsec_risk::threat_dragon::import(&crate::as_text(data), model) else {
        return;
    };
    check_inventory(&imp.inventory);
    check_threat_targets(&imp.inventory, imp.threats.iter().map(|t| &t.target));
}
