//! Moving a dataset between back ends: SQLite backups (`VACUUM INTO`), a read-only view of a
//! SQLite file (to verify a backup before it replaces anything), and the one-way copy of a
//! SQLite dataset into an empty PostgreSQL database (`medsec store migrate`).
//!
//! The copy is verbatim, row by row: audit entries keep their sequence numbers, times and
//! hashes (re-appending them would produce a different chain, and the chain is the evidence),
//! identifiers cited elsewhere (incident numbers, evidence ids, event sequence numbers) keep
//! their values, and the PostgreSQL sequences that hand out the next ones are moved past them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use medsec_core::AuditEntry;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row, SqliteConnection, SqlitePool};

use crate::sqlite::be;
use crate::{AuditLog, PgStore, StoreError};

/// Every table of the dataset, parents before children (foreign keys are checked per
/// statement on PostgreSQL, so this order is what lets the copy run without disabling them).
/// A table that exists on either side but is missing here stops the copy: a new migration
/// must say how its table moves.
pub const TABLES: &[&str] = &[
    "cas",
    "profiles",
    "devices",
    "certs",
    "crls",
    "audit_log",
    "audit_head",
    "enrollment_tokens",
    "api_tokens",
    "firmware_versions",
    "sboms",
    "sbom_components",
    "sbom_dependencies",
    "advisories",
    "kev_catalog",
    "findings",
    "vex_decisions",
    "device_firmware",
    "releases",
    "rollouts",
    "device_tags",
    "director_counters",
    "update_reports",
    "risk_documents",
    "pm_events",
    "pm_retention",
    "pm_rules",
    "pm_incidents",
    "pm_cvd_reports",
    "pm_advisories",
    "evidence",
    "evidence_files",
    "users",
    "user_sessions",
    "job_runs",
    "fleet_devices",
];

/// Derived from the base tables by PostgreSQL's own triggers when the copied rows commit, so
/// it is recomputed there rather than copied (and then compared by row count).
const DERIVED: &str = "fleet_devices";
/// One row created by the migration; the copy moves its horizon to the source's.
const RETENTION: &str = "pm_retention";
/// PostgreSQL only: the last incident number handed out (SQLite keeps it in sqlite_sequence).
const INCIDENT_COUNTER: &str = "pm_incident_ids";
/// Bookkeeping of each back end's own migrations: never copied.
const MIGRATIONS: &str = "schema_migrations";

/// How one table moved.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableCopy {
    pub table: String,
    /// Rows in the source (none for a table PostgreSQL alone has).
    pub source: Option<i64>,
    /// Rows in the target after the copy.
    pub target: i64,
    /// `copied`, `derived` (recomputed by the target's triggers) or `set` (a counter row).
    pub how: &'static str,
}

/// What `copy_sqlite_to_postgres` did, all verified before its transaction committed.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub tables: Vec<TableCopy>,
    /// The audit head (sequence, hash), the same on both sides.
    pub audit_head: Option<(i64, String)>,
    /// Sequences moved past the copied values: (sequence, value set).
    pub sequences: Vec<(String, i64)>,
}

fn q(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn pg(e: sqlx::Error) -> StoreError {
    crate::pg::be(e)
}

/// Tables of the target that already hold data (the migration's own seed rows excepted).
/// Empty means the database can receive a copy.
pub async fn nonempty_tables(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    let mut busy = Vec::new();
    for t in TABLES {
        let nonempty: bool = if *t == RETENTION {
            sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pm_retention WHERE horizon <> -9223372036854775808)",
            )
            .fetch_one(&mut *conn)
            .await
            .map_err(pg)?
        } else {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT EXISTS (SELECT 1 FROM {})",
                q(t)
            )))
            .fetch_one(&mut *conn)
            .await
            .map_err(pg)?
        };
        if nonempty {
            busy.push((*t).to_string());
        }
    }
    let counter: Option<i64> = sqlx::query_scalar("SELECT last FROM pm_incident_ids WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(pg)?;
    if counter.unwrap_or(0) != 0 {
        busy.push(INCIDENT_COUNTER.to_string());
    }
    Ok(busy)
}

