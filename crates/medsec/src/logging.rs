//! The log subscriber: human-readable lines by default; for `serve --log-format json` (or
//! `server.log_format = "json"`), one JSON object per line, which log collectors ingest
//! without parsing rules.
//!
//! Chosen before the runtime starts, so the configuration file is read here once more for
//! `serve`; a file that does not parse falls back to text and its error is reported later by
//! the command itself, with context.

use std::sync::OnceLock;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::{Cli, Command, LogFormat};

static JSON: OnceLock<bool> = OnceLock::new();

/// Whether logs are JSON lines.
pub fn json() -> bool {
    JSON.get().copied().unwrap_or(false)
}

fn format_for(cli: &Cli) -> LogFormat {
    let Command::Serve(args) = &cli.command else {
        return LogFormat::Text;
    };
    if let Some(f) = args.log_format {
        return f;
    }
    crate::config::Config::load(&cli.data_dir, cli.config.as_deref())
        .map(|c| c.server.log_format)
        .unwrap_or(LogFormat::Text)
}

/// Installs the subscriber on stderr. `RUST_LOG` filters either way; without it text shows
/// warnings and errors (an interactive tool should be quiet), JSON also shows info (issued
/// certificates, purges), since a collector filters after the fact.
pub fn init(cli: &Cli) {
    let json = format_for(cli) == LogFormat::Json;
    let _ = JSON.set(json);
    let default = if json { "info,sqlx=warn" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.event_format(JsonLines).init();
    } else {
        b.init();
    }
}

/// One JSON object per event: `timestamp` (RFC 3339, UTC), `level`, `target`, `message`,
/// then the event's own fields. Our own formatter rather than tracing-subscriber's `json`:
/// that one omits `message` for events that have none (sqlx's query events), and collectors
/// index on it; here such an event's `message` is its callsite name.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut fields = JsonFields(Map::new());
        event.record(&mut fields);
        let mut obj = Map::new();
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        obj.insert("timestamp".into(), Value::String(now));
        obj.insert("level".into(), Value::String(meta.level().as_str().into()));
        obj.insert("target".into(), Value::String(meta.target().into()));
        let message = fields
            .0
            .remove("message")
            .unwrap_or_else(|| Value::String(meta.name().into()));
        obj.insert("message".into(), message);
        // A field named like one of the keys above does not replace it.
        for (k, v) in fields.0 {
            obj.entry(k).or_insert(v);
        }
        let line = serde_json::to_string(&Value::Object(obj)).map_err(|_| std::fmt::Error)?;
        writeln!(w, "{line}")
    }
}

/// Collects an event's fields as JSON values (numbers and booleans kept as such).
struct JsonFields(Map<String, Value>);

impl Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().into(), Value::String(value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities are not JSON numbers: kept as their text.
        let v = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.0.insert(field.name().into(), v);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

/// A progress note for the operator: a plain line in text mode, an info event in JSON mode
/// (where a bare line would break "one object per line").
pub fn note(msg: &str) {
    if json() {
        tracing::info!("{msg}");
    } else {
        eprintln!("{msg}");
    }
}

/// The error a command ended with, in the log's format.
pub fn fatal(e: &anyhow::Error) {
    if json() {
        tracing::error!("{e:#}");
    } else {
        eprintln!("error: {e:#}");
    }
}
