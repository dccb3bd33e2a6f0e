//! Log capture for the secrets-in-logs check (scripts/secrets-in-logs.sh, run by
//! scripts/test.sh after the whole workspace's tests).
//!
//! When `MEDSEC_TEST_LOG_DIR` is set, the harnesses that start `medsec serve`, run the `medsec`
//! CLI or the `medsec-agent` write every server's stdout and stderr, every CLI invocation's
//! stderr and every agent invocation's output to their own file in that directory, and record
//! every secret they create or learn (enrollment and API tokens, passphrases and passwords
//! they set, private keys they generate) one per line under `secrets/`. The script then fails
//! when any recorded secret, any PEM private key, any full API token or any `Authorization`
//! credential appears in any log.
//!
//! What is not a log: the CLI's stdout (`token create` prints its token there once, on
//! purpose) and the output of the test's own peers (curl, openssl).
//!
//! Standard library only: the agent's tests include this file by path.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// The environment variable naming the directory.
pub const ENV: &str = "MEDSEC_TEST_LOG_DIR";

/// Secrets shorter than this are not recorded: they would match by chance.
pub const MIN_SECRET: usize = 8;

/// The directory (created with its `secrets/` subdirectory), or `None` when capture is off.
pub fn dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = PathBuf::from(std::env::var_os(ENV).filter(|v| !v.is_empty())?);
        std::fs::create_dir_all(d.join("secrets"))
            .unwrap_or_else(|e| panic!("{ENV}={}: {e}", d.display()));
        Some(d)
    })
    .as_deref()
}

/// A name no other process or call shares: test binary, process id, sequence number, the
/// test (libtest names each test's thread after it) and `kind`.
fn unique(kind: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let thread = std::thread::current();
    format!(
        "{}.{}.{seq:05}.{}.{}",
        binary(),
        std::process::id(),
        clean(thread.name().unwrap_or("thread"), 80),
        clean(kind, 40)
    )
}

/// The test binary's name without cargo's hash suffix (`server-0123abcd…` → `server`).
fn binary() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(Path::file_stem)
        .and_then(|s| s.to_str())
        .unwrap_or("test");
    let stem = match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name
        }
        _ => stem,
    };
    clean(stem, 40)
}

fn clean(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect()
}

/// A new log file for one process (`kind` says which, e.g. `medsec-serve`); its path.
pub fn new_log(kind: &str) -> Option<PathBuf> {
    let path = dir()?.join(format!("{}.log", unique(kind)));
    std::fs::File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Some(path)
}

/// medsec's own events at debug (where a leak is likeliest), the protocol libraries' per-frame
/// chatter left out so that the 10,000-enrollment tests stay fast.
pub const SERVER_FILTER: &str = "debug,h2=info,hyper=info,hyper_util=info,rustls=info,sqlx=warn";

/// The environment of a captured server: `RUST_LOG` (`MEDSEC_TEST_LOG_LEVEL`, else
/// [`SERVER_FILTER`]; none when the test's environment sets `RUST_LOG` itself) and `NO_COLOR`,
/// so that no escape code splits what the check looks for. Empty when capture is off.
pub fn server_env() -> Vec<(&'static str, String)> {
    if dir().is_none() {
        return Vec::new();
    }
    let mut v = vec![("NO_COLOR", "1".to_owned())];
    if std::env::var_os("RUST_LOG").is_none() {
        let filter =
            std::env::var("MEDSEC_TEST_LOG_LEVEL").unwrap_or_else(|_| SERVER_FILTER.into());
        v.push(("RUST_LOG", filter));
    }
    v
}

