//! A small embedded migration runner: ordered SQL files, applied once, checked by SHA-256.

use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row, SqlitePool};

use crate::StoreError;

pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "ca",
        sql: include_str!("../migrations/sqlite/0001_ca.sql"),
    },
    Migration {
        version: 2,
        name: "enrollment_tokens",
        sql: include_str!("../migrations/sqlite/0002_enrollment_tokens.sql"),
    },
    Migration {
        version: 3,
        name: "api_tokens",
        sql: include_str!("../migrations/sqlite/0003_api_tokens.sql"),
    },
    Migration {
        version: 4,
        name: "inventory",
        sql: include_str!("../migrations/sqlite/0004_inventory.sql"),
    },
    Migration {
        version: 5,
        name: "updates",
        sql: include_str!("../migrations/sqlite/0005_updates.sql"),
    },
    Migration {
        version: 6,
        name: "risk",
        sql: include_str!("../migrations/sqlite/0006_risk.sql"),
    },
    Migration {
        version: 7,
        name: "postmarket",
        sql: include_str!("../migrations/sqlite/0007_postmarket.sql"),
    },
    Migration {
        version: 8,
        name: "evidence",
        sql: include_str!("../migrations/sqlite/0008_evidence.sql"),
    },
    Migration {
        version: 9,
        name: "users",
        sql: include_str!("../migrations/sqlite/0009_users.sql"),
    },
    Migration {
        version: 10,
        name: "fleet",
        sql: include_str!("../migrations/sqlite/0010_fleet.sql"),
    },
    Migration {
        version: 11,
        name: "crl_shards",
        sql: include_str!("../migrations/sqlite/0011_crl_shards.sql"),
    },
    Migration {
        version: 12,
        name: "job_runs",
        sql: include_str!("../migrations/sqlite/0012_job_runs.sql"),
    },
];

/// PostgreSQL's own migrations: the same schema as SQLite's, in PostgreSQL's types (BIGINT
/// seconds, BYTEA, partial indexes, PL/pgSQL triggers), numbered alike so that `medsec store
/// migrate` can compare versions.
pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "ca",
        sql: include_str!("../migrations/postgres/0001_ca.sql"),
    },
    Migration {
        version: 2,
        name: "enrollment_tokens",
        sql: include_str!("../migrations/postgres/0002_enrollment_tokens.sql"),
    },
    Migration {
        version: 3,
        name: "api_tokens",
        sql: include_str!("../migrations/postgres/0003_api_tokens.sql"),
    },
    Migration {
        version: 4,
        name: "inventory",
        sql: include_str!("../migrations/postgres/0004_inventory.sql"),
    },
    Migration {
        version: 5,
        name: "updates",
        sql: include_str!("../migrations/postgres/0005_updates.sql"),
    },
    Migration {
        version: 6,
        name: "risk",
        sql: include_str!("../migrations/postgres/0006_risk.sql"),
    },
    Migration {
        version: 7,
        name: "postmarket",
        sql: include_str!("../migrations/postgres/0007_postmarket.sql"),
    },
    Migration {
        version: 8,
        name: "evidence",
        sql: include_str!("../migrations/postgres/0008_evidence.sql"),
    },
    Migration {
        version: 9,
        name: "users",
        sql: include_str!("../migrations/postgres/0009_users.sql"),
    },
    Migration {
        version: 10,
        name: "fleet",
        sql: include_str!("../migrations/postgres/0010_fleet.sql"),
    },
    Migration {
        version: 11,
        name: "crl_shards",
        sql: include_str!("../migrations/postgres/0011_crl_shards.sql"),
    },
    Migration {
        version: 12,
        name: "job_runs",
        sql: include_str!("../migrations/postgres/0012_job_runs.sql"),
    },
];

fn be(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub(crate) async fn run_sqlite(
    pool: &SqlitePool,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .execute(pool)
    .await
    .map_err(be)?;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(be)?;
    let applied = sqlx::query("SELECT version, sha256 FROM schema_migrations ORDER BY version")
        .fetch_all(&mut *tx)
        .await
        .map_err(be)?;
    let known_max = migrations.last().map(|m| m.version).unwrap_or(0);
    for row in &applied {
        let v: i64 = row.try_get("version").map_err(be)?;
        let h: String = row.try_get("sha256").map_err(be)?;
        match migrations.iter().find(|m| m.version == v) {
            Some(m) if hex::encode(Sha256::digest(m.sql)) != h => {
                return Err(StoreError::Corrupt(format!(
                    "migration {v} ({}) differs from the one applied to this database; landed migrations must never change",
                    m.name
                )));
            }
            Some(_) => {}
            None if v > known_max => {
                return Err(StoreError::Refused(format!(
                    "the database is at schema version {v}, newer than this medsec ({known_max}); upgrade medsec"
                )));
            }
            None => {}
        }
    }
    for m in migrations {
        if applied
            .iter()
            .any(|r| r.try_get::<i64, _>("version").ok() == Some(m.version))
        {
            continue;
        }
        sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(|e| {
            StoreError::Backend(format!("migration {} ({}): {e}", m.version, m.name))
        })?;
        sqlx::query("INSERT INTO schema_migrations (version, name, sha256, applied_at) VALUES (?, ?, ?, strftime('%s','now'))")
            .bind(m.version)
            .bind(m.name)
            .bind(hex::encode(Sha256::digest(m.sql)))
            .execute(&mut *tx)
            .await
            .map_err(be)?;
    }
    tx.commit().await.map_err(be)
}

/// The lock key under which PostgreSQL migrations run, so that replicas starting together
/// apply each migration once ("medsec" in ASCII).
const MIGRATION_LOCK: i64 = 0x6d65_6473_6563;

pub(crate) async fn run_postgres(
    pool: &PgPool,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(be)?;
    // Transaction-scoped: released by commit or by the connection dying with it.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(be)?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await
    .map_err(be)?;
    let applied = sqlx::query("SELECT version, sha256 FROM schema_migrations ORDER BY version")
        .fetch_all(&mut *tx)
        .await
        .map_err(be)?;
    let known_max = migrations.last().map(|m| m.version).unwrap_or(0);
    let mut done = Vec::new();
    for row in &applied {
        let v: i64 = row.try_get("version").map_err(be)?;
        let h: String = row.try_get("sha256").map_err(be)?;
        match migrations.iter().find(|m| m.version == v) {
            Some(m) if hex::encode(Sha256::digest(m.sql)) != h => {
                return Err(StoreError::Corrupt(format!(
                    "migration {v} ({}) differs from the one applied to this database; landed migrations must never change",
                    m.name
                )));
            }
            Some(_) => {}
            None if v > known_max => {
                return Err(StoreError::Refused(format!(
                    "the database is at schema version {v}, newer than this medsec ({known_max}); upgrade medsec"
                )));
            }
            None => {}
        }
        done.push(v);
    }
    for m in migrations.iter().filter(|m| !done.contains(&m.version)) {
        sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(|e| {
            StoreError::Backend(format!("migration {} ({}): {e}", m.version, m.name))
        })?;
        sqlx::query("INSERT INTO schema_migrations (version, name, sha256, applied_at) VALUES ($1, $2, $3, extract(epoch from now())::bigint)")
            .bind(m.version)
            .bind(m.name)
            .bind(hex::encode(Sha256::digest(m.sql)))
            .execute(&mut *tx)
            .await
            .map_err(be)?;
    }
    tx.commit().await.map_err(be)
}
