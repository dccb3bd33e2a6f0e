//! `medsec-agent`: the command-line face of the device agent.
//!
//! Exit codes: 0 success (including "renewal not due yet"), 1 any error, 2 usage errors.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use medsec_agent::events::{EventType, FlushReport, Severity};
use medsec_agent::{
    Agent, AgentConfig, AgentError, EventReporter, NewEvent, Pkcs11KeyConfig, RenewOutcome,
    Timeouts, UpdateClient, UpdateConfig,
};
use medsec_core::{DeviceSerial, KeyAlgorithm, Name};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

/// Where the token's user PIN comes from unless --pkcs11-pin-file is given. No command-line
/// flag: command lines are visible to other users of the machine.
const PIN_ENV: &str = "MEDSEC_AGENT_PKCS11_PIN";

#[derive(Parser, Debug)]
#[command(
    name = "medsec-agent",
    version,
    about = "Device agent: enroll over EST, renew before expiry, talk to the mTLS device gateway"
)]
struct Cli {
    /// Directory for the device key (or, for a token key, its record), certificate and CA
    /// chain (created 0700).
    #[arg(long, global = true, env = "MEDSEC_AGENT_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// EST server, host:port (needed by enroll and renew).
    #[arg(long, global = true, env = "MEDSEC_AGENT_SERVER_HTTPS")]
    server_https: Option<String>,
    /// Device gateway, host:port (needed by whoami, update, events flush and events send).
    #[arg(long, global = true, env = "MEDSEC_AGENT_SERVER_DEVICE")]
    server_device: Option<String>,
    /// Name the server certificate must carry (DNS name or IP address).
    #[arg(
        long,
        global = true,
        env = "MEDSEC_AGENT_SERVER_NAME",
        default_value = "localhost"
    )]
    server_name: String,
    /// PEM file with the root(s) the server must chain to; system roots are never used.
    #[arg(long, global = true, env = "MEDSEC_AGENT_TRUST_ROOT")]
    trust_root: Option<PathBuf>,
    /// EST label (certificate profile); default: the server's default profile.
    #[arg(long, global = true, env = "MEDSEC_AGENT_PROFILE")]
    profile: Option<String>,
    /// Key type for keys the agent generates: ecdsa-p256, ecdsa-p384 or ed25519.
    #[arg(long, global = true, default_value = "ecdsa-p256")]
    key_algorithm: String,
    /// PKCS#11 module: generate device keys inside a token (secure element, TPM, SoftHSM)
    /// instead of a key file. Needs --pkcs11-token, and the user PIN in
    /// MEDSEC_AGENT_PKCS11_PIN or --pkcs11-pin-file.
    #[arg(long, global = true, env = "MEDSEC_AGENT_PKCS11_MODULE")]
    pkcs11_module: Option<PathBuf>,
    /// Label of the token that holds the device key.
    #[arg(long, global = true, env = "MEDSEC_AGENT_PKCS11_TOKEN")]
    pkcs11_token: Option<String>,
    /// File whose first line is the token's user PIN (instead of MEDSEC_AGENT_PKCS11_PIN).
    #[arg(long, global = true)]
    pkcs11_pin_file: Option<PathBuf>,
    /// Label of the device's first key in the token; later keys (rekey) get
    /// <label>-<unix time>, and the state directory records which one is current.
    #[arg(long, global = true, default_value = medsec_agent::DEFAULT_PKCS11_KEY_LABEL)]
    pkcs11_key_label: String,
    /// Timeout in seconds for each of connect, TLS handshake and request.
    #[arg(long, global = true, default_value_t = 10)]
    timeout_secs: u64,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// First enrollment with a one-time token.
    Enroll {
        /// The device's serial number.
        #[arg(long)]
        serial: String,
        /// The one-time enrollment token. Prefer --token-file or MEDSEC_AGENT_TOKEN: command
        /// lines are visible to other users of the machine.
        #[arg(
            long,
            env = "MEDSEC_AGENT_TOKEN",
            hide_env_values = true,
            allow_hyphen_values = true
        )]
        token: Option<String>,
        /// File whose first line is the token.
        #[arg(long, conflicts_with = "token")]
        token_file: Option<PathBuf>,
    },
    /// Re-enroll once two thirds of the certificate's validity have passed.
    Renew {
        /// Renew even if not due.
        #[arg(long)]
        force: bool,
        /// Generate a new key instead of keeping the current one.
        #[arg(long)]
        rekey: bool,
    },
    /// Ask the device gateway who we are (mTLS with the current certificate).
    Whoami,
    /// Show the local certificate and when it falls due for renewal.
    Status,
    /// Secure updates: TUF-verified images the director offers this device.
    #[command(subcommand)]
    Update(UpdateCmd),
    /// Security events: record them in the local spool, deliver them to the device gateway.
    #[command(subcommand)]
    Events(EventsCmd),
}

