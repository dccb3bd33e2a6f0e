//! `InventoryStore` for PostgreSQL: firmware versions, SBOMs, advisories, findings, decisions and
//! device firmware (migration 0004), safe with several replicas writing at once.
//!
//! One firmware version's SBOM and findings are only ever written under a lock on its
//! `firmware_versions` row (`FOR NO KEY UPDATE`, which still lets rows referencing it be
//! inserted), so two imports or re-matches of one version run one after the other instead of
//! interleaving their deletes and inserts. SBOM reads run in one REPEATABLE READ snapshot, so a
//! reader never sees the header of one SBOM with the components of its replacement.

use std::collections::HashMap;

use async_trait::async_trait;
use medsec_core::{Actor, AuditRecord, DeviceId, DeviceModel, DeviceSerial, FirmwareVersion, Purl};
use medsec_inventory::{
    AdvisoryRow, Decision, FindingRecord, FirmwareRecord, InventoryStore, SbomRecord, SupportLevel,
};
use medsec_sbom::{Component, Format, Hash, Sbom};
use medsec_vuln::{Justification, VexStatus};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use time::{Date, OffsetDateTime};

use crate::StoreError;
use crate::pg::{PgStore, be, commit_audited};
use crate::sqlite::{corrupt, from_ts, ts};

const DATE: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// Advisory `modified` times keep their fractions: OSV writes milliseconds, and truncating them
/// would make every re-import look newer than what is stored.
fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

fn from_micros(v: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1000)
        .map_err(|e| corrupt("timestamp", e))
}

fn date_to(d: Option<Date>) -> Option<String> {
    d.and_then(|d| d.format(DATE).ok())
}

fn date_from(s: Option<String>) -> Result<Option<Date>, StoreError> {
    s.map(|s| Date::parse(&s, DATE).map_err(|e| corrupt("date", e)))
        .transpose()
}

fn parsed<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| corrupt(what, e))
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::CycloneDxJson => "cyclonedx-json",
        Format::CycloneDxXml => "cyclonedx-xml",
        Format::SpdxJson => "spdx-json",
        Format::SpdxTagValue => "spdx-tag-value",
    }
}

