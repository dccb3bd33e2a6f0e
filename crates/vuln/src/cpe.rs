//! CPE names, read from CPE 2.3 formatted strings and CPE 2.2 URIs as NISTIR 7695 (CPE Naming
//! 2.3) binds them, for matching SBOM components that carry a CPE but no purl.
//!
//! Both forms unbind to the same attribute values ("well-formed name"): `cpe:2.3:a:openssl:
//! openssl:1.1.1k:*:*:*:*:*:*:*` and `cpe:/a:openssl:openssl:1.1.1k` are equal `Cpe`s. Values
//! are unescaped (`\(`, `%28` -> `(`) and lowercased, CPE names being case-insensitive.

use std::fmt;
use std::str::FromStr;

use crate::VulnError;

/// The `part` attribute: what kind of thing the name is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CpePart {
    Application,
    OperatingSystem,
    Hardware,
    /// `*` (2.3) or an empty part (2.2): any of the three.
    Any,
}

impl CpePart {
    /// The letter a CPE name uses (`a`, `o`, `h`, or `*` for any).
    pub fn code(self) -> &'static str {
        match self {
            CpePart::Application => "a",
            CpePart::OperatingSystem => "o",
            CpePart::Hardware => "h",
            CpePart::Any => "*",
        }
    }
}

/// One attribute value of a CPE name (NISTIR 7695 section 5.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum CpeValue {
    /// `*` in a formatted string, an empty component in a URI: any value.
    #[default]
    Any,
    /// `-`: the attribute does not apply (a product without versions, say).
    NotApplicable,
    /// A plain value, unescaped and lowercased; never empty.
    Literal(String),
    /// A value with unquoted wildcards (`*` any run, `?` one character) at its start or end:
    /// a pattern, not a name. Kept in formatted-string form (escapes and all), lowercased.
    Pattern(String),
}

impl CpeValue {
    /// The value when it is a plain one: neither a logical value nor a pattern.
    pub fn literal(&self) -> Option<&str> {
        match self {
            CpeValue::Literal(s) => Some(s),
            _ => None,
        }
    }
}

/// A CPE name: part, then vendor, product, version, update, edition, language, sw_edition,
/// target_sw, target_hw and other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cpe {
    part: CpePart,
    /// vendor .. other, in the order of the 2.3 formatted string.
    attrs: [CpeValue; 10],
}

const VENDOR: usize = 0;
const PRODUCT: usize = 1;
const VERSION: usize = 2;
const UPDATE: usize = 3;
const EDITION: usize = 4;
const LANGUAGE: usize = 5;

impl Cpe {
    /// Parses a CPE 2.3 formatted string (`cpe:2.3:` and 11 attributes, `\` quoting anything
    /// that is not a letter, digit, `_`, `-` or `.`; unquoted punctuation other than `:`, `*`
    /// and `?` is read as itself, as NISTIR 7695's unbinding does) or a CPE 2.2 URI (`cpe:/` and
    /// up to 7 components, percent-encoded, with a `~`-packed edition). Anything else is
    /// refused, with the reason: a wrong number of fields, a dangling `\`, a wildcard inside a
    /// value, a bad percent-encoding, an empty 2.3 field, spaces or non-ASCII.
    pub fn parse(s: &str) -> Result<Self, VulnError> {
        let t = s.trim();
        let bad = |reason: String| VulnError::BadCpe {
            // SBOMs are untrusted input: keep a hostile string from flooding reports.
            cpe: t.chars().take(200).collect(),
            reason,
        };
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("CPE names are printable ASCII without spaces".into()));
        }
        let lower = t.to_ascii_lowercase();
        if let Some(body) = lower.strip_prefix("cpe:2.3:") {
            parse_fs(body).map_err(bad)
        } else if let Some(body) = lower.strip_prefix("cpe:/") {
            parse_uri(body).map_err(bad)
        } else {
            Err(bad(
                "must start with cpe:2.3: (formatted string) or cpe:/ (URI)".into(),
            ))
        }
    }

    pub fn part(&self) -> CpePart {
        self.part
    }

    pub fn vendor(&self) -> &CpeValue {
        &self.attrs[VENDOR]
    }

    pub fn product(&self) -> &CpeValue {
        &self.attrs[PRODUCT]
    }

    pub fn version(&self) -> &CpeValue {
        &self.attrs[VERSION]
    }

    pub fn update(&self) -> &CpeValue {
        &self.attrs[UPDATE]
    }
}

impl FromStr for Cpe {
    type Err = VulnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cpe::parse(s)
    }
}

