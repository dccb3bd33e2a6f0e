//! Command-line grammar.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "medsec",
    version,
    about = "Cybersecurity lifecycle for connected medical devices: device PKI and more"
)]
pub struct Cli {
    /// Data directory: database, encrypted keys, medsec.toml.
    #[arg(
        long,
        global = true,
        env = "MEDSEC_DATA_DIR",
        default_value = "medsec-data"
    )]
    pub data_dir: PathBuf,
    /// Config file (default: <data-dir>/medsec.toml if present).
    #[arg(long, global = true, env = "MEDSEC_CONFIG")]
    pub config: Option<PathBuf>,
    /// File holding the CA key passphrase (else MEDSEC_KEY_PASSPHRASE[_FILE]).
    #[arg(long, global = true)]
    pub passphrase_file: Option<PathBuf>,
    /// Who is acting, for the audit log (default: cli:$USER).
    #[arg(long, global = true, env = "MEDSEC_ACTOR")]
    pub actor: Option<String>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// Database: `postgres://user@host:port/db` selects PostgreSQL (several `medsec serve`
    /// replicas can share it); unset, the SQLite file in the data directory (the default).
    /// Also `database_url` in medsec.toml's [store] (or [server]). CA keys stay in the data
    /// directory's key source either way. Prefer ~/.pgpass or PGPASSWORD to a password in the
    /// URL.
    #[arg(long, global = true, env = "MEDSEC_DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Certificate authorities: create, import, inspect.
    #[command(subcommand)]
    Ca(CaCmd),
    /// Certificate profiles per device class.
    #[command(subcommand)]
    Profile(ProfileCmd),
    /// Device certificates: issue, renew, rekey, revoke, query.
    #[command(subcommand)]
    Cert(CertCmd),
    /// The device registry.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Certificate revocation lists.
    #[command(subcommand)]
    Crl(CrlCmd),
    /// OCSP responses (the server answers over HTTP; this answers from files).
    #[command(subcommand)]
    Ocsp(OcspCmd),
    /// The hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// One-time enrollment tokens (EST bootstrap credentials).
    #[command(subcommand)]
    Token(TokenCmd),
    /// API tokens for the admin REST API.
    #[command(subcommand)]
    Apitoken(ApiTokenCmd),
    /// Run the server: EST, OCSP, CRLs and the mTLS device gateway.
    Serve(ServeArgs),
    /// Firmware versions of device models and their support commitment.
    #[command(subcommand)]
    Firmware(FirmwareCmd),
    /// SBOMs: import per firmware version, export, compare; or check files offline.
    #[command(subcommand)]
    Sbom(SbomCmd),
    /// Vulnerability management: advisory import, matching, findings, triage, affected devices.
    #[command(subcommand)]
    Vuln(VulnCmd),
    /// Cybersecurity risk management: trust-relationship inventory, threats, risk register.
    #[command(subcommand)]
    Risk(RiskCmd),
    /// The TUF image repository: keys, root rotation, key revocation.
    #[command(subcommand)]
    Tuf(TufCmd),
    /// Firmware releases signed into the TUF repository.
    #[command(subcommand)]
    Release(ReleaseCmd),
    /// Staged rollouts of published releases (the director).
    #[command(subcommand)]
    Rollout(RolloutCmd),
    /// The director's signing key (devices are provisioned with its public half).
    #[command(subcommand)]
    Director(DirectorCmd),
    /// VEX documents from the triage decisions held.
    #[command(subcommand)]
    Vex(VexCmd),
    /// Device security events: list, purge, detection rules.
    #[command(subcommand)]
    Events(EventsCmd),
    /// Security incidents: workflow, reportability, regulatory clocks, drafted reports.
    #[command(subcommand)]
    Incident(IncidentCmd),
    /// Coordinated vulnerability disclosure: researcher reports.
    #[command(subcommand)]
    Cvd(CvdCmd),
    /// CSAF 2.0 security advisories authored from findings and releases.
    #[command(subcommand)]
    Advisory(AdvisoryCmd),
    /// Test evidence (JUnit XML, SARIF) for the documentation's testing section.
    #[command(subcommand)]
    Evidence(EvidenceCmd),
    /// Regulatory documentation: premarket file, labelling, MDS2, gaps.
    #[command(subcommand)]
    Docs(DocsCmd),
    /// Dashboard users (local accounts for the web UI).
    #[command(subcommand)]
    User(UserCmd),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// The database itself: move the SQLite dataset to PostgreSQL.
    #[command(subcommand)]
    Store(StoreCmd),
    /// Write a consistent backup of the database (SQLite: online copy; PostgreSQL: pg_dump -Fc).
    /// CA keys are not in it: back up the data directory's keys/ separately.
    Backup {
        /// The backup file to create (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup made by `medsec backup`, after verifying its audit chain. Stop
    /// `medsec serve` first.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// SQLite: replace an existing database (kept as medsec.db.before-restore).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum StoreCmd {
    /// Copy the data directory's SQLite dataset into an EMPTY PostgreSQL database, verbatim
    /// (audit chain included), in one transaction, then verify counts and the audit chain.
    /// Stop `medsec serve` first: writes made during the copy stay in SQLite only.
    Migrate {
        /// The target database, postgres://...
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum EventsCmd {
    /// Stored events, newest first.
    List {
        /// Only this device (urn:medsec:device:<model>:<serial>).
        #[arg(long)]
        device: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Delete events received more than this many days ago (audited).
    Purge {
        #[arg(long)]
        older_than_days: u32,
    },
    /// Print the detection rules in force (JSON).
    Rules {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Replace the detection rules (JSON); a file with errors changes nothing.
    SetRules { file: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum IncidentCmd {
    /// Incidents, newest first.
    List {
        #[arg(long)]
        open: bool,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One incident with its timeline and clocks.
    Show { id: String },
    /// Open an incident by hand (from a complaint, a CVD report, a finding).
    Open {
        #[arg(long)]
        model: String,
        #[arg(long)]
        title: String,
    },
    /// Move along new -> triage -> contained -> eradicated -> recovered -> closed.
    Status { id: String, status: String },
    /// Set the owner.
    Assign { id: String, owner: String },
    /// Record a response action.
    Note { id: String, note: String },
    /// Link vulnerabilities, risk register entries or other affected models.
    Link {
        id: String,
        #[arg(long = "vuln")]
        vulns: Vec<String>,
        #[arg(long = "risk")]
        risks: Vec<String>,
        #[arg(long = "model")]
        models: Vec<String>,
    },
    /// Record the reportability decision; reportable decisions start the clocks.
    Decide {
        id: String,
        /// Reportable under these obligations: mdr-death-or-serious-deterioration (10 days),
        /// mdr-could-lead-if-recurred (30 days), foreign-risk-notice (72 hours),
        /// fda-customer-notification (30 days), fda-fix-validated (60 days).
        #[arg(long = "obligation")]
        obligations: Vec<String>,
        /// Not reportable (no obligations).
        #[arg(long, conflicts_with = "obligations")]
        not_reportable: bool,
        #[arg(long)]
        rationale: String,
        /// When the manufacturer became aware (RFC 3339; default now).
        #[arg(long)]
        aware_at: Option<String>,
    },
    /// Record that an obligation was met (report filed, customers told, fix validated).
    Met {
        id: String,
        obligation: String,
        #[arg(long)]
        note: String,
    },
    /// Draft the preliminary or final mandatory problem report (Markdown).
    Report {
        id: String,
        #[arg(long, default_value = "preliminary")]
        kind: String,
        /// Consequences for patients or users as established so far.
        #[arg(long)]
        consequences: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Regulatory clocks: overdue, due soon, running, met.
    Clocks {
        #[arg(long, default_value_t = 7)]
        due_within_days: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a dashboard user; the password is read from MEDSEC_USER_PASSWORD or stdin.
    Create {
        name: String,
        /// admin, operator or auditor.
        #[arg(long)]
        role: String,
    },
    List,
    /// Lift a lockout after repeated failed sign-ins.
    Unlock {
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum EvidenceCmd {
    /// Import a JUnit XML or SARIF 2.1.0 report for a firmware version; anything else is refused.
    Import {
        #[arg(long)]
        model: String,
        #[arg(long)]
        version: String,
        /// penetration-test, fuzzing, static-analysis, functional or other.
        #[arg(long)]
        category: String,
        /// junit or sarif (default: detected from the content).
        #[arg(long)]
        kind: Option<String>,
        file: PathBuf,
    },
    List {
        #[arg(long)]
        model: String,
        #[arg(long)]
        version: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum DocsCmd {
    /// Build the documentation set of one model and firmware version into DIR.
    Build {
        #[arg(long)]
        model: String,
        #[arg(long)]
        version: String,
        #[arg(long)]
        out: PathBuf,
        /// Comma-separated: html, md, pdf.
        #[arg(long, default_value = "html,md,pdf")]
        format: String,
        /// MDS2 answers the data cannot give (TOML: [answers."ID"] answer = "yes", note = "...").
        #[arg(long)]
        mds2_answers: Option<PathBuf>,
    },
    /// Print the gaps report (missing evidence and where to fix it).
    Gaps {
        #[arg(long)]
        model: String,
        #[arg(long)]
        version: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AdvisoryCmd {
    /// Author a new advisory for vulnerabilities of one model, from its findings, triage
    /// decisions and published releases.
    Create {
        /// Tracking id, e.g. ACME-2026-0001.
        #[arg(long)]
        id: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        model: String,
        /// Vulnerability ids (CVE or any alias) to cover; one or more.
        #[arg(long = "vuln", required = true)]
        vulns: Vec<String>,
        /// Firmware versions that fix them (default: derived from findings and releases).
        #[arg(long = "fixed-in")]
        fixed_in: Vec<String>,
        #[arg(long)]
        summary: Option<String>,
        /// white (public), green, amber or red.
        #[arg(long, default_value = "amber")]
        tlp: String,
        /// draft, interim or final.
        #[arg(long, default_value = "draft")]
        status: String,
    },
    /// Add a revision: new status or TLP, optionally re-derived from current findings.
    Revise {
        id: String,
        #[arg(long)]
        summary: String,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        tlp: Option<String>,
        /// Rebuild the vulnerabilities and product status from the data held now.
        #[arg(long)]
        refresh: bool,
    },
    List,
    /// The CSAF document of the newest revision.
    Show {
        id: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write the public CSAF provider directory (provider-metadata.json, white/...) to DIR.
    Publish {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum CvdCmd {
    /// Reports, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    Show {
        id: String,
    },
    /// received -> acknowledged -> triaged -> remediated -> disclosed, or rejected.
    Status {
        id: String,
        status: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Link to findings (vulnerability ids) and incidents.
    Link {
        id: String,
        #[arg(long = "finding")]
        findings: Vec<String>,
        #[arg(long = "incident")]
        incidents: Vec<String>,
    },
    /// Agree a different disclosure date (RFC 3339).
    Disclosure {
        id: String,
        date: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SbomCmd {
    /// Parse an SBOM (CycloneDX JSON/XML, SPDX JSON/tag-value) and print its components.
    Show {
        file: PathBuf,
        /// Support-level addendum CSV: component,version,support_level,end_of_support.
        #[arg(long)]
        addendum: Option<PathBuf>,
    },
    /// Components added, removed and changed between two SBOMs: two files, or with --model
    /// two stored firmware versions.
    Diff {
        old: String,
        new: String,
        #[arg(long)]
        model: Option<String>,
    },
    /// Store an SBOM for a firmware version (registered if new). A file that does not parse
    /// stores nothing.
    Import {
        #[arg(long)]
        model: String,
        #[arg(long)]
        version: String,
        file: PathBuf,
        /// Support-level addendum CSV: component,version,support_level,end_of_support.
        #[arg(long)]
        addendum: Option<PathBuf>,
        /// Replace an SBOM already stored (its findings are recomputed; decisions are kept).
        #[arg(long)]
        replace: bool,
    },
    /// A Rust workspace's Cargo.lock as a CycloneDX 1.5 JSON SBOM (offline): crates.io
    /// packages with pkg:cargo purls and SHA-256, workspace packages as the product's own,
    /// the lock's dependency graph. The serial number is derived from the inputs, so the same
    /// lock gives the same SBOM (pin the time with --timestamp or SOURCE_DATE_EPOCH).
    FromCargoLock {
        /// The workspace's Cargo.lock.
        lockfile: PathBuf,
        /// Where to write the SBOM (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The application described (metadata.component).
        #[arg(long, default_value = "medsec")]
        product: String,
        /// Its version; by default the version of the workspace package named like --product.
        #[arg(long)]
        product_version: Option<String>,
        /// metadata.manufacture and the application's supplier.
        #[arg(long, default_value = "medsec project")]
        manufacturer: String,
        /// metadata.timestamp, RFC 3339; by default SOURCE_DATE_EPOCH, else now.
        #[arg(long)]
        timestamp: Option<String>,
    },
    /// A stored SBOM as CycloneDX 1.5 JSON, with support level and end-of-support properties.
    Export {
        #[arg(long)]
        model: String,
        #[arg(long)]
        version: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum FirmwareCmd {
    /// Register a firmware version or update its release date and support commitment.
    Add {
        #[arg(long)]
        model: String,
        #[arg(long)]
        version: String,
        /// Release date, YYYY-MM-DD.
        #[arg(long)]
        released: Option<String>,
        /// supported, security-only or unsupported.
        #[arg(long, default_value = "supported")]
        support: String,
        /// End of support, YYYY-MM-DD.
        #[arg(long)]
        end_of_support: Option<String>,
    },
    List {
        #[arg(long)]
        model: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum VexCmd {
    /// Export the decisions (and untriaged findings as in_triage) for a model, a firmware
    /// version, or everything.
    Export {
        #[arg(long, value_parser = ["cyclonedx", "openvex", "csaf"])]
        format: String,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum VulnCmd {
    /// Match one SBOM (CycloneDX or SPDX, JSON/XML/tag-value) against OSV advisories given as
    /// JSON files, directories of them, or OSV zip dumps; flags CISA KEV entries.
    Scan {
        #[arg(long)]
        sbom: PathBuf,
        /// OSV JSON file, directory (searched recursively) or .zip dump; repeatable.
        #[arg(long, required = true)]
        osv: Vec<PathBuf>,
        /// CISA KEV catalog JSON.
        #[arg(long)]
        kev: Option<PathBuf>,
    },
    /// Store advisories: OSV JSON files, directories of them or OSV zip dumps, and the CISA
    /// KEV catalog. Only records newer than those stored (by `modified`) are written.
    Import {
        /// OSV JSON file, directory (searched recursively) or .zip dump; repeatable.
        #[arg(long)]
        osv: Vec<PathBuf>,
        #[arg(long)]
        kev: Option<PathBuf>,
    },
    /// Match stored SBOMs against every stored advisory and refresh their findings.
    Match {
        #[arg(long)]
        model: Option<String>,
        #[arg(long, requires = "model")]
        version: Option<String>,
        /// Also match components without a purl by their CPE (lower confidence).
        #[arg(long)]
        cpe: bool,
    },
    /// Findings with triage state and risk rating.
    Findings {
        #[arg(long)]
        model: Option<String>,
        #[arg(long, requires = "model")]
        version: Option<String>,
        /// Also list findings closed by a decision (not_affected, false_positive, fixed).
        #[arg(long)]
        all: bool,
    },
    /// Record a triage decision for a vulnerability found in a firmware version.
    Triage {
        #[arg(long)]
        model: String,
        #[arg(long)]
        version: String,
        /// The vulnerability: its CVE or any advisory id or alias.
        #[arg(long)]
        vuln: String,
        /// Only for this component (purl or name@version); default: every component.
        #[arg(long)]
        component: Option<String>,
        /// in_triage, affected, not_affected, fixed or false_positive.
        #[arg(long)]
        state: String,
        /// For not_affected: component_not_present, vulnerable_code_not_present,
        /// vulnerable_code_not_in_execute_path, vulnerable_code_cannot_be_controlled_by_adversary,
        /// inline_mitigations_already_exist.
        #[arg(long)]
        justification: Option<String>,
        /// Why: the impact statement or analysis.
        #[arg(long)]
        reason: String,
        /// What users should do (for affected).
        #[arg(long)]
        action: Option<String>,
    },
    /// Devices in the field whose current firmware carries a vulnerability not closed by triage.
    Affected { vuln: String },
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a one-time enrollment token for one device; the secret is printed once.
    Create {
        #[arg(long)]
        profile: String,
        /// The device's serial number.
        #[arg(long)]
        device: String,
        #[arg(long, default_value_t = 24)]
        ttl_hours: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApiTokenCmd {
    /// Create an API token; the secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// admin, operator or auditor.
        #[arg(long)]
        role: String,
        /// Expire after this many days (default: no expiry).
        #[arg(long)]
        ttl_days: Option<u32>,
    },
    /// API tokens (id, name, role, expiry, revoked), newest first; never their secrets.
    List,
    /// Revoke an API token by id (the 16 hex digits after `mst_`): every server refuses it
    /// from its next request on.
    Revoke { id: String },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Plain HTTP address for CRLs and OCSP (overrides server.http_addr).
    #[arg(long, env = "MEDSEC_HTTP_ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// HTTPS address for EST and the API (overrides server.https_addr).
    #[arg(long, env = "MEDSEC_HTTPS_ADDR")]
    pub https: Option<std::net::SocketAddr>,
    /// mTLS device gateway address (overrides server.device_addr).
    #[arg(long, env = "MEDSEC_DEVICE_ADDR")]
    pub device: Option<std::net::SocketAddr>,
    /// Syslog-over-TLS address for gateways (overrides postmarket.syslog_addr).
    #[arg(long, env = "MEDSEC_SYSLOG_ADDR")]
    pub syslog: Option<std::net::SocketAddr>,
    /// Log lines as text or as one JSON object per line (overrides server.log_format).
    #[arg(long, env = "MEDSEC_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

/// How `serve` writes its log to stderr.
#[derive(clap::ValueEnum, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum CaCmd {
    /// Create a root CA and an issuing CA (pathlen 0) under it.
    Init(CaInitArgs),
    /// Add another issuing CA under a root (e.g. one per product line).
    AddIssuing {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "root")]
        parent: String,
        /// Subject CN (default: "<organization> <name> Issuing CA").
        #[arg(long)]
        common_name: Option<String>,
        #[arg(long)]
        key_alg: Option<String>,
        #[arg(long)]
        validity_days: Option<u32>,
    },
    /// Import an existing root certificate, with its private key to sign here.
    ImportRoot {
        #[arg(long)]
        name: String,
        /// PEM or DER certificate.
        #[arg(long)]
        cert: PathBuf,
        /// PKCS#8 private key (PEM or DER); it is sealed into the encrypted key store.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// List CAs.
    List,
    /// Show one CA; --pem prints its certificate.
    Show {
        name: String,
        #[arg(long)]
        pem: bool,
    },
    /// Revoke an issuing CA (it goes onto its root's CRL).
    Revoke {
        name: String,
        #[arg(long, default_value = "cACompromise")]
        reason: String,
    },
}

#[derive(Args, Debug)]
pub struct CaInitArgs {
    #[arg(long, default_value = "root")]
    pub root_name: String,
    #[arg(long, default_value = "issuing")]
    pub issuing_name: String,
    #[arg(long)]
    pub root_common_name: Option<String>,
    #[arg(long)]
    pub issuing_common_name: Option<String>,
    #[arg(long)]
    pub organization: Option<String>,
    #[arg(long)]
    pub country: Option<String>,
    /// ecdsa-p256 (default), ecdsa-p384 or ed25519.
    #[arg(long)]
    pub key_alg: Option<String>,
    #[arg(long)]
    pub root_validity_days: Option<u32>,
    #[arg(long)]
    pub issuing_validity_days: Option<u32>,
    /// CRL URL template written into certificates; {ca} is the CA name.
    #[arg(long)]
    pub crl_url: Option<String>,
    #[arg(long)]
    pub ocsp_url: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ProfileCmd {
    /// Create or update a profile.
    Set(ProfileSetArgs),
    /// Create or update a profile from a TOML file.
    Import {
        file: PathBuf,
    },
    List,
    Show {
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct ProfileSetArgs {
    #[arg(long)]
    pub name: String,
    /// Device model (class) the profile issues for.
    #[arg(long)]
    pub model: String,
    #[arg(long, default_value = "issuing")]
    pub issuer: String,
    /// Comma-separated allowed key types.
    #[arg(long, default_value = "ecdsa-p256", value_delimiter = ',')]
    pub key_types: Vec<String>,
    #[arg(long, default_value_t = 365)]
    pub validity_days: u32,
    #[arg(long)]
    pub server_auth: bool,
    #[arg(long)]
    pub organization: Option<String>,
    #[arg(long, default_value = "{model}-{serial}")]
    pub cn_template: String,
    #[arg(long, default_value_t = 7)]
    pub rekey_overlap_days: u32,
    /// Allow network enrollment without a bootstrap credential. Weakens device identity.
    #[arg(long)]
    pub danger_no_bootstrap: bool,
}

#[derive(Subcommand, Debug)]
pub enum CertCmd {
    /// Issue a device certificate from a CSR.
    Issue {
        #[arg(long)]
        profile: String,
        #[arg(long)]
        csr: PathBuf,
        /// The device's serial number.
        #[arg(long)]
        device: String,
        /// Write the certificate PEM here (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write the issuing chain PEM here.
        #[arg(long)]
        chain_out: Option<PathBuf>,
    },
    /// Same key, new validity.
    Renew {
        serial: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// New key from a new CSR; the old certificate is revoked (superseded) after the overlap.
    Rekey {
        serial: String,
        #[arg(long)]
        csr: PathBuf,
        #[arg(long)]
        overlap_days: Option<u32>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    Revoke {
        serial: String,
        /// RFC 5280 reason, e.g. keyCompromise, superseded, cessationOfOperation.
        #[arg(long, default_value = "unspecified")]
        reason: String,
        /// When the key became unsafe (RFC 3339), for keyCompromise.
        #[arg(long)]
        invalidity_date: Option<String>,
    },
    List {
        /// Device URN (urn:medsec:device:<model>:<serial>).
        #[arg(long)]
        device: Option<String>,
        #[arg(long)]
        issuer: Option<String>,
        #[arg(long)]
        revoked: Option<bool>,
    },
    Show {
        serial: String,
        #[arg(long)]
        pem: bool,
    },
    /// Unrevoked certificates expiring within N days.
    Expiring {
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum DeviceCmd {
    List,
    Show {
        device: String,
    },
    /// Retire a device: all its certificates are revoked and it can never enroll again.
    Retire {
        device: String,
    },
    /// Record the firmware version a device runs.
    SetFirmware {
        device: String,
        version: String,
    },
    /// A device's firmware and its open findings.
    Findings {
        device: String,
    },
    /// Set a device's tags (rollout cohorts can target a tag).
    Tag {
        device: String,
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RolloutCmd {
    /// Start a rollout of a published release.
    Create {
        #[arg(long)]
        model: String,
        #[arg(long)]
        version: String,
        /// percent:N (N % of the model's fleet), tag:NAME, or devices:URN[,URN...]
        #[arg(long)]
        cohort: String,
        /// Increasing shares of the cohort per stage, ending at 100.
        #[arg(long, value_delimiter = ',', default_value = "5,25,100")]
        stages: Vec<u8>,
        /// Promote a stage when this share of its finished devices succeeded.
        #[arg(long, default_value_t = 0.95)]
        promote: f64,
        /// Halt when this share of finished devices failed.
        #[arg(long, default_value_t = 0.1)]
        halt: f64,
        #[arg(long, default_value_t = 3)]
        min_reports: u32,
    },
    List {
        #[arg(long)]
        model: Option<String>,
    },
    /// Per-stage counts and time from release to 50/90/100 % of the cohort updated.
    Show {
        id: String,
    },
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    Abort {
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RiskCmd {
    /// Store a model's trust-relationship inventory (TOML); a file with errors stores nothing.
    SetInventory {
        #[arg(long)]
        model: String,
        file: PathBuf,
    },
    /// Store a model's risk register (TOML).
    SetRegister {
        #[arg(long)]
        model: String,
        file: PathBuf,
    },
    /// Replace the acceptability policy (severity / exploitability levels and matrix, TOML).
    SetPolicy { file: PathBuf },
    /// Replace the threat rule set (TOML).
    SetRules { file: PathBuf },
    /// Print a stored document: inventory or register (per model), policy or rules.
    Get {
        /// inventory, register, policy or rules
        doc: String,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Findings computed from the inventory, the model's certificates and firmware support.
    Findings {
        #[arg(long)]
        model: String,
        /// Certificates expiring within this many days are findings.
        #[arg(long, default_value_t = 30)]
        expiry_days: u32,
    },
    /// STRIDE threats generated from the inventory by the rules.
    Threats {
        #[arg(long)]
        model: String,
    },
    /// The register rated by the policy: initial and residual risk, controlled, sign-off state.
    Assess {
        #[arg(long)]
        model: String,
    },
    /// Sign off a register entry (binds you, now and a hash of its inputs and the policy).
    Signoff {
        #[arg(long)]
        model: String,
        #[arg(long)]
        risk: String,
    },
    /// Threat <-> control <-> test <-> finding, and the gaps.
    Trace {
        #[arg(long)]
        model: String,
        #[arg(long, default_value_t = 30)]
        expiry_days: u32,
    },
    /// The risk management report.
    Report {
        #[arg(long)]
        model: String,
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "html", "json", "text"])]
        format: String,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 30)]
        expiry_days: u32,
    },
    /// Turn an OWASP Threat Dragon v2 model into an inventory (printed as TOML, or stored with
    /// --store) and list its threats.
    ImportThreatDragon {
        #[arg(long)]
        model: String,
        file: PathBuf,
        #[arg(long)]
        store: bool,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TufCmd {
    /// Create the repository (root 2-of-3 by default) in <data-dir>/tuf.
    Init {
        #[arg(long, default_value_t = 3)]
        root_keys: u32,
        #[arg(long, default_value_t = 2)]
        root_threshold: u32,
        /// Timestamp expiry in hours (short: a frozen mirror is noticed soon).
        #[arg(long, default_value_t = 24)]
        timestamp_hours: u64,
    },
    /// Write root.json version N (to provision devices with), default the newest.
    Root {
        #[arg(long)]
        version: Option<u64>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// New root version: add N new root keys and retire the given key ids; signed by the
    /// old and the new root thresholds.
    RotateRoot {
        #[arg(long, default_value_t = 0)]
        add: u32,
        #[arg(long, value_delimiter = ',')]
        retire: Vec<String>,
        #[arg(long)]
        threshold: Option<u32>,
    },
    /// Remove a key from a role (root, targets, snapshot, timestamp, or a device model) and
    /// re-sign what it signed.
    RevokeKey {
        #[arg(long)]
        role: String,
        #[arg(long)]
        keyid: String,
    },
    /// Key ids per role.
    Keys,
    /// Re-sign metadata expiring within the given hours (the server does this on its own).
    Refresh {
        #[arg(long, default_value_t = 12)]
        within_hours: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReleaseCmd {
    /// Sign a firmware image into the repository under its model's release keys, and make it
    /// known to the director. The model gets its delegated role on first publish.
    Publish {
        #[arg(long)]
        model: String,
        #[arg(long)]
        version: String,
        /// Monotonic anti-rollback counter; never below the model's highest.
        #[arg(long)]
        security_version: u64,
        /// Hardware revision the image runs on (default: the model).
        #[arg(long)]
        hardware_id: Option<String>,
        /// The firmware version's SBOM: stored for vulnerability management and linked by hash.
        #[arg(long)]
        sbom: Option<PathBuf>,
        image: PathBuf,
    },
    List {
        #[arg(long)]
        model: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum DirectorCmd {
    /// The director's public key as devices need it (JSON).
    Key {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum CrlCmd {
    /// Generate the next CRL for one CA (or every CA holding a key).
    Generate {
        #[arg(long)]
        ca: Option<String>,
        /// Output file (one CA) or directory (all); DER unless --pem.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        pem: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum OcspCmd {
    /// Answer a DER OCSP request file with a DER response file.
    Respond {
        #[arg(long)]
        request: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Verify the hash chain; exits 3 and names the first broken entry if any.
    Verify,
    List {
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

pub use crate::bench_soak::SoakPath;

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Certificates per second from CSR to durable row, on a fresh store.
    Issue {
        #[arg(long, default_value_t = 10000)]
        count: usize,
        /// Concurrent issuing tasks.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Where the bench database goes (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Vulnerability matching: a synthetic advisory feed indexed once, then many SBOMs matched
    /// against it (the index is never rebuilt per SBOM).
    Match {
        #[arg(long, default_value_t = 1000)]
        sboms: usize,
        #[arg(long, default_value_t = 500)]
        components: usize,
        #[arg(long, default_value_t = 50000)]
        advisories: usize,
    },
    /// EST issuance through --replicas `medsec serve` processes on one throwaway PostgreSQL
    /// (fsync on): tokens, a new key per device, round-robin over the replicas.
    Replicas {
        #[arg(long, default_value_t = 1)]
        replicas: usize,
        #[arg(long, default_value_t = 10000)]
        count: usize,
        #[arg(long, default_value_t = 48)]
        concurrency: usize,
    },
    /// OCSP against one replica whose PostgreSQL database holds --certs device certificates
    /// (10% revoked), random serials; and the database's size per million devices.
    OcspPg {
        #[arg(long, default_value_t = 1_000_000)]
        certs: usize,
        #[arg(long, default_value_t = 100_000)]
        requests: usize,
        /// Concurrent connections, one run per value (comma-separated).
        #[arg(long, default_value = "32,8,2", value_delimiter = ',')]
        concurrency: Vec<usize>,
    },
    /// CRL generation (encode + sign, in memory) for a fleet of --certs certificates of which
    /// --revoked are revoked: one whole CRL against the CA partitioned into each of --shards.
    Crl {
        #[arg(long, default_value_t = 1_000_000)]
        certs: usize,
        #[arg(long, default_value_t = 100_000)]
        revoked: usize,
        /// Shard counts to compare with the whole CRL (comma-separated).
        #[arg(long, default_value = "16,64", value_delimiter = ',')]
        shards: Vec<u32>,
    },
    /// Matching through the store: SBOMs stored as firmware versions and advisories imported
    /// first (not timed), then `vuln match` over all of them (index built once, findings
    /// written back).
    Rematch {
        #[arg(long, default_value_t = 1000)]
        sboms: usize,
        #[arg(long, default_value_t = 500)]
        components: usize,
        #[arg(long, default_value_t = 50000)]
        advisories: usize,
    },
    /// Secure updates: publishing N releases (one by one, and as one batch), then a device's
    /// refresh + verify of that repository over loopback, medsec-agent against python-tuf.
    Tuf {
        #[arg(long, default_value_t = 1000)]
        releases: usize,
        /// Client runs per side (each from a fresh state); the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Advisory import into a fresh store: a first full import, an incremental re-import (all
    /// unchanged), and building the matching index from what was stored.
    Import {
        /// A real OSV dump (zip or directory); default: a synthetic zip of --records records
        /// shaped like GitHub advisories.
        #[arg(long)]
        osv: Option<PathBuf>,
        #[arg(long, default_value_t = 200000)]
        records: usize,
    },
    /// EST simpleenroll end to end over TLS on loopback against an in-process server: a new
    /// device key, token and TLS connection per enrollment.
    Est {
        #[arg(long, default_value_t = 5000)]
        count: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Device event ingest over mTLS on loopback against an in-process server running the
    /// default detection rules: devices with certificates of their own post batches of events
    /// to `/device/v1/events` over keep-alive connections, many requests in flight.
    Events {
        /// Devices, each with its own key, certificate and keep-alive connection.
        #[arg(long, default_value_t = 200)]
        devices: usize,
        /// Client tasks, i.e. requests in flight at once (at most one per device).
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Events per request (1 to 1000).
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// How long to post for.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Post this many events in total instead of running for --seconds.
        #[arg(long)]
        events: Option<usize>,
        /// Events per device between bursts of authentication failures that trip a detection
        /// rule (a configuration change that trips another comes at twice this); 0: no event
        /// trips a rule, though every event still runs through the rules.
        #[arg(long, default_value_t = 2500)]
        burst_every: u64,
    },
    /// Soak: each server path held at its rated request rate against a `medsec serve` child
    /// process, one path after another, with the server's RSS, open descriptors and latency
    /// per window; fails on any error, a late request, growth of RSS or descriptors, or an
    /// unstable p99. Rated loads: EST 1,000 enrollments/s, OCSP 10,000 requests/s, events
    /// 200 batches of 100 per second (20,000 events/s), TUF 2,000 files/s.
    Soak {
        /// Paths to soak, in this order.
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = [SoakPath::Est, SoakPath::Ocsp, SoakPath::Events, SoakPath::Tuf])]
        paths: Vec<SoakPath>,
        /// How long each path is held at its rate.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
        /// Seconds per report row (latency percentiles, RSS and descriptor samples).
        #[arg(long, default_value_t = 60)]
        window: u64,
        /// Client workers, i.e. requests in flight at most (one connection each).
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 1000)]
        est_rate: u32,
        #[arg(long, default_value_t = 10000)]
        ocsp_rate: u32,
        /// Batches of 100 events per second.
        #[arg(long, default_value_t = 200)]
        events_rate: u32,
        #[arg(long, default_value_t = 2000)]
        tuf_rate: u32,
    },
}
