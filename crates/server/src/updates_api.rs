//! Secure updates over HTTP: the TUF repository's files (static, plain HTTP: the metadata is
//! signed), the director's per-device instructions and status reports on the mTLS gateway, and
//! the rollout API for operators.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use medsec_auth::Role;
use medsec_ca::CaStore;
use medsec_core::{AuditAction, AuditRecord, DeviceId};
use medsec_updates::{Cohort, Director, RolloutPlan, RolloutState, UpdateStatus, UpdatesError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::accept::PeerCerts;
use crate::api::caller;
use crate::problem::Problem;
use crate::state::AppState;

impl From<UpdatesError> for Problem {
    fn from(e: UpdatesError) -> Self {
        use medsec_core::StoreError;
        match &e {
            UpdatesError::Invalid { .. } => Problem::bad_request(e.to_string()),
            UpdatesError::NotFound { .. } | UpdatesError::Store(StoreError::NotFound(_)) => {
                Problem::not_found(e.to_string())
            }
            UpdatesError::Refused(_) | UpdatesError::Store(StoreError::Refused(_)) => {
                Problem::conflict(e.to_string())
            }
            UpdatesError::Store(StoreError::Conflict(_)) => Problem::conflict(e.to_string()),
            _ => Problem::internal("updates", &e),
        }
    }
}

fn bad(e: impl std::fmt::Display) -> Problem {
    Problem::bad_request(e.to_string())
}

fn director<S>(st: &AppState<S>) -> Result<&Director, Problem> {
    st.director.as_deref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "about:blank",
            "secure updates are not configured on this server",
        )
    })
}

/// `/tuf/...` on the plain HTTP listener.
pub fn tuf_router<S: CaStore + 'static>() -> Router<Arc<AppState<S>>> {
    Router::new().route("/tuf/{*path}", get(tuf_file::<S>))
}

/// Device-gateway routes (mTLS).
pub fn device_router<S: CaStore + 'static>() -> Router<Arc<AppState<S>>> {
    Router::new()
        .route("/device/v1/update", get(device_update::<S>))
        .route("/device/v1/update-status", post(device_status::<S>))
}

/// Admin API routes.
pub fn api_router<S: CaStore + 'static>() -> Router<Arc<AppState<S>>> {
    Router::new()
        .route("/api/v1/releases", get(list_releases::<S>))
        .route(
            "/api/v1/rollouts",
            get(list_rollouts::<S>).post(create_rollout::<S>),
        )
        .route("/api/v1/rollouts/{id}", get(view_rollout::<S>))
        .route("/api/v1/rollouts/{id}/{action}", post(control::<S>))
        .route("/api/v1/devices/{urn}/tags", put(set_tags::<S>))
        .route("/api/v1/director/key", get(director_key::<S>))
}

async fn tuf_file<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    Path(rel): Path<String>,
) -> Result<Response, Problem> {
    let not_found = || Problem::new(StatusCode::NOT_FOUND, "about:blank", "no such file");
    let root = st.tuf_dir.as_deref().ok_or_else(not_found)?;
    // The repository decides what it serves: no traversal, no hidden files, not its key
    // catalogue.
    let path = medsec_updates::repo::resolve_served_file(root, &rel).ok_or_else(not_found)?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| not_found())?;
    let meta = file.metadata().await.map_err(|_| not_found())?;
    if !meta.is_file() {
        return Err(not_found());
    }
    let ct = if rel.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    };
    let mut r = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    // Timestamp and unversioned metadata change; clients must not cache them.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(r)
}

