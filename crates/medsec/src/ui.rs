//! Dashboard wiring: the audit log adapted to the server's `AuditView`, and `medsec user`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use medsec_auth::users::{self, UserStore, Username};
use medsec_server::{AuditRow, AuditView};
use medsec_store::{Backend, verify_audit};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::UserCmd;
use crate::{App, out};

/// The store's audit log as the dashboard reads it.
pub struct StoreAudit(pub Arc<dyn Backend>);

#[async_trait::async_trait]
impl AuditView for StoreAudit {
    async fn verify(&self) -> Result<u64, String> {
        match verify_audit(&*self.0).await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(b)) => Err(b.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn page(&self, after: i64, limit: u32) -> Result<Vec<AuditRow>, String> {
        let entries = self
            .0
            .audit_page(after, limit)
            .await
            .map_err(|e| e.to_string())?;
        Ok(entries
            .into_iter()
            .map(|e| AuditRow {
                seq: e.seq,
                time: OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.at_micros) * 1000)
                    .ok()
                    .and_then(|t| t.format(&Rfc3339).ok())
                    .unwrap_or_default(),
                actor: e.actor,
                action: e.action,
                subject: e.subject,
            })
            .collect())
    }
}

fn password() -> Result<String> {
    if let Ok(p) = std::env::var("MEDSEC_USER_PASSWORD") {
        return Ok(p);
    }
    let mut s = String::new();
    std::io::stdin()
        .read_line(&mut s)
        .context("reading the password from stdin")?;
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

pub async fn user_cmd(app: &App, c: UserCmd) -> Result<ExitCode> {
    let store: &dyn UserStore = &*app.store;
    match c {
        UserCmd::Create { name, role } => {
            let role: medsec_auth::Role = role.parse()?;
            let u = users::create_user(
                store,
                &name,
                &password()?,
                role,
                &app.actor,
                OffsetDateTime::now_utc(),
            )
            .await?;
            out(app, json!({"user": u.username, "role": u.role}), || {
                format!("created dashboard user {} ({})", u.username, u.role)
            });
        }
        UserCmd::List => {
            let list = store.list_users().await?;
            out(
                app,
                json!(list.iter().map(|u| json!({"user": u.username, "role": u.role, "locked_until": u.locked_until.map(|t| t.unix_timestamp()), "disabled": u.disabled})).collect::<Vec<_>>()),
                || {
                    list.iter()
                        .map(|u| format!("{:<24} {:<9}{}", u.username.as_str(), u.role.as_str(), if u.disabled { " disabled" } else { "" }))
                        .collect::<Vec<_>>()
                        .join("\n")
                },
            );
        }
        UserCmd::Unlock { name } => {
            let n = Username::parse(&name)?;
            users::unlock(store, &n, &app.actor).await?;
            out(app, json!({"unlocked": name}), || {
                format!("unlocked {name}")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
