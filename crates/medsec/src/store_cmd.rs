//! `medsec store migrate`, `medsec backup`, `medsec restore`: moving the database itself.
//!
//! These run before any store is opened: opening creates a missing SQLite file and applies
//! migrations, which a restore must not do to the database it is about to replace. CA keys are
//! never part of it: they stay in the data directory's key source whatever the database.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use medsec_store::transfer::{self, SqliteFile};
use medsec_store::{AuditLog, PgSettings, PgStore, SqliteStore, Synchronous, verify_audit};
use serde_json::json;

use crate::cli::{Cli, StoreCmd};
use crate::config::Config;
use crate::{
    Database, EXIT_AUDIT_BROKEN, EXIT_TARGET_NOT_EMPTY, check_postgres_url, choose_database,
    create_private_dir, sqlite_path,
};

fn emit(json: bool, value: serde_json::Value, human: impl FnOnce() -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        let s = human();
        if !s.is_empty() {
            println!("{s}");
        }
    }
}

fn head_json(h: &Option<(i64, String)>) -> serde_json::Value {
    match h {
        Some((seq, hash)) => json!({"seq": seq, "hash": hash}),
        None => serde_json::Value::Null,
    }
}

pub async fn store_cmd(cli: &Cli, c: &StoreCmd) -> Result<ExitCode> {
    let StoreCmd::Migrate { to } = c;
    let to = check_postgres_url(to)?;
    let path = sqlite_path(&cli.data_dir);
    if !path.is_file() {
        bail!(
            "no SQLite database at {}: nothing to migrate",
            path.display()
        );
    }
    // Opening through the store applies any pending SQLite migration, so both sides are at
    // the schema this binary knows.
    let src = SqliteStore::open(&path, Synchronous::Full)
        .await
        .context("opening the SQLite database")?;
    let entries = match verify_audit(&src).await? {
        Ok(n) => n,
        Err(b) => {
            eprintln!(
                "error: the SQLite audit log is BROKEN at {b}; refusing to migrate a dataset whose \
                 history does not verify (investigate with `medsec audit verify` first)"
            );
            return Ok(ExitCode::from(EXIT_AUDIT_BROKEN));
        }
    };
    let dst = PgStore::connect(to, &PgSettings::default())
        .await
        .context("opening the target PostgreSQL database")?;
    let busy = {
        let mut conn = dst
            .pool()
            .acquire()
            .await
            .context("connecting to the target")?;
        transfer::nonempty_tables(&mut conn).await?
    };
    if !busy.is_empty() {
        eprintln!(
            "error: the target database is not empty (data in: {}); `store migrate` copies only \
             into a new, empty database",
            busy.join(", ")
        );
        return Ok(ExitCode::from(EXIT_TARGET_NOT_EMPTY));
    }
    let report = transfer::copy_sqlite_to_postgres(src.pool(), &dst)
        .await
        .context("copying SQLite to PostgreSQL (nothing was committed)")?;
    // The copy checked counts and the head inside its transaction; the whole chain is checked
    // again on what PostgreSQL now serves.
    match verify_audit(&dst).await? {
        Ok(n) if n == entries => {}
        Ok(n) => bail!("PostgreSQL holds {n} audit entries after the copy, SQLite {entries}"),
        Err(b) => {
            eprintln!("error: the copied audit log does not verify on PostgreSQL: {b}");
            return Ok(ExitCode::from(EXIT_AUDIT_BROKEN));
        }
    }
    let head = dst.audit_head().await?;
    if head != report.audit_head {
        bail!("the PostgreSQL audit head differs from the SQLite one after the copy");
    }
    emit(
        cli.json,
        json!({
            "ok": true,
            "tables": report.tables,
            "audit": {"entries": entries, "head": head_json(&head), "verified": true},
            "sequences": report.sequences.iter().map(|(s, v)| json!({"sequence": s, "value": v})).collect::<Vec<_>>(),
        }),
        || {
            let mut s = format!("{:<20} {:>10} {:>10}  how\n", "table", "sqlite", "postgres");
            for t in &report.tables {
                s.push_str(&format!(
                    "{:<20} {:>10} {:>10}  {}\n",
                    t.table,
                    t.source
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "-".into()),
                    t.target,
                    t.how
                ));
            }
            s.push_str(&format!(
                "audit log: {entries} entries verified on PostgreSQL, head {}\n",
                head.as_ref()
                    .map(|(q, h)| format!("#{q} {h}"))
                    .unwrap_or_else(|| "(empty)".into())
            ));
            s.push_str(
                "Use it with --database (or database_url in medsec.toml [store]); the SQLite \
                 file is left as it was.",
            );
            s
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` empty and private (0600) before anything is written into it, so a backup is
/// never readable by others even for a moment, and an existing file is never overwritten.
fn create_private_file(path: &Path) -> Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path).map(|_| ()).with_context(|| {
        format!(
            "creating {} (a backup never overwrites a file)",
            path.display()
        )
    })
}

/// Where a PostgreSQL client program is: `$MEDSEC_PG_BINDIR`, else the newest Debian
/// `/usr/lib/postgresql/<version>/bin` (pg_dump must be at least the server's version), else
/// PATH.
fn pg_tool(name: &str) -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("MEDSEC_PG_BINDIR") {
        let p = PathBuf::from(d).join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut found: Vec<(u32, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                let p = e.path().join("bin").join(name);
                p.is_file().then_some((v, p))
            })
            .collect();
        found.sort();
        if let Some((_, p)) = found.pop() {
            return Ok(p);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    bail!(
        "{name} not found: install the PostgreSQL client programs (apt-get install \
         postgresql-client) or set MEDSEC_PG_BINDIR"
    )
}

/// Runs a PostgreSQL client program; its stderr becomes the error.
fn run_pg_tool(name: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
    let prog = pg_tool(name)?;
    let out = Command::new(&prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", prog.display()))?;
    if !out.status.success() {
        bail!(
            "{name} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub async fn backup(cli: &Cli, out: &Path) -> Result<ExitCode> {
    let cfg = Config::load(&cli.data_dir, cli.config.as_deref())?;
    match choose_database(&cli.data_dir, cli.database.as_deref(), &cfg)? {
        Database::Sqlite(path) => {
            if !path.is_file() {
                bail!(
                    "no SQLite database at {}: nothing to back up",
                    path.display()
                );
            }
            create_private_file(out)?;
            let r = async {
                let live = SqliteFile::open_read_only(&path).await?;
                let r = transfer::backup_sqlite(live.pool(), out).await;
                live.close().await;
                r
            }
            .await;
            if let Err(e) = r {
                let _ = std::fs::remove_file(out);
                return Err(e).context("writing the backup");
            }
            // Check what was written, not what was meant to be: the chain in the file.
            let b = SqliteFile::open_read_only(out)
                .await
                .context("re-reading the backup")?;
            let chain = verify_audit(&b).await?;
            let head = b.audit_head().await?;
            let counts = b.counts().await?;
            b.close().await;
            let n = match chain {
                Ok(n) => n,
                Err(brk) => {
                    eprintln!(
                        "error: the backup's audit log is BROKEN at {brk}: the live database is \
                         damaged (run `medsec audit verify`); the backup {} is kept for \
                         investigation",
                        out.display()
                    );
                    return Ok(ExitCode::from(EXIT_AUDIT_BROKEN));
                }
            };
            emit(
                cli.json,
                json!({"backend": "sqlite", "file": out, "audit": {"entries": n, "head": head_json(&head), "verified": true},
                       "tables": counts.iter().map(|(t, c)| json!({"table": t, "rows": c})).collect::<Vec<_>>()}),
                || {
                    format!(
                        "backup written to {} ({n} audit entries, chain verified); back up {}/keys separately",
                        out.display(),
                        cli.data_dir.display()
                    )
                },
            );
        }
        Database::Postgres(url) => {
            create_private_file(out)?;
            let mut dbname = std::ffi::OsString::from("--dbname=");
            dbname.push(&url);
            let r = run_pg_tool(
                "pg_dump",
                &[
                    "--format=custom".as_ref(),
                    "--file".as_ref(),
                    out.as_os_str(),
                    &dbname,
                ],
            );
            if let Err(e) = r {
                let _ = std::fs::remove_file(out);
                return Err(e);
            }
            emit(
                cli.json,
                json!({"backend": "postgres", "file": out, "format": "pg_dump custom"}),
                || {
                    format!(
                        "backup written to {} (pg_dump custom format); back up {}/keys separately",
                        out.display(),
                        cli.data_dir.display()
                    )
                },
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Moves `from` (and its `-wal`/`-shm` companions, which belong to it) to `to`.
fn rename_db(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
    for suffix in ["-wal", "-shm"] {
        let f = PathBuf::from(format!("{}{suffix}", from.display()));
        if f.exists() {
            let t = PathBuf::from(format!("{}{suffix}", to.display()));
            std::fs::rename(&f, &t)
                .with_context(|| format!("renaming {} to {}", f.display(), t.display()))?;
        }
    }
    Ok(())
}

fn remove_db(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let f = PathBuf::from(format!("{}{suffix}", path.display()));
        if f.exists() {
            std::fs::remove_file(&f).with_context(|| format!("removing {}", f.display()))?;
        }
    }
    Ok(())
}

pub async fn restore(cli: &Cli, from: &Path, force: bool) -> Result<ExitCode> {
    let cfg = Config::load(&cli.data_dir, cli.config.as_deref())?;
    match choose_database(&cli.data_dir, cli.database.as_deref(), &cfg)? {
        Database::Sqlite(path) => restore_sqlite(cli, from, force, &path).await,
        Database::Postgres(url) => restore_postgres(cli, from, &url).await,
    }
}

async fn restore_sqlite(cli: &Cli, from: &Path, force: bool, path: &Path) -> Result<ExitCode> {
    // 1. The backup must verify before anything in the data directory changes.
    let b = SqliteFile::open_read_only(from)
        .await
        .with_context(|| format!("reading backup {}", from.display()))?;
    let chain = verify_audit(&b).await;
    b.close().await;
    let entries = match chain.with_context(|| format!("reading backup {}", from.display()))? {
        Ok(n) => n,
        Err(brk) => {
            eprintln!(
                "error: backup {} is refused: its audit log is BROKEN at {brk}; nothing was changed",
                from.display()
            );
            return Ok(ExitCode::from(EXIT_AUDIT_BROKEN));
        }
    };
    // 2. Never replace a database without being asked to, and keep the one replaced.
    create_private_dir(&cli.data_dir)?;
    let exists = path.exists();
    if exists && !force {
        eprintln!(
            "error: {} exists; pass --force to replace it (it is then kept as medsec.db.before-restore)",
            path.display()
        );
        return Ok(ExitCode::from(EXIT_TARGET_NOT_EMPTY));
    }
    let before = cli.data_dir.join("medsec.db.before-restore");
    if exists && before.exists() {
        bail!(
            "{} exists from an earlier restore; move it away first",
            before.display()
        );
    }
    // 3. Stage the copy beside the database, then swap by renames (same file system).
    let staging = cli.data_dir.join("medsec.db.restoring");
    remove_db(&staging)?;
    create_private_file(&staging)?;
    std::fs::copy(from, &staging)
        .with_context(|| format!("copying {} into the data directory", from.display()))?;
    std::fs::File::open(&staging)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", staging.display()))?;
    if exists {
        rename_db(path, &before)?;
    }
    rename_db(&staging, path)?;
    if let Ok(d) = std::fs::File::open(&cli.data_dir) {
        let _ = d.sync_all();
    }
    // 4. Open it as the server will (pending migrations applied) and verify again.
    let store = SqliteStore::open(path, Synchronous::Full)
        .await
        .context("opening the restored database")?;
    let head = store.audit_head().await?;
    match verify_audit(&store).await? {
        Ok(n) if n == entries => {}
        Ok(n) => bail!("the restored database holds {n} audit entries, the backup {entries}"),
        Err(brk) => {
            eprintln!("error: the restored database's audit log is BROKEN at {brk}");
            return Ok(ExitCode::from(EXIT_AUDIT_BROKEN));
        }
    }
    emit(
        cli.json,
        json!({"backend": "sqlite", "restored": path, "previous": exists.then_some(&before),
               "audit": {"entries": entries, "head": head_json(&head), "verified": true}}),
        || {
            let mut s = format!(
                "restored {} from {} ({entries} audit entries, chain verified)",
                path.display(),
                from.display()
            );
            if exists {
                s.push_str(&format!("; the previous database is {}", before.display()));
            }
            s
        },
    );
    Ok(ExitCode::SUCCESS)
}

async fn restore_postgres(cli: &Cli, from: &Path, url: &str) -> Result<ExitCode> {
    if !from.is_file() {
        bail!("backup {} is not a file", from.display());
    }
    // A file pg_restore cannot read is refused before the target is touched.
    run_pg_tool("pg_restore", &["--list".as_ref(), from.as_os_str()])
        .with_context(|| format!("backup {} is not a pg_dump archive", from.display()))?;
    // Checked without migrating: PgStore::connect would create the schema and make the
    // database non-empty.
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .context("connecting to the target PostgreSQL database")?;
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        )
        .fetch_one(&mut conn)
        .await
        .context("inspecting the target database")?;
        if tables > 0 {
            eprintln!(
                "error: the target database is not empty ({tables} tables); restore only into a \
                 new, empty database (createdb)"
            );
            return Ok(ExitCode::from(EXIT_TARGET_NOT_EMPTY));
        }
    }
    let mut dbname = std::ffi::OsString::from("--dbname=");
    dbname.push(url);
    run_pg_tool(
        "pg_restore",
        &[
            "--exit-on-error".as_ref(),
            "--single-transaction".as_ref(),
            "--no-owner".as_ref(),
            "--no-privileges".as_ref(),
            &dbname,
            from.as_os_str(),
        ],
    )?;
    let store = PgStore::connect(url, &PgSettings::default())
        .await
        .context("opening the restored database")?;
    let head = store.audit_head().await?;
    let entries = match verify_audit(&store).await? {
        Ok(n) => n,
        Err(brk) => {
            eprintln!("error: the restored database's audit log is BROKEN at {brk}");
            return Ok(ExitCode::from(EXIT_AUDIT_BROKEN));
        }
    };
    emit(
        cli.json,
        json!({"backend": "postgres", "audit": {"entries": entries, "head": head_json(&head), "verified": true}}),
        || {
            format!(
                "restored from {} ({entries} audit entries, chain verified)",
                from.display()
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}
