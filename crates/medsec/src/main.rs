//! The `medsec` command: wires configuration, the store and key sources to the domain crates.

mod advisory;
mod bench;
mod bench_pg;
mod bench_soak;
mod cli;
mod config;
mod docs;
mod inventory;
mod keys;
mod logging;
mod postmarket;
mod risk;
mod serve;
mod store_cmd;
mod ui;
mod updates;
mod vuln;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use medsec_ca::{Ca, CaInitSpec, CaRecord, CaUrls, CertFilter, CertRecord, CertStatus, Profile};
use medsec_core::{
    Actor, CertSerial, DeviceId, DeviceModel, DeviceSerial, KeyAlgorithm, Name, RevocationReason,
};
use medsec_store::{Backend, PgSettings, PgStore, SqliteStore, Synchronous};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::cli::*;
use crate::config::Config;
use crate::keys::Keys;

/// Exit code when `audit verify` finds a broken chain (distinct from ordinary errors, 1).
const EXIT_AUDIT_BROKEN: u8 = 3;
/// Exit code when a migration or restore refuses a target that already holds data.
const EXIT_TARGET_NOT_EMPTY: u8 = 4;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(&cli);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            logging::fatal(&e);
            ExitCode::from(1)
        }
    }
}

pub struct App {
    pub data_dir: PathBuf,
    pub ca: Ca<Arc<dyn Backend>>,
    pub inv: medsec_inventory::Inventory,
    /// The back end chosen at start; each service takes it upcast to the trait it needs.
    pub store: Arc<dyn Backend>,
    /// The same store when it is SQLite (benchmarks count rows through its pool).
    pub sqlite: Option<SqliteStore>,
    pub keys: Arc<Keys>,
    pub actor: Actor,
    pub cfg: Config,
    pub json: bool,
}

impl App {
    /// The SQLite pool, for the benchmarks that count rows with SQL of their own.
    pub fn sqlite_pool(&self) -> Result<&sqlx::SqlitePool> {
        self.sqlite
            .as_ref()
            .map(|s| s.pool())
            .context("this command needs the SQLite database (it is running on PostgreSQL)")
    }
}

pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

/// Which database a command works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// `medsec.db` in the data directory (the default).
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

/// The SQLite file of a data directory.
pub fn sqlite_path(data_dir: &Path) -> PathBuf {
    data_dir.join("medsec.db")
}

/// `--database` (or MEDSEC_DATABASE_URL) wins over medsec.toml; neither means SQLite.
pub fn choose_database(data_dir: &Path, flag: Option<&str>, cfg: &Config) -> Result<Database> {
    let url = flag.filter(|s| !s.is_empty()).or(cfg.database_url());
    match url {
        None => Ok(Database::Sqlite(sqlite_path(data_dir))),
        Some(u) => Ok(Database::Postgres(check_postgres_url(u)?.to_string())),
    }
}

/// Accepts only PostgreSQL URLs. The URL itself is never echoed: it may carry a password.
pub fn check_postgres_url(u: &str) -> Result<&str> {
    if u.starts_with("postgres://") || u.starts_with("postgresql://") {
        return Ok(u);
    }
    let scheme = u.split_once("://").map(|(s, _)| s).unwrap_or("(none)");
    bail!(
        "database URL scheme {scheme:?} is not supported: use postgres://user@host:port/db, or leave \
         --database / MEDSEC_DATABASE_URL / database_url unset for SQLite in the data directory"
    )
}