/// Binds to a CPE 2.3 formatted string, whichever form was parsed.
impl fmt::Display for Cpe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cpe:2.3:{}", self.part.code())?;
        for a in &self.attrs {
            f.write_str(":")?;
            match a {
                CpeValue::Any => f.write_str("*")?,
                CpeValue::NotApplicable => f.write_str("-")?,
                // A literal "-" must stay distinct from NA.
                CpeValue::Literal(v) if v == "-" => f.write_str("\\-")?,
                CpeValue::Literal(v) => {
                    for c in v.chars() {
                        if !fs_plain(c) {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                }
                CpeValue::Pattern(p) => f.write_str(p)?,
            }
        }
        Ok(())
    }
}

/// Characters a formatted string writes without a `\`.
fn fs_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

fn part(s: &str) -> Result<CpePart, String> {
    Ok(match s {
        "a" => CpePart::Application,
        "o" => CpePart::OperatingSystem,
        "h" => CpePart::Hardware,
        "*" | "" => CpePart::Any,
        _ => return Err(format!("part {s:?} is not a, o or h")),
    })
}

/// A formatted string's attributes (after `cpe:2.3:`), split at the colons that are not quoted.
fn parse_fs(body: &str) -> Result<Cpe, String> {
    let mut fields = Vec::with_capacity(11);
    let mut cur = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let next = chars.next().ok_or("it ends in a lone \\")?;
                cur.push('\\');
                cur.push(next);
            }
            ':' => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    if fields.len() != 11 {
        return Err(format!(
            "a CPE 2.3 name has 13 colon-separated fields, this one has {}",
            fields.len() + 2
        ));
    }
    let part = part(match fields[0].as_str() {
        "" => return Err("empty part (any is written *)".into()),
        p => p,
    })?;
    let mut attrs: [CpeValue; 10] = Default::default();
    for (a, f) in attrs.iter_mut().zip(&fields[1..]) {
        *a = fs_value(f)?;
    }
    Ok(Cpe { part, attrs })
}

fn fs_value(f: &str) -> Result<CpeValue, String> {
    match f {
        "" => return Err("empty field (any value is written *)".into()),
        "*" => return Ok(CpeValue::Any),
        "-" => return Ok(CpeValue::NotApplicable),
        _ => {}
    }
    let b = f.as_bytes();
    let mut lit = String::with_capacity(f.len());
    let mut wild = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                // The splitter kept every `\` together with the character it quotes.
                if let Some(&q) = b.get(i + 1) {
                    lit.push(char::from(q));
                }
                i += 2;
            }
            b'*' => {
                if i != 0 && i != b.len() - 1 {
                    return Err(format!(
                        "in {f:?}: an unquoted * may only begin or end a value"
                    ));
                }
                wild = true;
                i += 1;
            }
            b'?' => {
                let run = b[i..].iter().take_while(|&&c| c == b'?').count();
                if i != 0 && i + run != b.len() {
                    return Err(format!(
                        "in {f:?}: an unquoted ? may only begin or end a value"
                    ));
                }
                wild = true;
                i += run;
            }
            c => {
                lit.push(char::from(c));
                i += 1;
            }
        }
    }
    Ok(if wild {
        CpeValue::Pattern(f.to_owned())
    } else {
        CpeValue::Literal(lit)
    })
}

/// A URI's components (after `cpe:/`): part, vendor, product, version, update, edition (maybe
/// packed as ~edition~sw_edition~target_sw~target_hw~other) and language; missing ones are any.
fn parse_uri(body: &str) -> Result<Cpe, String> {
    let comps: Vec<&str> = body.split(':').collect();
    if comps.len() > 7 {
        return Err(format!(
            "a CPE 2.2 URI has at most 7 components, this one has {}",
            comps.len()
        ));
    }
    let part = part(comps[0])?;
    let mut attrs: [CpeValue; 10] = Default::default();
    for (i, c) in comps.iter().enumerate().skip(1) {
        match i {
            6 => attrs[LANGUAGE] = uri_value(c)?,
            5 if c.starts_with('~') => {
                let packed: Vec<&str> = c[1..].split('~').collect();
                if packed.len() != 5 {
                    return Err(format!(
                        "packed edition {c:?} needs ~edition~sw_edition~target_sw~target_hw~other"
                    ));
                }
                attrs[EDITION] = uri_value(packed[0])?;
                for (k, p) in packed[1..].iter().enumerate() {
                    attrs[LANGUAGE + 1 + k] = uri_value(p)?;
                }
            }
            _ => attrs[i - 1] = uri_value(c)?,
        }
    }
    Ok(Cpe { part, attrs })
}