async fn device_update<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    Extension(peer): Extension<PeerCerts>,
) -> Result<Response, Problem> {
    let c = crate::gateway::device(&st, &peer).await?;
    match director(&st)?.instruction_for(&c.device).await? {
        Some(env) => Ok(Json(env).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    pub rollout: String,
    /// The target the device worked on; must be the rollout's.
    pub target: Option<String>,
    pub status: String,
    #[serde(default)]
    pub detail: String,
}

async fn device_status<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    Extension(peer): Extension<PeerCerts>,
    body: Result<Json<StatusBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, Problem> {
    // The identity is the certificate the device authenticated with (its TLS signature),
    // never anything in the body.
    let c = crate::gateway::device(&st, &peer).await?;
    let Json(b) = body.map_err(|e| bad(e.body_text()))?;
    let status: UpdateStatus = b.status.parse()?;
    let d = director(&st)?;
    if let Some(r) = d
        .store()
        .get_rollout(&b.rollout)
        .await
        .map_err(UpdatesError::from)?
    {
        // Only a device the rollout is for may report on it: another device's reports would
        // count in the stage's outcome (promote or halt someone else's rollout).
        let tags = d
            .store()
            .device_tags(&c.device)
            .await
            .map_err(UpdatesError::from)?;
        if !medsec_updates::in_cohort(&r.cohort, &r.id, &c.device.urn(), &tags) {
            return Err(Problem::forbidden(format!(
                "{} is not in the cohort of rollout {}",
                c.device.urn(),
                r.id
            )));
        }
        if let Some(t) = &b.target
            && &r.target != t
        {
            return Err(bad(format!(
                "rollout {} is for {}, not {t}",
                r.id, r.target
            )));
        }
    }
    let r = d.report(&c.device, &b.rollout, status, &b.detail).await?;
    Ok(Json(
        json!({"rollout": r.id, "state": r.state, "stage": r.current_stage}),
    ))
}

#[derive(Deserialize)]
struct ModelQuery {
    model: Option<String>,
}

async fn list_releases<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Query(q): Query<ModelQuery>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read releases").await?;
    let d = director(&st)?;
    Ok(Json(json!(
        d.store()
            .list_releases(q.model.as_deref())
            .await
            .map_err(UpdatesError::from)?
    )))
}

async fn list_rollouts<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Query(q): Query<ModelQuery>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read rollouts").await?;
    let d = director(&st)?;
    Ok(Json(json!(
        d.store()
            .list_rollouts(q.model.as_deref())
            .await
            .map_err(UpdatesError::from)?
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutBody {
    pub model: String,
    pub version: String,
    pub cohort: Cohort,
    pub stages: Option<Vec<u8>>,
    pub promote_success_rate: Option<f64>,
    pub halt_failure_rate: Option<f64>,
    pub min_reports: Option<u32>,
}

async fn create_rollout<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    body: Result<Json<RolloutBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let p = caller(&st, &h, Role::Operator, "start rollouts").await?;
    let Json(b) = body.map_err(|e| bad(e.body_text()))?;
    let def = RolloutPlan::default();
    let plan = RolloutPlan {
        cohort: b.cohort,
        stages: b.stages.unwrap_or(def.stages),
        promote_success_rate: b.promote_success_rate.unwrap_or(def.promote_success_rate),
        halt_failure_rate: b.halt_failure_rate.unwrap_or(def.halt_failure_rate),
        min_reports: b.min_reports.unwrap_or(def.min_reports),
    };
    let r = director(&st)?
        .create_rollout(&p.actor(), &b.model, &b.version, plan)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(r))))
}

async fn view_rollout<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read rollouts").await?;
    Ok(Json(json!(director(&st)?.view(&id).await?)))
}

async fn control<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "control rollouts").await?;
    let to = match action.as_str() {
        "pause" => RolloutState::Paused,
        "resume" => RolloutState::Active,
        "abort" => RolloutState::Aborted,
        other => {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "about:blank",
                format!("no rollout action {other:?}: pause, resume or abort"),
            ));
        }
    };
    let r = director(&st)?.control(&p.actor(), &id, to).await?;
    Ok(Json(json!(r)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsBody {
    pub tags: Vec<String>,
}

async fn set_tags<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Path(urn): Path<String>,
    body: Result<Json<TagsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, Problem> {
    let p = caller(&st, &h, Role::Operator, "tag devices").await?;
    let Json(b) = body.map_err(|e| bad(e.body_text()))?;
    let id = DeviceId::parse_urn(&urn).map_err(bad)?;
    let tags = check_tags(&b.tags).map_err(bad)?;
    let audit = AuditRecord::new(
        &p.actor(),
        AuditAction::DeviceTagged,
        id.urn(),
        json!({"tags": tags}),
    );
    director(&st)?
        .store()
        .set_device_tags(&id, &tags, &audit)
        .await
        .map_err(UpdatesError::from)?;
    Ok(Json(json!({"device": id.urn(), "tags": tags})))
}

/// Tags are short tokens, at most 32 per device.
pub fn check_tags(tags: &[String]) -> Result<Vec<String>, String> {
    if tags.len() > 32 {
        return Err("at most 32 tags per device".into());
    }
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        medsec_core::Name::parse(t).map_err(|e| format!("tag: {e}"))?;
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

async fn director_key<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
) -> Result<Json<Value>, Problem> {
    caller(&st, &h, Role::Auditor, "read the director key").await?;
    Ok(Json(json!(director(&st)?.public_key())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tuf_paths_cannot_escape() {
        let root = std::env::temp_dir().join(format!("medsec-tuf-serve-{}", std::process::id()));
        std::fs::create_dir_all(root.join("metadata")).unwrap();
        std::fs::write(root.join("metadata/1.root.json"), b"{}").unwrap();
        std::fs::write(root.join("repo.json"), b"{}").unwrap();
        assert!(medsec_updates::repo::resolve_served_file(&root, "metadata/1.root.json").is_some());
        for bad in [
            "../etc/passwd",
            "metadata/../../x",
            "/etc/passwd",
            "repo.json",
            ".lock",
            "metadata/../repo.json",
        ] {
            assert!(
                medsec_updates::repo::resolve_served_file(&root, bad).is_none(),
                "{bad}"
            );
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
