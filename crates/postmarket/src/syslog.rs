//! RFC 5424 syslog messages over TLS (RFC 5425 octet-counting frames) mapped to device security events.
//!
//! Three layers, each usable alone: [`FrameDecoder`] cuts a TLS byte stream into frames,
//! [`parse_message`] checks one frame against the RFC 5424 grammar, and [`to_event`] turns
//! the `medsec@32473` structured-data element into an [`Event`] with the same rules as
//! [`crate::parse_batch`]. Everything is strict: a relay that parses more leniently than we
//! do could otherwise make two systems disagree about what a message said.

use std::collections::BTreeMap;
use std::fmt;

use medsec_core::{Actor, DeviceId};
use sha2::{Digest, Sha256};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::PostmarketError;
use crate::event::{
    Event, EventId, EventKind, EventType, MAX_DETAIL_KEY, MAX_DETAIL_VALUE, MAX_DETAILS, Severity,
};

/// The structured-data element that carries a device security event. 32473 is the
/// documentation enterprise number (RFC 5612) until the project registers its own.
pub const MEDSEC_SD_ID: &str = "medsec@32473";

/// The frame size RFC 5425 section 4.3.1 says receivers SHOULD accept.
pub const DEFAULT_MAX_FRAME: usize = 8192;

/// Longest MSG-LEN accepted, in digits. Nine digits fit a `usize` on every target, so the
/// length can be accumulated without overflow checks, and a peer cannot keep us reading a
/// length field forever.
pub const MAX_LEN_DIGITS: usize = 9;

const MAX_HOSTNAME: usize = 255;
const MAX_APP_NAME: usize = 48;
const MAX_PROCID: usize = 128;
const MAX_MSGID: usize = 32;
const MAX_SD_NAME: usize = 32;
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Incremental decoder for RFC 5425 / RFC 6587 octet-counted frames (`MSG-LEN SP SYSLOG-MSG`).
///
/// Feed whatever the TLS layer returns with [`push`](Self::push), then call
/// [`next_frame`](Self::next_frame) until it returns `Ok(None)`. Done that way, the bytes
/// held between reads never exceed `max_frame + MAX_LEN_DIGITS + 1`, because a length over
/// the limit is refused as soon as its digits show it, before the body arrives.
///
/// Errors are final: once the stream is out of step there is no way to find the next frame
/// boundary, so every later call returns the same error and pushed bytes are dropped. The
/// caller is expected to close the connection.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`; consumed bytes are dropped lazily in `push` so
    /// a chunk holding many small frames is not shifted once per frame.
    start: usize,
    max_frame: usize,
    failed: Option<String>,
}

impl FrameDecoder {
    /// A decoder that refuses frames whose SYSLOG-MSG is longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            max_frame,
            failed: None,
        }
    }

    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Appends bytes read from the connection. Ignored once the decoder has failed.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as a frame. Non-zero when the peer closes means it
    /// closed in the middle of a frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or an error that ends
    /// the stream.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, PostmarketError> {
        if let Some(message) = &self.failed {
            return Err(frame_error(message.clone()));
        }
        match self.decode() {
            Ok(frame) => Ok(frame),
            Err(message) => {
                self.buf = Vec::new();
                self.start = 0;
                self.failed = Some(message.clone());
                Err(frame_error(message))
            }
        }
    }

    fn decode(&mut self) -> Result<Option<Vec<u8>>, String> {
        let avail = &self.buf[self.start..];
        let mut len: usize = 0;
        let mut digits = 0;
        loop {
            let Some(&b) = avail.get(digits) else {
                return Ok(None);
            };
            match b {
                b' ' if digits > 0 => break,
                b'0' if digits == 0 => {
                    return Err("MSG-LEN must not start with a zero".into());
                }
                b'0'..=b'9' => {
                    if digits == MAX_LEN_DIGITS {
                        return Err(format!("MSG-LEN is longer than {MAX_LEN_DIGITS} digits"));
                    }
                    len = len * 10 + usize::from(b - b'0');
                    // Digits only ever make the value larger, so refusing on a prefix is
                    // already final and spares waiting for the rest of the header.
                    if len > self.max_frame {
                        return Err(format!(
                            "frame length exceeds the limit of {} bytes",
                            self.max_frame
                        ));
                    }
                    digits += 1;
                }
                b'<' if digits == 0 => {
                    return Err("expected octet-counting framing (RFC 5425), got a message \
                                without MSG-LEN (non-transparent framing is not accepted)"
                        .into());
                }
                _ => {
                    return Err(format!(
                        "MSG-LEN: expected a digit or space, found {}",
                        show(b)
                    ));
                }
            }
        }
        let body = digits + 1;
        if avail.len() - body < len {
            return Ok(None);
        }
        let frame = avail[body..body + len].to_vec();
        self.start += body + len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(frame))
    }
}

fn frame_error(message: String) -> PostmarketError {
    PostmarketError::Invalid {
        what: "syslog frame",
        message,
    }
}

/// One SD-ELEMENT: its SD-ID and its parameters in message order. A name may repeat
/// (RFC 5424 section 6.3.3 allows it), so parameters are a list, not a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdElement {
    id: String,
    params: Vec<(String, String)>,
}

impl SdElement {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Parameters with escapes already resolved.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The first value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An RFC 5424 message that passed [`parse_message`]. NILVALUE fields are `None`. The raw
/// bytes are kept because [`to_event`] derives a replay-stable event id from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogMessage {
    pri: u8,
    timestamp: OffsetDateTime,
    hostname: Option<String>,
    app_name: Option<String>,
    procid: Option<String>,
    msgid: Option<String>,
    structured_data: Vec<SdElement>,
    msg: Option<String>,
    raw: Vec<u8>,
}

impl SyslogMessage {
    /// PRI value, 0..=191.
    pub fn pri(&self) -> u8 {
        self.pri
    }

    /// Facility code, 0..=23 (RFC 5424 table 1).
    pub fn facility(&self) -> u8 {
        self.pri / 8
    }

    /// Syslog severity code, 0 (emergency) ..= 7 (debug) (RFC 5424 table 2).
    pub fn severity(&self) -> u8 {
        self.pri % 8
    }

    pub fn timestamp(&self) -> OffsetDateTime {
        self.timestamp
    }

    pub fn hostname(&self) -> Option<&str> {
        self.hostname.as_deref()
    }

    pub fn app_name(&self) -> Option<&str> {
        self.app_name.as_deref()
    }