fn format_from(s: &str) -> Result<Format, StoreError> {
    Ok(match s {
        "cyclonedx-json" => Format::CycloneDxJson,
        "cyclonedx-xml" => Format::CycloneDxXml,
        "spdx-json" => Format::SpdxJson,
        "spdx-tag-value" => Format::SpdxTagValue,
        _ => return Err(corrupt("SBOM format", s)),
    })
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn list_from(what: &str, s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

fn firmware_from(r: &PgRow) -> Result<FirmwareRecord, StoreError> {
    Ok(FirmwareRecord {
        model: parsed("model", &r.try_get::<String, _>("model").map_err(be)?)?,
        version: parsed(
            "firmware version",
            &r.try_get::<String, _>("version").map_err(be)?,
        )?,
        released_on: date_from(r.try_get("released_on").map_err(be)?)?,
        support_level: r
            .try_get::<String, _>("support_level")
            .map_err(be)?
            .parse::<SupportLevel>()
            .map_err(|e| corrupt("support level", e))?,
        end_of_support: date_from(r.try_get("end_of_support").map_err(be)?)?,
        created_at: from_ts(r.try_get("created_at").map_err(be)?)?,
    })
}

fn finding_from(r: &PgRow) -> Result<FindingRecord, StoreError> {
    Ok(FindingRecord {
        model: parsed("model", &r.try_get::<String, _>("model").map_err(be)?)?,
        version: parsed(
            "firmware version",
            &r.try_get::<String, _>("version").map_err(be)?,
        )?,
        vuln_id: r.try_get("vuln_id").map_err(be)?,
        identifiers: list_from(
            "identifiers",
            &r.try_get::<String, _>("identifiers").map_err(be)?,
        )?,
        advisories: list_from(
            "advisories",
            &r.try_get::<String, _>("advisories").map_err(be)?,
        )?,
        component: r.try_get("component").map_err(be)?,
        matched_by: r
            .try_get::<String, _>("matched_by")
            .map_err(be)?
            .parse()
            .map_err(|e| corrupt("matched_by", e))?,
        summary: r.try_get("summary").map_err(be)?,
        cvss_score: r.try_get("cvss_score").map_err(be)?,
        cvss_vector: r.try_get("cvss_vector").map_err(be)?,
        kev: r.try_get::<i64, _>("kev").map_err(be)? != 0,
        first_seen: from_ts(r.try_get("first_seen").map_err(be)?)?,
        last_seen: from_ts(r.try_get("last_seen").map_err(be)?)?,
    })
}

fn status_parts(s: &VexStatus) -> (&'static str, Option<&'static str>) {
    match s {
        VexStatus::InTriage => ("in_triage", None),
        VexStatus::Affected => ("affected", None),
        VexStatus::NotAffected { justification } => ("not_affected", Some(justification.as_str())),
        VexStatus::Fixed => ("fixed", None),
        VexStatus::FalsePositive => ("false_positive", None),
    }
}

fn status_from(state: &str, justification: Option<&str>) -> Result<VexStatus, StoreError> {
    Ok(match state {
        "in_triage" => VexStatus::InTriage,
        "affected" => VexStatus::Affected,
        "not_affected" => VexStatus::NotAffected {
            justification: justification
                .ok_or_else(|| corrupt("decision", "not_affected without justification"))?
                .parse::<Justification>()
                .map_err(|e| corrupt("justification", e))?,
        },
        "fixed" => VexStatus::Fixed,
        "false_positive" => VexStatus::FalsePositive,
        _ => return Err(corrupt("decision state", state)),
    })
}

fn decision_from(r: &PgRow) -> Result<Decision, StoreError> {
    let state: String = r.try_get("state").map_err(be)?;
    let just: Option<String> = r.try_get("justification").map_err(be)?;
    Ok(Decision {
        model: parsed("model", &r.try_get::<String, _>("model").map_err(be)?)?,
        version: parsed(
            "firmware version",
            &r.try_get::<String, _>("version").map_err(be)?,
        )?,
        vuln_id: r.try_get("vuln_id").map_err(be)?,
        component: r.try_get("component").map_err(be)?,
        status: status_from(&state, just.as_deref())?,
        detail: r.try_get("detail").map_err(be)?,
        action: r.try_get("action").map_err(be)?,
        author: Actor::parse(&r.try_get::<String, _>("author").map_err(be)?)
            .map_err(|e| corrupt("author", e))?,
        at: from_ts(r.try_get("at").map_err(be)?)?,
    })
}

// Text is ordered bytewise (`COLLATE "C"`) as SQLite does, whatever the database's locale.

/// Appends `WHERE model = $n [AND version = $m]` for optional filters.
fn scope(
    q: &mut QueryBuilder<Postgres>,
    model: Option<&DeviceModel>,
    version: Option<&FirmwareVersion>,
) {
    q.push(" WHERE 1 = 1");
    if let Some(m) = model {
        q.push(" AND model = ").push_bind(m.as_str().to_owned());
    }
    if let Some(v) = version {
        q.push(" AND version = ").push_bind(v.as_str().to_owned());
    }
}

/// `SELECT *` from one of this file's tables, optionally for one model (and version), in `order`.
async fn select_scoped<T>(
    store: &PgStore,
    table: &'static str,
    model: Option<&DeviceModel>,
    version: Option<&FirmwareVersion>,
    order: &'static str,
    from_row: fn(&PgRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut q = QueryBuilder::new(format!("SELECT * FROM {table}"));
    scope(&mut q, model, version);
    q.push(format!(" ORDER BY {order}"));
    q.build()
        .fetch_all(store.pool())
        .await
        .map_err(be)?
        .iter()
        .map(from_row)
        .collect()
}

/// Locks one firmware version against other writers of its SBOM and findings until the
/// caller's transaction ends. `NotFound` when the version does not exist (SQLite reports the
/// same through the foreign key).
async fn lock_firmware(conn: &mut PgConnection, m: &str, v: &str) -> Result<(), StoreError> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM firmware_versions WHERE model = $1 AND version = $2 FOR NO KEY UPDATE",
    )
    .bind(m)
    .bind(v)
    .fetch_optional(&mut *conn)
    .await
    .map_err(be)?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound(format!("firmware version {m}@{v}"))),
    }
}

/// Rows per multi-row INSERT: PostgreSQL allows 65535 bound parameters per statement.
const ROWS_PER_INSERT: usize = 500;