fn uri_value(c: &str) -> Result<CpeValue, String> {
    enum Tok {
        Char(char),
        /// %01: any one character.
        One,
        /// %02: any run of characters.
        Many,
    }
    match c {
        "" => return Ok(CpeValue::Any),
        "-" => return Ok(CpeValue::NotApplicable),
        _ => {}
    }
    let b = c.as_bytes();
    let mut toks = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            toks.push(Tok::Char(char::from(b[i])));
            i += 1;
            continue;
        }
        let code = c
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(|| format!("in {c:?}: % must be followed by two hex digits"))?;
        toks.push(match code {
            0x01 => Tok::One,
            0x02 => Tok::Many,
            x if x.is_ascii_punctuation() => Tok::Char(char::from(x)),
            _ => return Err(format!("in {c:?}: %{code:02x} does not encode punctuation")),
        });
        i += 3;
    }
    // As in a formatted string, wildcards may only begin or end a value.
    let n = toks.len();
    let lead = toks.iter().take_while(|t| matches!(t, Tok::One)).count();
    let trail = toks
        .iter()
        .rev()
        .take_while(|t| matches!(t, Tok::One))
        .count();
    let mut lit = String::with_capacity(n);
    // The same value in formatted-string form, which is how a pattern is kept.
    let mut fs = String::with_capacity(n + 4);
    let mut wild = false;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Char(ch) => {
                lit.push(*ch);
                if !fs_plain(*ch) {
                    fs.push('\\');
                }
                fs.push(*ch);
            }
            Tok::One if i < lead || i >= n - trail => fs.push('?'),
            Tok::Many if i == 0 || i == n - 1 => fs.push('*'),
            _ => return Err(format!("in {c:?}: wildcards may only begin or end a value")),
        }
        wild |= !matches!(t, Tok::Char(_));
    }
    Ok(if wild {
        CpeValue::Pattern(fs)
    } else {
        CpeValue::Literal(lit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> CpeValue {
        CpeValue::Literal(s.to_owned())
    }

    #[test]
    fn formatted_string() {
        let c = Cpe::parse("cpe:2.3:a:openssl:openssl:1.1.1k:*:*:*:*:*:*:*").unwrap();
        assert_eq!(c.part(), CpePart::Application);
        assert_eq!(
            (c.vendor(), c.product(), c.version(), c.update()),
            (
                &lit("openssl"),
                &lit("openssl"),
                &lit("1.1.1k"),
                &CpeValue::Any
            )
        );
        assert_eq!(
            c.to_string(),
            "cpe:2.3:a:openssl:openssl:1.1.1k:*:*:*:*:*:*:*"
        );
        // Quoted punctuation, a quoted colon, a quoted backslash; upper case folded.
        let c = Cpe::parse(r"cpe:2.3:o:Cisco:IOS:12.2\(33\)SXI:-:*:*:*:*:*:*").unwrap();
        assert_eq!(c.part(), CpePart::OperatingSystem);
        assert_eq!(c.version(), &lit("12.2(33)sxi"));
        assert_eq!(c.update(), &CpeValue::NotApplicable);
        assert_eq!(
            c.to_string(),
            r"cpe:2.3:o:cisco:ios:12.2\(33\)sxi:-:*:*:*:*:*:*"
        );
        let c = Cpe::parse(r"cpe:2.3:a:acme\:labs:x\\y:1.0\:beta:*:*:*:*:*:*:*").unwrap();
        assert_eq!(c.vendor(), &lit("acme:labs"));
        assert_eq!(c.product(), &lit(r"x\y"));
        assert_eq!(c.version(), &lit("1.0:beta"));
        assert_eq!(Cpe::parse(&c.to_string()).unwrap(), c);
        // A quoted * is a character; unquoted ones at the ends make a pattern.
        let c = Cpe::parse(r"cpe:2.3:a:v:p:\*:1.2*:?beta:*:*:*:*:*").unwrap();
        assert_eq!(c.version(), &lit("*"));
        assert_eq!(c.update(), &CpeValue::Pattern("1.2*".into()));
        assert_eq!(c.attrs[EDITION], CpeValue::Pattern("?beta".into()));
        assert_eq!(c.version().literal(), Some("*"));
        assert_eq!(c.update().literal(), None);
        // Unquoted punctuation is read leniently, as NISTIR 7695's unbinding does.
        assert_eq!(
            Cpe::parse("cpe:2.3:a:gnu:gcc:4.8+dfsg:*:*:*:*:*:*:*")
                .unwrap()
                .version(),
            &lit("4.8+dfsg")
        );
        assert_eq!(
            Cpe::parse("cpe:2.3:*:v:p:1:*:*:*:*:*:*:*").unwrap().part(),
            CpePart::Any
        );
    }

    #[test]
    fn uri_form() {
        let uri = Cpe::parse("cpe:/a:openssl:openssl:1.1.1k").unwrap();
        let fs = Cpe::parse("cpe:2.3:a:openssl:openssl:1.1.1k:*:*:*:*:*:*:*").unwrap();
        assert_eq!(uri, fs);
        let c = Cpe::parse("cpe:/a:ntp:ntp:4.2.8:p15").unwrap();
        assert_eq!((c.version(), c.update()), (&lit("4.2.8"), &lit("p15")));
        let c = Cpe::parse("cpe:/a:acme%21:Prod%3a1:1.0%28b%29:-").unwrap();
        assert_eq!(c.vendor(), &lit("acme!"));
        assert_eq!(c.product(), &lit("prod:1"));
        assert_eq!(c.version(), &lit("1.0(b)"));
        assert_eq!(c.update(), &CpeValue::NotApplicable);
        assert_eq!(
            c.to_string(),
            r"cpe:2.3:a:acme\!:prod\:1:1.0\(b\):-:*:*:*:*:*:*"
        );
        // Packed edition: ~edition~sw_edition~target_sw~target_hw~other.
        let c = Cpe::parse("cpe:/a:foo:bar:1.0::~~~android~~:en").unwrap();
        assert_eq!(c.to_string(), "cpe:2.3:a:foo:bar:1.0:*:*:en:*:android:*:*");
        // %02 / %01 are wildcards.
        let c = Cpe::parse("cpe:/a:foo:bar:1.%02").unwrap();
        assert_eq!(c.version(), &CpeValue::Pattern("1.*".into()));
        let c = Cpe::parse("cpe:/a:foo:bar:%01%01.0").unwrap();
        assert_eq!(c.version(), &CpeValue::Pattern("??.0".into()));
        let c = Cpe::parse("cpe:/o:linux:linux_kernel").unwrap();
        assert_eq!(c.version(), &CpeValue::Any);
        assert_eq!(Cpe::parse("cpe:/").unwrap().part(), CpePart::Any);
    }

    #[test]
    fn malformed_names_are_refused() {
        for (s, why) in [
            ("", "must start with"),
            ("openssl 1.1.1k", "printable ASCII"),
            ("cpe:2.2:a:openssl:openssl", "must start with"),
            ("cpe:2.3:a:openssl:openssl:1.1.1k", "has 6"),
            ("cpe:2.3:a:openssl:openssl:1.1.1k:*:*:*:*:*:*:*:*", "has 14"),
            ("cpe:2.3:x:openssl:openssl:1:*:*:*:*:*:*:*", "part \"x\""),
            ("cpe:2.3::openssl:openssl:1:*:*:*:*:*:*:*", "empty part"),
            ("cpe:2.3:a::openssl:1:*:*:*:*:*:*:*", "empty field"),
            ("cpe:2.3:a:v:p:1.0:*:*:*:*:*:*:\\", "lone \\"),
            ("cpe:2.3:a:v:p:1*2:*:*:*:*:*:*:*", "unquoted *"),
            ("cpe:2.3:a:v:p:1?2:*:*:*:*:*:*:*", "unquoted ?"),
            ("cpe:2.3:a:v:p:1.0 beta:*:*:*:*:*:*:*", "printable ASCII"),
            ("cpe:2.3:a:v:p:1.0\u{e9}:*:*:*:*:*:*:*", "printable ASCII"),
            ("cpe:/a:v:p:1.0:u:e:en:extra", "at most 7"),
            ("cpe:/a:v:p:1.0%zz", "two hex digits"),
            ("cpe:/a:v:p:1.0%2", "two hex digits"),
            ("cpe:/a:v:p:%41", "does not encode punctuation"),
            ("cpe:/a:v:p:1%022", "wildcards"),
            ("cpe:/a:v:p:1.0::~a~b", "packed edition"),
            ("cpe:/q:v:p", "part \"q\""),
        ] {
            match Cpe::parse(s) {
                Err(VulnError::BadCpe { reason, .. }) => {
                    assert!(reason.contains(why), "{s}: {reason:?}, wanted {why:?}")
                }
                other => panic!("{s}: {other:?}"),
            }
        }
    }
}