/// Opens the chosen back end, applying pending migrations.
pub async fn open_backend(
    db: &Database,
    sync: Synchronous,
) -> Result<(Arc<dyn Backend>, Option<SqliteStore>)> {
    match db {
        Database::Sqlite(path) => {
            let s = SqliteStore::open(path, sync)
                .await
                .context("opening the database")?;
            Ok((Arc::new(s.clone()), Some(s)))
        }
        Database::Postgres(url) => {
            let s = PgStore::connect(url, &PgSettings::default())
                .await
                .context("opening the PostgreSQL database")?;
            Ok((Arc::new(s), None))
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn open_app(
    data_dir: &Path,
    config: Option<&Path>,
    passphrase_file: Option<PathBuf>,
    actor: Option<&str>,
    json: bool,
    sync: Synchronous,
    database: Option<&str>,
) -> Result<App> {
    create_private_dir(data_dir)?;
    let cfg = Config::load(data_dir, config)?;
    let db = choose_database(data_dir, database, &cfg)?;
    let (store, sqlite) = open_backend(&db, sync).await?;
    let keys = Arc::new(Keys::new(data_dir.join("keys"), passphrase_file, &cfg.keys));
    let actor = match actor {
        Some(a) => Actor::parse(a)?,
        None => Actor::parse(&format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        ))?,
    };
    let ca = Ca::new(store.clone(), keys.clone());
    Ok(App {
        data_dir: data_dir.to_path_buf(),
        ca,
        inv: medsec_inventory::Inventory::new(store.clone()),
        store,
        sqlite,
        keys,
        actor,
        cfg,
        json,
    })
}

async fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Bench(b) = &cli.command {
        return bench::run(b).await.map(|_| ExitCode::SUCCESS);
    }
    // These move the database itself, so they must not open (or create) it first.
    match &cli.command {
        Command::Store(c) => return store_cmd::store_cmd(&cli, c).await,
        Command::Backup { out } => return store_cmd::backup(&cli, out).await,
        Command::Restore { from, force } => return store_cmd::restore(&cli, from, *force).await,
        _ => {}
    }
    // Offline scans and file checks need no data directory.
    match &cli.command {
        Command::Vuln(v @ VulnCmd::Scan { .. }) => {
            return vuln::run(v, cli.json).map(|_| ExitCode::SUCCESS);
        }
        Command::Sbom(
            s @ (SbomCmd::Show { .. }
            | SbomCmd::Diff { model: None, .. }
            | SbomCmd::FromCargoLock { .. }),
        ) => {
            return vuln::run_sbom(s, cli.json).map(|_| ExitCode::SUCCESS);
        }
        _ => {}
    }
    let app = open_app(
        &cli.data_dir,
        cli.config.as_deref(),
        cli.passphrase_file.clone(),
        cli.actor.as_deref(),
        cli.json,
        Synchronous::Full,
        cli.database.as_deref(),
    )
    .await?;
    match cli.command {
        Command::Ca(c) => ca_cmd(&app, c).await,
        Command::Profile(c) => profile_cmd(&app, c).await,
        Command::Cert(c) => cert_cmd(&app, c).await,
        Command::Device(c) => device_cmd(&app, c).await,
        Command::Crl(c) => crl_cmd(&app, c).await,
        Command::Ocsp(c) => ocsp_cmd(&app, c).await,
        Command::Audit(c) => audit_cmd(&app, c).await,
        Command::Firmware(c) => inventory::firmware_cmd(&app, c).await,
        Command::Sbom(c) => inventory::sbom_cmd(&app, c).await,
        Command::Vuln(c) => inventory::vuln_cmd(&app, c).await,
        Command::Vex(c) => inventory::vex_cmd(&app, c).await,
        Command::Rollout(c) => updates::rollout_cmd(&app, c).await,
        Command::Tuf(c) => updates::tuf_cmd(&app, c).await,
        Command::Risk(c) => risk::risk_cmd(&app, c).await,
        Command::Release(c) => updates::release_cmd(&app, c).await,
        Command::Director(c) => updates::director_cmd(&app, c).await,
        Command::Token(c) => token_cmd(&app, c).await,
        Command::Events(c) => postmarket::events_cmd(&app, c).await,
        Command::Incident(c) => postmarket::incident_cmd(&app, c).await,
        Command::Cvd(c) => postmarket::cvd_cmd(&app, c).await,
        Command::Advisory(c) => advisory::advisory_cmd(&app, c).await,
        Command::Evidence(c) => docs::evidence_cmd(&app, c).await,
        Command::Docs(c) => docs::docs_cmd(&app, c).await,
        Command::User(c) => ui::user_cmd(&app, c).await,
        Command::Apitoken(ApiTokenCmd::Create {
            name,
            role,
            ttl_days,
        }) => {
            let role: medsec_auth::Role = role.parse()?;
            let (secret, t) = medsec_auth::create_token(
                &*app.store,
                &name,
                role,
                ttl_days.map(|d| Duration::days(d.into())),
                &app.actor,
            )
            .await?;
            out(
                &app,
                json!({"id": t.id, "name": t.name, "role": t.role, "token": secret}),
                || {
                    format!(
                        "{secret}\n(API token {} `{}` with role {}; shown once)",
                        t.id, t.name, t.role
                    )
                },
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Apitoken(ApiTokenCmd::List) => {
            let tokens = medsec_auth::AuthStore::list_api_tokens(&*app.store).await?;
            let fmt = |t: Option<time::OffsetDateTime>| {
                t.and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
            };
            out(&app, json!(tokens), || {
                tokens
                    .iter()
                    .map(|t| {
                        format!(
                            "{}  {:<8}  {}  expires {}{}",
                            t.id,
                            t.role,
                            t.name,
                            fmt(t.expires_at).unwrap_or_else(|| "never".into()),
                            if t.revoked { "  REVOKED" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Apitoken(ApiTokenCmd::Revoke { id }) => {
            let t = medsec_auth::revoke_token(&*app.store, &id, &app.actor).await?;
            out(
                &app,
                json!({"id": t.id, "name": t.name, "role": t.role, "revoked": true}),
                || format!("API token {} `{}` ({}) revoked", t.id, t.name, t.role),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(a) => serve::run(app, &a).await.map(|_| ExitCode::SUCCESS),
        Command::Bench(_)
        | Command::Store(_)
        | Command::Backup { .. }
        | Command::Restore { .. } => {
            bail!("handled before the data directory is opened")
        }
    }
}

pub(crate) fn out(app: &App, value: serde_json::Value, human: impl FnOnce() -> String) {
    if app.json {
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

fn write_or_print(path: Option<&Path>, data: &str) -> Result<()> {
    match path {
        Some(p) => std::fs::write(p, data).with_context(|| format!("writing {}", p.display())),
        None => {
            std::io::stdout().write_all(data.as_bytes())?;
            Ok(())
        }
    }
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("reading {what} {}", path.display()))?;
    if meta.len() > 1024 * 1024 {
        bail!("{what} {} is larger than 1 MiB", path.display());
    }
    std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Where `medsec serve` listens by default (server.http_addr); used when pki.crl_url and
/// pki.ocsp_url are not configured.
const DEFAULT_CRL_URL: &str = "http://127.0.0.1:8080/crl/{ca}.crl";
const DEFAULT_OCSP_URL: &str = "http://127.0.0.1:8080/ocsp";

fn urls(app: &App) -> CaUrls {
    CaUrls {
        crl_url_template: Some(app.cfg.pki.crl_url_template(DEFAULT_CRL_URL)),
        ocsp_url: Some(
            app.cfg
                .pki
                .ocsp_url
                .clone()
                .unwrap_or_else(|| DEFAULT_OCSP_URL.into()),
        ),
        crl_shards: app.cfg.pki.crl_shards,
    }
}

fn ca_json(c: &CaRecord) -> serde_json::Value {
    json!({
        "name": c.name, "role": c.role, "parent": c.parent, "serial": c.serial,
        "key": c.key_ref, "key_algorithm": c.key_algorithm, "crl_url": c.crl_url, "ocsp_url": c.ocsp_url,
        "not_after": fmt_time(c.not_after), "revoked": c.revocation.as_ref().map(|r| r.reason),
    })
}

async fn ca_cmd(app: &App, c: CaCmd) -> Result<ExitCode> {
    let pki = &app.cfg.pki;
    match c {
        CaCmd::Init(a) => {
            let org = a
                .organization
                .clone()
                .unwrap_or_else(|| pki.organization.clone());
            let alg: KeyAlgorithm = a.key_alg.as_deref().unwrap_or(&pki.key_algorithm).parse()?;
            let defaults = urls(app);
            let u = CaUrls {
                crl_url_template: a.crl_url.clone().or(defaults.crl_url_template),
                ocsp_url: a.ocsp_url.clone().or(defaults.ocsp_url),
                crl_shards: defaults.crl_shards,
            };
            let spec = CaInitSpec {
                root_name: Name::parse(&a.root_name)?,
                root_common_name: a
                    .root_common_name
                    .clone()
                    .unwrap_or_else(|| format!("{org} Device Root CA")),
                issuing_name: Name::parse(&a.issuing_name)?,
                issuing_common_name: a
                    .issuing_common_name
                    .clone()
                    .unwrap_or_else(|| format!("{org} Device Issuing CA")),
                organization: org,
                country: a.country.clone().or_else(|| pki.country.clone()),
                key_algorithm: alg,
                root_validity_days: a.root_validity_days.unwrap_or(pki.root_validity_days),
                issuing_validity_days: a.issuing_validity_days.unwrap_or(pki.issuing_validity_days),
                root_crl_validity: Duration::hours(pki.root_crl_hours.into()),
                issuing_crl_validity: Duration::hours(pki.issuing_crl_hours.into()),
                urls: u,
            };
            let (root, issuing) = app.ca.init(&spec, &app.actor).await?;
            out(
                app,
                json!({"root": ca_json(&root), "issuing": ca_json(&issuing)}),
                || {
                    format!(
                        "created root CA {} ({}) and issuing CA {} under it; keys: {}, {}",
                        root.name,
                        root.key_algorithm,
                        issuing.name,
                        root.key_ref.as_deref().unwrap_or("-"),
                        issuing.key_ref.as_deref().unwrap_or("-")
                    )
                },
            );
        }
        CaCmd::AddIssuing {
            name,
            parent,
            common_name,
            key_alg,
            validity_days,
        } => {
            let name = Name::parse(&name)?;
            let alg: KeyAlgorithm = key_alg.as_deref().unwrap_or(&pki.key_algorithm).parse()?;
            let cn =
                common_name.unwrap_or_else(|| format!("{} {} Issuing CA", pki.organization, name));
            let rec = app
                .ca
                .add_issuing(
                    &name,
                    &cn,
                    &pki.organization,
                    pki.country.as_deref(),
                    &Name::parse(&parent)?,
                    alg,
                    validity_days.unwrap_or(pki.issuing_validity_days),
                    Duration::hours(pki.issuing_crl_hours.into()),
                    &urls(app),
                    &app.actor,
                )
                .await?;
            out(app, ca_json(&rec), || {
                format!("created issuing CA {} under {}", rec.name, parent)
            });
        }
        CaCmd::ImportRoot { name, cert, key } => {
            let name = Name::parse(&name)?;
            let der = pem_or_der(&read_file(&cert, "certificate")?, "CERTIFICATE")?;
            let signer = match key {
                Some(k) => {
                    let raw = zeroize::Zeroizing::new(read_file(&k, "private key")?);
                    let pkcs8 = zeroize::Zeroizing::new(pem_or_der(&raw, "PRIVATE KEY")?);
                    Some(
                        app.keys
                            .file_source()?
                            .import_pkcs8(&format!("ca-{name}"), &pkcs8)?,
                    )
                }
                None => None,
            };
            let rec = app
                .ca
                .import_root(
                    &name,
                    &der,
                    signer,
                    &urls(app),
                    Duration::hours(pki.root_crl_hours.into()),
                    &app.actor,
                )
                .await?;
            out(app, ca_json(&rec), || {
                format!(
                    "imported root CA {} ({})",
                    rec.name,
                    if rec.key_ref.is_some() {
                        "with key"
                    } else {
                        "certificate only"
                    }
                )
            });
        }
        CaCmd::List => {
            let cas = app.ca.list_cas().await?;
            out(
                app,
                json!(cas.iter().map(ca_json).collect::<Vec<_>>()),
                || {
                    cas.iter()
                        .map(|c| {
                            format!(
                                "{:<16} {:<8} {:<16} {:<11} {}",
                                c.name,
                                c.role.as_str(),
                                c.parent.as_ref().map(|p| p.as_str()).unwrap_or("-"),
                                c.key_algorithm,
                                fmt_time(c.not_after)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                },
            );
        }
        CaCmd::Show { name, pem } => {
            let rec = app.ca.get_ca(&Name::parse(&name)?).await?;
            if pem {
                print!("{}", medsec_ca::pem_encode_cert(&rec.cert_der));
            } else {
                out(app, ca_json(&rec), || {
                    serde_json::to_string_pretty(&ca_json(&rec)).unwrap_or_default()
                });
            }
        }
        CaCmd::Revoke { name, reason } => {
            let reason: RevocationReason = reason.parse()?;
            app.ca
                .revoke_ca(&Name::parse(&name)?, reason, &app.actor)
                .await?;
            out(app, json!({"revoked": name, "reason": reason}), || {
                format!("revoked CA {name} ({reason})")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Accepts PEM with the given label, or DER.
fn pem_or_der(data: &[u8], label: &str) -> Result<Vec<u8>> {
    if data.trim_ascii_start().starts_with(b"-----BEGIN") {
        let p = pem::parse(data).map_err(|e| anyhow!("not valid PEM: {e}"))?;
        if p.tag() != label {
            bail!("PEM block is {:?}, expected {label:?}", p.tag());
        }
        Ok(p.into_contents())
    } else {
        Ok(data.to_vec())
    }
}

async fn profile_cmd(app: &App, c: ProfileCmd) -> Result<ExitCode> {
    match c {
        ProfileCmd::Set(a) => {
            let key_types = a
                .key_types
                .iter()
                .map(|k| k.parse())
                .collect::<Result<Vec<KeyAlgorithm>, _>>()?;
            let p = Profile {
                name: Name::parse(&a.name)?,
                model: DeviceModel::parse(&a.model)?,
                issuer: Name::parse(&a.issuer)?,
                key_types,
                validity_days: a.validity_days,
                server_auth: a.server_auth,
                organization: a
                    .organization
                    .clone()
                    .unwrap_or_else(|| app.cfg.pki.organization.clone()),
                cn_template: a.cn_template.clone(),
                requires_bootstrap: !a.danger_no_bootstrap,
                rekey_overlap_days: a.rekey_overlap_days,
            };
            app.ca.put_profile(&p, &app.actor).await?;
            out(app, json!(p), || format!("profile {} saved", p.name));
        }
        ProfileCmd::Import { file } => {
            let text = String::from_utf8(read_file(&file, "profile")?)
                .context("profile file is not UTF-8")?;
            let p: Profile = toml::from_str(&text)
                .with_context(|| format!("parsing profile {}", file.display()))?;
            app.ca.put_profile(&p, &app.actor).await?;
            out(app, json!(p), || format!("profile {} saved", p.name));
        }
        ProfileCmd::List => {
            let ps = app.ca.list_profiles().await?;
            out(app, json!(ps), || {
                ps.iter()
                    .map(|p| {
                        format!(
                            "{:<16} model={:<16} issuer={:<12} keys={} days={}",
                            p.name,
                            p.model,
                            p.issuer,
                            p.allowed_list(),
                            p.validity_days
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ProfileCmd::Show { name } => {
            let p = app.ca.get_profile(&Name::parse(&name)?).await?;
            out(app, json!(p), || {
                toml::to_string_pretty(&p).unwrap_or_default()
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cert_json(c: &CertRecord) -> serde_json::Value {
    let (status, reason, revoked_at) = match &c.status {
        CertStatus::Valid => ("valid", None, None),
        CertStatus::Revoked(r) => ("revoked", Some(r.reason), Some(fmt_time(r.revoked_at))),
    };
    json!({
        "serial": c.serial, "issuer": c.issuer, "device": c.device.urn(), "profile": c.profile,
        "kind": c.kind, "subject": c.subject, "key_algorithm": c.key_algorithm,
        "not_before": fmt_time(c.not_before), "not_after": fmt_time(c.not_after),
        "replaces": c.replaces, "revoke_after": c.revoke_after.map(fmt_time),
        "status": status, "reason": reason, "revoked_at": revoked_at,
    })
}

fn cert_line(c: &CertRecord) -> String {
    let st = match &c.status {
        CertStatus::Valid => "valid".to_owned(),
        CertStatus::Revoked(r) => format!("revoked:{}", r.reason),
    };
    format!(
        "{}  {:<40} {:<28} {}",
        c.serial,
        c.device.urn(),
        st,
        fmt_time(c.not_after)
    )
}

fn parse_device(s: &str) -> Result<DeviceId> {
    Ok(DeviceId::parse_urn(s)?)
}

async fn cert_cmd(app: &App, c: CertCmd) -> Result<ExitCode> {
    app.ca.process_due_supersessions(&app.actor).await?;
    match c {
        CertCmd::Issue {
            profile,
            csr,
            device,
            out: o,
            chain_out,
        } => {
            let csr = read_file(&csr, "CSR")?;
            let issued = app
                .ca
                .issue(
                    &Name::parse(&profile)?,
                    &DeviceSerial::parse(&device)?,
                    &csr,
                    &app.actor,
                )
                .await?;
            if let Some(p) = chain_out {
                std::fs::write(&p, &issued.chain_pem)
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            emit_issued(app, &issued.record, &issued.pem, o.as_deref())?;
        }
        CertCmd::Renew { serial, out: o } => {
            let issued = app.ca.renew(&serial.parse()?, &app.actor).await?;
            emit_issued(app, &issued.record, &issued.pem, o.as_deref())?;
        }
        CertCmd::Rekey {
            serial,
            csr,
            overlap_days,
            out: o,
        } => {
            let csr = read_file(&csr, "CSR")?;
            let r = app
                .ca
                .rekey(
                    &serial.parse()?,
                    &csr,
                    overlap_days.map(|d| Duration::days(d.into())),
                    &app.actor,
                )
                .await?;
            if app.json {
                let mut v = cert_json(&r.issued.record);
                v["old_serial"] = json!(r.old);
                v["old_revoked_at"] = json!(fmt_time(r.old_revoked_at));
                println!("{}", serde_json::to_string_pretty(&v)?);
                if let Some(p) = o {
                    std::fs::write(&p, &r.issued.pem)?;
                }
            } else {
                emit_issued(app, &r.issued.record, &r.issued.pem, o.as_deref())?;
                eprintln!(
                    "old certificate {} is revoked as superseded at {}",
                    r.old,
                    fmt_time(r.old_revoked_at)
                );
            }
        }
        CertCmd::Revoke {
            serial,
            reason,
            invalidity_date,
        } => {
            let serial: CertSerial = serial.parse()?;
            let reason: RevocationReason = reason.parse()?;
            let inv = invalidity_date
                .map(|d| {
                    OffsetDateTime::parse(&d, &Rfc3339)
                        .with_context(|| format!("invalidity date {d:?} is not RFC 3339"))
                })
                .transpose()?;
            let rec = app.ca.revoke(&serial, reason, inv, &app.actor).await?;
            out(app, cert_json(&rec), || {
                format!("revoked {} ({reason})", rec.serial)
            });
        }
        CertCmd::List {
            device,
            issuer,
            revoked,
        } => {
            let f = CertFilter {
                device: device.as_deref().map(parse_device).transpose()?,
                issuer: issuer.as_deref().map(Name::parse).transpose()?,
                revoked,
                ..CertFilter::default()
            };
            let certs = app.ca.list_certs(&f).await?;
            out(
                app,
                json!(certs.iter().map(cert_json).collect::<Vec<_>>()),
                || certs.iter().map(cert_line).collect::<Vec<_>>().join("\n"),
            );
        }
        CertCmd::Show { serial, pem } => {
            let c = app.ca.get_cert(&serial.parse()?).await?;
            if pem {
                print!("{}", medsec_ca::pem_encode_cert(&c.der));
            } else {
                out(app, cert_json(&c), || {
                    serde_json::to_string_pretty(&cert_json(&c)).unwrap_or_default()
                });
            }
        }
        CertCmd::Expiring { days } => {
            let certs = app.ca.expiring_within(days).await?;
            out(
                app,
                json!(certs.iter().map(cert_json).collect::<Vec<_>>()),
                || certs.iter().map(cert_line).collect::<Vec<_>>().join("\n"),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn emit_issued(app: &App, rec: &CertRecord, pem: &str, path: Option<&Path>) -> Result<()> {
    if app.json {
        let mut v = cert_json(rec);
        if path.is_none() {
            v["pem"] = json!(pem);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        if let Some(p) = path {
            std::fs::write(p, pem).with_context(|| format!("writing {}", p.display()))?;
        }
        return Ok(());
    }
    write_or_print(path, pem)?;
    eprintln!(
        "issued {} for {} (valid until {})",
        rec.serial,
        rec.device,
        fmt_time(rec.not_after)
    );
    Ok(())
}

async fn device_cmd(app: &App, c: DeviceCmd) -> Result<ExitCode> {
    let dj = |d: &medsec_ca::DeviceRecord| json!({"device": d.id.urn(), "status": d.status, "created_at": fmt_time(d.created_at), "retired_at": d.retired_at.map(fmt_time)});
    match c {
        DeviceCmd::List => {
            let ds = app.ca.list_devices().await?;
            out(app, json!(ds.iter().map(dj).collect::<Vec<_>>()), || {
                ds.iter()
                    .map(|d| format!("{:<48} {}", d.id.urn(), d.status.as_str()))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        DeviceCmd::Show { device } => {
            let id = parse_device(&device)?;
            let d = app.ca.get_device(&id).await?;
            let certs = app
                .ca
                .list_certs(&CertFilter {
                    device: Some(id),
                    ..CertFilter::default()
                })
                .await?;
            let mut v = dj(&d);
            v["certificates"] = json!(certs.iter().map(cert_json).collect::<Vec<_>>());
            out(app, v.clone(), || {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            });
        }
        DeviceCmd::SetFirmware { device, version } => {
            let id = parse_device(&device)?;
            let v = medsec_core::FirmwareVersion::parse(&version)?;
            app.inv.set_device_firmware(&app.actor, &id, &v).await?;
            out(app, json!({"device": id.urn(), "firmware": v}), || {
                format!("{id} runs firmware {v}")
            });
        }
        DeviceCmd::Findings { device } => {
            let id = parse_device(&device)?;
            let (fw, open) = app.inv.device_findings(&id).await?;
            out(
                app,
                json!({"device": id.urn(), "firmware": fw, "open_findings": open}),
                || inventory::findings_table(&open),
            );
        }
        DeviceCmd::Tag { device, tags } => {
            let id = parse_device(&device)?;
            let tags = medsec_server::check_tags(&tags).map_err(|e| anyhow!(e))?;
            let d = updates::director(app)?;
            d.store()
                .set_device_tags(
                    &id,
                    &tags,
                    &medsec_core::AuditRecord::new(
                        &app.actor,
                        medsec_core::AuditAction::DeviceTagged,
                        id.urn(),
                        json!({"tags": tags}),
                    ),
                )
                .await?;
            out(app, json!({"device": id.urn(), "tags": tags}), || {
                format!("{id}: {}", tags.join(","))
            });
        }
        DeviceCmd::Retire { device } => {
            let id = parse_device(&device)?;
            let revoked = app.ca.retire(&id, &app.actor).await?;
            out(app, json!({"device": id.urn(), "revoked": revoked}), || {
                format!("retired {id}; revoked {} certificate(s)", revoked.len())
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn crl_cmd(app: &App, c: CrlCmd) -> Result<ExitCode> {
    app.ca.process_due_supersessions(&app.actor).await?;
    let CrlCmd::Generate { ca, out: o, pem } = c;
    let names: Vec<Name> = match &ca {
        Some(n) => vec![Name::parse(n)?],
        None => app
            .ca
            .list_cas()
            .await?
            .into_iter()
            .filter(|c| c.key_ref.is_some())
            .map(|c| c.name)
            .collect(),
    };
    let mut summary = Vec::new();
    for name in &names {
        let crl = app.ca.generate_crl(name, &app.actor).await?;
        let bytes = if pem {
            pem::encode_config(
                &pem::Pem::new("X509 CRL", crl.der.clone()),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            )
            .into_bytes()
        } else {
            crl.der.clone()
        };
        let path = match (&o, ca.is_some()) {
            (Some(p), true) => Some(p.clone()),
            (Some(dir), false) => {
                std::fs::create_dir_all(dir)?;
                Some(dir.join(format!("{name}.{}", if pem { "pem" } else { "crl" })))
            }
            (None, _) => None,
        };
        match &path {
            Some(p) => {
                std::fs::write(p, &bytes).with_context(|| format!("writing {}", p.display()))?
            }
            None if !app.json => std::io::stdout().write_all(&bytes)?,
            None => {}
        }
        summary.push(json!({"ca": name, "number": crl.number, "this_update": fmt_time(crl.this_update), "next_update": fmt_time(crl.next_update), "path": path}));
    }
    if app.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if o.is_some() {
        for s in &summary {
            eprintln!(
                "CRL #{} for {} written to {}",
                s["number"],
                s["ca"].as_str().unwrap_or(""),
                s["path"].as_str().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn ocsp_cmd(app: &App, c: OcspCmd) -> Result<ExitCode> {
    let OcspCmd::Respond { request, out: o } = c;
    let req = read_file(&request, "OCSP request")?;
    let resp = app.ca.ocsp_respond(&req).await;
    std::fs::write(&o, resp).with_context(|| format!("writing {}", o.display()))?;
    Ok(ExitCode::SUCCESS)
}

async fn token_cmd(app: &App, c: TokenCmd) -> Result<ExitCode> {
    let TokenCmd::Create {
        profile,
        device,
        ttl_hours,
    } = c;
    let (secret, t) = app
        .ca
        .create_enrollment_token(
            &Name::parse(&profile)?,
            &DeviceSerial::parse(&device)?,
            Duration::hours(ttl_hours.into()),
            &app.actor,
        )
        .await?;
    out(
        app,
        json!({"id": t.id, "token": secret, "device": t.device.urn(), "profile": t.profile, "expires_at": fmt_time(t.expires_at)}),
        || {
            format!(
                "{secret}\n(token {} for {}, expires {}; shown once)",
                t.id,
                t.device,
                fmt_time(t.expires_at)
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}

async fn audit_cmd(app: &App, c: AuditCmd) -> Result<ExitCode> {
    match c {
        AuditCmd::Verify => match medsec_store::verify_audit(&*app.store).await? {
            Ok(n) => {
                out(app, json!({"ok": true, "entries": n}), || {
                    format!("audit log intact: {n} entries")
                });
                Ok(ExitCode::SUCCESS)
            }
            Err(b) => {
                out(
                    app,
                    json!({"ok": false, "seq": b.seq, "reason": b.reason}),
                    String::new,
                );
                eprintln!("audit log BROKEN at {b}");
                Ok(ExitCode::from(EXIT_AUDIT_BROKEN))
            }
        },
        AuditCmd::List { after, limit } => {
            let page = app.store.audit_page(after, limit.min(10_000)).await?;
            out(app, json!(page), || {
                page.iter()
                    .map(|e| {
                        format!(
                            "#{:<6} {} {:<20} {:<18} {} {}",
                            e.seq,
                            fmt_time(e.at()),
                            e.actor,
                            e.action,
                            e.subject,
                            e.details
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(ExitCode::SUCCESS)
        }
    }
}
