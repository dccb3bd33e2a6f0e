//! `medsec.toml` in the data directory, with defaults for a first run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub pki: PkiConfig,
    #[serde(default)]
    pub keys: KeysConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub vex: VexConfig,
    #[serde(default)]
    pub postmarket: PostmarketConfig,
    #[serde(default)]
    pub store: StoreConfig,
}

/// Where the data lives.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://...` selects PostgreSQL; unset, SQLite in the data directory.
    pub database_url: Option<String>,
}

/// Post-market surveillance: event retention, syslog intake, CVD and security.txt, report
/// details.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostmarketConfig {
    /// Device events older than this are purged daily by `medsec serve` (0: kept forever).
    pub retention_days: u32,
    /// Syslog over TLS (RFC 5425) listener for gateways; off when unset.
    pub syslog_addr: Option<std::net::SocketAddr>,
    /// Device URNs of gateways whose syslog messages may speak for other devices.
    pub syslog_gateways: Vec<String>,
    /// Days to acknowledge a researcher's report, and to coordinated disclosure.
    pub acknowledge_days: u16,
    pub disclosure_days: u16,
    /// Researcher reports accepted per client address: per hour, and burst.
    pub cvd_per_hour: f64,
    pub cvd_burst: f64,
    /// For drafted mandatory problem reports.
    pub manufacturer_address: Option<String>,
    /// Medical device licence numbers by model.
    pub licences: std::collections::BTreeMap<String, String>,
    pub security_txt: SecurityTxtConfig,
    /// Origin under which CSAF advisories are published (`https://host[:port]`); default the
    /// first `server.names` entry on the HTTPS port.
    pub csaf_base_url: Option<String>,
}

impl Default for PostmarketConfig {
    fn default() -> Self {
        PostmarketConfig {
            retention_days: 730,
            syslog_addr: None,
            syslog_gateways: Vec::new(),
            acknowledge_days: 7,
            disclosure_days: 90,
            cvd_per_hour: 10.0,
            cvd_burst: 5.0,
            manufacturer_address: None,
            licences: Default::default(),
            security_txt: SecurityTxtConfig::default(),
            csaf_base_url: None,
        }
    }
}

/// RFC 9116 fields; `/.well-known/security.txt` answers 404 until `contact` is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityTxtConfig {
    pub contact: Vec<String>,
    pub encryption: Vec<String>,
    pub acknowledgments: Vec<String>,
    pub policy: Vec<String>,
    pub canonical: Vec<String>,
    pub preferred_languages: Vec<String>,
    /// Expires is written this many days ahead of each request (RFC 9116: under a year).
    pub expires_days: u16,
}

impl Default for SecurityTxtConfig {
    fn default() -> Self {
        SecurityTxtConfig {
            contact: Vec::new(),
            encryption: Vec::new(),
            acknowledgments: Vec::new(),
            policy: Vec::new(),
            canonical: Vec::new(),
            preferred_languages: vec!["en".into(), "fr".into()],
            expires_days: 180,
        }
    }
}

/// Who VEX and CSAF documents name as their publisher.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct VexConfig {
    /// Defaults to `[pki] organization`.
    pub publisher: Option<String>,
    /// The publisher's namespace URI (CSAF `publisher.namespace`), e.g. https://psirt.example.com.
    pub namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Plain HTTP for CRLs and OCSP.
    pub http_addr: std::net::SocketAddr,
    /// HTTPS for EST and the API.
    pub https_addr: std::net::SocketAddr,
    /// HTTPS with mandatory client certificates: the device gateway.
    pub device_addr: std::net::SocketAddr,
    /// DNS names / IP addresses in the server's own certificate.
    pub names: Vec<String>,
    /// Operator-supplied TLS certificate chain and PKCS#8 key (PEM); when unset the server
    /// issues itself a certificate from its issuing CA at every start (see
    /// `self_issued_cert_secs`).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Profile for EST requests without a label.
    pub default_profile: Option<String>,
    /// PEM file of manufacturing CA certificates whose IDevIDs may bootstrap EST enrollment.
    pub idevid_ca: Option<PathBuf>,
    /// Longest an OCSP response is served from cache, in seconds; each entry lives a random
    /// span between half of this and all of it, so entries do not expire together (0: sign
    /// every response afresh). Revocations clear the cache at once either way.
    pub ocsp_cache_secs: u64,
    /// EST enrollment requests per second (and burst) allowed per client IP address.
    pub est_rate_per_sec: f64,
    pub est_rate_burst: f64,
    /// Serve Prometheus metrics at `/metrics` on the plain HTTP listener.
    pub metrics: bool,
    /// `text` (default) or `json`: one JSON object per log line.
    pub log_format: crate::cli::LogFormat,
    /// The same as `[store] database_url` (one of the two, or both equal).
    pub database_url: Option<String>,
    /// Lifetime of the self-issued server certificate (default 7 days, at most 30); the
    /// server renews it in place when two thirds have passed, checking every
    /// `self_issued_cert_check_secs`. It carries noRevAvail: its key never leaves memory.
    pub self_issued_cert_secs: u64,
    pub self_issued_cert_check_secs: u64,
    /// Seconds between runs of the periodic jobs (supersession, CRL refresh, event retention);
    /// replicas on one database claim each run, so each job runs once per interval among them.
    pub jobs_interval_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http_addr: ([127, 0, 0, 1], 8080).into(),
            https_addr: ([127, 0, 0, 1], 8443).into(),
            device_addr: ([127, 0, 0, 1], 8444).into(),
            names: vec!["localhost".into(), "127.0.0.1".into()],
            tls_cert: None,
            tls_key: None,
            default_profile: None,
            idevid_ca: None,
            ocsp_cache_secs: 60,
            est_rate_per_sec: 50.0,
            est_rate_burst: 200.0,
            metrics: true,
            log_format: crate::cli::LogFormat::Text,
            database_url: None,
            jobs_interval_secs: 30,
            self_issued_cert_secs: 7 * 86_400,
            self_issued_cert_check_secs: 600,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PkiConfig {
    pub organization: String,
    pub country: Option<String>,
    /// `{ca}` is replaced by the CA's name.
    pub crl_url: Option<String>,
    pub ocsp_url: Option<String>,
    pub key_algorithm: String,
    pub root_validity_days: u32,
    pub issuing_validity_days: u32,
    pub root_crl_hours: u32,
    pub issuing_crl_hours: u32,
    /// CRL shards of issuing CAs created from now on (1: one CRL per CA). With more, each
    /// certificate names its shard's CRL and `crl_url` must contain `{shard}`; unset, the
    /// default URL becomes `.../crl/{ca}/{shard}.crl`. Roots are never sharded.
    pub crl_shards: u32,
}