async fn sqlite_tables(src: &mut SqliteConnection) -> Result<BTreeSet<String>, StoreError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(&mut *src)
    .await
    .map_err(be)?;
    Ok(names.into_iter().filter(|n| n != MIGRATIONS).collect())
}

async fn pg_tables(dst: &mut PgConnection) -> Result<BTreeSet<String>, StoreError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
    )
    .fetch_all(&mut *dst)
    .await
    .map_err(pg)?;
    Ok(names.into_iter().filter(|n| n != MIGRATIONS).collect())
}

/// The newest migration applied on each side: a copy between different schema versions could
/// put values where they do not belong, so both must be at the same one.
async fn schema_versions(
    src: &mut SqliteConnection,
    dst: &mut PgConnection,
) -> Result<(i64, i64), StoreError> {
    let s: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM schema_migrations")
        .fetch_one(&mut *src)
        .await
        .map_err(be)?;
    let d: Option<i64> = sqlx::query_scalar("SELECT max(version)::bigint FROM schema_migrations")
        .fetch_one(&mut *dst)
        .await
        .map_err(pg)?;
    Ok((s.unwrap_or(0), d.unwrap_or(0)))
}

/// A column's value in transit, typed by the target column.
enum Val {
    I(Option<i64>),
    F(Option<f64>),
    T(Option<String>),
    B(Option<Vec<u8>>),
    Bool(Option<bool>),
}

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Float,
    Text,
    Bytes,
    /// PostgreSQL BOOLEAN, SQLite 0/1 INTEGER.
    Bool,
}

struct Column {
    name: String,
    kind: Kind,
    /// What to select on the SQLite side.
    source: String,
    identity: bool,
}

async fn columns(
    table: &str,
    src: &mut SqliteConnection,
    dst: &mut PgConnection,
) -> Result<Vec<Column>, StoreError> {
    let src_cols: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
        .bind(table)
        .fetch_all(&mut *src)
        .await
        .map_err(be)?;
    let dst_cols: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text, is_identity::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *dst)
    .await
    .map_err(pg)?;
    let mut out = Vec::new();
    for (name, ty, identity) in &dst_cols {
        let kind = match ty.as_str() {
            "bigint" | "integer" | "smallint" => Kind::Int,
            "double precision" | "real" => Kind::Float,
            "text" | "character varying" => Kind::Text,
            "bytea" => Kind::Bytes,
            "boolean" => Kind::Bool,
            other => {
                return Err(StoreError::Refused(format!(
                    "{table}.{name}: PostgreSQL type {other} has no copy rule"
                )));
            }
        };
        let source = if src_cols.contains(name) {
            q(name)
        } else if table == "pm_cvd_reports" && name == "arrival" {
            // `arrival` stands in for SQLite's rowid (arrival order of same-second reports).
            "rowid".to_string()
        } else {
            return Err(StoreError::Refused(format!(
                "{table}.{name} exists in PostgreSQL but not in the SQLite database"
            )));
        };
        out.push(Column {
            name: name.clone(),
            kind,
            source,
            identity: identity == "YES",
        });
    }
    if let Some(lost) = src_cols
        .iter()
        .find(|c| !dst_cols.iter().any(|(n, _, _)| n == *c))
    {
        return Err(StoreError::Refused(format!(
            "{table}.{lost} exists in SQLite but not in PostgreSQL: its data would be lost"
        )));
    }
    Ok(out)
}

