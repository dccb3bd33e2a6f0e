//! The crate's single error type; every variant says which file or value, and where, went wrong.

/// Why a risk-management input was refused.
///
/// Parse errors carry the 1-based line and the field name because the files are edited by hand
/// and reviewed by people who need to find the offending line, not a byte offset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RiskError {
    /// A TOML file does not parse or does not match the schema (unknown field, wrong type, bad value).
    #[error("{file}: line {line}, column {column}{}: {message}", field_suffix(.field))]
    Syntax {
        file: &'static str,
        line: usize,
        column: usize,
        field: Option<String>,
        message: String,
    },
    /// The file parses but breaks a cross-reference rule (dangling reference, duplicate id, cycle).
    /// `line` is `None` only for values built in code rather than read from a file.
    #[error("{file}{}, field `{field}`: {message}", line_suffix(.line))]
    Invalid {
        file: &'static str,
        line: Option<usize>,
        field: String,
        message: String,
    },
    /// A JSON document (Threat Dragon model) does not parse.
    #[error("{file}: line {line}, column {column}: {message}")]
    Json {
        file: &'static str,
        line: usize,
        column: usize,
        message: String,
    },
    /// A level name is not on the policy's scale.
    #[error("unknown {scale} level {value:?} (known: {known})")]
    UnknownLevel {
        scale: &'static str,
        value: String,
        known: String,
    },
    /// A CVSS vector is malformed or of an unsupported version.
    #[error("CVSS vector {vector:?}: {reason}")]
    Cvss { vector: String, reason: String },
    /// An operation names an object that does not exist.
    #[error("no {kind} with id {id:?}")]
    NotFound { kind: &'static str, id: String },
    /// The store failed or refused (a concurrent edit is `Conflict`).
    #[error(transparent)]
    Store(#[from] medsec_core::StoreError),
    /// Serialising a value failed (should not happen for well-formed values; kept for honesty).
    #[error("cannot serialise {what}: {message}")]
    Serialize { what: &'static str, message: String },
}

fn field_suffix(field: &Option<String>) -> String {
    match field {
        Some(f) => format!(", field `{f}`"),
        None => String::new(),
    }
}

fn line_suffix(line: &Option<usize>) -> String {
    match line {
        Some(l) => format!(": line {l}"),
        None => String::new(),
    }
}

/// 1-based line and column of a byte offset; offsets past the end clamp to the last position
/// so a span from the parser can never panic here.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut cut = offset.min(src.len());
    while !src.is_char_boundary(cut) {
        cut -= 1;
    }
    let before = &src[..cut];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Turns a toml error into [`RiskError::Syntax`]. The field is recovered from the source text
/// under the error span when that text is a bare or quoted key (true for "unknown field" and
/// for bad values, where toml points at the key's value; then the key is read from the line).
pub(crate) fn toml_error(file: &'static str, src: &str, err: &toml::de::Error) -> RiskError {
    let span = err.span().unwrap_or(0..0);
    let (line, column) = line_col(src, span.start);
    let message = err.message().trim().to_owned();
    RiskError::Syntax {
        file,
        line,
        column,
        field: field_at(src, span, &message),
        message,
    }
}

fn field_at(src: &str, span: std::ops::Range<usize>, message: &str) -> Option<String> {
    // toml names unknown/missing fields in backticks; that is the most precise source.
    if let Some(rest) = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))
    {
        return rest.split('`').next().map(str::to_owned);
    }
    // When `=` precedes the span on its line, the span covers a value and the key is what
    // precedes the `=`; otherwise the span covers the key itself.
    let line_start = src.get(..span.start)?.rfind('\n').map_or(0, |i| i + 1);
    let head = src.get(line_start..span.start)?;
    if let Some((key, _)) = head.split_once('=') {
        let key = key.trim();
        return is_key(key).then(|| key.trim_matches('"').to_owned());
    }
    let text = src.get(span)?;
    is_key(text).then(|| text.trim_matches('"').to_owned())
}

fn is_key(s: &str) -> bool {
    let s = s.trim_matches('"');
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

pub(crate) fn toml_ser_error(what: &'static str, err: toml::ser::Error) -> RiskError {
    RiskError::Serialize {
        what,
        message: err.to_string(),
    }
}

/// The line of `field = ...` in the array-of-tables element whose header starts at
/// `span.start` (toml spans such elements by their `[[...]]` header only, so the element is
/// taken to run until the next `[[` header), or the header's line when the field is absent.
pub(crate) fn field_line(src: &str, span: std::ops::Range<usize>, field: &str) -> usize {
    let start = span.start.min(src.len());
    let body = src.get(start..).unwrap_or("");
    let mut offset = start;
    for (n, l) in body.split_inclusive('\n').enumerate() {
        let t = l.trim_start();
        if n > 0 && t.starts_with("[[") {
            break;
        }
        if let Some(rest) = t.strip_prefix(field)
            && rest.trim_start().starts_with('=')
        {
            return line_col(src, offset).0;
        }
        offset += l.len();
    }
    line_col(src, start).0
}