impl PkiConfig {
    /// `crl_url`, or `default` (a `.../{ca}.crl` URL) with a `{shard}` level when sharded.
    pub fn crl_url_template(&self, default: &str) -> String {
        match &self.crl_url {
            Some(u) => u.clone(),
            None if self.crl_shards > 1 => default.replace("{ca}.crl", "{ca}/{shard}.crl"),
            None => default.to_owned(),
        }
    }
}

impl Default for PkiConfig {
    fn default() -> Self {
        PkiConfig {
            organization: "medsec demo manufacturer".into(),
            country: None,
            // Unset: `medsec serve` points them at its own listener; `ca init` at the default one.
            crl_url: None,
            ocsp_url: None,
            key_algorithm: "ecdsa-p256".into(),
            root_validity_days: 20 * 365,
            issuing_validity_days: 10 * 365,
            root_crl_hours: 30 * 24,
            issuing_crl_hours: 24,
            crl_shards: 1,
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum KeyBackend {
    #[default]
    File,
    Pkcs11,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Where new CA keys are generated.
    pub backend: KeyBackend,
    pub pkcs11_module: Option<PathBuf>,
    pub pkcs11_token: Option<String>,
    /// File holding the token PIN; `MEDSEC_PKCS11_PIN` is used when unset.
    pub pkcs11_pin_file: Option<PathBuf>,
}

impl Config {
    /// Reads `path` if given, else `<data_dir>/medsec.toml` if it exists, else defaults.
    pub fn load(data_dir: &Path, path: Option<&Path>) -> Result<Config> {
        let (p, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (data_dir.join("medsec.toml"), false),
        };
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Config::default());
            }
            Err(e) => return Err(e).with_context(|| format!("reading config {}", p.display())),
        };
        let cfg: Config =
            toml::from_str(&text).with_context(|| format!("parsing config {}", p.display()))?;
        if cfg.keys.backend == KeyBackend::Pkcs11
            && (cfg.keys.pkcs11_module.is_none() || cfg.keys.pkcs11_token.is_none())
        {
            bail!(
                "config {}: keys.backend = \"pkcs11\" needs keys.pkcs11_module and keys.pkcs11_token",
                p.display()
            );
        }
        if cfg.postmarket.security_txt.expires_days == 0
            || cfg.postmarket.security_txt.expires_days > 365
        {
            bail!(
                "config {}: postmarket.security_txt.expires_days must be 1 to 365 (RFC 9116)",
                p.display()
            );
        }
        if cfg.postmarket.cvd_per_hour <= 0.0 || cfg.postmarket.cvd_burst < 1.0 {
            bail!(
                "config {}: postmarket.cvd_per_hour must be positive and cvd_burst at least 1",
                p.display()
            );
        }
        if let (Some(a), Some(b)) = (&cfg.store.database_url, &cfg.server.database_url)
            && a != b
        {
            bail!(
                "config {}: store.database_url and server.database_url differ; set one",
                p.display()
            );
        }
        Ok(cfg)
    }

    /// The configured database URL (`[store]`, else `[server]`).
    pub fn database_url(&self) -> Option<&str> {
        self.store
            .database_url
            .as_deref()
            .or(self.server.database_url.as_deref())
    }
}