/// Opens `path` for appending (several writers: stdout and stderr of one process).
pub fn append(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Records a finished CLI run of `program`: its stderr into a log of its own (nothing when
/// empty), and any token it printed on stdout into the secrets. Stdout itself is no log.
pub fn cli(program: &str, args: &[&str], o: &Output) {
    if dir().is_none() {
        return;
    }
    if args.contains(&"create") {
        learn_from_stdout(&o.stdout);
    }
    if o.stderr.is_empty() {
        return;
    }
    let path = dir().unwrap().join(format!(
        "{}.log",
        unique(&format!("{program}-{}", subcommand(args)))
    ));
    std::fs::write(&path, &o.stderr).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Records a finished run of a device-side program (the agent): stdout and stderr both.
pub fn process(program: &str, args: &[&str], o: &Output) {
    let Some(d) = dir() else { return };
    if o.stdout.is_empty() && o.stderr.is_empty() {
        return;
    }
    let path = d.join(format!(
        "{}.log",
        unique(&format!("{program}-{}", subcommand(args)))
    ));
    let mut f = append(&path);
    f.write_all(&o.stdout).unwrap();
    f.write_all(&o.stderr).unwrap();
}

/// The subcommand, for the file name: up to two plain words, from the first one to the first
/// option after it (so that no option's value, which may be a secret, is ever taken).
fn subcommand(args: &[&str]) -> String {
    let mut words = Vec::new();
    for a in args {
        if a.starts_with('-') {
            if words.is_empty() {
                continue;
            }
            break;
        }
        if !a.is_empty() && a.len() <= 20 && a.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        {
            words.push(*a);
            if words.len() == 2 {
                break;
            }
        }
    }
    if words.is_empty() {
        "cli".into()
    } else {
        words.join("-")
    }
}

/// A token printed by `token create` / `apitoken create`: the `token` field of a JSON answer,
/// or the first line of a text answer that says it is shown once.
pub fn learn_from_stdout(stdout: &[u8]) {
    if dir().is_none() {
        return;
    }
    let text = String::from_utf8_lossy(stdout);
    if text.contains("shown once")
        && let Some(first) = text.lines().next()
    {
        secret(first);
    }
    // A JSON object with a string `token` (no JSON parser here: the field is looked up).
    let mut rest: &str = &text;
    while let Some(i) = rest.find("\"token\"") {
        rest = &rest[i + 7..];
        if let Some(v) = rest.trim_start().strip_prefix(':')
            && let Some(v) = v.trim_start().strip_prefix('"')
            && let Some(end) = v.find('"')
        {
            secret(&v[..end]);
        }
    }
}

fn recorded() -> &'static Mutex<HashSet<String>> {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    SEEN.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Records a secret (each line of it, when it has several). An API token `mst_<id>_<secret>`
/// is recorded whole and its secret part alone.
pub fn secret(s: &str) {
    let Some(d) = dir() else { return };
    let mut new = Vec::new();
    {
        let mut seen = recorded().lock().unwrap_or_else(|e| e.into_inner());
        for line in s.lines().map(str::trim) {
            let mut parts = vec![line];
            if let Some((_, tail)) = line.strip_prefix("mst_").and_then(|r| r.split_once('_')) {
                parts.push(tail);
            }
            for p in parts {
                if p.len() >= MIN_SECRET && seen.insert(p.to_owned()) {
                    new.push(p.to_owned());
                }
            }
        }
    }
    if new.is_empty() {
        return;
    }
    let path = d
        .join("secrets")
        .join(format!("{}.{}.txt", binary(), std::process::id()));
    let mut f = append(&path);
    let mut buf = new.join("\n");
    buf.push('\n');
    f.write_all(buf.as_bytes()).unwrap();
}

/// Records the body lines of every PEM private key in `pem` (the armour lines are public).
pub fn private_key_pem(pem: &str) {
    if dir().is_none() {
        return;
    }
    let mut inside = false;
    for line in pem.lines().map(str::trim) {
        if line.starts_with("-----BEGIN") && line.contains("PRIVATE KEY") {
            inside = true;
        } else if line.starts_with("-----END") {
            inside = false;
        } else if inside && !line.contains(':') {
            secret(line);
        }
    }
}

/// [`private_key_pem`] of a file, when it exists.
pub fn private_key_file(path: &Path) {
    if dir().is_none() {
        return;
    }
    if let Ok(pem) = std::fs::read_to_string(path) {
        private_key_pem(&pem);
    }
}

/// Records the values of environment variables that carry credentials (passphrases,
/// passwords, PINs, tokens), judged by the variable's name.
pub fn secret_env<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) {
    if dir().is_none() {
        return;
    }
    for (k, v) in vars {
        let k = k.to_ascii_uppercase();
        if ["PASSPHRASE", "PASSWORD", "PIN", "TOKEN", "SECRET"]
            .iter()
            .any(|w| k.contains(w))
        {
            secret(v);
        }
    }
}

/// The private keys openssl wrote for `args` (`req -keyout F`, `genpkey -out F`, …).
pub fn openssl_keys(args: &[&str], cwd: &Path) {
    if dir().is_none() {
        return;
    }
    let keygen = matches!(
        args.first().copied(),
        Some("genpkey" | "genrsa" | "ecparam" | "pkey" | "ec" | "rsa")
    );
    for w in args.windows(2) {
        if w[0] == "-keyout" || (keygen && w[0] == "-out") {
            private_key_file(&cwd.join(w[1]));
        }
    }
}
