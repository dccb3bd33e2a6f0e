//! A throwaway PostgreSQL cluster for tests and benchmarks: Debian's `initdb` and `pg_ctl` in a
//! temporary directory, listening on a loopback port.
//!
//! The cluster must not outlive the process that started it, even when that process is killed
//! or is a test binary whose statics are never dropped, so a small guardian shell waits for the
//! owner's PID to disappear and then stops the server and removes its directory.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::StoreError;

/// A running PostgreSQL cluster owned by this process.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn fail(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("test PostgreSQL cluster: {what}: {e}"))
}

/// Where Debian puts the server programs: `$MEDSEC_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> Result<PathBuf, StoreError> {
    if let Some(d) = std::env::var_os("MEDSEC_PG_BINDIR") {
        return Ok(PathBuf::from(d));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| {
            fail(
                "PostgreSQL server not installed (apt-get install postgresql, or set MEDSEC_PG_BINDIR)",
                e,
            )
        })?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, b)| b)
        .ok_or_else(|| fail("no initdb under /usr/lib/postgresql/*/bin", "not found"))
}

fn free_port() -> Result<u16, StoreError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| fail("port", e))?;
    Ok(l.local_addr().map_err(|e| fail("port", e))?.port())
}

impl Cluster {
    /// initdb + pg_ctl start. `fsync` off makes tests fast; benchmarks keep it on.
    pub fn start(fsync: bool) -> Result<Cluster, StoreError> {
        let bin = bin_dir()?;
        // PostgreSQL refuses to run as root; CI runs as root, so the server runs as `postgres`.
        let as_postgres = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let dir = std::env::temp_dir().join(format!(
            "medsec-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(dir.join("sock")).map_err(|e| fail("mkdir", e))?;
        let c = Cluster {
            dir,
            bin,
            port: free_port()?,
            as_postgres,
        };
        if as_postgres {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&c.dir)
                .status()
                .map_err(|e| fail("chown", e))?;
            if !st.success() {
                return Err(fail("chown", st));
            }
        }
        c.run(
            "initdb",
            &[
                "-D",
                &c.data().to_string_lossy(),
                "-U",
                "medsec",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ],
        )?;
        let opts = format!(
            "-h 127.0.0.1 -p {} -k {} -c fsync={} -c max_connections=200 -c synchronous_commit={}",
            c.port,
            c.dir.join("sock").display(),
            if fsync { "on" } else { "off" },
            if fsync { "on" } else { "off" },
        );
        c.run(
            "pg_ctl",
            &[
                "-D",
                &c.data().to_string_lossy(),
                "-l",
                &c.dir.join("server.log").to_string_lossy(),
                "-o",
                &opts,
                "-w",
                "start",
            ],
        )?;
        c.guard()?;
        Ok(c)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), StoreError> {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(program, e))?;
        if !out.status.success() {
            return Err(fail(
                program,
                format!(
                    "{}: {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ));
        }
        Ok(())
    }

    /// Starts the guardian that stops the server once this process is gone.
    fn guard(&self) -> Result<(), StoreError> {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if self.as_postgres {
            format!(
                "runuser -u postgres -- {} -D {} stop -m immediate",
                pg_ctl.display(),
                self.data().display()
            )
        } else {
            format!(
                "{} -D {} stop -m immediate",
                pg_ctl.display(),
                self.data().display()
            )
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = self.dir.display()
        );
        Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail("guardian", e))?;
        Ok(())
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log, for a failing test to show.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Creates an empty database and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, StoreError> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(StoreError::Refused(format!("database name {name:?}")));
        }
        self.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "medsec",
                name,
            ],
        )?;
        Ok(self.url(name))
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://medsec@127.0.0.1:{}/{name}", self.port)
    }

    /// The directory holding the programs (`pg_dump`, `psql`, ...).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// One cluster per process, started on first use (fsync off): each test then takes its own
    /// database from [`Cluster::fresh_database`].
    pub fn shared() -> Result<&'static Cluster, StoreError> {
        static SHARED: std::sync::OnceLock<Result<Cluster, String>> = std::sync::OnceLock::new();
        SHARED
            .get_or_init(|| Cluster::start(false).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| StoreError::Backend(e.clone()))
    }

    /// A new, empty database on the shared cluster, for one test.
    pub fn fresh_database() -> Result<String, StoreError> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let c = Cluster::shared()?;
        c.create_database(&format!("t{}", N.fetch_add(1, Ordering::Relaxed)))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &["-D", &self.data().to_string_lossy(), "stop", "-m", "fast"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fresh_database_takes_every_migration_once() {
        let url = Cluster::fresh_database().unwrap();
        let a = crate::PgStore::connect(&url, &Default::default())
            .await
            .unwrap();
        // A second replica connecting to the migrated database applies nothing again.
        let b = crate::PgStore::connect(&url, &Default::default())
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM schema_migrations")
            .fetch_one(b.pool())
            .await
            .unwrap();
        assert_eq!(n, crate::migrate::POSTGRES.len() as i64);
        drop(a);
    }
}