#[derive(Subcommand, Debug)]
enum EventsCmd {
    /// Validate one event and add it to the spool (fsynced); `flush` sends it.
    Record {
        /// auth-failure, certificate-rejected, config-changed, firmware-integrity-failure,
        /// update-failure, tamper, debug-port or unusual-connection.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: String,
        /// info, low, medium, high or critical.
        #[arg(long)]
        severity: String,
        /// Who made the change (config-changed only, and required there), e.g. local:tech.
        #[arg(long)]
        by: Option<String>,
        /// A detail for people reading the event; repeatable.
        #[arg(long = "detail", value_name = "KEY=VALUE")]
        details: Vec<String>,
        /// When it happened (RFC 3339); default: now.
        #[arg(long)]
        time: Option<String>,
    },
    /// Send the spooled events to the device gateway (mTLS with the device certificate).
    Flush,
    /// Validate a JSON array of events (wire form, ids included), spool it, then flush.
    Send {
        /// The JSON file.
        file: PathBuf,
    },
    /// Spooled and rejected events, and how the last flush went.
    Status,
}

#[derive(clap::Args, Debug)]
struct RepoArgs {
    /// TUF repository base URL (metadata/ and targets/ below it), e.g. http://host:8080/tuf
    #[arg(long, env = "MEDSEC_AGENT_TUF_URL")]
    tuf_url: String,
    /// The provisioned TUF root.json (trusted on first use only; newer roots are verified).
    #[arg(long, env = "MEDSEC_AGENT_TUF_ROOT")]
    tuf_root: PathBuf,
    /// JSON file of the director key(s) this device trusts.
    #[arg(long, env = "MEDSEC_AGENT_DIRECTOR_KEYS")]
    director_keys: PathBuf,
    /// This device's hardware revision (default: its model).
    #[arg(long, env = "MEDSEC_AGENT_HARDWARE_ID")]
    hardware_id: Option<String>,
}

#[derive(Subcommand, Debug)]
enum UpdateCmd {
    /// Ask the director, verify against the TUF repository, print the offer (installs nothing).
    Check(RepoArgs),
    /// Check, then download, verify and install into the inactive slot (pending until confirmed).
    Install(RepoArgs),
    /// Confirm the newly installed image after a successful boot.
    Confirm(RepoArgs),
    /// Switch back to the previous image.
    Revert(RepoArgs),
    /// Local slot state.
    Status(RepoArgs),
}

