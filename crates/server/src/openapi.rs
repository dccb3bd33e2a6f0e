//! The OpenAPI 3.1 description of the admin API, served at `/api/openapi.json`.

use serde_json::{Value, json};

fn op(summary: &str, role: &str, body: Option<&str>, ok: &str) -> Value {
    let mut o = json!({
        "summary": summary,
        "description": format!("Requires role `{role}` or higher."),
        "security": [{"bearer": []}],
        "responses": {
            ok: {"description": "success", "content": {"application/json": {}}},
            "400": {"$ref": "#/components/responses/Problem"},
            "401": {"$ref": "#/components/responses/Problem"},
            "403": {"$ref": "#/components/responses/Problem"},
            "404": {"$ref": "#/components/responses/Problem"}
        }
    });
    if let Some(schema) = body {
        o["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    }
    o
}

fn param(name: &str, place: &str, ty: &str) -> Value {
    json!({"name": name, "in": place, "required": place == "path", "schema": {"type": ty}})
}

pub fn document() -> Value {
    let mut d = json!({
        "openapi": "3.1.0",
        "info": {"title": "medsec admin API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Device PKI administration, vulnerability management, secure updates and risk management. Errors are RFC 9457 problem+json."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "API token `mst_<id>_<secret>` created with `medsec apitoken create`"}},
            "responses": {"Problem": {"description": "error", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}},
            "schemas": {
                "Problem": {"type": "object", "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "detail": {"type": "string"}}},
                "Profile": {"type": "object", "required": ["name", "model", "issuer", "key_types", "validity_days", "organization"],
                    "properties": {"name": {"type": "string"}, "model": {"type": "string"}, "issuer": {"type": "string"},
                        "key_types": {"type": "array", "items": {"enum": ["ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-2048", "rsa-3072", "rsa-4096"]}},
                        "validity_days": {"type": "integer", "minimum": 1, "maximum": 3650}, "server_auth": {"type": "boolean"},
                        "organization": {"type": "string"}, "cn_template": {"type": "string"}, "requires_bootstrap": {"type": "boolean"},
                        "rekey_overlap_days": {"type": "integer", "minimum": 0, "maximum": 365}}},
                "IssueRequest": {"type": "object", "required": ["profile", "device_serial", "csr_pem"],
                    "properties": {"profile": {"type": "string"}, "device_serial": {"type": "string"}, "csr_pem": {"type": "string"}}},
                "RevokeRequest": {"type": "object", "properties": {"reason": {"type": "string", "examples": ["keyCompromise"]}, "invalidity_date": {"type": "string", "format": "date-time"}}},
                "TokenRequest": {"type": "object", "required": ["profile", "device_serial"],
                    "properties": {"profile": {"type": "string"}, "device_serial": {"type": "string"}, "ttl_hours": {"type": "integer", "minimum": 1, "maximum": 720}}}
            }
        },
        "paths": {
            "/api/v1/profiles": {"get": op("List certificate profiles", "auditor", None, "200")},
            "/api/v1/profiles/{name}": {
                "parameters": [param("name", "path", "string")],
                "get": op("Show a profile", "auditor", None, "200"),
                "put": op("Create or replace a profile", "admin", Some("Profile"), "200")},
            "/api/v1/devices": {"get": op("List devices", "auditor", None, "200")},
            "/api/v1/devices/{urn}": {"parameters": [param("urn", "path", "string")], "get": op("Show a device and its certificates", "auditor", None, "200")},
            "/api/v1/devices/{urn}/retire": {"parameters": [param("urn", "path", "string")], "post": op("Retire a device (revokes all its certificates)", "operator", None, "200")},
            "/api/v1/certificates": {
                "get": {"parameters": [param("device", "query", "string"), param("issuer", "query", "string"), param("revoked", "query", "boolean"), param("limit", "query", "integer")],
                        "summary": "List certificates", "description": "Requires role `auditor` or higher.", "security": [{"bearer": []}],
                        "responses": {"200": {"description": "success"}, "401": {"$ref": "#/components/responses/Problem"}}},
                "post": op("Issue a certificate from a CSR", "operator", Some("IssueRequest"), "201")},
            "/api/v1/certificates/expiring": {"get": {"parameters": [param("days", "query", "integer")], "summary": "Unrevoked certificates expiring within N days",
                "security": [{"bearer": []}], "responses": {"200": {"description": "success"}, "401": {"$ref": "#/components/responses/Problem"}}}},
            "/api/v1/certificates/{serial}": {"parameters": [param("serial", "path", "string")], "get": op("Show a certificate (with PEM)", "auditor", None, "200")},
            "/api/v1/certificates/{serial}/revoke": {"parameters": [param("serial", "path", "string")], "post": op("Revoke a certificate", "operator", Some("RevokeRequest"), "200")},
            "/api/v1/enrollment-tokens": {"post": op("Create a one-time EST enrollment token for a device", "operator", Some("TokenRequest"), "201")}
        }
    });
    inventory(&mut d);
    updates(&mut d);
    risk(&mut d);
    postmarket(&mut d);
    d
}

/// Post-market surveillance: events, detection rules, incidents and clocks, CVD, advisories.
fn postmarket(d: &mut Value) {
    let schemas = json!({
        "Reportability": {"type": "object", "required": ["reportable", "rationale", "aware_at"], "properties": {
            "reportable": {"type": "boolean"},
            "obligations": {"type": "array", "items": {"enum": ["mdr-death-or-serious-deterioration", "mdr-could-lead-if-recurred", "foreign-risk-notice", "fda-customer-notification", "fda-fix-validated"]}},
            "rationale": {"type": "string"}, "aware_at": {"type": "string", "format": "date-time"}}},
        "IncidentOpen": {"type": "object", "required": ["title", "model"], "properties": {"title": {"type": "string"}, "model": {"type": "string"}}},
        "Note": {"type": "object", "required": ["note"], "properties": {"note": {"type": "string"}}},
        "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}, "note": {"type": "string"}}},
        "AdvisoryRequest": {"type": "object", "required": ["id", "title", "model", "vulnerabilities"], "properties": {
            "id": {"type": "string"}, "title": {"type": "string"}, "model": {"type": "string"},
            "vulnerabilities": {"type": "array", "items": {"type": "string"}}, "fixed_in": {"type": "array", "items": {"type": "string"}},
            "summary": {"type": "string"}, "tlp": {"enum": ["white", "green", "amber", "red"]}, "status": {"enum": ["draft", "interim", "final"]}}}
    });
    let id = || param("id", "path", "string");
    let paths = json!({
        "/api/v1/events": {"parameters": [param("device", "query", "string"), param("after", "query", "integer"), param("limit", "query", "integer"), param("order", "query", "string")],
            "get": op("Device security events (newest first by default)", "auditor", None, "200")},
        "/api/v1/events/purge": {"post": op("Delete events older than retention_days ({\"retention_days\": N})", "admin", None, "200")},
        "/api/v1/detection-rules": {
            "get": op("The detection rules in force (JSON; ETag is the version)", "auditor", None, "200"),
            "put": op("Replace the detection rules (If-Match: version)", "admin", None, "200")},
        "/api/v1/incidents": {"parameters": [param("open", "query", "boolean"), param("limit", "query", "integer"), param("offset", "query", "integer")],
            "get": op("Incidents, newest first, with their regulatory clocks", "auditor", None, "200"),
            "post": op("Open an incident by hand", "operator", Some("IncidentOpen"), "201")},
        "/api/v1/incidents/{id}": {"parameters": [id()], "get": op("One incident with timeline and clocks", "auditor", None, "200")},
        "/api/v1/incidents/{id}/status": {"parameters": [id()], "post": op("Move along new, triage, contained, eradicated, recovered, closed", "operator", Some("Status"), "200")},
        "/api/v1/incidents/{id}/owner": {"parameters": [id()], "post": op("Set the owner ({\"owner\": actor})", "operator", None, "200")},
        "/api/v1/incidents/{id}/actions": {"parameters": [id()], "post": op("Record a response action", "operator", Some("Note"), "200")},
        "/api/v1/incidents/{id}/links": {"parameters": [id()], "post": op("Link vulnerabilities, risks and models", "operator", None, "200")},
        "/api/v1/incidents/{id}/reportability": {"parameters": [id()], "post": op("Record the reportability decision; starts the clocks", "operator", Some("Reportability"), "200")},
        "/api/v1/incidents/{id}/obligations/{obligation}/met": {"parameters": [id(), param("obligation", "path", "string")],
            "post": op("Record that a reporting obligation was met", "operator", Some("Note"), "200")},
        "/api/v1/incidents/{id}/report": {"parameters": [id(), param("kind", "query", "string")],
            "get": op("Drafted preliminary or final mandatory problem report (Markdown)", "auditor", None, "200")},
        "/api/v1/clocks": {"parameters": [param("due_within_days", "query", "integer")],
            "get": op("Regulatory clocks: overdue, due soon, running, met", "auditor", None, "200")},
        "/api/v1/cvd/reports": {"parameters": [param("limit", "query", "integer"), param("offset", "query", "integer")],
            "get": op("Researcher reports, newest first", "auditor", None, "200")},
        "/api/v1/cvd/reports/{id}": {"parameters": [id()], "get": op("One researcher report", "auditor", None, "200")},
        "/api/v1/cvd/reports/{id}/status": {"parameters": [id()], "post": op("received, acknowledged, triaged, remediated, disclosed or rejected", "operator", Some("Status"), "200")},
        "/api/v1/cvd/reports/{id}/links": {"parameters": [id()], "post": op("Link findings and incidents", "operator", None, "200")},
        "/api/v1/cvd/reports/{id}/disclosure": {"parameters": [id()], "post": op("Agree a disclosure date ({\"disclose_by\": RFC 3339})", "operator", None, "200")},
        "/api/v1/advisories": {
            "get": op("CSAF security advisories (newest revision of each)", "auditor", None, "200"),
            "post": op("Author a CSAF advisory from findings and releases", "operator", Some("AdvisoryRequest"), "201")},
        "/api/v1/advisories/{id}": {"parameters": [id()], "get": op("The CSAF document of an advisory", "auditor", None, "200")},
        "/api/v1/models/{model}/firmware/{version}/docs": {"parameters": [param("model", "path", "string"), param("version", "path", "string"), param("format", "query", "string")],
            "get": op("Build the documentation set and list its files", "auditor", None, "200")},
        "/api/v1/models/{model}/firmware/{version}/docs/{file}": {"parameters": [param("model", "path", "string"), param("version", "path", "string"), param("file", "path", "string")],
            "get": op("Download one documentation file (premarket-cybersecurity.pdf, labelling-cybersecurity.html, mds2.xlsx, gaps.json, *.svg)", "auditor", None, "200")},
        "/api/v1/advisories/{id}/revise": {"parameters": [id()], "post": op("Add a revision (summary, status, tlp, refresh)", "operator", None, "200")}
    });
    extend(d, schemas, paths);
}

/// Risk management: documents per model and global, computed views, sign-off, report.
fn risk(d: &mut Value) {
    let toml_put = |summary: &str, role: &str| {
        let mut o = op(summary, role, None, "200");
        o["requestBody"] = json!({"required": true, "content": {"application/toml": {"schema": {"type": "string"}}}});
        o
    };
    let paths = json!({
        "/api/v1/models/{model}/risk/{doc}": {"parameters": [param("model", "path", "string"), param("doc", "path", "string"), param("expiry_days", "query", "integer")],
            "get": op("inventory or register (TOML as stored); findings, threats, assessment or trace (JSON, computed)", "auditor", None, "200"),
            "put": toml_put("Store the model's inventory or register (TOML; a file with errors stores nothing and the error names line and field)", "operator")},
        "/api/v1/models/{model}/risk/signoff": {"parameters": [param("model", "path", "string")],
            "post": op("Sign off a register entry ({\"risk\": \"R-001\"}); invalidated when its inputs or the policy change", "admin", None, "201")},
        "/api/v1/models/{model}/risk/report": {"parameters": [param("model", "path", "string"), param("format", "query", "string")],
            "get": op("Risk management report: html (default), markdown or json", "auditor", None, "200")},
        "/api/v1/risk/{doc}": {"parameters": [param("doc", "path", "string")],
            "get": op("The acceptability policy or the threat rule set (TOML)", "auditor", None, "200"),
            "put": toml_put("Replace the policy or the rules (registers are re-rated)", "admin")}
    });
    extend(d, json!({}), paths);
}

/// Secure updates: releases, rollouts, device tags, the director's key.
fn updates(d: &mut Value) {
    let schemas = json!({
        "RolloutRequest": {"type": "object", "required": ["model", "version", "cohort"], "properties": {
            "model": {"type": "string"}, "version": {"type": "string"},
            "cohort": {"oneOf": [
                {"type": "object", "properties": {"kind": {"const": "percent"}, "value": {"type": "integer", "minimum": 1, "maximum": 100}}},
                {"type": "object", "properties": {"kind": {"const": "tag"}, "value": {"type": "string"}}},
                {"type": "object", "properties": {"kind": {"const": "devices"}, "value": {"type": "array", "items": {"type": "string"}}}}]},
            "stages": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 100}, "description": "increasing, ending at 100"},
            "promote_success_rate": {"type": "number"}, "halt_failure_rate": {"type": "number"}, "min_reports": {"type": "integer"}}},
        "DeviceTags": {"type": "object", "required": ["tags"], "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}
    });
    let paths = json!({
        "/api/v1/releases": {"get": op("Releases published in the TUF repository (query: model)", "auditor", None, "200")},
        "/api/v1/rollouts": {
            "get": op("Rollouts (query: model)", "auditor", None, "200"),
            "post": op("Start a staged rollout of a release to a cohort", "operator", Some("RolloutRequest"), "201")},
        "/api/v1/rollouts/{id}": {"parameters": [param("id", "path", "string")],
            "get": op("A rollout with per-stage counts and time to 50/90/100 % updated", "auditor", None, "200")},
        "/api/v1/rollouts/{id}/{action}": {"parameters": [param("id", "path", "string"), param("action", "path", "string")],
            "post": op("pause, resume or abort a rollout (at once)", "operator", None, "200")},
        "/api/v1/devices/{urn}/tags": {"parameters": [param("urn", "path", "string")],
            "put": op("Set a device's tags (rollout cohorts)", "operator", Some("DeviceTags"), "200")},
        "/api/v1/director/key": {"get": op("The director's public key devices are provisioned with", "auditor", None, "200")}
    });
    extend(d, schemas, paths);
}