fn read_val(
    row: &sqlx::sqlite::SqliteRow,
    i: usize,
    c: &Column,
    table: &str,
) -> Result<Val, StoreError> {
    let bad = |e: sqlx::Error| StoreError::Corrupt(format!("{table}.{}: {e}", c.name));
    Ok(match c.kind {
        Kind::Int => Val::I(row.try_get(i).map_err(bad)?),
        // SQLite stores a REAL that happens to be whole as an INTEGER; both read as a double.
        Kind::Float => Val::F(row.try_get_unchecked(i).map_err(bad)?),
        Kind::Text => Val::T(row.try_get(i).map_err(bad)?),
        Kind::Bytes => Val::B(row.try_get(i).map_err(bad)?),
        Kind::Bool => {
            let v: Option<i64> = row.try_get(i).map_err(bad)?;
            Val::Bool(match v {
                None => None,
                Some(0) => Some(false),
                Some(1) => Some(true),
                Some(n) => {
                    return Err(StoreError::Corrupt(format!(
                        "{table}.{}: {n} is not a 0/1 boolean",
                        c.name
                    )));
                }
            })
        }
    })
}

/// Copies one table page by page in rowid order (insertion order, so a row that references
/// another row of its own table, such as a renewal's `replaces`, comes after it).
async fn copy_table(
    table: &str,
    cols: &[Column],
    src: &mut SqliteConnection,
    dst: &mut PgConnection,
) -> Result<(), StoreError> {
    if cols.is_empty() {
        return Ok(());
    }
    // PostgreSQL binds at most 65535 parameters per statement.
    let page = (60_000 / cols.len()).clamp(1, 500);
    let select = format!(
        "SELECT rowid, {} FROM {} WHERE rowid > ? ORDER BY rowid LIMIT ?",
        cols.iter()
            .map(|c| c.source.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        q(table)
    );
    let names = cols
        .iter()
        .map(|c| q(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let overriding = if cols.iter().any(|c| c.identity) {
        // Identity values are the ones cited elsewhere: they are kept, not drawn anew.
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    let mut after = i64::MIN;
    loop {
        let rows = sqlx::query(sqlx::AssertSqlSafe(select.as_str()))
            .bind(after)
            .bind(page as i64)
            .fetch_all(&mut *src)
            .await
            .map_err(be)?;
        let Some(last) = rows.last() else { break };
        after = last.try_get(0).map_err(be)?;
        let mut vals = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut v = Vec::with_capacity(cols.len());
            for (i, c) in cols.iter().enumerate() {
                v.push(read_val(r, i + 1, c, table)?);
            }
            vals.push(v);
        }
        let mut b: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("INSERT INTO {} ({names}){overriding} ", q(table)));
        b.push_values(vals, |mut b, row| {
            for v in row {
                match v {
                    Val::I(x) => b.push_bind(x),
                    Val::F(x) => b.push_bind(x),
                    Val::T(x) => b.push_bind(x),
                    Val::B(x) => b.push_bind(x),
                    Val::Bool(x) => b.push_bind(x),
                };
            }
        });
        b.build()
            .execute(&mut *dst)
            .await
            .map_err(|e| StoreError::Backend(format!("copying {table}: {e}")))?;
    }
    Ok(())
}

async fn count_sqlite(src: &mut SqliteConnection, table: &str) -> Result<i64, StoreError> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}",
        q(table)
    )))
    .fetch_one(&mut *src)
    .await
    .map_err(be)
}

async fn count_pg(dst: &mut PgConnection, table: &str) -> Result<i64, StoreError> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}",
        q(table)
    )))
    .fetch_one(&mut *dst)
    .await
    .map_err(pg)
}

/// The highest value SQLite's AUTOINCREMENT ever handed out for `table` (kept even after the
/// rows holding it were deleted, e.g. purged events), or 0.
async fn sqlite_sequence(src: &mut SqliteConnection, table: &str) -> Result<i64, StoreError> {
    let has: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence')",
    )
    .fetch_one(&mut *src)
    .await
    .map_err(be)?;
    if !has {
        return Ok(0);
    }
    let v: Option<i64> = sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = ?")
        .bind(table)
        .fetch_optional(&mut *src)
        .await
        .map_err(be)?;
    Ok(v.unwrap_or(0))
}