/// A mistake in how the command was called: exit code 2, like clap's own.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn usage(m: impl Into<String>) -> anyhow::Error {
    Usage(m.into()).into()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Usage>() => {
            eprintln!("error: {e}");
            eprintln!("\nFor more information, try '--help'.");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, skipping causes the message already quotes (the
/// library's messages include their source).
fn message(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let t = cause.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
    }
    msg
}

fn config(cli: &Cli) -> Result<AgentConfig> {
    let state_dir = cli
        .state_dir
        .clone()
        .ok_or_else(|| usage("--state-dir is required"))?;
    let trust_root = cli
        .trust_root
        .clone()
        .ok_or_else(|| usage("--trust-root is required"))?;
    let mut cfg = AgentConfig::new(
        cli.server_https.clone().unwrap_or_default(),
        cli.server_device.clone().unwrap_or_default(),
        cli.server_name.clone(),
        trust_root,
        state_dir,
    );
    cfg.profile_label = cli
        .profile
        .as_deref()
        .map(Name::parse)
        .transpose()
        .map_err(|e| usage(format!("--profile: {e}")))?;
    cfg.key_algorithm = cli
        .key_algorithm
        .parse::<KeyAlgorithm>()
        .map_err(|e| usage(format!("--key-algorithm: {e}")))?;
    if cli.timeout_secs == 0 {
        return Err(usage("--timeout-secs must be at least 1"));
    }
    let t = Duration::from_secs(cli.timeout_secs);
    cfg.timeouts = Timeouts {
        connect: t,
        handshake: t,
        request: t,
    };
    cfg.pkcs11 = pkcs11_config(cli)?;
    Ok(cfg)
}

/// The token settings, when --pkcs11-module is given.
fn pkcs11_config(cli: &Cli) -> Result<Option<Pkcs11KeyConfig>> {
    let (module, token) = match (&cli.pkcs11_module, &cli.pkcs11_token) {
        (None, None) => {
            if cli.pkcs11_pin_file.is_some() {
                return Err(usage(
                    "--pkcs11-pin-file needs --pkcs11-module and --pkcs11-token",
                ));
            }
            return Ok(None);
        }
        (Some(m), Some(t)) if !m.as_os_str().is_empty() && !t.is_empty() => (m, t),
        _ => {
            return Err(usage(
                "--pkcs11-module and --pkcs11-token go together (a token key needs both)",
            ));
        }
    };
    let pin = match &cli.pkcs11_pin_file {
        Some(p) => {
            let text = Zeroizing::new(
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            );
            // Only the line ending is cut: anything else may be part of the PIN.
            Zeroizing::new(
                text.lines()
                    .next()
                    .unwrap_or("")
                    .trim_end_matches('\r')
                    .to_owned(),
            )
        }
        None => match std::env::var(PIN_ENV) {
            Ok(v) => Zeroizing::new(v),
            Err(std::env::VarError::NotPresent) => {
                return Err(usage(format!(
                    "a PKCS#11 token needs its user PIN in {PIN_ENV} or --pkcs11-pin-file"
                )));
            }
            Err(std::env::VarError::NotUnicode(_)) => bail!("{PIN_ENV} is not valid UTF-8"),
        },
    };
    if pin.is_empty() {
        bail!("the PKCS#11 user PIN is empty");
    }
    let mut p = Pkcs11KeyConfig::new(module.clone(), token.clone(), pin);
    p.key_label = cli.pkcs11_key_label.clone();
    Ok(Some(p))
}

fn need(v: &Option<String>, flag: &str, cmd: &str) -> Result<()> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(()),
        _ => Err(usage(format!("{cmd} needs {flag} <host:port>"))),
    }
}