/// Adds schemas and paths to the document.
fn extend(d: &mut Value, schemas: Value, paths: Value) {
    for (at, add) in [
        (&["components", "schemas"][..], schemas),
        (&["paths"][..], paths),
    ] {
        let mut node = &mut *d;
        for k in at {
            node = &mut node[*k];
        }
        if let (Some(o), Value::Object(add)) = (node.as_object_mut(), add) {
            o.extend(add);
        }
    }
}

/// The vulnerability-management part: firmware, SBOMs, advisories, findings, triage, VEX.
fn inventory(d: &mut Value) {
    let schemas = json!({
        "FirmwareRequest": {"type": "object", "properties": {
            "released_on": {"type": "string", "format": "date"},
            "support_level": {"enum": ["supported", "security-only", "unsupported"]},
            "end_of_support": {"type": "string", "format": "date"}}},
        "MatchRequest": {"type": "object", "properties": {"model": {"type": "string"}, "version": {"type": "string"},
            "cpe": {"type": "boolean", "description": "also match components without purl by CPE (low confidence)"}}},
        "TriageRequest": {"type": "object", "required": ["model", "version", "vulnerability", "state", "detail"],
            "properties": {"model": {"type": "string"}, "version": {"type": "string"},
                "vulnerability": {"type": "string", "description": "CVE, GHSA or any advisory id or alias"},
                "component": {"type": "string", "description": "purl or name@version; default every component"},
                "state": {"enum": ["in_triage", "affected", "not_affected", "fixed", "false_positive"]},
                "justification": {"enum": ["component_not_present", "vulnerable_code_not_present", "vulnerable_code_not_in_execute_path",
                    "vulnerable_code_cannot_be_controlled_by_adversary", "inline_mitigations_already_exist"]},
                "detail": {"type": "string"}, "action": {"type": "string"}}},
        "DeviceFirmware": {"type": "object", "required": ["version"], "properties": {"version": {"type": "string"}}}
    });
    let raw = |summary: &str, role: &str, ct: &str| {
        let mut o = op(summary, role, None, "200");
        o["requestBody"] = json!({"required": true, "content": {ct: {"schema": {"type": "string", "format": "binary"}}}});
        o
    };
    let mv = [
        param("model", "path", "string"),
        param("version", "path", "string"),
    ];
    let paths = json!({
        "/api/v1/firmware": {"get": op("List firmware versions (query: model)", "auditor", None, "200")},
        "/api/v1/firmware/{model}/{version}": {"parameters": mv,
            "put": op("Register a firmware version or update its support commitment", "operator", Some("FirmwareRequest"), "200")},
        "/api/v1/firmware/{model}/{version}/sbom": {"parameters": [param("model", "path", "string"), param("version", "path", "string"), param("replace", "query", "boolean")],
            "put": raw("Store the firmware's SBOM (CycloneDX 1.4-1.6 JSON/XML, SPDX 2.3 JSON/tag-value)", "operator", "application/octet-stream"),
            "get": op("The stored SBOM as CycloneDX 1.5 JSON", "auditor", None, "200")},
        "/api/v1/firmware/{model}/diff/{old}/{new}": {"parameters": [param("model", "path", "string"), param("old", "path", "string"), param("new", "path", "string")],
            "get": op("Components added, removed and changed between two firmware versions", "auditor", None, "200")},
        "/api/v1/advisories/osv": {"post": raw("Import OSV advisories: one JSON record or an OSV zip dump (incremental by `modified`)", "operator", "application/octet-stream")},
        "/api/v1/advisories/kev": {"post": raw("Import the CISA KEV catalog JSON", "operator", "application/json")},
        "/api/v1/match": {"post": op("Match stored SBOMs against stored advisories", "operator", Some("MatchRequest"), "200")},
        "/api/v1/findings": {"get": {"parameters": [param("model", "query", "string"), param("version", "query", "string"), param("all", "query", "boolean")],
            "summary": "Findings with triage state and exploitability x severity rating", "description": "Requires role `auditor` or higher.",
            "security": [{"bearer": []}], "responses": {"200": {"description": "success"}, "401": {"$ref": "#/components/responses/Problem"}}}},
        "/api/v1/findings/triage": {"post": op("Record a VEX triage decision", "operator", Some("TriageRequest"), "201")},
        "/api/v1/vulnerabilities/{id}/affected-devices": {"parameters": [param("id", "path", "string")],
            "get": op("Devices in the field whose firmware carries the vulnerability, not closed by triage", "auditor", None, "200")},
        "/api/v1/devices/{urn}/findings": {"parameters": [param("urn", "path", "string")], "get": op("A device's firmware and open findings", "auditor", None, "200")},
        "/api/v1/devices/{urn}/firmware": {"parameters": [param("urn", "path", "string")], "put": op("Set the firmware a device runs", "operator", Some("DeviceFirmware"), "200")},
        "/api/v1/vex": {"get": {"parameters": [param("format", "query", "string"), param("model", "query", "string"), param("version", "query", "string")],
            "summary": "VEX document: openvex (default), cyclonedx or csaf", "description": "Requires role `auditor` or higher.",
            "security": [{"bearer": []}], "responses": {"200": {"description": "success"}, "400": {"$ref": "#/components/responses/Problem"}}}}
    });
    extend(d, schemas, paths);
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented() {
        let d = super::document();
        let paths = d["paths"].as_object().unwrap();
        for p in [
            "/api/v1/profiles/{name}",
            "/api/v1/certificates/{serial}/revoke",
            "/api/v1/enrollment-tokens",
            "/api/v1/devices/{urn}/retire",
            "/api/v1/firmware/{model}/{version}/sbom",
            "/api/v1/findings/triage",
            "/api/v1/vulnerabilities/{id}/affected-devices",
            "/api/v1/vex",
            "/api/v1/rollouts/{id}/{action}",
            "/api/v1/director/key",
            "/api/v1/models/{model}/risk/signoff",
            "/api/v1/risk/{doc}",
            "/api/v1/incidents/{id}/reportability",
            "/api/v1/clocks",
            "/api/v1/cvd/reports/{id}/links",
            "/api/v1/advisories/{id}/revise",
            "/api/v1/detection-rules",
        ] {
            assert!(paths.contains_key(p), "{p}");
        }
        assert_eq!(d["openapi"], "3.1.0");
    }

    /// Every `/api/v1` route the routers register appears in the document, so clients (and
    /// the access-control tests generated from it) see the whole API.
    #[test]
    fn the_routers_routes_are_all_documented() {
        let d = super::document();
        let paths = d["paths"].as_object().unwrap();
        let sources = [
            include_str!("api.rs"),
            include_str!("inventory_api.rs"),
            include_str!("updates_api.rs"),
            include_str!("risk_api.rs"),
            include_str!("postmarket_api.rs"),
            include_str!("advisory_api.rs"),
            include_str!("docs_api.rs"),
        ];
        let mut missing = Vec::new();
        for src in sources {
            for (i, _) in src.match_indices(".route(") {
                let rest = &src[i..];
                let Some(start) = rest.find('"') else {
                    continue;
                };
                let path: String = rest[start + 1..]
                    .chars()
                    .take_while(|&c| c != '"')
                    .collect();
                if path.starts_with("/api/v1/") && !paths.contains_key(&path) {
                    missing.push(path);
                }
            }
        }
        assert!(missing.is_empty(), "undocumented routes: {missing:?}");
    }
}