/// Copies the whole SQLite dataset into `dst`, which must hold no data yet, in one PostgreSQL
/// transaction, and checks before committing that every table has as many rows as its source
/// and that the audit head is the same. Reads happen in one SQLite read transaction, so the
/// copy is a consistent snapshot even while another process writes (its later writes are not
/// copied). Refuses (`Refused`) a target holding data, or schemas that differ.
pub async fn copy_sqlite_to_postgres(
    src_pool: &SqlitePool,
    dst: &PgStore,
) -> Result<CopyReport, StoreError> {
    let mut src = src_pool.begin().await.map_err(be)?;
    let mut tx = dst.begin().await?;
    // No audit append from a replica can slip in between the copied entries.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(crate::pg::AUDIT_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(pg)?;
    let busy = nonempty_tables(&mut tx).await?;
    if !busy.is_empty() {
        return Err(StoreError::Refused(format!(
            "the target database is not empty (data in: {}); migrate only into a new, empty database",
            busy.join(", ")
        )));
    }
    let (sv, dv) = schema_versions(&mut src, &mut tx).await?;
    if sv != dv {
        return Err(StoreError::Refused(format!(
            "schema versions differ: SQLite at migration {sv}, PostgreSQL at {dv}"
        )));
    }
    let known: BTreeSet<String> = TABLES.iter().map(|t| (*t).to_string()).collect();
    for t in sqlite_tables(&mut src).await? {
        if !known.contains(&t) {
            return Err(StoreError::Refused(format!(
                "SQLite table {t} has no copy rule in this version of medsec"
            )));
        }
    }
    let dst_tables = pg_tables(&mut tx).await?;
    for t in &dst_tables {
        if !known.contains(t) && t != INCIDENT_COUNTER {
            return Err(StoreError::Refused(format!(
                "PostgreSQL table {t} has no copy rule in this version of medsec"
            )));
        }
    }

    let mut sources = BTreeMap::new();
    let mut sequences = Vec::new();
    for t in TABLES {
        if !dst_tables.contains(*t) {
            return Err(StoreError::Refused(format!(
                "table {t} is missing in PostgreSQL"
            )));
        }
        let n = count_sqlite(&mut src, t).await?;
        sources.insert(*t, n);
        if *t == DERIVED {
            continue;
        }
        if *t == RETENTION {
            let h: Option<i64> =
                sqlx::query_scalar("SELECT horizon FROM pm_retention WHERE id = 1")
                    .fetch_optional(&mut *src)
                    .await
                    .map_err(be)?;
            if let Some(h) = h {
                sqlx::query("UPDATE pm_retention SET horizon = $1 WHERE id = 1")
                    .bind(h)
                    .execute(&mut *tx)
                    .await
                    .map_err(pg)?;
            }
            continue;
        }
        let cols = columns(t, &mut src, &mut tx).await?;
        copy_table(t, &cols, &mut src, &mut tx).await?;
        // Move every sequence feeding this table past the values copied, so the next row
        // PostgreSQL numbers cannot collide with (or reuse) one that came from SQLite.
        for c in &cols {
            let seq: Option<String> = sqlx::query_scalar("SELECT pg_get_serial_sequence($1, $2)")
                .bind(q(t))
                .bind(&c.name)
                .fetch_one(&mut *tx)
                .await
                .map_err(pg)?;
            let Some(seq) = seq else { continue };
            let max: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT max({})::bigint FROM {}",
                q(&c.name),
                q(t)
            )))
            .fetch_one(&mut *tx)
            .await
            .map_err(pg)?;
            let next = max.unwrap_or(0).max(sqlite_sequence(&mut src, t).await?);
            if next > 0 {
                sqlx::query("SELECT setval($1::regclass, $2, true)")
                    .bind(&seq)
                    .bind(next)
                    .execute(&mut *tx)
                    .await
                    .map_err(pg)?;
                sequences.push((seq, next));
            }
        }
    }
    // Incident numbers are handed out from a counter row on PostgreSQL.
    let incidents: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM pm_incidents")
        .fetch_one(&mut *src)
        .await
        .map_err(be)?;
    let last_incident = incidents
        .unwrap_or(0)
        .max(sqlite_sequence(&mut src, "pm_incidents").await?);
    sqlx::query("UPDATE pm_incident_ids SET last = $1 WHERE id = 1")
        .bind(last_incident)
        .execute(&mut *tx)
        .await
        .map_err(pg)?;
    sequences.push((format!("{INCIDENT_COUNTER}.last"), last_incident));

    // Run the deferred fleet triggers now, so the derived table can be counted before commit.
    sqlx::query("SET CONSTRAINTS ALL IMMEDIATE")
        .execute(&mut *tx)
        .await
        .map_err(pg)?;
    let mut tables = Vec::new();
    for t in TABLES {
        let target = count_pg(&mut tx, t).await?;
        let source = sources.get(t).copied();
        if source != Some(target) {
            return Err(StoreError::Corrupt(format!(
                "{t}: {} rows in SQLite but {target} in PostgreSQL after the copy; nothing was committed",
                source.unwrap_or(0)
            )));
        }
        tables.push(TableCopy {
            table: (*t).to_string(),
            source,
            target,
            how: match *t {
                DERIVED => "derived",
                RETENTION => "set",
                _ => "copied",
            },
        });
    }
    tables.push(TableCopy {
        table: INCIDENT_COUNTER.to_string(),
        source: None,
        target: count_pg(&mut tx, INCIDENT_COUNTER).await?,
        how: "set",
    });
    let src_head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&mut *src)
            .await
            .map_err(be)?;
    let dst_head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await
            .map_err(pg)?;
    if src_head != dst_head {
        return Err(StoreError::Corrupt(format!(
            "audit head differs after the copy ({src_head:?} vs {dst_head:?}); nothing was committed"
        )));
    }
    tx.commit().await.map_err(pg)?;
    src.rollback().await.map_err(be)?;
    Ok(CopyReport {
        tables,
        audit_head: dst_head,
        sequences,
    })
}