fn when(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn run(cli: Cli) -> Result<()> {
    let cfg = config(&cli)?;
    // Check the command's own arguments before touching files or the network.
    let enroll = match &cli.command {
        Command::Enroll { .. } => Some(enroll_args(&cli.command)?),
        _ => None,
    };
    let new_event = match &cli.command {
        Command::Events(e @ EventsCmd::Record { .. }) => Some(record_args(e)?),
        _ => None,
    };
    match &cli.command {
        Command::Enroll { .. } | Command::Renew { .. } => {
            need(&cli.server_https, "--server-https", "this command")?
        }
        Command::Whoami => need(&cli.server_device, "--server-device", "whoami")?,
        Command::Status => {}
        Command::Events(e) => {
            if matches!(e, EventsCmd::Flush | EventsCmd::Send { .. }) {
                need(
                    &cli.server_device,
                    "--server-device",
                    "events flush and send",
                )?
            }
        }
        Command::Update(u) => {
            if !matches!(u, UpdateCmd::Status(_)) {
                need(&cli.server_device, "--server-device", "update")?
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if let Command::Events(e) = &cli.command {
        // Not through `Agent::new`: recording must work even when the trust root, which only
        // a flush needs, cannot be read.
        let reporter = EventReporter::new(cfg);
        return rt.block_on(events(&cli, &reporter, e, new_event));
    }
    let agent = Agent::new(cfg)?;
    match &cli.command {
        Command::Enroll { .. } => {
            let Some((serial, token)) = &enroll else {
                bail!("enroll arguments were not checked");
            };
            let info = rt.block_on(agent.enroll(serial, token))?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!(
                    "enrolled {}: certificate {}, valid until {}; stored in {}",
                    info.device.as_deref().unwrap_or(serial.as_str()),
                    info.serial,
                    when(info.not_after),
                    agent.certificate_path().display()
                );
            }
        }
        Command::Renew { force, rekey } => {
            let out = rt.block_on(agent.renew_if_due(OffsetDateTime::now_utc(), *force, *rekey))?;
            let replaced =
                |what: &str, old: &medsec_core::CertSerial, new: &medsec_agent::CertInfo| {
                    (
                        format!(
                            "{what}: certificate {old} replaced by {}, valid until {}",
                            new.serial,
                            when(new.not_after)
                        ),
                        serde_json::json!({"outcome": what, "old": old, "certificate": new}),
                    )
                };
            let (line, v) = match &out {
                RenewOutcome::NotDue { current, due_at } => (
                    format!(
                        "not due: certificate {} renews after {} (use --force to renew now)",
                        current.serial,
                        when(*due_at)
                    ),
                    serde_json::json!({"outcome": "not-due", "certificate": current, "due_at": when(*due_at)}),
                ),
                RenewOutcome::Renewed { old, new } => replaced("renewed", old, new),
                RenewOutcome::Rekeyed { old, new } => replaced("rekeyed", old, new),
                other => (
                    format!("{other:?}"),
                    serde_json::json!({"outcome": "other"}),
                ),
            };
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{line}");
            }
        }
        Command::Update(u) => rt.block_on(update(&cli, cfg_for_update(&cli)?, u))?,
        Command::Events(_) => bail!("events commands are handled before the agent is opened"),
        Command::Whoami => {
            let w = rt.block_on(agent.whoami())?;
            println!("{}", serde_json::to_string_pretty(&w)?);
        }
        Command::Status => {
            let s = agent.status(OffsetDateTime::now_utc())?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                let c = &s.certificate;
                println!("state:        {}", s.state_dir.display());
                println!("device:       {}", c.device.as_deref().unwrap_or("-"));
                println!("subject:      {}", c.subject);
                println!("certificate:  {}", c.serial);
                println!("key:          {} ({})", s.key_algorithm, s.key_location);
                println!(
                    "valid:        {} .. {}",
                    when(c.not_before),
                    when(c.not_after)
                );
                println!(
                    "renew after:  {}{}",
                    when(s.renew_after),
                    if s.expired {
                        " (EXPIRED: enroll again with a new token)"
                    } else if s.renewal_due {
                        " (due now: run `renew`)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    Ok(())
}

fn cfg_for_update(cli: &Cli) -> Result<AgentConfig> {
    config(cli)
}

/// `update check|install|confirm|revert|status`, with status reports to the director.
async fn update(cli: &Cli, cfg: AgentConfig, cmd: &UpdateCmd) -> Result<()> {
    use medsec_agent::update::ReportedStatus;
    let (UpdateCmd::Check(r)
    | UpdateCmd::Install(r)
    | UpdateCmd::Confirm(r)
    | UpdateCmd::Revert(r)
    | UpdateCmd::Status(r)) = cmd;
    let mut ucfg = UpdateConfig::new(cfg, &r.tuf_url, &r.tuf_root, &r.director_keys);
    ucfg.hardware_id = r.hardware_id.clone();
    let client = UpdateClient::new(ucfg)?;
    let print = |v: serde_json::Value, line: String| {
        if cli.json {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        } else {
            println!("{line}");
        }
    };
    match cmd {
        UpdateCmd::Status(_) => {
            let s = client.status()?;
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        UpdateCmd::Confirm(_) => {
            let img = client.confirm().await?;
            client
                .report_status(
                    &img.rollout,
                    &img.target,
                    ReportedStatus::Confirmed,
                    "booted and confirmed",
                )
                .await?;
            print(
                serde_json::json!({"confirmed": img}),
                format!("confirmed {} ({})", img.target, img.version),
            );
        }
        UpdateCmd::Revert(_) => {
            let rv = client.revert().await?;
            if let Some(a) = &rv.abandoned {
                client
                    .report_status(
                        &a.rollout,
                        &a.target,
                        ReportedStatus::Reverted,
                        "reverted by operator",
                    )
                    .await?;
            }
            print(
                serde_json::json!(rv),
                format!("reverted to slot {:?}", rv.slot),
            );
        }
        UpdateCmd::Check(_) | UpdateCmd::Install(_) => {
            if let Some(rv) = client.revert_if_pending().await?
                && let Some(a) = &rv.abandoned
            {
                client
                    .report_status(
                        &a.rollout,
                        &a.target,
                        ReportedStatus::Reverted,
                        "not confirmed before the next check",
                    )
                    .await?;
            }
            let Some(offer) = client.check().await? else {
                print(
                    serde_json::json!({"offer": null}),
                    "no update offered".into(),
                );
                return Ok(());
            };
            let (rollout, target) = (
                offer.instruction.rollout.clone(),
                offer.instruction.target.clone(),
            );
            if matches!(cmd, UpdateCmd::Check(_)) {
                print(
                    serde_json::json!({"offer": {"instruction": offer.instruction, "release": offer.release}}),
                    format!(
                        "offered {target} (version {}, security version {}) by rollout {rollout}",
                        offer.release.version, offer.release.security_version
                    ),
                );
                return Ok(());
            }
            client
                .report_status(&rollout, &target, ReportedStatus::Downloading, "")
                .await?;
            match client.install(&offer, None).await {
                Ok(done) => {
                    client
                        .report_status(
                            &rollout,
                            &target,
                            ReportedStatus::Installed,
                            "pending confirmation",
                        )
                        .await?;
                    print(
                        serde_json::json!({"installed": done.image, "slot": done.slot}),
                        format!(
                            "installed {target} into slot {:?}; confirm after boot",
                            done.slot
                        ),
                    );
                }
                Err(e) => {
                    // The report is best effort: the refusal is what the operator must see.
                    let _ = client
                        .report_status(&rollout, &target, ReportedStatus::Failed, &e.to_string())
                        .await;
                    return Err(e.into());
                }
            }
        }
    }
    Ok(())
}

/// `events record|flush|send|status`.
async fn events(
    cli: &Cli,
    reporter: &EventReporter,
    cmd: &EventsCmd,
    new_event: Option<NewEvent>,
) -> Result<()> {
    match cmd {
        EventsCmd::Record { .. } => {
            let Some(ev) = new_event else {
                bail!("record arguments were not checked");
            };
            let (event_type, severity) = (ev.event_type, ev.severity);
            let r = reporter.record(ev)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "recorded {event_type} event {} ({})",
                    r.id,
                    severity.as_str()
                );
                if r.dropped > 0 {
                    println!(
                        "the spool was full: {} older events dropped to make room",
                        r.dropped
                    );
                }
            }
        }
        EventsCmd::Flush => {
            let report = flush(reporter).await?;
            print_flush(cli, &report, serde_json::json!(report))?;
            rejected_is_an_error(reporter, &report)?;
        }
        EventsCmd::Send { file } => {
            let json = read_events_file(file)?;
            let spooled = reporter
                .spool_batch(&json)
                .with_context(|| format!("{} was not spooled", file.display()))?;
            if !cli.json {
                println!(
                    "spooled {} events from {}{}",
                    spooled.spooled.len(),
                    file.display(),
                    if spooled.already_spooled > 0 {
                        format!(" ({} were spooled already)", spooled.already_spooled)
                    } else {
                        String::new()
                    }
                );
            }
            let report = flush(reporter).await?;
            print_flush(
                cli,
                &report,
                serde_json::json!({"spooled": spooled, "flush": report}),
            )?;
            rejected_is_an_error(reporter, &report)?;
        }
        EventsCmd::Status => {
            let s = reporter.status()?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                let by: Vec<String> = s
                    .by_severity
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect();
                println!("spool:        {}", s.dir.display());
                println!(
                    "spooled:      {} events, {} bytes{}",
                    s.spooled,
                    s.spool_bytes,
                    if by.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", by.join(", "))
                    }
                );
                println!("rejected:     {}", s.rejected);
                println!(
                    "dropped:      {} (not yet reported: {})",
                    s.dropped_total, s.dropped_pending
                );
                match &s.last_flush {
                    None => println!("last flush:   never"),
                    Some(l) => println!(
                        "last flush:   {}: {} delivered, {} rejected, {} remaining{}",
                        when(l.at),
                        l.report.delivered,
                        l.report.rejected,
                        l.report.remaining,
                        l.error
                            .as_deref()
                            .map(|e| format!("; stopped: {e}"))
                            .unwrap_or_default()
                    ),
                }
            }
        }
    }
    Ok(())
}

/// A flush; on failure, the error says that nothing is lost.
async fn flush(reporter: &EventReporter) -> Result<FlushReport> {
    match reporter.flush().await {
        Ok(r) => Ok(r),
        Err(e) => {
            let left = reporter.status().map(|s| s.spooled).unwrap_or(0);
            bail!("{e}; {left} events stay spooled for the next flush")
        }
    }
}

fn print_flush(cli: &Cli, r: &FlushReport, json: serde_json::Value) -> Result<()> {
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    if r.batches == 0 {
        println!("nothing to send");
        return Ok(());
    }
    println!(
        "delivered {} events in {} requests ({} new, {} already stored), {} rejected, {} still spooled",
        r.delivered, r.batches, r.accepted, r.duplicates, r.rejected, r.remaining
    );
    for i in &r.incidents {
        println!(
            "incident {} {} by rule {}",
            i.incident,
            if i.opened { "opened" } else { "updated" },
            i.rule
        );
    }
    Ok(())
}

/// Events the server refused are not delivered: the exit code must say so.
fn rejected_is_an_error(reporter: &EventReporter, r: &FlushReport) -> Result<()> {
    if r.rejected > 0 {
        bail!(
            "the server refused {} events; they were moved to {} with its reasons",
            r.rejected,
            reporter.rejected_path().display()
        );
    }
    Ok(())
}

fn read_events_file(p: &std::path::Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    let mut data = Vec::new();
    f.take(medsec_agent::events::MAX_SEND_FILE + 1)
        .read_to_end(&mut data)
        .with_context(|| format!("reading {}", p.display()))?;
    if data.len() as u64 > medsec_agent::events::MAX_SEND_FILE {
        bail!(
            "{} is larger than {} bytes; send it in parts",
            p.display(),
            medsec_agent::events::MAX_SEND_FILE
        );
    }
    Ok(data)
}

/// The record command's event, checked against the server's rules (a mistake there is a
/// usage error: exit code 2).
fn record_args(cmd: &EventsCmd) -> Result<NewEvent> {
    let EventsCmd::Record {
        event_type,
        severity,
        by,
        details,
        time,
    } = cmd
    else {
        bail!("not a record command");
    };
    let t = EventType::parse(event_type).ok_or_else(|| {
        usage(format!(
            "--type: unknown event type {event_type:?}; expected one of {}",
            EventType::ALL.map(EventType::as_str).join(", ")
        ))
    })?;
    let sev: Severity = serde_json::from_value(serde_json::Value::String(severity.clone()))
        .map_err(|_| {
            usage(format!(
                "--severity: {severity:?} is not info, low, medium, high or critical"
            ))
        })?;
    let mut ev = NewEvent::new(t, sev);
    match by {
        Some(b) => ev = ev.by(b),
        None if t == EventType::ConfigChanged => {
            return Err(usage(
                "config-changed events need --by <actor>: who made the change, e.g. local:tech",
            ));
        }
        None => {}
    }
    for d in details {
        let Some((k, v)) = d.split_once('=') else {
            return Err(usage(format!("--detail {d:?}: expected KEY=VALUE")));
        };
        if ev.details.contains_key(k) {
            return Err(usage(format!("--detail: key {k:?} given twice")));
        }
        ev = ev.detail(k, v);
    }
    if let Some(t) = time {
        let at = OffsetDateTime::parse(t, &Rfc3339)
            .map_err(|e| usage(format!("--time {t:?}: not an RFC 3339 time: {e}")))?;
        ev = ev.at(at);
    }
    ev.validate().map_err(|e| match e {
        AgentError::InvalidEvent(m) => usage(as_flags(&m)),
        other => other.into(),
    })?;
    Ok(ev)
}

/// A validation message in terms of the command's flags: `by: …` is about --by,
/// `details.<key>: …` about one --detail.
fn as_flags(m: &str) -> String {
    if let Some(rest) = m.strip_prefix("details.")
        && let Some((key, why)) = rest.rsplit_once(": ")
    {
        return format!("--detail {key:?}: {why}");
    }
    if let Some(rest) = m.strip_prefix("details: ") {
        return format!("--detail: {rest}");
    }
    if let Some(rest) = m.strip_prefix("by: ") {
        return format!("--by: {rest}");
    }
    m.to_owned()
}

/// The enroll command's serial and token, checked.
fn enroll_args(cmd: &Command) -> Result<(DeviceSerial, String)> {
    let Command::Enroll {
        serial,
        token,
        token_file,
    } = cmd
    else {
        bail!("not an enroll command");
    };
    let serial = DeviceSerial::parse(serial).map_err(|e| usage(format!("--serial: {e}")))?;
    let token = match (token, token_file) {
        (Some(t), _) => t.trim().to_owned(),
        (None, Some(p)) => std::fs::read_to_string(p)
            .with_context(|| format!("reading {}", p.display()))?
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned(),
        (None, None) => {
            return Err(usage(
                "enroll needs --token, --token-file or MEDSEC_AGENT_TOKEN",
            ));
        }
    };
    if token.is_empty() {
        bail!("the enrollment token is empty");
    }
    Ok((serial, token))
}

#[cfg(test)]
mod cli_tests {
    use super::*;

    #[test]
    fn a_token_may_start_with_a_hyphen() {
        // Tokens are random base64url: one in 64 starts with '-'.
        let cli = Cli::try_parse_from([
            "medsec-agent",
            "enroll",
            "--serial",
            "SN-1",
            "--token",
            "-3rIssUdwULpl3zW5seA1ElaB0xvhswJRAK6sli5M3c",
        ])
        .unwrap();
        match cli.command {
            Command::Enroll { token, .. } => {
                assert_eq!(
                    token.as_deref(),
                    Some("-3rIssUdwULpl3zW5seA1ElaB0xvhswJRAK6sli5M3c")
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
