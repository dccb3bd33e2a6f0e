//! The OpenAPI 3.1 description of the admin API, served at `/api/openapi.json`.

use serde_json::{Value, json};

/// An API operation: a Bearer API token whose role is `role` or higher (`x-medsec-access`
/// says so for machines, the description for people).
fn op(summary: &str, role: &str, body: Option<&str>, ok: &str) -> Value {
    let mut o = json!({
        "summary": summary,
        "description": format!("Requires role `{role}` or higher."),
        "x-medsec-access": format!("role:{role}"),
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

/// `op` taking a JSON object its summary describes.
fn op_json(summary: &str, role: &str, ok: &str) -> Value {
    let mut o = op(summary, role, None, ok);
    o["requestBody"] =
        json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
    o
}

/// `op` with query parameters of its own.
fn op_q(summary: &str, role: &str, params: Value, ok: &str) -> Value {
    let mut o = op(summary, role, None, ok);
    o["parameters"] = params;
    o
}

fn param(name: &str, place: &str, ty: &str) -> Value {
    json!({"name": name, "in": place, "required": place == "path", "schema": {"type": ty}})
}

/// An operation outside the token-authenticated API: `access` is `public` (no credential),
/// `device` (the device certificate in the TLS handshake, nothing else) or `enrollment` (an
/// EST bootstrap credential: a one-time enrollment token or a manufacturer IDevID).
fn other_op(summary: &str, access: &str, ok: &str, content: Option<&str>) -> Value {
    let how = match access {
        "public" => "Public: no credential.",
        "device" => {
            "Requires the device's certificate in the TLS handshake; the identity is the certificate's, never anything in the request. API tokens are no credential here."
        }
        "enrollment" => {
            "Requires an EST bootstrap credential: a one-time enrollment token as the HTTP Basic password (or Bearer), or a manufacturer IDevID certificate in the TLS handshake. API tokens and device certificates are no credential here."
        }
        _ => "",
    };
    let mut o = json!({
        "summary": summary,
        "description": how,
        "x-medsec-access": access,
        "security": [],
        "responses": {
            ok: {"description": "success"},
            "400": {"$ref": "#/components/responses/Problem"},
            "401": {"$ref": "#/components/responses/Problem"},
            "404": {"$ref": "#/components/responses/Problem"}
        }
    });
    if let Some(ct) = content {
        o["requestBody"] =
            json!({"required": true, "content": {ct: {"schema": {"type": "string"}}}});
    }
    o
}

pub fn document() -> Value {
    let mut d = json!({
        "openapi": "3.1.0",
        "info": {"title": "medsec admin API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Device PKI administration, vulnerability management, secure updates and risk management. Errors are RFC 9457 problem+json. Every operation states who may call it in `x-medsec-access`: `role:<auditor|operator|admin>` (a Bearer API token with that role or higher), `public` (no credential), `device` (the device certificate in the TLS handshake; a device certificate is never an API credential and an API token never a device credential) or `enrollment` (an EST bootstrap credential). Operations under `/device/v1/` are served on the device gateway listener (mutual TLS, `x-medsec-listener: device`), the others on the HTTPS listener."},
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
                "get": op_q("List certificates", "auditor", json!([param("device", "query", "string"), param("issuer", "query", "string"), param("revoked", "query", "boolean"), param("limit", "query", "integer")]), "200"),
                "post": op("Issue a certificate from a CSR", "operator", Some("IssueRequest"), "201")},
            "/api/v1/certificates/expiring": {"get": op_q("Unrevoked certificates expiring within N days", "auditor", json!([param("days", "query", "integer")]), "200")},
            "/api/v1/certificates/{serial}": {"parameters": [param("serial", "path", "string")], "get": op("Show a certificate (with PEM)", "auditor", None, "200")},
            "/api/v1/certificates/{serial}/revoke": {"parameters": [param("serial", "path", "string")], "post": op("Revoke a certificate", "operator", Some("RevokeRequest"), "200")},
            "/api/v1/enrollment-tokens": {"post": op("Create a one-time EST enrollment token for a device", "operator", Some("TokenRequest"), "201")}
        }
    });
    inventory(&mut d);
    updates(&mut d);
    risk(&mut d);
    postmarket(&mut d);
    outside_api(&mut d);
    d
}

/// What the HTTPS listener serves beside the token API (this document, probes, EST, CVD
/// intake, security.txt, the CSAF provider) and the device gateway's routes, so that the
/// document names who may call every route (the access-control matrix test is generated
/// from it).
fn outside_api(d: &mut Value) {
    let public = |summary: &str| other_op(summary, "public", "200", None);
    let label = || param("label", "path", "string");
    let device = |summary: &str, ok: &str, body: bool| {
        let mut o = other_op(summary, "device", ok, body.then_some("application/json"));
        o["x-medsec-listener"] = json!("device");
        o
    };
    let gateway = |item: Value| {
        let mut item = item;
        item["servers"] = json!([{"url": "https://{gateway}", "description": "the device gateway listener (mutual TLS with a device certificate; `server.device_addr`), not the HTTPS listener of the API",
            "variables": {"gateway": {"default": "localhost:8444"}}}]);
        item
    };
    let est_get = |what: &str| public(&format!("EST {what} (RFC 7030)"));
    let enroll = || {
        other_op(
            "EST first enrollment: base64 PKCS#10 in, PKCS#7 certificate out (RFC 7030 4.2.1)",
            "enrollment",
            "200",
            Some("application/pkcs10"),
        )
    };
    let reenroll = || {
        other_op(
            "EST re-enrollment with the current device certificate in the TLS handshake (RFC 7030 4.2.2)",
            "device",
            "200",
            Some("application/pkcs10"),
        )
    };
    let paths = json!({
        "/api/openapi.json": {"get": public("This document")},
        "/healthz": {"get": public("Liveness (also on the plain HTTP listener)")},
        "/readyz": {"get": public("Readiness: the store answers and an issuing CA key is unlocked (also on the plain HTTP listener)")},
        "/.well-known/est/cacerts": {"get": est_get("CA certificates of the default profile")},
        "/.well-known/est/csrattrs": {"get": est_get("CSR attributes of the default profile")},
        "/.well-known/est/simpleenroll": {"post": enroll()},
        "/.well-known/est/simplereenroll": {"post": reenroll()},
        "/.well-known/est/{label}/cacerts": {"parameters": [label()], "get": est_get("CA certificates of the profile named by the label")},
        "/.well-known/est/{label}/csrattrs": {"parameters": [label()], "get": est_get("CSR attributes of the profile named by the label")},
        "/.well-known/est/{label}/simpleenroll": {"parameters": [label()], "post": enroll()},
        "/.well-known/est/{label}/simplereenroll": {"parameters": [label()], "post": reenroll()},
        "/cvd/reports": {"post": other_op("Submit a vulnerability report (researchers; rate-limited per address; answers only a tracking id)", "public", "201", Some("application/json"))},
        "/.well-known/security.txt": {"get": public("RFC 9116 security contact")},
        "/.well-known/csaf/provider-metadata.json": {"get": public("CSAF 2.0 provider metadata")},
        "/.well-known/csaf/white/{path}": {"parameters": [param("path", "path", "string")], "get": public("Published TLP:WHITE CSAF files, index.txt and changes.csv (by exact name)")},
        "/device/v1/whoami": gateway(json!({"get": device("The identity the gateway authenticated", "200", false)})),
        "/device/v1/firmware": gateway(json!({"put": device("Report the firmware version the device runs ({\"version\": ...}); only its own record changes", "200", true)})),
        "/device/v1/update": gateway(json!({"get": device("The director's signed update instruction for this device, or 204", "200", false)})),
        "/device/v1/update-status": gateway(json!({"post": device("Report progress of a rollout the device is in ({\"rollout\", \"status\", \"target\", \"detail\"})", "200", true)})),
        "/device/v1/events": gateway(json!({"post": device("A batch of security events (JSON array, at most 1,000 events / 512 KiB); attributed to the certificate's device", "200", true)}))
    });
    extend(d, json!({}), paths);
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
        "/api/v1/events/purge": {"post": op_json("Delete events older than retention_days ({\"retention_days\": N})", "admin", "200")},
        "/api/v1/detection-rules": {
            "get": op("The detection rules in force (JSON; ETag is the version)", "auditor", None, "200"),
            "put": op_json("Replace the detection rules (If-Match: version)", "admin", "200")},
        "/api/v1/incidents": {"parameters": [param("open", "query", "boolean"), param("limit", "query", "integer"), param("offset", "query", "integer")],
            "get": op("Incidents, newest first, with their regulatory clocks", "auditor", None, "200"),
            "post": op("Open an incident by hand", "operator", Some("IncidentOpen"), "201")},
        "/api/v1/incidents/{id}": {"parameters": [id()], "get": op("One incident with timeline and clocks", "auditor", None, "200")},
        "/api/v1/incidents/{id}/status": {"parameters": [id()], "post": op("Move along new, triage, contained, eradicated, recovered, closed", "operator", Some("Status"), "200")},
        "/api/v1/incidents/{id}/owner": {"parameters": [id()], "post": op_json("Set the owner ({\"owner\": actor})", "operator", "200")},
        "/api/v1/incidents/{id}/actions": {"parameters": [id()], "post": op("Record a response action", "operator", Some("Note"), "200")},
        "/api/v1/incidents/{id}/links": {"parameters": [id()], "post": op_json("Link vulnerabilities, risks and models", "operator", "200")},
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
        "/api/v1/cvd/reports/{id}/links": {"parameters": [id()], "post": op_json("Link findings and incidents", "operator", "200")},
        "/api/v1/cvd/reports/{id}/disclosure": {"parameters": [id()], "post": op_json("Agree a disclosure date ({\"disclose_by\": RFC 3339})", "operator", "200")},
        "/api/v1/advisories": {
            "get": op("CSAF security advisories (newest revision of each)", "auditor", None, "200"),
            "post": op("Author a CSAF advisory from findings and releases", "operator", Some("AdvisoryRequest"), "201")},
        "/api/v1/advisories/{id}": {"parameters": [id()], "get": op("The CSAF document of an advisory", "auditor", None, "200")},
        "/api/v1/models/{model}/firmware/{version}/docs": {"parameters": [param("model", "path", "string"), param("version", "path", "string"), param("format", "query", "string")],
            "get": op("Build the documentation set and list its files", "auditor", None, "200")},
        "/api/v1/models/{model}/firmware/{version}/docs/{file}": {"parameters": [param("model", "path", "string"), param("version", "path", "string"), param("file", "path", "string")],
            "get": op("Download one documentation file (premarket-cybersecurity.pdf, labelling-cybersecurity.html, mds2.xlsx, gaps.json, *.svg)", "auditor", None, "200")},
        "/api/v1/advisories/{id}/revise": {"parameters": [id()], "post": op_json("Add a revision (summary, status, tlp, refresh)", "operator", "200")}
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
            "post": op_json("Sign off a register entry ({\"risk\": \"R-001\"}); invalidated when its inputs or the policy change", "admin", "201")},
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
        "/api/v1/findings": {"get": op_q("Findings with triage state and exploitability x severity rating", "auditor",
            json!([param("model", "query", "string"), param("version", "query", "string"), param("all", "query", "boolean")]), "200")},
        "/api/v1/findings/triage": {"post": op("Record a VEX triage decision", "operator", Some("TriageRequest"), "201")},
        "/api/v1/vulnerabilities/{id}/affected-devices": {"parameters": [param("id", "path", "string")],
            "get": op("Devices in the field whose firmware carries the vulnerability, not closed by triage", "auditor", None, "200")},
        "/api/v1/devices/{urn}/findings": {"parameters": [param("urn", "path", "string")], "get": op("A device's firmware and open findings", "auditor", None, "200")},
        "/api/v1/devices/{urn}/firmware": {"parameters": [param("urn", "path", "string")], "put": op("Set the firmware a device runs", "operator", Some("DeviceFirmware"), "200")},
        "/api/v1/vex": {"get": op_q("VEX document: openvex (default), cyclonedx or csaf", "auditor",
            json!([param("format", "query", "string"), param("model", "query", "string"), param("version", "query", "string")]), "200")}
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

    /// Every route the HTTPS and device routers register (bar the dashboard under `/ui/`)
    /// appears in the document, so clients (and the access-control matrix test generated from
    /// it) see the whole surface.
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
            include_str!("gateway.rs"),
            include_str!("est.rs"),
            include_str!("health.rs"),
        ];
        let served = [
            "/api/",
            "/device/",
            "/.well-known/",
            "/cvd/",
            "/healthz",
            "/readyz",
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
                if !served.iter().any(|p| path.starts_with(p)) {
                    continue;
                }
                // EST's `{op}` is documented per operation; a catch-all as a plain parameter.
                let path = path.replace("{*", "{");
                let expanded: Vec<String> = if path.contains("{op}") {
                    ["cacerts", "csrattrs", "simpleenroll", "simplereenroll"]
                        .iter()
                        .map(|op| path.replace("{op}", op))
                        .collect()
                } else {
                    vec![path]
                };
                missing.extend(expanded.into_iter().filter(|p| !paths.contains_key(p)));
            }
        }
        assert!(missing.is_empty(), "undocumented routes: {missing:?}");
    }

    /// Every operation declares who may call it, machine-readably; API operations say the
    /// same in words.
    #[test]
    fn every_operation_declares_its_access() {
        let d = super::document();
        for (path, item) in d["paths"].as_object().unwrap() {
            for (method, o) in item.as_object().unwrap() {
                if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                    continue;
                }
                let access = o["x-medsec-access"].as_str().unwrap_or("");
                match access.strip_prefix("role:") {
                    Some(role) => {
                        assert!(["auditor", "operator", "admin"].contains(&role), "{path}");
                        assert_eq!(
                            o["description"],
                            format!("Requires role `{role}` or higher."),
                            "{method} {path}"
                        );
                        assert!(path.starts_with("/api/v1/"), "{path}");
                    }
                    None => assert!(
                        ["public", "device", "enrollment"].contains(&access),
                        "{method} {path}: x-medsec-access {access:?}"
                    ),
                }
                assert_eq!(
                    path.starts_with("/device/"),
                    o["x-medsec-listener"] == "device",
                    "{path}"
                );
            }
        }
    }
}