/// A SQLite database file opened on its own, outside any data directory's store: a backup
/// being checked before it is restored. Opened read-only, so checking changes nothing.
#[derive(Debug)]
pub struct SqliteFile {
    pool: SqlitePool,
}

impl SqliteFile {
    /// Opens `path` read-only; a missing file is an error, never created.
    pub async fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        if !path.is_file() {
            return Err(StoreError::NotFound(format!(
                "{} is not a file",
                path.display()
            )));
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Backend(format!("open {}: {e}", path.display())))?;
        // A file that is not a SQLite database only fails at the first read: read now so the
        // caller learns it here, with the file named.
        let check: String = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_one(&pool)
            .await
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
        if check != "ok" {
            return Err(StoreError::Corrupt(format!(
                "{}: integrity check: {check}",
                path.display()
            )));
        }
        Ok(SqliteFile { pool })
    }

    /// Row counts of every table of the dataset present in the file.
    pub async fn counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(be)?;
        let present = sqlite_tables(&mut conn).await?;
        let mut out = Vec::new();
        for t in TABLES {
            if present.contains(*t) {
                out.push(((*t).to_string(), count_sqlite(&mut conn, t).await?));
            }
        }
        Ok(out)
    }

    /// The connection pool (one read-only connection).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the file (so it can be renamed or removed afterwards).
    pub async fn close(self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl AuditLog for SqliteFile {
    async fn audit_page(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(be)?;
        rows.iter().map(crate::audit_entry_from).collect()
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(be)
    }
}

/// Writes a consistent copy of the live database `pool` to `out` (`VACUUM INTO`: one read
/// transaction, so it is consistent while the server keeps writing). `out` must not exist or
/// be empty (the caller may create it first with the permissions it wants).
pub async fn backup_sqlite(pool: &SqlitePool, out: &Path) -> Result<(), StoreError> {
    if std::fs::metadata(out).map(|m| m.len() > 0).unwrap_or(false) {
        return Err(StoreError::Conflict(format!(
            "{} exists; a backup never overwrites a file",
            out.display()
        )));
    }
    let target = out
        .to_str()
        .ok_or_else(|| StoreError::Refused(format!("{} is not UTF-8", out.display())))?;
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(pool)
        .await
        .map_err(|e| StoreError::Backend(format!("backup to {}: {e}", out.display())))?;
    Ok(())
}