#[async_trait]
impl InventoryStore for PgStore {
    async fn put_firmware(
        &self,
        fw: &FirmwareRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO firmware_versions (model, version, released_on, support_level, end_of_support, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (model, version) DO UPDATE SET released_on = excluded.released_on,
                support_level = excluded.support_level, end_of_support = excluded.end_of_support",
        )
        .bind(fw.model.as_str())
        .bind(fw.version.as_str())
        .bind(date_to(fw.released_on))
        .bind(fw.support_level.as_str())
        .bind(date_to(fw.end_of_support))
        .bind(ts(fw.created_at))
        .execute(&mut *tx)
        .await
        .map_err(be)?;
        commit_audited(tx, audit).await
    }

    async fn get_firmware(
        &self,
        model: &DeviceModel,
        version: &FirmwareVersion,
    ) -> Result<Option<FirmwareRecord>, StoreError> {
        sqlx::query("SELECT * FROM firmware_versions WHERE model = $1 AND version = $2")
            .bind(model.as_str())
            .bind(version.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(be)?
            .map(|r| firmware_from(&r))
            .transpose()
    }

    async fn list_firmware(
        &self,
        model: Option<&DeviceModel>,
    ) -> Result<Vec<FirmwareRecord>, StoreError> {
        select_scoped(
            self,
            "firmware_versions",
            model,
            None,
            "model COLLATE \"C\", created_at, version COLLATE \"C\"",
            firmware_from,
        )
        .await
    }

    async fn put_sbom(
        &self,
        rec: &SbomRecord,
        replace: bool,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let (m, v) = (rec.model.as_str(), rec.version.as_str());
        let mut tx = self.begin().await?;
        // Under the lock, "already has an SBOM" is decided against every replica's commits.
        lock_firmware(&mut tx, m, v).await?;
        let existing: Option<String> =
            sqlx::query_scalar("SELECT sha256 FROM sboms WHERE model = $1 AND version = $2")
                .bind(m)
                .bind(v)
                .fetch_optional(&mut *tx)
                .await
                .map_err(be)?;
        if let Some(old) = existing {
            if !replace {
                return Err(StoreError::Conflict(format!(
                    "firmware {m}@{v} already has an SBOM (sha256 {old}); replace it explicitly"
                )));
            }
            for t in ["sbom_components", "sbom_dependencies", "findings", "sboms"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {t} WHERE model = $1 AND version = $2"
                )))
                .bind(m)
                .bind(v)
                .execute(&mut *tx)
                .await
                .map_err(be)?;
            }
        }
        sqlx::query(
            "INSERT INTO sboms (model, version, format, spec_version, sha256, imported_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(m)
        .bind(v)
        .bind(format_name(rec.sbom.format))
        .bind(&rec.sbom.spec_version)
        .bind(&rec.sha256)
        .bind(ts(rec.imported_at))
        .execute(&mut *tx)
        .await
        .map_err(be)?;
        let comps: Vec<(usize, &Component)> = rec.sbom.components.iter().enumerate().collect();
        for chunk in comps.chunks(ROWS_PER_INSERT) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO sbom_components (model, version, idx, ref_id, name, comp_version, supplier, purl, cpes, hashes, licenses, support_level, end_of_support) ",
            );
            q.push_values(chunk, |mut b, (i, c)| {
                let hashes: Vec<[&str; 2]> = c
                    .hashes
                    .iter()
                    .map(|h| [h.alg.as_str(), h.value.as_str()])
                    .collect();
                b.push_bind(m)
                    .push_bind(v)
                    .push_bind(*i as i64)
                    .push_bind(c.id.clone())
                    .push_bind(c.name.clone())
                    .push_bind(c.version.clone())
                    .push_bind(c.supplier.clone())
                    .push_bind(c.purl.as_ref().map(|p| p.to_string()))
                    .push_bind(json_list(&c.cpes))
                    .push_bind(serde_json::to_string(&hashes).unwrap_or_else(|_| "[]".into()))
                    .push_bind(json_list(&c.licenses))
                    .push_bind(c.support_level.clone())
                    .push_bind(c.end_of_support.clone());
            });
            q.build().execute(&mut *tx).await.map_err(be)?;
        }
        let deps: Vec<(usize, &(String, String))> =
            rec.sbom.dependencies.iter().enumerate().collect();
        for chunk in deps.chunks(ROWS_PER_INSERT) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO sbom_dependencies (model, version, idx, from_ref, to_ref) ",
            );
            q.push_values(chunk, |mut b, (i, (from, to))| {
                b.push_bind(m)
                    .push_bind(v)
                    .push_bind(*i as i64)
                    .push_bind(from.clone())
                    .push_bind(to.clone());
            });
            q.build().execute(&mut *tx).await.map_err(be)?;
        }
        commit_audited(tx, audit).await
    }

    async fn get_sbom(
        &self,
        model: &DeviceModel,
        version: &FirmwareVersion,
    ) -> Result<Option<SbomRecord>, StoreError> {
        let (m, v) = (model.as_str(), version.as_str());
        // Three reads, one snapshot: a replacement committing between them must not mix in.
        let mut tx = self.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        let Some(head) = sqlx::query("SELECT * FROM sboms WHERE model = $1 AND version = $2")
            .bind(m)
            .bind(v)
            .fetch_optional(&mut *tx)
            .await
            .map_err(be)?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT * FROM sbom_components WHERE model = $1 AND version = $2 ORDER BY idx",
        )
        .bind(m)
        .bind(v)
        .fetch_all(&mut *tx)
        .await
        .map_err(be)?;
        let dependencies: Vec<(String, String)> = sqlx::query_as(
            "SELECT from_ref, to_ref FROM sbom_dependencies WHERE model = $1 AND version = $2 ORDER BY idx",
        )
        .bind(m)
        .bind(v)
        .fetch_all(&mut *tx)
        .await
        .map_err(be)?;
        tx.commit().await.map_err(be)?;
        let mut components = Vec::with_capacity(rows.len());
        for r in &rows {
            let hashes: Vec<[String; 2]> =
                serde_json::from_str(&r.try_get::<String, _>("hashes").map_err(be)?)
                    .map_err(|e| corrupt("hashes", e))?;
            components.push(Component {
                id: r.try_get("ref_id").map_err(be)?,
                name: r.try_get("name").map_err(be)?,
                version: r.try_get("comp_version").map_err(be)?,
                supplier: r.try_get("supplier").map_err(be)?,
                purl: r
                    .try_get::<Option<String>, _>("purl")
                    .map_err(be)?
                    .map(|p| Purl::parse(&p).map_err(|e| corrupt("purl", e)))
                    .transpose()?,
                cpes: list_from("cpes", &r.try_get::<String, _>("cpes").map_err(be)?)?,
                hashes: hashes
                    .into_iter()
                    .map(|[alg, value]| Hash { alg, value })
                    .collect(),
                licenses: list_from("licenses", &r.try_get::<String, _>("licenses").map_err(be)?)?,
                support_level: r.try_get("support_level").map_err(be)?,
                end_of_support: r.try_get("end_of_support").map_err(be)?,
            });
        }
        Ok(Some(SbomRecord {
            model: model.clone(),
            version: version.clone(),
            sha256: head.try_get("sha256").map_err(be)?,
            sbom: Sbom {
                format: format_from(&head.try_get::<String, _>("format").map_err(be)?)?,
                spec_version: head.try_get("spec_version").map_err(be)?,
                components,
                dependencies,
            },
            imported_at: from_ts(head.try_get("imported_at").map_err(be)?)?,
        }))
    }

    async fn advisory_versions(&self) -> Result<HashMap<String, OffsetDateTime>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT id, modified FROM advisories")
            .fetch_all(self.pool())
            .await
            .map_err(be)?;
        rows.into_iter()
            .map(|(id, m)| Ok((id, from_micros(m)?)))
            .collect()
    }

    async fn upsert_advisories(
        &self,
        rows: &[AdvisoryRow],
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        // PostgreSQL refuses to upsert one key twice in a statement (SQLite keeps the last), and
        // replicas importing overlapping feeds must lock rows in one order or deadlock: so one
        // row per id, the last given, sorted by id.
        let mut last: HashMap<&str, &AdvisoryRow> = HashMap::with_capacity(rows.len());
        for r in rows {
            last.insert(r.id.as_str(), r);
        }
        let mut rows: Vec<&AdvisoryRow> = last.into_values().collect();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        let mut tx = self.begin().await?;
        let at = ts(OffsetDateTime::now_utc());
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO advisories (id, modified, withdrawn, raw, imported_at) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.id.clone())
                    .push_bind(micros(r.modified))
                    .push_bind(i64::from(r.withdrawn))
                    .push_bind(r.raw.clone())
                    .push_bind(at);
            });
            // The service writes only records newer than those it read; a replica that read
            // before another's newer import must not roll an advisory back.
            q.push(
                " ON CONFLICT (id) DO UPDATE SET modified = excluded.modified, withdrawn = excluded.withdrawn,
                  raw = excluded.raw, imported_at = excluded.imported_at
                  WHERE advisories.modified <= excluded.modified",
            );
            q.build().execute(&mut *tx).await.map_err(be)?;
        }
        commit_audited(tx, audit).await
    }

    async fn advisories_raw(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        sqlx::query_scalar("SELECT raw FROM advisories ORDER BY id COLLATE \"C\"")
            .fetch_all(self.pool())
            .await
            .map_err(be)
    }

    async fn get_advisory_raw(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        // Also found by alias: users name vulnerabilities by CVE, feeds file them by GHSA.
        if let Some(raw) = sqlx::query_scalar("SELECT raw FROM advisories WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(be)?
        {
            return Ok(Some(raw));
        }
        // `json`, not `jsonb`: it accepts every string JSON does (jsonb refuses \u0000).
        sqlx::query_scalar(
            "SELECT a.raw FROM advisories a
             CROSS JOIN LATERAL (SELECT convert_from(a.raw, 'UTF8')::json -> 'aliases' AS al) j
             WHERE EXISTS (
                 SELECT 1 FROM json_array_elements_text(
                     CASE WHEN json_typeof(j.al) = 'array' THEN j.al ELSE '[]'::json END) e
                 WHERE e = $1)
             ORDER BY a.id COLLATE \"C\" LIMIT 1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(be)
    }

    async fn put_kev(&self, raw: &[u8], audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO kev_catalog (id, raw, imported_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET raw = excluded.raw, imported_at = excluded.imported_at",
        )
        .bind(raw)
        .bind(ts(OffsetDateTime::now_utc()))
        .execute(&mut *tx)
        .await
        .map_err(be)?;
        commit_audited(tx, audit).await
    }

    async fn get_kev(&self) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar("SELECT raw FROM kev_catalog WHERE id = 1")
            .fetch_optional(self.pool())
            .await
            .map_err(be)
    }

    async fn replace_findings(
        &self,
        model: &DeviceModel,
        version: &FirmwareVersion,
        findings: &[FindingRecord],
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let (m, v) = (model.as_str(), version.as_str());
        let mut tx = self.begin().await?;
        // Two re-matches of one version would otherwise both delete the old rows and then
        // collide inserting the new ones; under the lock the second sees the first's result.
        lock_firmware(&mut tx, m, v).await?;
        let seen: HashMap<(String, String), i64> = sqlx::query_as::<_, (String, String, i64)>(
            "SELECT vuln_id, component, first_seen FROM findings WHERE model = $1 AND version = $2",
        )
        .bind(m)
        .bind(v)
        .fetch_all(&mut *tx)
        .await
        .map_err(be)?
        .into_iter()
        .map(|(a, b, c)| ((a, b), c))
        .collect();
        sqlx::query("DELETE FROM findings WHERE model = $1 AND version = $2")
            .bind(m)
            .bind(v)
            .execute(&mut *tx)
            .await
            .map_err(be)?;
        for chunk in findings.chunks(ROWS_PER_INSERT) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO findings (model, version, vuln_id, component, identifiers, advisories, matched_by, summary, cvss_score, cvss_vector, kev, first_seen, last_seen) ",
            );
            q.push_values(chunk, |mut b, f| {
                let first = seen
                    .get(&(f.vuln_id.clone(), f.component.clone()))
                    .copied()
                    .unwrap_or(ts(f.first_seen));
                b.push_bind(m)
                    .push_bind(v)
                    .push_bind(f.vuln_id.clone())
                    .push_bind(f.component.clone())
                    .push_bind(json_list(&f.identifiers))
                    .push_bind(json_list(&f.advisories))
                    .push_bind(f.matched_by.as_str())
                    .push_bind(f.summary.clone())
                    .push_bind(f.cvss_score)
                    .push_bind(f.cvss_vector.clone())
                    .push_bind(i64::from(f.kev))
                    .push_bind(first)
                    .push_bind(ts(f.last_seen));
            });
            q.build().execute(&mut *tx).await.map_err(be)?;
        }
        commit_audited(tx, audit).await
    }

    async fn list_findings(
        &self,
        model: Option<&DeviceModel>,
        version: Option<&FirmwareVersion>,
    ) -> Result<Vec<FindingRecord>, StoreError> {
        select_scoped(
            self,
            "findings",
            model,
            version,
            "model COLLATE \"C\", version COLLATE \"C\", vuln_id COLLATE \"C\", component COLLATE \"C\"",
            finding_from,
        )
        .await
    }

    async fn add_decision(&self, d: &Decision, audit: &AuditRecord) -> Result<(), StoreError> {
        // History is append-only and nothing is read first, so there is no check to race: the
        // foreign key refuses an unknown firmware version on every replica alike.
        let (state, just) = status_parts(&d.status);
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO vex_decisions (model, version, vuln_id, component, state, justification, detail, action, author, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(d.model.as_str())
        .bind(d.version.as_str())
        .bind(&d.vuln_id)
        .bind(&d.component)
        .bind(state)
        .bind(just)
        .bind(&d.detail)
        .bind(&d.action)
        .bind(d.author.as_str())
        .bind(ts(d.at))
        .execute(&mut *tx)
        .await
        .map_err(be)?;
        commit_audited(tx, audit).await
    }

    async fn list_decisions(
        &self,
        model: Option<&DeviceModel>,
        version: Option<&FirmwareVersion>,
    ) -> Result<Vec<Decision>, StoreError> {
        select_scoped(self, "vex_decisions", model, version, "id", decision_from).await
    }

    async fn set_device_firmware(
        &self,
        device: &DeviceId,
        version: &FirmwareVersion,
        at: OffsetDateTime,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        // FOR SHARE holds off a concurrent retirement (an UPDATE of the row) until this
        // commits, so no replica records firmware for a device another has just retired.
        let status: Option<String> = sqlx::query_scalar(
            "SELECT status FROM devices WHERE model = $1 AND serial = $2 FOR SHARE",
        )
        .bind(device.model.as_str())
        .bind(device.serial.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(be)?;
        match status.as_deref() {
            None => return Err(StoreError::NotFound(format!("device {}", device.urn()))),
            Some("retired") => {
                return Err(StoreError::Refused(format!(
                    "device {} is retired",
                    device.urn()
                )));
            }
            Some(_) => {}
        }
        sqlx::query(
            "INSERT INTO device_firmware (model, serial, version, reported_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (model, serial) DO UPDATE SET version = excluded.version, reported_at = excluded.reported_at",
        )
        .bind(device.model.as_str())
        .bind(device.serial.as_str())
        .bind(version.as_str())
        .bind(ts(at))
        .execute(&mut *tx)
        .await
        .map_err(be)?;
        commit_audited(tx, audit).await
    }

    async fn device_firmware(
        &self,
        device: &DeviceId,
    ) -> Result<Option<(FirmwareVersion, OffsetDateTime)>, StoreError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT version, reported_at FROM device_firmware WHERE model = $1 AND serial = $2",
        )
        .bind(device.model.as_str())
        .bind(device.serial.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(be)?;
        row.map(|(v, at)| Ok((parsed("firmware version", &v)?, from_ts(at)?)))
            .transpose()
    }

    async fn devices_on_firmware(
        &self,
        model: &DeviceModel,
        versions: &[FirmwareVersion],
    ) -> Result<Vec<(DeviceId, FirmwareVersion)>, StoreError> {
        if versions.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = versions.iter().map(|v| v.as_str().to_owned()).collect();
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT f.serial, f.version FROM device_firmware f JOIN devices d ON d.model = f.model AND d.serial = f.serial
             WHERE d.status = 'active' AND f.model = $1 AND f.version = ANY($2) ORDER BY f.serial COLLATE \"C\"",
        )
        .bind(model.as_str())
        .bind(list)
        .fetch_all(self.pool())
        .await
        .map_err(be)?;
        rows.iter()
            .map(|(serial, v)| {
                Ok((
                    DeviceId::new(
                        model.clone(),
                        DeviceSerial::parse(serial).map_err(|e| corrupt("device serial", e))?,
                    ),
                    parsed("firmware version", v)?,
                ))
            })
            .collect()
    }
}