    pub fn procid(&self) -> Option<&str> {
        self.procid.as_deref()
    }

    pub fn msgid(&self) -> Option<&str> {
        self.msgid.as_deref()
    }

    /// SD elements in message order; empty for NILVALUE.
    pub fn structured_data(&self) -> &[SdElement] {
        &self.structured_data
    }

    /// The element with this SD-ID; there is at most one.
    pub fn sd_element(&self, id: &str) -> Option<&SdElement> {
        self.structured_data.iter().find(|e| e.id == id)
    }

    /// MSG without its BOM; `None` when the message ends after STRUCTURED-DATA.
    pub fn msg(&self) -> Option<&str> {
        self.msg.as_deref()
    }

    /// The SYSLOG-MSG bytes exactly as received (without the frame's MSG-LEN).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
}

/// A parse failure: which part of the grammar and where, so a gateway operator can find it.
struct At {
    field: &'static str,
    pos: usize,
    message: String,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}: {}", self.field, self.pos, self.message)
    }
}

impl From<At> for PostmarketError {
    fn from(at: At) -> Self {
        PostmarketError::Invalid {
            what: "syslog message",
            message: at.to_string(),
        }
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn fail(&self, field: &'static str, message: impl Into<String>) -> At {
        At {
            field,
            pos: self.pos,
            message: message.into(),
        }
    }

    fn expect(&mut self, field: &'static str, want: u8, what: &str) -> Result<(), At> {
        match self.peek() {
            Some(b) if b == want => {
                self.pos += 1;
                Ok(())
            }
            Some(b) => Err(self.fail(field, format!("expected {what}, found {}", show(b)))),
            None => Err(self.fail(field, format!("expected {what}, found end of message"))),
        }
    }

    fn sp(&mut self, after: &'static str) -> Result<(), At> {
        self.expect(after, b' ', "a space")
    }

    /// Bytes up to the next space or the end, not consuming the space.
    fn token(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(|b| b != b' ') {
            self.pos += 1;
        }
        &self.b[start..self.pos]
    }
}

fn show(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", char::from(b))
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// Parses one SYSLOG-MSG (the frame body, without MSG-LEN) against the RFC 5424 grammar.
///
/// Stricter than the RFC in two places, both because an event needs them: TIMESTAMP must
/// not be NILVALUE, and MSG must be UTF-8 whether or not it starts with a BOM. An unescaped
/// `]` inside a parameter value is refused (the RFC says it MUST be escaped) because a
/// relay that ends the element there would read a different message than we do.
pub fn parse_message(bytes: &[u8]) -> Result<SyslogMessage, PostmarketError> {
    let mut c = Cursor { b: bytes, pos: 0 };
    let pri = parse_pri(&mut c)?;
    parse_version(&mut c)?;
    c.sp("VERSION")?;
    let ts_pos = c.pos;
    let ts = c.token();
    let timestamp = parse_timestamp(ts).map_err(|message| At {
        field: "TIMESTAMP",
        pos: ts_pos,
        message,
    })?;
    c.sp("TIMESTAMP")?;
    let hostname = header_field(&mut c, "HOSTNAME", MAX_HOSTNAME)?;
    c.sp("HOSTNAME")?;
    let app_name = header_field(&mut c, "APP-NAME", MAX_APP_NAME)?;
    c.sp("APP-NAME")?;
    let procid = header_field(&mut c, "PROCID", MAX_PROCID)?;
    c.sp("PROCID")?;
    let msgid = header_field(&mut c, "MSGID", MAX_MSGID)?;
    c.sp("MSGID")?;
    let structured_data = parse_structured_data(&mut c)?;
    let msg = match c.peek() {
        None => None,
        Some(b' ') => {
            c.pos += 1;
            let body = &bytes[c.pos..];
            let (body, start) = match body.strip_prefix(BOM) {
                Some(rest) => (rest, c.pos + BOM.len()),
                None => (body, c.pos),
            };
            let text = std::str::from_utf8(body).map_err(|e| At {
                field: "MSG",
                pos: start + e.valid_up_to(),
                message: "not valid UTF-8".into(),
            })?;
            Some(text.to_owned())
        }
        Some(b) => {
            return Err(c
                .fail(
                    "STRUCTURED-DATA",
                    format!(
                        "expected a space or the end of the message, found {}",
                        show(b)
                    ),
                )
                .into());
        }
    };
    Ok(SyslogMessage {
        pri,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        structured_data,
        msg,
        raw: bytes.to_vec(),
    })
}

fn parse_pri(c: &mut Cursor<'_>) -> Result<u8, At> {
    c.expect("PRI", b'<', "'<'")?;
    let start = c.pos;
    let digits = c.b[start..]
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 {
        return Err(c.fail("PRI", "expected a number"));
    }
    if digits > 3 {
        return Err(c.fail("PRI", "more than 3 digits"));
    }
    let text = &c.b[start..start + digits];
    if digits > 1 && text[0] == b'0' {
        return Err(c.fail("PRI", "leading zeros are not allowed"));
    }
    let value = text
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    let pri = u8::try_from(value)
        .ok()
        .filter(|p| *p <= 191)
        .ok_or_else(|| c.fail("PRI", format!("{value} is out of range 0..=191")))?;
    c.pos += digits;
    c.expect("PRI", b'>', "'>'")?;
    Ok(pri)
}

fn parse_version(c: &mut Cursor<'_>) -> Result<(), At> {
    let start = c.pos;
    let v = c.token();
    if v == b"1" {
        return Ok(());
    }
    let shown = String::from_utf8_lossy(&v[..v.len().min(8)]).into_owned();
    Err(At {
        field: "VERSION",
        pos: start,
        message: format!("unsupported version {shown:?}, only 1 is accepted"),
    })
}

/// HOSTNAME, APP-NAME, PROCID or MSGID: NILVALUE or 1..=max PRINTUSASCII.
fn header_field(c: &mut Cursor<'_>, field: &'static str, max: usize) -> Result<Option<String>, At> {
    let start = c.pos;
    let t = c.token();
    let fail = |message: String| At {
        field,
        pos: start,
        message,
    };
    if t.is_empty() {
        return Err(fail("empty; use '-' for no value".into()));
    }
    if t == b"-" {
        return Ok(None);
    }
    if t.len() > max {
        return Err(fail(format!("longer than {max} characters")));
    }
    if let Some(i) = t.iter().position(|b| !is_printusascii(*b)) {
        return Err(At {
            field,
            pos: start + i,
            message: format!("{} is not printable US-ASCII", show(t[i])),
        });
    }
    // Every byte is ASCII, so this never replaces anything.
    Ok(Some(String::from_utf8_lossy(t).into_owned()))
}

fn is_printusascii(b: u8) -> bool {
    (33..=126).contains(&b)
}

fn is_sd_name_char(b: u8) -> bool {
    is_printusascii(b) && !matches!(b, b'=' | b']' | b'"')
}

fn parse_structured_data(c: &mut Cursor<'_>) -> Result<Vec<SdElement>, At> {
    match c.peek() {
        Some(b'-') => {
            c.pos += 1;
            return Ok(Vec::new());
        }
        Some(b'[') => {}
        Some(b) => {
            return Err(c.fail(
                "STRUCTURED-DATA",
                format!("expected '-' or '[', found {}", show(b)),
            ));
        }
        None => {
            return Err(c.fail(
                "STRUCTURED-DATA",
                "expected '-' or '[', found end of message",
            ));
        }
    }
    let mut elements: Vec<SdElement> = Vec::new();
    while c.peek() == Some(b'[') {
        let id_pos = c.pos + 1;
        let element = parse_sd_element(c)?;
        if elements.iter().any(|e| e.id == element.id) {
            return Err(At {
                field: "SD-ID",
                pos: id_pos,
                message: format!("{:?} appears more than once", element.id),
            });
        }
        elements.push(element);
    }
    Ok(elements)
}

fn parse_sd_element(c: &mut Cursor<'_>) -> Result<SdElement, At> {
    c.expect("SD-ELEMENT", b'[', "'['")?;
    let id = sd_name(c, "SD-ID")?;
    let mut params = Vec::new();
    loop {
        match c.peek() {
            Some(b']') => {
                c.pos += 1;
                return Ok(SdElement { id, params });
            }
            Some(b' ') => {
                c.pos += 1;
                let name = sd_name(c, "PARAM-NAME")?;
                c.expect("SD-PARAM", b'=', "'='")?;
                c.expect("SD-PARAM", b'"', "'\"'")?;
                let value = param_value(c)?;
                params.push((name, value));
            }
            Some(b) => {
                return Err(c.fail(
                    "SD-ELEMENT",
                    format!("expected a space or ']', found {}", show(b)),
                ));
            }
            None => return Err(c.fail("SD-ELEMENT", "unterminated, expected ']'")),
        }
    }
}

fn sd_name(c: &mut Cursor<'_>, field: &'static str) -> Result<String, At> {
    let start = c.pos;
    while c.peek().is_some_and(is_sd_name_char) {
        c.pos += 1;
    }
    let name = &c.b[start..c.pos];
    if name.is_empty() {
        return Err(match c.peek() {
            Some(b) => c.fail(field, format!("expected a name, found {}", show(b))),
            None => c.fail(field, "expected a name, found end of message"),
        });
    }
    if name.len() > MAX_SD_NAME {
        return Err(At {
            field,
            pos: start,
            message: format!("longer than {MAX_SD_NAME} characters"),
        });
    }
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// PARAM-VALUE after its opening quote, through the closing quote. Only `\"`, `\\` and `\]`
/// are escapes; RFC 5424 section 6.3.3 says any other backslash is kept as it is.
fn param_value(c: &mut Cursor<'_>) -> Result<String, At> {
    let start = c.pos;
    let mut out = Vec::new();
    loop {
        match c.peek() {
            None => {
                return Err(At {
                    field: "PARAM-VALUE",
                    pos: start,
                    message: "unterminated, expected '\"'".into(),
                });
            }
            Some(b'"') => {
                c.pos += 1;
                break;
            }
            Some(b'\\') => match c.b.get(c.pos + 1) {
                Some(&e @ (b'"' | b'\\' | b']')) => {
                    out.push(e);
                    c.pos += 2;
                }
                _ => {
                    out.push(b'\\');
                    c.pos += 1;
                }
            },
            Some(b']') => {
                return Err(c.fail("PARAM-VALUE", "']' must be escaped as '\\]'"));
            }
            Some(b) => {
                out.push(b);
                c.pos += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|e| At {
        field: "PARAM-VALUE",
        pos: start,
        message: format!(
            "not valid UTF-8 after {} bytes",
            e.utf8_error().valid_up_to()
        ),
    })
}

/// RFC 5424 section 6.2.3: `YYYY-MM-DDTHH:MM:SS[.1-6 digits](Z|+HH:MM|-HH:MM)`, upper-case
/// `T` and `Z`, no leap second.
fn parse_timestamp(t: &[u8]) -> Result<OffsetDateTime, String> {
    if t == b"-" {
        return Err("NILVALUE is not accepted: an event needs a time".into());
    }
    let bad = || {
        format!(
            "expected YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+HH:MM|-HH:MM), got {:?}",
            String::from_utf8_lossy(&t[..t.len().min(40)])
        )
    };
    let num = |at: usize, n: usize| -> Result<u32, String> {
        let d = t.get(at..at + n).ok_or_else(bad)?;
        if !d.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        Ok(d.iter().fold(0, |acc, b| acc * 10 + u32::from(b - b'0')))
    };
    let lit = |at: usize, want: u8| -> Result<(), String> {
        if t.get(at) == Some(&want) {
            Ok(())
        } else {
            Err(bad())
        }
    };
    let year = num(0, 4)?;
    lit(4, b'-')?;
    let month = num(5, 2)?;
    lit(7, b'-')?;
    let day = num(8, 2)?;
    lit(10, b'T')?;
    let hour = num(11, 2)?;
    lit(13, b':')?;
    let minute = num(14, 2)?;
    lit(16, b':')?;
    let second = num(17, 2)?;
    let mut at = 19;
    let mut micro = 0;
    if t.get(at) == Some(&b'.') {
        at += 1;
        let digits = t[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 6 {
            return Err("TIME-SECFRAC must have 1 to 6 digits".into());
        }
        micro = num(at, digits)? * 10u32.pow((6 - digits) as u32);
        at += digits;
    }
    let offset = match t.get(at) {
        Some(b'Z') => {
            at += 1;
            UtcOffset::UTC
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = num(at + 1, 2)?;
            lit(at + 3, b':')?;
            let om = num(at + 4, 2)?;
            at += 6;
            if oh > 23 || om > 59 {
                return Err("offset out of range".into());
            }
            let (oh, om) = (oh as i8, om as i8);
            let (oh, om) = if sign == b'-' { (-oh, -om) } else { (oh, om) };
            UtcOffset::from_hms(oh, om, 0).map_err(|e| format!("offset: {e}"))?
        }
        _ => return Err(bad()),
    };
    if at != t.len() {
        return Err(bad());
    }
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or_else(|| format!("month {month} is out of range"))?;
    let date = Date::from_calendar_date(year as i32, month, day as u8)
        .map_err(|e| format!("invalid date: {e}"))?;
    let time = Time::from_hms_micro(hour as u8, minute as u8, second as u8, micro)
        .map_err(|e| format!("invalid time: {e}"))?;
    Ok(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

/// Params of the medsec element that become event fields rather than details.
const RESERVED: [&str; 5] = ["id", "type", "severity", "by", "device"];

const DETAIL_HOSTNAME: &str = "syslog.hostname";
const DETAIL_APP: &str = "syslog.app";
const DETAIL_MSGID: &str = "syslog.msgid";
const DETAIL_MSG: &str = "msg";

/// Maps a message's `medsec@32473` element to an event, returning with it the device URN the
/// message claims in its `device` param, if any. The claim is only syntax-checked here:
/// whether the authenticated gateway may speak for that device is the caller's decision.
///
/// Params: `type` (required, kebab-case [`EventType`]), `id` (optional [`EventId`]; when
/// absent it is `syslog-` and the first 32 hex digits of the SHA-256 of the raw message, so a
/// replayed message gets the same id and deduplicates), `severity` (optional; when absent
/// syslog severities 0-2 map to critical, 3 high, 4 medium, 5-7 low), `by` (required for
/// `config-changed`, refused otherwise), `device` (optional). Other params of the element and
/// the HOSTNAME, APP-NAME, MSGID and non-empty MSG fields become details under the same bounds
/// as [`crate::parse_batch`]; too much is refused, never truncated.
pub fn to_event(msg: &SyslogMessage) -> Result<(Option<String>, Event), PostmarketError> {
    let Some(sd) = msg.sd_element(MEDSEC_SD_ID) else {
        return Err(event_error(format!(
            "no [{MEDSEC_SD_ID} ...] structured-data element; it carries the event type"
        )));
    };
    for name in RESERVED {
        if sd.params.iter().filter(|(n, _)| n == name).count() > 1 {
            return Err(event_error(format!(
                "param {name:?} appears more than once"
            )));
        }
    }
    let id = match sd.param("id") {
        Some(s) => EventId::parse(s).map_err(|e| event_error(format!("param \"id\": {e}")))?,
        None => derived_id(&msg.raw)?,
    };
    let type_s = sd
        .param("type")
        .ok_or_else(|| event_error("param \"type\" is missing".into()))?;
    let ty = EventType::parse(type_s)
        .ok_or_else(|| event_error(format!("param \"type\": unknown event type {type_s:?}")))?;
    let kind = match (EventKind::without_payload(ty), sd.param("by")) {
        (Some(kind), None) => kind,
        (Some(_), Some(_)) => {
            return Err(event_error(
                "param \"by\" is only allowed for config-changed events".into(),
            ));
        }
        (None, Some(by)) => EventKind::ConfigChanged {
            by: Actor::parse(by).map_err(|e| event_error(format!("param \"by\": {e}")))?,
        },
        (None, None) => {
            return Err(event_error(format!(
                "param \"by\" is required for {ty} events"
            )));
        }
    };
    let severity = match sd.param("severity") {
        Some(s) => severity_named(s).ok_or_else(|| {
            event_error(format!(
                "param \"severity\": expected info, low, medium, high or critical, got {s:?}"
            ))
        })?,
        None => severity_of_syslog(msg.severity()),
    };
    let device = match sd.param("device") {
        Some(urn) => {
            DeviceId::parse_urn(urn).map_err(|e| event_error(format!("param \"device\": {e}")))?;
            Some(urn.to_owned())
        }
        None => None,
    };
    let mut details = BTreeMap::new();
    let extra = sd
        .params
        .iter()
        .filter(|(n, _)| !RESERVED.contains(&n.as_str()))
        .map(|(n, v)| (n.as_str(), v.as_str()));
    let header = [
        (DETAIL_HOSTNAME, msg.hostname()),
        (DETAIL_APP, msg.app_name()),
        (DETAIL_MSGID, msg.msgid()),
        (DETAIL_MSG, msg.msg().filter(|m| !m.is_empty())),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)));
    for (key, value) in extra.chain(header) {
        add_detail(&mut details, key, value)?;
    }
    Ok((
        device,
        Event {
            id,
            at: msg.timestamp,
            kind,
            severity,
            details,
        },
    ))
}

fn add_detail(
    details: &mut BTreeMap<String, String>,
    key: &str,
    value: &str,
) -> Result<(), PostmarketError> {
    if key.is_empty() || key.len() > MAX_DETAIL_KEY || key.chars().any(char::is_control) {
        return Err(event_error(format!(
            "detail key {key:?} must be 1 to {MAX_DETAIL_KEY} characters without control characters"
        )));
    }
    if value.len() > MAX_DETAIL_VALUE {
        return Err(event_error(format!(
            "detail {key:?} is longer than {MAX_DETAIL_VALUE} bytes"
        )));
    }
    if details.contains_key(key) {
        return Err(event_error(format!(
            "detail {key:?} appears more than once"
        )));
    }
    if details.len() == MAX_DETAILS {
        return Err(event_error(format!("more than {MAX_DETAILS} details")));
    }
    details.insert(key.to_owned(), value.to_owned());
    Ok(())
}

fn derived_id(raw: &[u8]) -> Result<EventId, PostmarketError> {
    let digest = hex::encode(Sha256::digest(raw));
    EventId::parse(&format!("syslog-{}", &digest[..32]))
}

/// `Severity::parse` is private to `event`; matching on `as_str` keeps the names in one place.
fn severity_named(s: &str) -> Option<Severity> {
    [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ]
    .into_iter()
    .find(|v| v.as_str() == s)
}

/// Emergency, alert and critical all mean someone should look now; notice and below carry
/// no urgency of their own, so they sit at the bottom of what a device reports.
fn severity_of_syslog(code: u8) -> Severity {
    match code {
        0..=2 => Severity::Critical,
        3 => Severity::High,
        4 => Severity::Medium,
        _ => Severity::Low,
    }
}

fn event_error(message: String) -> PostmarketError {
    PostmarketError::Invalid {
        what: "syslog event",
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn parse(s: &[u8]) -> SyslogMessage {
        match parse_message(s) {
            Ok(m) => m,
            Err(e) => panic!("{:?} should parse: {e}", String::from_utf8_lossy(s)),
        }
    }

    /// The message of a parse failure, which starts with the grammar rule that failed.
    fn refused(s: &[u8]) -> String {
        match parse_message(s) {
            Err(PostmarketError::Invalid {
                what: "syslog message",
                message,
            }) => message,
            other => panic!(
                "{:?} should be refused, got {other:?}",
                String::from_utf8_lossy(s)
            ),
        }
    }

    fn assert_refused(s: &[u8], field: &str, needle: &str) {
        let m = refused(s);
        assert!(
            m.starts_with(&format!("{field} at byte")) && m.contains(needle),
            "{:?}: expected {field} error containing {needle:?}, got {m:?}",
            String::from_utf8_lossy(s)
        );
    }

    const HEAD: &str = "<165>1 2026-03-01T10:00:00Z gw1 app 42 ID7";

    fn with_sd(sd: &str) -> Vec<u8> {
        format!("{HEAD} {sd}").into_bytes()
    }

    // RFC 5424 section 6.5, example 1: NILVALUE PROCID and SD, MSG with a BOM.
    #[test]
    fn rfc_example_1() {
        let m = parse(
            b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \
              \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8",
        );
        assert_eq!(m.pri(), 34);
        assert_eq!(m.facility(), 4);
        assert_eq!(m.severity(), 2);
        assert_eq!(m.timestamp(), datetime!(2003-10-11 22:14:15.003 UTC));
        assert_eq!(m.hostname(), Some("mymachine.example.com"));
        assert_eq!(m.app_name(), Some("su"));
        assert_eq!(m.procid(), None);
        assert_eq!(m.msgid(), Some("ID47"));
        assert!(m.structured_data().is_empty());
        assert_eq!(m.msg(), Some("'su root' failed for lonvick on /dev/pts/8"));
    }

    // Example 2: microseconds, a negative offset, NILVALUE MSGID, MSG without a BOM.
    #[test]
    fn rfc_example_2() {
        let m = parse(
            b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - \
              %% It's time to make the do-nuts.",
        );
        assert_eq!((m.facility(), m.severity()), (20, 5));
        assert_eq!(m.timestamp(), datetime!(2003-08-24 05:14:15.000003 -07:00));
        assert_eq!(
            m.timestamp().offset(),
            UtcOffset::from_hms(-7, 0, 0).unwrap()
        );
        assert_eq!(m.hostname(), Some("192.0.2.1"));
        assert_eq!(m.app_name(), Some("myproc"));
        assert_eq!(m.procid(), Some("8710"));
        assert_eq!(m.msgid(), None);
        assert_eq!(m.msg(), Some("%% It's time to make the do-nuts."));
    }

    // Example 3: one SD element followed by a BOM MSG.
    #[test]
    fn rfc_example_3() {
        let m = parse(
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 \
              [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \
              \xEF\xBB\xBFAn application event log entry...",
        );
        let sd = m.structured_data();
        assert_eq!(sd.len(), 1);
        assert_eq!(sd[0].id(), "exampleSDID@32473");
        assert_eq!(
            sd[0].params(),
            &[
                ("iut".to_owned(), "3".to_owned()),
                ("eventSource".to_owned(), "Application".to_owned()),
                ("eventID".to_owned(), "1011".to_owned()),
            ]
        );
        assert_eq!(m.msg(), Some("An application event log entry..."));
    }

    // Example 4: two SD elements and no MSG at all.
    #[test]
    fn rfc_example_4() {
        let raw: &[u8] = b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 \
              [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]\
              [examplePriority@32473 class=\"high\"]";
        let m = parse(raw);
        assert_eq!(m.structured_data().len(), 2);
        assert_eq!(
            m.sd_element("examplePriority@32473")
                .and_then(|e| e.param("class")),
            Some("high")
        );
        assert_eq!(m.msg(), None);
        assert_eq!(m.raw(), raw);
    }

    #[test]
    fn escapes_in_param_values() {
        let m = parse(&with_sd(r#"[x@1 a="q\"b\\s\]e" b="\n\x" c="" d="é ü"]"#));
        let e = &m.structured_data()[0];
        assert_eq!(e.param("a"), Some(r#"q"b\s]e"#));
        // RFC 5424 6.3.3: an unknown escape keeps both the backslash and the character.
        assert_eq!(e.param("b"), Some(r"\n\x"));
        assert_eq!(e.param("c"), Some(""));
        assert_eq!(e.param("d"), Some("é ü"));
        // A backslash before the closing quote escapes it, so the value does not end there.
        assert_refused(&with_sd(r#"[x@1 a="ends\""#), "PARAM-VALUE", "unterminated");
        assert_refused(&with_sd(r#"[x@1 a="x]y"]"#), "PARAM-VALUE", "escaped");
    }

    #[test]
    fn repeated_param_names_are_kept_in_order() {
        let m = parse(&with_sd(r#"[x@1 a="1" a="2"]"#));
        let e = &m.structured_data()[0];
        assert_eq!(e.params().len(), 2);
        assert_eq!(e.param("a"), Some("1"));
    }

    #[test]
    fn pri_bounds() {
        assert_eq!(parse(b"<0>1 2026-03-01T10:00:00Z - - - - -").pri(), 0);
        let m = parse(b"<191>1 2026-03-01T10:00:00Z - - - - -");
        assert_eq!((m.facility(), m.severity()), (23, 7));
        assert_refused(
            b"<192>1 2026-03-01T10:00:00Z - - - - -",
            "PRI",
            "out of range",
        );
        assert_refused(
            b"<999>1 2026-03-01T10:00:00Z - - - - -",
            "PRI",
            "out of range",
        );
        assert_refused(b"<1000>1 2026-03-01T10:00:00Z - - - - -", "PRI", "3 digits");
        assert_refused(
            b"<01>1 2026-03-01T10:00:00Z - - - - -",
            "PRI",
            "leading zero",
        );
        assert_refused(
            b"<00>1 2026-03-01T10:00:00Z - - - - -",
            "PRI",
            "leading zero",
        );
        assert_refused(b"<>1 2026-03-01T10:00:00Z - - - - -", "PRI", "number");
        assert_refused(b"<-1>1 2026-03-01T10:00:00Z - - - - -", "PRI", "number");
        assert_refused(b"34>1 2026-03-01T10:00:00Z - - - - -", "PRI", "'<'");
        assert_refused(b"<34 1 2026-03-01T10:00:00Z - - - - -", "PRI", "'>'");
        assert_refused(b"", "PRI", "end of message");
    }

    #[test]
    fn version_must_be_1() {
        assert_refused(b"<34>2 2026-03-01T10:00:00Z - - - - -", "VERSION", "\"2\"");
        assert_refused(
            b"<34>11 2026-03-01T10:00:00Z - - - - -",
            "VERSION",
            "\"11\"",
        );
        assert_refused(b"<34> 2026-03-01T10:00:00Z - - - - -", "VERSION", "\"\"");
        // RFC 3164 style: no version at all.
        assert_refused(b"<34>Oct 11 22:14:15 host su: x", "VERSION", "only 1");
        assert_refused(b"<34>1", "VERSION", "a space");
    }

    #[test]
    fn timestamps() {
        let ts = |s: &str| parse(format!("<1>1 {s} - - - - -").as_bytes()).timestamp();
        assert_eq!(ts("2026-03-01T10:00:00Z"), datetime!(2026-03-01 10:00 UTC));
        assert_eq!(
            ts("2026-03-01T10:00:00.5+05:30"),
            datetime!(2026-03-01 10:00:00.5 +05:30)
        );
        assert_eq!(
            ts("2024-02-29T23:59:59.123456-00:00"),
            datetime!(2024-02-29 23:59:59.123456 UTC)
        );
        let bad = |s: &str, needle: &str| {
            assert_refused(
                format!("<1>1 {s} - - - - -").as_bytes(),
                "TIMESTAMP",
                needle,
            );
        };
        bad("-", "NILVALUE");
        bad("2026-03-01T10:00:00.1234567Z", "1 to 6 digits");
        bad("2026-03-01T10:00:00.Z", "1 to 6 digits");
        bad("2026-03-01T10:00:00", "expected YYYY");
        bad("2026-03-01t10:00:00Z", "expected YYYY");
        bad("2026-03-01T10:00:00z", "expected YYYY");
        bad("2026-03-01 10:00:00Z", "expected YYYY");
        bad("2026-3-01T10:00:00Z", "expected YYYY");
        bad("2026-03-01T10:00:00+0100", "expected YYYY");
        bad("2026-03-01T10:00:00+01:00x", "expected YYYY");
        bad("2025-02-29T10:00:00Z", "invalid date");
        bad("2026-13-01T10:00:00Z", "month 13");
        bad("2026-03-01T24:00:00Z", "invalid time");
        bad("2026-03-01T23:59:60Z", "invalid time");
        bad("2026-03-01T10:00:00+24:00", "offset");
        bad("Oct 11 22:14:15", "expected YYYY");
    }

    #[test]
    fn header_fields() {
        let long = |n: usize| "h".repeat(n);
        let msg = |h: &str, a: &str, p: &str, i: &str| {
            format!("<1>1 2026-03-01T10:00:00Z {h} {a} {p} {i} -").into_bytes()
        };
        let m = parse(&msg(&long(255), &long(48), &long(128), &long(32)));
        assert_eq!(m.hostname().map(str::len), Some(255));
        assert_eq!(m.app_name().map(str::len), Some(48));
        assert_eq!(m.procid().map(str::len), Some(128));
        assert_eq!(m.msgid().map(str::len), Some(32));
        assert_refused(&msg(&long(256), "-", "-", "-"), "HOSTNAME", "255");
        assert_refused(&msg("-", &long(49), "-", "-"), "APP-NAME", "48");
        assert_refused(&msg("-", "-", &long(129), "-"), "PROCID", "128");
        assert_refused(&msg("-", "-", "-", &long(33)), "MSGID", "32");
        assert_refused(&msg("hé", "-", "-", "-"), "HOSTNAME", "printable");
        assert_refused(&msg("h\tx", "-", "-", "-"), "HOSTNAME", "printable");
        assert_refused(b"<1>1 2026-03-01T10:00:00Z  - - - -", "HOSTNAME", "empty");
        assert_refused(b"<1>1 2026-03-01T10:00:00Z h a p", "PROCID", "a space");
        assert_refused(b"<1>1 2026-03-01T10:00:00Z h a p m", "MSGID", "a space");
        // A field that is only a dash is NILVALUE; longer ones are values.
        assert_eq!(parse(&msg("--", "-", "-", "-")).hostname(), Some("--"));
    }

    #[test]
    fn structured_data_errors() {
        let bad = |sd: &str, field: &str, needle: &str| assert_refused(&with_sd(sd), field, needle);
        bad("", "STRUCTURED-DATA", "end of message");
        bad("x", "STRUCTURED-DATA", "'-' or '['");
        bad("-x", "STRUCTURED-DATA", "a space or the end");
        bad("[x@1]x", "STRUCTURED-DATA", "a space or the end");
        bad("[]", "SD-ID", "expected a name");
        bad("[ a=\"1\"]", "SD-ID", "expected a name");
        bad(&format!("[{}]", "n".repeat(33)), "SD-ID", "32");
        bad("[x=y]", "SD-ELEMENT", "a space or ']'");
        bad("[x\"y]", "SD-ELEMENT", "a space or ']'");
        bad("[x@1", "SD-ELEMENT", "unterminated");
        bad("[x@1 a=\"1\"", "SD-ELEMENT", "unterminated");
        bad("[x@1 a=\"1", "PARAM-VALUE", "unterminated");
        bad("[x@1 a=1]", "SD-PARAM", "'\"'");
        bad("[x@1 a]", "SD-PARAM", "'='");
        bad("[x@1 =\"1\"]", "PARAM-NAME", "expected a name");
        bad("[x@1 a=\"1\" ]", "PARAM-NAME", "expected a name");
        bad("[x@1  a=\"1\"]", "PARAM-NAME", "expected a name");
        bad(
            &format!("[x@1 {}=\"1\"]", "p".repeat(33)),
            "PARAM-NAME",
            "32",
        );
        // A space after the last element starts MSG, even if MSG looks like SD.
        assert_eq!(parse(&with_sd("[x@1] [y@1]")).msg(), Some("[y@1]"));
        bad("[x@1 a=\"1\"][y@1][x@1]", "SD-ID", "more than once");
        assert!(
            parse(&with_sd(&format!(
                "[{} {}=\"\"]",
                "n".repeat(32),
                "p".repeat(32)
            )))
            .structured_data()[0]
                .params()
                .len()
                == 1
        );
        let bad_utf8 = [HEAD.as_bytes(), b" [x@1 a=\"\xFF\"]"].concat();
        assert_refused(&bad_utf8, "PARAM-VALUE", "UTF-8");
    }

    #[test]
    fn msg_must_be_utf8() {
        let m = parse(&[with_sd("-"), b" ".to_vec()].concat());
        assert_eq!(m.msg(), Some(""));
        let m = parse(&[with_sd("-"), b" \xEF\xBB\xBF".to_vec()].concat());
        assert_eq!(m.msg(), Some(""));
        let m = parse(&[with_sd("-"), b" \xEF\xBB\xBF\xEF\xBB\xBFx".to_vec()].concat());
        assert_eq!(m.msg(), Some("\u{feff}x"), "only one BOM is stripped");
        let m = parse(&[with_sd("-"), b" two  spaces\nand a line".to_vec()].concat());
        assert_eq!(m.msg(), Some("two  spaces\nand a line"));
        assert_refused(
            &[with_sd("-"), b" \xEF\xBB\xBFbad \xC3".to_vec()].concat(),
            "MSG",
            "UTF-8",
        );
        let without_bom = [with_sd("-"), b" latin1 \xE9t\xE9".to_vec()].concat();
        assert!(refused(&without_bom).starts_with(&format!("MSG at byte {}", HEAD.len() + 10)));
    }

    fn frames(dec: &mut FrameDecoder) -> Result<Vec<Vec<u8>>, PostmarketError> {
        let mut out = Vec::new();
        while let Some(f) = dec.next_frame()? {
            out.push(f);
        }
        Ok(out)
    }

    fn frame_refused(dec: &mut FrameDecoder, needle: &str) {
        match frames(dec) {
            Err(PostmarketError::Invalid {
                what: "syslog frame",
                message,
            }) => assert!(message.contains(needle), "{message:?} lacks {needle:?}"),
            other => panic!("expected a frame error with {needle:?}, got {other:?}"),
        }
    }

    #[test]
    fn frames_across_chunk_boundaries() {
        let stream = b"5 hello1 x11 hello world10 0123456789";
        let want: Vec<Vec<u8>> = vec![
            b"hello".to_vec(),
            b"x".to_vec(),
            b"hello world".to_vec(),
            b"0123456789".to_vec(),
        ];
        let mut dec = FrameDecoder::new(64);
        let mut got = Vec::new();
        for b in stream {
            dec.push(&[*b]);
            got.extend(frames(&mut dec).unwrap());
        }
        assert_eq!(got, want);
        assert_eq!(dec.pending(), 0);
        for split in 0..stream.len() {
            let mut dec = FrameDecoder::new(64);
            dec.push(&stream[..split]);
            let mut got = frames(&mut dec).unwrap();
            dec.push(&stream[split..]);
            got.extend(frames(&mut dec).unwrap());
            assert_eq!(got, want, "split at {split}");
        }
        let mut dec = FrameDecoder::new(64);
        dec.push(b"5 hel");
        assert_eq!(dec.next_frame().unwrap(), None);
        assert_eq!(dec.pending(), 5, "a close now would cut a frame");
    }

    #[test]
    fn frame_size_limit() {
        let mut dec = FrameDecoder::new(10);
        dec.push(b"10 0123456789");
        assert_eq!(frames(&mut dec).unwrap(), vec![b"0123456789".to_vec()]);
        let mut dec = FrameDecoder::new(10);
        dec.push(b"11 ");
        frame_refused(&mut dec, "limit of 10");
        // Refused on the digits alone, before the body or even the space arrives.
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
        dec.push(b"8193");
        frame_refused(&mut dec, "limit of 8192");
        let mut dec = FrameDecoder::new(usize::MAX);
        dec.push(b"999999999");
        assert_eq!(dec.next_frame().unwrap(), None);
        dec.push(b"9");
        frame_refused(&mut dec, "9 digits");
    }

    #[test]
    fn bad_frame_headers_end_the_stream() {
        for (input, needle) in [
            (&b"05 hello"[..], "zero"),
            (b"0 ", "zero"),
            (b" 5 hello", "0x20"),
            (b"5x hello", "'x'"),
            (b"5\nhello", "0x0a"),
            (b"-5 hello", "'-'"),
            (b"<34>1 2026-03-01T10:00:00Z - - - - -\n", "octet-counting"),
        ] {
            let mut dec = FrameDecoder::new(100);
            dec.push(input);
            frame_refused(&mut dec, needle);
            dec.push(b"5 hello");
            frame_refused(&mut dec, needle);
            assert_eq!(dec.pending(), 0, "nothing is kept after a failure");
        }
        // A good frame followed by garbage yields the frame, then the error.
        let mut dec = FrameDecoder::new(100);
        dec.push(b"2 okX");
        assert_eq!(dec.next_frame().unwrap(), Some(b"ok".to_vec()));
        assert!(dec.next_frame().is_err());
    }

    fn medsec(params: &str, msg: &str) -> SyslogMessage {
        parse(format!("{HEAD} [{MEDSEC_SD_ID}{params}]{msg}").as_bytes())
    }

    fn mapped(params: &str, msg: &str) -> (Option<String>, Event) {
        match to_event(&medsec(params, msg)) {
            Ok(v) => v,
            Err(e) => panic!("{params:?} should map: {e}"),
        }
    }

    fn unmapped(params: &str, msg: &str) -> String {
        match to_event(&medsec(params, msg)) {
            Err(PostmarketError::Invalid {
                what: "syslog event",
                message,
            }) => message,
            other => panic!("{params:?} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn maps_a_full_message() {
        let (device, ev) = mapped(
            r#" id="e-1" type="config-changed" by="local:tech" severity="high" device="urn:medsec:device:pump-x:SN1" setting="rate" old="1" new="2""#,
            " rate changed",
        );
        assert_eq!(device.as_deref(), Some("urn:medsec:device:pump-x:SN1"));
        assert_eq!(ev.id.as_str(), "e-1");
        assert_eq!(ev.at, datetime!(2026-03-01 10:00 UTC));
        assert_eq!(
            ev.kind,
            EventKind::ConfigChanged {
                by: Actor::parse("local:tech").unwrap()
            }
        );
        assert_eq!(ev.severity, Severity::High);
        let details: Vec<(&str, &str)> = ev
            .details
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            details,
            vec![
                ("msg", "rate changed"),
                ("new", "2"),
                ("old", "1"),
                ("setting", "rate"),
                ("syslog.app", "app"),
                ("syslog.hostname", "gw1"),
                ("syslog.msgid", "ID7"),
            ]
        );
    }

    #[test]
    fn maps_every_type_like_parse_batch() {
        for t in EventType::ALL {
            let by = if t == EventType::ConfigChanged {
                r#" by="svc:updater""#
            } else {
                ""
            };
            let (device, ev) = mapped(&format!(r#" id="e" type="{t}"{by} severity="low""#), "");
            assert_eq!(device, None);
            assert_eq!(ev.event_type(), t);
            let json = format!(
                r#"[{{"id":"e","time":"2026-03-01T10:00:00Z","type":"{t}"{},"severity":"low","details":{{"syslog.hostname":"gw1","syslog.app":"app","syslog.msgid":"ID7"}}}}]"#,
                by.replace(" by=\"", ",\"by\":\"")
            );
            assert_eq!(
                crate::parse_batch(json.as_bytes(), 1, 10_000).unwrap(),
                vec![ev]
            );
        }
    }

    #[test]
    fn nil_header_fields_add_no_details() {
        let m = parse(
            format!("<12>1 2026-03-01T10:00:00Z - - - - [{MEDSEC_SD_ID} type=\"tamper\"]")
                .as_bytes(),
        );
        let (_, ev) = to_event(&m).unwrap();
        assert!(ev.details.is_empty());
    }

    #[test]
    fn severity_defaults_from_syslog_severity() {
        let want = [
            Severity::Critical,
            Severity::Critical,
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
            Severity::Low,
            Severity::Low,
        ];
        for (code, want) in want.into_iter().enumerate() {
            let pri = 13 * 8 + code;
            let m = parse(
                format!("<{pri}>1 2026-03-01T10:00:00Z - - - - [{MEDSEC_SD_ID} type=\"tamper\"]")
                    .as_bytes(),
            );
            assert_eq!(
                to_event(&m).unwrap().1.severity,
                want,
                "syslog severity {code}"
            );
        }
        // An explicit severity wins over the PRI.
        assert_eq!(
            mapped(r#" type="tamper" severity="info""#, "").1.severity,
            Severity::Info
        );
        assert!(unmapped(r#" type="tamper" severity="HIGH""#, "").contains("severity"));
    }

    #[test]
    fn derived_id_is_stable_and_content_bound() {
        let raw = format!("{HEAD} [{MEDSEC_SD_ID} type=\"tamper\"] lid open");
        let a = to_event(&parse(raw.as_bytes())).unwrap().1.id;
        let b = to_event(&parse(raw.as_bytes())).unwrap().1.id;
        assert_eq!(a, b, "a replayed message must deduplicate");
        let digest = hex::encode(Sha256::digest(raw.as_bytes()));
        assert_eq!(a.as_str(), format!("syslog-{}", &digest[..32]));
        let other = raw.replace("lid open", "lid opened");
        assert_ne!(to_event(&parse(other.as_bytes())).unwrap().1.id, a);
    }

    #[test]
    fn by_rules_match_parse_batch() {
        assert!(unmapped(r#" type="config-changed""#, "").contains("\"by\" is required"));
        assert!(unmapped(r#" type="tamper" by="local:tech""#, "").contains("only allowed"));
        assert!(unmapped(r#" type="config-changed" by="""#, "").contains("\"by\""));
    }

    #[test]
    fn mapping_refusals() {
        let none = parse(&with_sd("[other@1 type=\"tamper\"]"));
        match to_event(&none) {
            Err(PostmarketError::Invalid { message, .. }) => {
                assert!(message.contains(MEDSEC_SD_ID), "{message}")
            }
            other => panic!("expected refusal, got {other:?}"),
        }
        assert!(unmapped("", "").contains("\"type\" is missing"));
        assert!(unmapped(r#" type="meteor""#, "").contains("unknown event type"));
        assert!(unmapped(r#" type="tamper" id="a b""#, "").contains("\"id\""));
        assert!(unmapped(r#" type="tamper" id="""#, "").contains("\"id\""));
        assert!(unmapped(r#" type="tamper" type="tamper""#, "").contains("more than once"));
        assert!(unmapped(r#" type="tamper" id="a" id="b""#, "").contains("more than once"));
        assert!(unmapped(r#" type="tamper" device="pump-x:SN1""#, "").contains("device"));
        assert!(unmapped(r#" type="tamper" k="1" k="2""#, "").contains("more than once"));
        assert!(unmapped(r#" type="tamper" msg="x""#, " y").contains("\"msg\""));
        assert!(
            unmapped(r#" type="tamper" syslog.hostname="spoof""#, "").contains("syslog.hostname")
        );
        // Without a MSG the same param is just a detail.
        assert_eq!(
            mapped(r#" type="tamper" msg="x""#, "").1.details.get("msg"),
            Some(&"x".to_owned())
        );
    }

    #[test]
    fn detail_bounds() {
        // HOSTNAME, APP-NAME and MSGID take 3 slots, MSG one more.
        let params = |n: usize| -> String { (0..n).map(|i| format!(" k{i}=\"v\"")).collect() };
        let base = r#" type="tamper""#;
        let full = mapped(&format!("{base}{}", params(MAX_DETAILS - 4)), " m").1;
        assert_eq!(full.details.len(), MAX_DETAILS);
        assert!(
            unmapped(&format!("{base}{}", params(MAX_DETAILS - 3)), " m")
                .contains(&format!("more than {MAX_DETAILS}"))
        );
        assert_eq!(
            mapped(&format!("{base}{}", params(MAX_DETAILS - 3)), "")
                .1
                .details
                .len(),
            MAX_DETAILS
        );
        let v = "v".repeat(MAX_DETAIL_VALUE);
        assert_eq!(mapped(&format!(r#"{base} k="{v}""#), "").1.details["k"], v);
        assert!(unmapped(&format!(r#"{base} k="{v}v""#), "").contains("longer than"));
        let long_msg = format!(" {}", "m".repeat(MAX_DETAIL_VALUE + 1));
        assert!(unmapped(base, &long_msg).contains("\"msg\" is longer"));
        // Escaped characters count once, as the value they decode to.
        let escaped = r#"\\"#.repeat(MAX_DETAIL_VALUE);
        assert_eq!(
            mapped(&format!(r#"{base} k="{escaped}""#), "").1.details["k"].len(),
            MAX_DETAIL_VALUE
        );
    }
}
