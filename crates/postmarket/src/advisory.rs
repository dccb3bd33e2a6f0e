//! CSAF 2.0 security advisories (profile csaf_security_advisory) and their publication as a CSAF provider directory.
//!
//! An [`Advisory`] is the authoring state: an [`AdvisoryContent`] (products, vulnerabilities,
//! remediations, references) plus its revision history. Content only changes together with a
//! new revision ([`Advisory::new`], [`Advisory::revise`], [`Advisory::revise_with`]) and every
//! one of them checks it, so any advisory that exists renders ([`Advisory::to_csaf`]) to a
//! document that passes the CSAF 2.0 schema and the mandatory tests of section 6.1, which the
//! integration tests confirm with python-jsonschema and the BSI validator.
//!
//! Versioning is CSAF integer versioning with one number per revision, drafts included:
//! "1", "2", "3", ... Version 0 is never used because test 6.1.18 forbids a version-0 entry in
//! the history of a released (interim or final) document, so a history that started at 0 would
//! have to be rewritten at release; and a coordinator who commented on draft "2" can still find
//! "2" in the released history. Tests 6.1.16-6.1.22 all hold by construction: the version is the
//! newest entry's number, numbers start at 1 without gaps or repeats, dates never go backwards,
//! and no number is 0 or carries a pre-release part.
//!
//! Publication: [`Advisory::publish`] renders the bytes once, and [`directory_files`] lays them
//! out as the `white/` folder of a CSAF provider's directory distribution (CSAF 2.0 section 7.1,
//! requirements 11-14 and the hashes of 18); [`provider_metadata`] writes requirement 7's
//! `provider-metadata.json`. Pure: no IO and no clock reads, every date comes in as a parameter.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use medsec_core::{DeviceModel, FirmwareVersion};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha512};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::PostmarketError;

/// Longest accepted advisory id. The id becomes a file name (plus `.json.sha512`), and most
/// file systems stop at 255 bytes; 128 leaves room and is far beyond real tracking ids.
pub const MAX_ADVISORY_ID: usize = 128;
/// Longest accepted free text (titles, summaries, descriptions), in bytes.
pub const MAX_TEXT: usize = 65_536;
/// Longest accepted URL, in bytes.
pub const MAX_URL: usize = 2048;
/// The engine name written into `document.tracking.generator`.
pub const GENERATOR_NAME: &str = "medsec";
/// Where the TLP labels of CSAF 2.0 (TLP 1.0 names) are defined.
pub const TLP_URL: &str = "https://www.first.org/tlp/";

fn invalid(what: &'static str, message: impl Into<String>) -> PostmarketError {
    PostmarketError::Invalid {
        what,
        message: message.into(),
    }
}

/// A checked string newtype: `parse`, `as_str`, `FromStr`, `Display`, and serde as a plain
/// string that is checked again on the way in.
macro_rules! string_newtype {
    ($(#[$m:meta])* $name:ident, $check:path) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and checks the value.
            pub fn parse(s: &str) -> Result<Self, PostmarketError> {
                $check(s).map(Self)
            }

            /// The checked value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = PostmarketError;
            fn from_str(s: &str) -> Result<Self, PostmarketError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = PostmarketError;
            fn try_from(s: String) -> Result<Self, PostmarketError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Value types
// ---------------------------------------------------------------------------------------------

string_newtype!(
    /// A CSAF tracking id (`/document/tracking/id`), e.g. `MEDSEC-2026-0001`: 1 to
    /// [`MAX_ADVISORY_ID`] characters, no leading or trailing whitespace (the schema's
    /// `^\S(.*\S)?$`), no control characters or line breaks, and at least one ASCII letter or
    /// digit so that the file name derived from it says something.
    AdvisoryId,
    check_advisory_id
);

fn check_advisory_id(s: &str) -> Result<String, PostmarketError> {
    let what = "advisory id";
    if s.is_empty() || s.chars().count() > MAX_ADVISORY_ID {
        return Err(invalid(
            what,
            format!("must be 1 to {MAX_ADVISORY_ID} characters"),
        ));
    }
    if s.trim() != s {
        return Err(invalid(
            what,
            format!("{s:?} starts or ends with whitespace"),
        ));
    }
    // The schema's `.` matches no line break; tabs and other odd spaces would survive into
    // logs and UIs looking like plain spaces.
    if s.chars()
        .any(|c| c.is_control() || (c.is_whitespace() && c != ' '))
    {
        return Err(invalid(
            what,
            format!("{s:?} holds a control character or a whitespace other than a plain space"),
        ));
    }
    if !s.bytes().any(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid(
            what,
            format!(
                "{s:?} has no ASCII letter or digit; the CSAF file name keeps only those, '+' and '-'"
            ),
        ));
    }
    Ok(s.to_owned())
}

impl AdvisoryId {
    /// The file name CSAF 2.0 section 5.1 prescribes: the id in lowercase, every run of
    /// characters outside `[+\-a-z0-9]` replaced by one `_`, then `.json`.
    /// `Example Company - 2019-YH3234` becomes `example_company_-_2019-yh3234.json`.
    pub fn file_name(&self) -> String {
        let mut out = String::with_capacity(self.0.len() + 5);
        let mut in_run = false;
        for c in self.0.chars() {
            // Non-ASCII letters lowercase to non-ASCII letters, which the rule replaces anyway,
            // so ASCII lowercasing is the whole rule.
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '+' || c == '-' {
                out.push(c);
                in_run = false;
            } else if !in_run {
                out.push('_');
                in_run = true;
            }
        }
        out.push_str(".json");
        out
    }
}

string_newtype!(
    /// Free text for a CSAF string with `minLength: 1`: not blank, at most [`MAX_TEXT`] bytes,
    /// no control characters other than line breaks and tabs.
    Text,
    check_text
);

fn check_text(s: &str) -> Result<String, PostmarketError> {
    if s.trim().is_empty() {
        return Err(invalid("text", "must not be blank"));
    }
    if s.len() > MAX_TEXT {
        return Err(invalid(
            "text",
            format!("is {} bytes, the limit is {MAX_TEXT}", s.len()),
        ));
    }
    if s.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(invalid("text", "holds a control character"));
    }
    Ok(s.to_owned())
}

string_newtype!(
    /// An absolute `https://` URL: an authority without user information (which can disguise
    /// the real host), an optional port, and only RFC 3986 characters (anything else must be
    /// percent-encoded), so it is a valid JSON-schema `uri`.
    HttpsUrl,
    check_https_url
);

fn check_https_url(s: &str) -> Result<String, PostmarketError> {
    let what = "https url";
    if s.len() > MAX_URL {
        return Err(invalid(what, format!("longer than {MAX_URL} bytes")));
    }
    let rest = s
        .get(..8)
        .filter(|p| p.eq_ignore_ascii_case("https://"))
        .and_then(|_| s.get(8..))
        .ok_or_else(|| invalid(what, format!("{s:?} does not start with https://")))?;
    if !rest.bytes().all(is_uri_char) {
        return Err(invalid(
            what,
            format!("{s:?} holds characters that must be percent-encoded"),
        ));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    check_authority(&rest[..end]).map_err(|m| invalid(what, format!("{s:?}: {m}")))?;
    // The scheme is case-insensitive; one spelling keeps equal URLs equal.
    Ok(format!("https://{rest}"))
}

fn is_uri_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

fn check_authority(a: &str) -> Result<(), &'static str> {
    if a.contains('@') {
        return Err("user information before the host is not allowed");
    }
    let (host, port) = if a.starts_with('[') {
        let close = a.find(']').ok_or("unterminated IPv6 address")?;
        let inner = &a[1..close];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err("malformed IPv6 address");
        }
        (&a[..=close], &a[close + 1..])
    } else {
        match a.find(':') {
            Some(i) => (&a[..i], &a[i..]),
            None => (a, ""),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    if !host.starts_with('[')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err("the host may only hold letters, digits, '-' and '.'");
    }
    if let Some(digits) = port.strip_prefix(':') {
        if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("malformed port");
        }
    } else if !port.is_empty() {
        return Err("unexpected characters after the host");
    }
    Ok(())
}

string_newtype!(
    /// The origin a CSAF provider serves from, `https://host[:port]`, stored without a trailing
    /// slash. Only an origin: `/.well-known/` URIs live at the root of a host (RFC 8615), and
    /// CSAF requirement 9 looks for `provider-metadata.json` there.
    ProviderBaseUrl,
    check_provider_base
);

fn check_provider_base(s: &str) -> Result<String, PostmarketError> {
    let url = check_https_url(s)?;
    let url = url.strip_suffix('/').unwrap_or(&url);
    if url["https://".len()..].contains(['/', '?', '#']) {
        return Err(invalid(
            "provider base url",
            format!(
                "{s:?} must be an origin (https://host[:port]) without path, query or fragment"
            ),
        ));
    }
    Ok(url.to_owned())
}

impl ProviderBaseUrl {
    /// `<base>/.well-known/csaf/provider-metadata.json`.
    pub fn provider_metadata_url(&self) -> String {
        format!("{}/.well-known/csaf/provider-metadata.json", self.0)
    }

    /// `<base>/.well-known/csaf/<tlp>/`, the directory distribution of one TLP label. Only the
    /// `white/` one is public; the others must sit behind access control (requirement 5).
    pub fn directory_url(&self, tlp: Tlp) -> String {
        format!("{}/.well-known/csaf/{}/", self.0, tlp.folder())
    }
}

string_newtype!(
    /// A CVE id, `CVE-<year>-<4 or more digits>` (the CSAF schema's pattern).
    Cve,
    check_cve
);

fn check_cve(s: &str) -> Result<String, PostmarketError> {
    let ok = s.len() <= 32
        && s.strip_prefix("CVE-")
            .and_then(|r| r.split_once('-'))
            .is_some_and(|(year, seq)| {
                year.len() == 4
                    && seq.len() >= 4
                    && year.bytes().all(|b| b.is_ascii_digit())
                    && seq.bytes().all(|b| b.is_ascii_digit())
            });
    if ok {
        Ok(s.to_owned())
    } else {
        Err(invalid("cve", format!("{s:?} is not CVE-YYYY-NNNN")))
    }
}

string_newtype!(
    /// A CWE id, `CWE-<1 to 6 digits, no leading zero>` (the CSAF schema's pattern).
    CweId,
    check_cwe_id
);

fn check_cwe_id(s: &str) -> Result<String, PostmarketError> {
    let ok = s.strip_prefix("CWE-").is_some_and(|n| {
        (1..=6).contains(&n.len()) && !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())
    });
    if ok {
        Ok(s.to_owned())
    } else {
        Err(invalid("cwe id", format!("{s:?} is not CWE-N")))
    }
}

/// A weakness. The name must be the CWE catalogue's name for the id, character for character:
/// CSAF test 6.1.11 compares them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cwe {
    pub id: CweId,
    pub name: Text,
}

/// The traffic light of an advisory (CSAF 2.0 uses the TLP 1.0 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Tlp {
    /// TLP:WHITE; TLP 2.0 calls it TLP:CLEAR, which is accepted on input.
    #[serde(rename = "WHITE", alias = "CLEAR")]
    White,
    #[serde(rename = "GREEN")]
    Green,
    #[serde(rename = "AMBER")]
    Amber,
    #[serde(rename = "RED")]
    Red,
}

impl Tlp {
    pub const ALL: [Tlp; 4] = [Tlp::White, Tlp::Green, Tlp::Amber, Tlp::Red];

    /// The CSAF 2.0 label (`/document/distribution/tlp/label`).
    pub fn label(self) -> &'static str {
        match self {
            Tlp::White => "WHITE",
            Tlp::Green => "GREEN",
            Tlp::Amber => "AMBER",
            Tlp::Red => "RED",
        }
    }

    /// Whether the advisory may go on the public (`white/`) directory. GREEN is for a
    /// community, not for the internet (CSAF requirement 4 and 5).
    pub fn is_public(self) -> bool {
        self == Tlp::White
    }

    fn folder(self) -> &'static str {
        match self {
            Tlp::White => "white",
            Tlp::Green => "green",
            Tlp::Amber => "amber",
            Tlp::Red => "red",
        }
    }
}

impl FromStr for Tlp {
    type Err = PostmarketError;
    fn from_str(s: &str) -> Result<Self, PostmarketError> {
        if s.eq_ignore_ascii_case("CLEAR") {
            return Ok(Tlp::White);
        }
        Tlp::ALL
            .into_iter()
            .find(|t| t.label().eq_ignore_ascii_case(s))
            .ok_or_else(|| invalid("tlp", format!("{s:?} is not WHITE, GREEN, AMBER or RED")))
    }
}

impl fmt::Display for Tlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// `/document/tracking/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdvisoryStatus {
    Draft,
    Interim,
    Final,
}

impl AdvisoryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AdvisoryStatus::Draft => "draft",
            AdvisoryStatus::Interim => "interim",
            AdvisoryStatus::Final => "final",
        }
    }

    /// Interim and final documents are released; drafts are not.
    pub fn is_released(self) -> bool {
        self != AdvisoryStatus::Draft
    }
}

impl FromStr for AdvisoryStatus {
    type Err = PostmarketError;
    fn from_str(s: &str) -> Result<Self, PostmarketError> {
        [
            AdvisoryStatus::Draft,
            AdvisoryStatus::Interim,
            AdvisoryStatus::Final,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
        .ok_or_else(|| {
            invalid(
                "advisory status",
                format!("{s:?} is not draft, interim or final"),
            )
        })
    }
}

impl fmt::Display for AdvisoryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The issuing party (always CSAF category `vendor`: medsec publishes for the manufacturer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publisher {
    pub name: Text,
    /// A URL under the publisher's control that identifies it globally.
    pub namespace: HttpsUrl,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_details: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuing_authority: Option<Text>,
}

impl Publisher {
    fn to_csaf(&self) -> Value {
        let mut p = Map::new();
        p.insert("category".into(), json!("vendor"));
        p.insert("name".into(), json!(self.name));
        p.insert("namespace".into(), json!(self.namespace));
        if let Some(c) = &self.contact_details {
            p.insert("contact_details".into(), json!(c));
        }
        if let Some(a) = &self.issuing_authority {
            p.insert("issuing_authority".into(), json!(a));
        }
        Value::Object(p)
    }
}

/// One firmware version of one device model: the unit a product status is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductRef {
    pub model: DeviceModel,
    pub version: FirmwareVersion,
}

impl ProductRef {
    pub fn new(model: DeviceModel, version: FirmwareVersion) -> Self {
        ProductRef { model, version }
    }

    /// The CSAF product id: `pkg:generic/<model>@<version>`, the scheme of medsec-vuln's CSAF
    /// VEX export, so that a VEX document and an advisory about the same firmware use the same
    /// id. Model and version tokens hold only purl-safe characters, so nothing needs encoding
    /// and the id is unique per (model, version).
    pub fn product_id(&self) -> String {
        format!("pkg:generic/{}@{}", self.model, self.version)
    }
}

impl fmt::Display for ProductRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.model, self.version)
    }
}

/// A device model and the firmware versions the advisory speaks about (affected, fixed and
/// not affected ones alike: all must be declared here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub model: DeviceModel,
    pub firmware_versions: Vec<FirmwareVersion>,
}

/// A vulnerability id from another system (`ids` in CSAF), e.g. a GHSA or an internal ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtherId {
    pub system_name: Text,
    pub text: Text,
}

/// An external reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub summary: Text,
    pub url: HttpsUrl,
}

impl Reference {
    fn to_csaf(&self) -> Value {
        json!({"category": "external", "summary": self.summary, "url": self.url})
    }
}

/// Where each product stands for one vulnerability. A product may appear in one list only
/// (CSAF test 6.1.6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_affected: Vec<ProductRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fixed: Vec<ProductRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_not_affected: Vec<ProductRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub under_investigation: Vec<ProductRef>,
}

/// What users of affected firmware should do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remediation {
    /// The vendor fix in words (how to obtain and install the release).
    pub vendor_fix: Text,
    /// The releases that fix it; they count as `fixed` in the product status. A known-affected
    /// model without a release here gets a `none_available` remediation instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fixed_in: Vec<ProductRef>,
    /// Where to get the fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<HttpsUrl>,
    /// A compensating control that reduces the risk (e.g. network segmentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitigation: Option<Text>,
    /// A configuration change that avoids the vulnerability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workaround: Option<Text>,
}

/// One vulnerability of the advisory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vulnerability {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cve: Option<Cve>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<OtherId>,
    pub title: Text,
    pub description: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwe: Option<Cwe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_v3: Option<CvssV3>,
    /// Listed in the CISA Known Exploited Vulnerabilities catalog: exploited in the wild.
    #[serde(default)]
    pub known_exploited: bool,
    /// The impact on the device and the patient (CSAF threat of category `impact`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<Text>,
    pub product_status: ProductStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<Remediation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
}

/// Everything an author writes; the revision history is kept by [`Advisory`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvisoryContent {
    pub id: AdvisoryId,
    pub title: Text,
    pub tlp: Tlp,
    pub publisher: Publisher,
    /// The document summary note.
    pub summary: Text,
    /// A longer `details` note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_disclaimer: Option<Text>,
    pub products: Vec<Product>,
    pub vulnerabilities: Vec<Vulnerability>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
}

/// One entry of the revision history. `number` is the integer version it produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revision {
    pub number: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub date: OffsetDateTime,
    pub summary: Text,
    /// The document status this revision was released with.
    pub status: AdvisoryStatus,
}

// ---------------------------------------------------------------------------------------------
// CVSS v3
// ---------------------------------------------------------------------------------------------

/// A CVSS v3.0 or v3.1 base vector with the base score computed from it. The score is not an
/// input: CSAF test 6.1.9 recomputes it from the vector and rejects any difference, so taking
/// it from the author could only introduce that error. Temporal and environmental metrics are
/// refused (the manufacturer publishes the base score; the rest is the operator's).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CvssV3 {
    /// Normalised: `CVSS:3.x/` and the eight base metrics in specification order.
    vector: String,
    minor: u8,
    /// The base score in tenths, 0..=100, so that it prints exactly (9.8, not 9.800000001).
    base_tenths: u8,
}

const CVSS_BASE_METRICS: [&str; 8] = ["AV", "AC", "PR", "UI", "S", "C", "I", "A"];

impl CvssV3 {
    /// Parses a base vector such as `CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H`; metrics may
    /// come in any order, each exactly once.
    pub fn parse(s: &str) -> Result<Self, PostmarketError> {
        let bad = |m: String| invalid("cvss v3 vector", format!("{s:?}: {m}"));
        let (minor, rest) = if let Some(r) = s.strip_prefix("CVSS:3.1/") {
            (1, r)
        } else if let Some(r) = s.strip_prefix("CVSS:3.0/") {
            (0, r)
        } else {
            return Err(bad("does not start with CVSS:3.0/ or CVSS:3.1/".into()));
        };
        let mut values: [Option<&str>; 8] = [None; 8];
        for part in rest.split('/') {
            let (key, value) = part
                .split_once(':')
                .ok_or_else(|| bad(format!("{part:?} is not METRIC:VALUE")))?;
            let i = CVSS_BASE_METRICS
                .iter()
                .position(|m| *m == key)
                .ok_or_else(|| {
                    bad(format!(
                        "{key:?} is not a base metric (temporal and environmental metrics are not supported)"
                    ))
                })?;
            if values[i].replace(value).is_some() {
                return Err(bad(format!("{key} appears twice")));
            }
        }
        let mut v = [""; 8];
        for (i, slot) in values.iter().enumerate() {
            v[i] = slot.ok_or_else(|| bad(format!("{} is missing", CVSS_BASE_METRICS[i])))?;
        }
        let wrong = |i: usize| {
            bad(format!(
                "{}:{} is not a valid value",
                CVSS_BASE_METRICS[i], v[i]
            ))
        };
        let av = match v[0] {
            "N" => 0.85,
            "A" => 0.62,
            "L" => 0.55,
            "P" => 0.2,
            _ => return Err(wrong(0)),
        };
        let ac = match v[1] {
            "L" => 0.77,
            "H" => 0.44,
            _ => return Err(wrong(1)),
        };
        let changed = match v[4] {
            "U" => false,
            "C" => true,
            _ => return Err(wrong(4)),
        };
        // Privileges weigh more when the scope changes (CVSS v3.1 section 7.4).
        let pr = match (v[2], changed) {
            ("N", _) => 0.85,
            ("L", false) => 0.62,
            ("L", true) => 0.68,
            ("H", false) => 0.27,
            ("H", true) => 0.5,
            _ => return Err(wrong(2)),
        };
        let ui = match v[3] {
            "N" => 0.85,
            "R" => 0.62,
            _ => return Err(wrong(3)),
        };
        let mut cia = [0.0_f64; 3];
        for (k, w) in cia.iter_mut().enumerate() {
            *w = match v[5 + k] {
                "H" => 0.56,
                "L" => 0.22,
                "N" => 0.0,
                _ => return Err(wrong(5 + k)),
            };
        }
        let iss = 1.0 - (1.0 - cia[0]) * (1.0 - cia[1]) * (1.0 - cia[2]);
        let impact = if changed {
            7.52 * (iss - 0.029) - 3.25 * (iss - 0.02).powi(15)
        } else {
            6.42 * iss
        };
        let exploitability = 8.22 * av * ac * pr * ui;
        let base_tenths = if impact <= 0.0 {
            0
        } else {
            let raw = if changed {
                (1.08 * (impact + exploitability)).min(10.0)
            } else {
                (impact + exploitability).min(10.0)
            };
            roundup_tenths(raw, minor)
        };
        Ok(CvssV3 {
            vector: format!(
                "CVSS:3.{minor}/AV:{}/AC:{}/PR:{}/UI:{}/S:{}/C:{}/I:{}/A:{}",
                v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
            ),
            minor,
            base_tenths,
        })
    }

    /// The normalised vector string.
    pub fn vector(&self) -> &str {
        &self.vector
    }

    /// `"3.0"` or `"3.1"`.
    pub fn version(&self) -> &'static str {
        if self.minor == 1 { "3.1" } else { "3.0" }
    }

    pub fn base_score(&self) -> f64 {
        f64::from(self.base_tenths) / 10.0
    }

    /// The qualitative rating of the base score, as CVSS JSON spells it.
    pub fn base_severity(&self) -> &'static str {
        match self.base_tenths {
            0 => "NONE",
            1..=39 => "LOW",
            40..=69 => "MEDIUM",
            70..=89 => "HIGH",
            _ => "CRITICAL",
        }
    }

    fn to_csaf(&self) -> Value {
        json!({
            "version": self.version(),
            "vectorString": self.vector,
            "baseScore": self.base_score(),
            "baseSeverity": self.base_severity(),
        })
    }
}

/// Rounds up to one decimal, returning tenths. v3.1 rounds through an integer first so that
/// floating-point noise (4.000000001) does not round up a whole tenth; v3.0 used a plain
/// ceiling, and scores must match each version's reference calculator.
fn roundup_tenths(x: f64, minor: u8) -> u8 {
    let tenths = if minor == 1 {
        let int_input = (x * 100_000.0).round() as i64;
        if int_input % 10_000 == 0 {
            int_input / 10_000
        } else {
            int_input / 10_000 + 1
        }
    } else {
        (x * 10.0).ceil() as i64
    };
    tenths.clamp(0, 100) as u8
}

impl TryFrom<String> for CvssV3 {
    type Error = PostmarketError;
    fn try_from(s: String) -> Result<Self, PostmarketError> {
        CvssV3::parse(&s)
    }
}

impl From<CvssV3> for String {
    fn from(v: CvssV3) -> String {
        v.vector
    }
}

impl FromStr for CvssV3 {
    type Err = PostmarketError;
    fn from_str(s: &str) -> Result<Self, PostmarketError> {
        CvssV3::parse(s)
    }
}

impl fmt::Display for CvssV3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.vector)
    }
}

// ---------------------------------------------------------------------------------------------
// The advisory
// ---------------------------------------------------------------------------------------------

/// The authoring state of one CSAF security advisory: content plus revision history, both
/// always consistent (see the module documentation). Stored as JSON, it is checked again when
/// read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AdvisoryRepr")]
pub struct Advisory {
    content: AdvisoryContent,
    /// Never empty; numbers are 1..=n; dates never decrease; no draft after a release.
    revisions: Vec<Revision>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvisoryRepr {
    content: AdvisoryContent,
    revisions: Vec<Revision>,
}

impl TryFrom<AdvisoryRepr> for Advisory {
    type Error = PostmarketError;
    fn try_from(r: AdvisoryRepr) -> Result<Self, PostmarketError> {
        validate(&r.content)?;
        // Replay the history through the same checks as revise, so a hand-edited or corrupted
        // store cannot produce an advisory that revise would not have.
        let mut revisions: Vec<Revision> = Vec::with_capacity(r.revisions.len());
        for rev in r.revisions {
            let expected =
                next_revision(revisions.last(), rev.summary.as_str(), rev.date, rev.status)?;
            if rev.number != expected.number {
                return Err(invalid(
                    "advisory",
                    format!(
                        "revision number {} where {} was expected",
                        rev.number, expected.number
                    ),
                ));
            }
            revisions.push(expected);
        }
        if revisions.is_empty() {
            return Err(invalid("advisory", "the revision history is empty"));
        }
        Ok(Advisory {
            content: r.content,
            revisions,
        })
    }
}

/// The revision that would follow `last`, or the error that forbids it.
fn next_revision(
    last: Option<&Revision>,
    summary: &str,
    date: OffsetDateTime,
    status: AdvisoryStatus,
) -> Result<Revision, PostmarketError> {
    let summary = Text::parse(summary)?;
    let date = utc(date)?;
    let number = match last {
        None => 1,
        Some(last) => {
            if date < last.date {
                return Err(invalid(
                    "revision date",
                    format!(
                        "{} is earlier than revision {} of {}",
                        rfc3339(date),
                        last.number,
                        rfc3339(last.date)
                    ),
                ));
            }
            if last.status.is_released() && status == AdvisoryStatus::Draft {
                return Err(invalid(
                    "advisory status",
                    format!(
                        "revision {} was released as {}; a released advisory cannot become a draft again",
                        last.number, last.status
                    ),
                ));
            }
            last.number
                .checked_add(1)
                .ok_or_else(|| invalid("advisory", "too many revisions"))?
        }
    };
    Ok(Revision {
        number,
        date,
        summary,
        status,
    })
}

/// The date in UTC, refused when RFC 3339 cannot represent it (years outside 0..=9999), so
/// that rendering never fails later.
fn utc(date: OffsetDateTime) -> Result<OffsetDateTime, PostmarketError> {
    date.checked_to_offset(UtcOffset::UTC)
        .filter(|d| d.format(&Rfc3339).is_ok())
        .ok_or_else(|| {
            invalid(
                "revision date",
                format!("{date} cannot be written as RFC 3339"),
            )
        })
}

/// RFC 3339; only called on dates [`utc`] accepted.
fn rfc3339(d: OffsetDateTime) -> String {
    d.format(&Rfc3339).unwrap_or_default()
}

/// The cross-reference rules the types alone cannot express.
fn validate(c: &AdvisoryContent) -> Result<(), PostmarketError> {
    let bad = |m: String| invalid("advisory", m);
    if c.products.is_empty() {
        return Err(bad(
            "needs at least one product: a security advisory has a product tree (CSAF 6.1.27.4)"
                .into(),
        ));
    }
    let mut declared: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (i, p) in c.products.iter().enumerate() {
        if p.firmware_versions.is_empty() {
            return Err(bad(format!(
                "products[{i}] ({}) lists no firmware version",
                p.model
            )));
        }
        for v in &p.firmware_versions {
            // CSAF test 6.1.31: a product_version branch names one version; these words mark a
            // range, which belongs in product_version_range.
            const RANGE_WORDS: [&str; 7] = [
                "after", "all", "before", "earlier", "later", "prior", "versions",
            ];
            if RANGE_WORDS.contains(&v.as_str().to_ascii_lowercase().as_str()) {
                return Err(bad(format!(
                    "products[{i}]: {v:?} reads as a version range, not a version"
                )));
            }
            declared.insert((p.model.as_str(), v.as_str()));
        }
    }
    if c.vulnerabilities.is_empty() {
        return Err(bad("needs at least one vulnerability".into()));
    }
    let mut cves = BTreeSet::new();
    for (i, v) in c.vulnerabilities.iter().enumerate() {
        if let Some(cve) = &v.cve
            && !cves.insert(cve.as_str())
        {
            return Err(bad(format!(
                "vulnerabilities[{i}]: {cve} is already another vulnerability (CSAF 6.1.23)"
            )));
        }
        let ps = &v.product_status;
        let fixed_in: &[ProductRef] = v.remediation.as_ref().map_or(&[], |r| &r.fixed_in);
        let lists: [(&str, &str, &[ProductRef]); 5] = [
            (
                "product_status.known_affected",
                "known_affected",
                &ps.known_affected,
            ),
            ("product_status.fixed", "fixed", &ps.fixed),
            ("remediation.fixed_in", "fixed", fixed_in),
            (
                "product_status.known_not_affected",
                "known_not_affected",
                &ps.known_not_affected,
            ),
            (
                "product_status.under_investigation",
                "under_investigation",
                &ps.under_investigation,
            ),
        ];
        let mut status_of: BTreeMap<(&str, &str), &str> = BTreeMap::new();
        for (field, status, refs) in lists {
            for r in refs {
                let key = (r.model.as_str(), r.version.as_str());
                if !declared.contains(&key) {
                    return Err(bad(format!(
                        "vulnerabilities[{i}].{field}: {r} is not one of the advisory's products"
                    )));
                }
                if let Some(prev) = status_of.insert(key, status)
                    && prev != status
                {
                    return Err(bad(format!(
                        "vulnerabilities[{i}]: {r} cannot be both {prev} and {status} (CSAF 6.1.6)"
                    )));
                }
            }
        }
        if status_of.is_empty() {
            return Err(bad(format!(
                "vulnerabilities[{i}] names no product; a security advisory gives every vulnerability a product status (CSAF 6.1.27.6)"
            )));
        }
    }
    Ok(())
}

impl Advisory {
    /// Starts an advisory with revision 1. `status` is usually draft; final publishes at once.
    pub fn new(
        content: AdvisoryContent,
        summary: &str,
        date: OffsetDateTime,
        status: AdvisoryStatus,
    ) -> Result<Self, PostmarketError> {
        validate(&content)?;
        let first = next_revision(None, summary, date, status)?;
        Ok(Advisory {
            content,
            revisions: vec![first],
        })
    }

    /// Records a new revision of unchanged content (e.g. draft to final): the next integer
    /// version, `date` as the current release date. Refuses a date earlier than the previous
    /// revision's and a return to draft after a release; the advisory is unchanged on error.
    pub fn revise(
        &mut self,
        summary: &str,
        date: OffsetDateTime,
        status: AdvisoryStatus,
    ) -> Result<(), PostmarketError> {
        let rev = next_revision(self.revisions.last(), summary, date, status)?;
        self.revisions.push(rev);
        Ok(())
    }

    /// Replaces the content and records the revision that publishes the change. The tracking
    /// id cannot change (a different id is a different advisory); the TLP can, which is how an
    /// AMBER advisory shared with coordinators becomes WHITE at public disclosure.
    pub fn revise_with(
        &mut self,
        content: AdvisoryContent,
        summary: &str,
        date: OffsetDateTime,
        status: AdvisoryStatus,
    ) -> Result<(), PostmarketError> {
        if content.id != self.content.id {
            return Err(invalid(
                "advisory",
                format!(
                    "the tracking id is {}, not {}; a new id is a new advisory",
                    self.content.id, content.id
                ),
            ));
        }
        validate(&content)?;
        let rev = next_revision(self.revisions.last(), summary, date, status)?;
        self.content = content;
        self.revisions.push(rev);
        Ok(())
    }

    pub fn content(&self) -> &AdvisoryContent {
        &self.content
    }

    pub fn id(&self) -> &AdvisoryId {
        &self.content.id
    }

    pub fn tlp(&self) -> Tlp {
        self.content.tlp
    }

    /// The revision history, oldest first (never empty).
    pub fn revisions(&self) -> &[Revision] {
        &self.revisions
    }

    fn latest(&self) -> Option<&Revision> {
        self.revisions.last()
    }

    /// The status of the newest revision.
    pub fn status(&self) -> AdvisoryStatus {
        self.latest().map_or(AdvisoryStatus::Draft, |r| r.status)
    }

    /// The integer version, `"1"`, `"2"`, ...
    pub fn version(&self) -> String {
        self.latest().map_or(1, |r| r.number).to_string()
    }

    /// When the advisory was first published: the first released revision's date, or while it
    /// is still a draft, the first revision's. Drafts that preceded the release are not
    /// publication, and the directory year derives from this date.
    pub fn initial_release_date(&self) -> OffsetDateTime {
        self.revisions
            .iter()
            .find(|r| r.status.is_released())
            .or(self.revisions.first())
            .map_or(OffsetDateTime::UNIX_EPOCH, |r| r.date)
    }

    /// The newest revision's date.
    pub fn current_release_date(&self) -> OffsetDateTime {
        self.latest().map_or(OffsetDateTime::UNIX_EPOCH, |r| r.date)
    }

    /// `<year of the initial release>/<file name>`: the path under the TLP folder (CSAF
    /// requirement 11).
    pub fn relative_path(&self) -> String {
        format!(
            "{}/{}",
            self.initial_release_date().year(),
            self.content.id.file_name()
        )
    }

    /// The URL the advisory is served at under `base`:
    /// `<base>/.well-known/csaf/<tlp>/<year>/<file name>`.
    pub fn canonical_url(&self, base: &ProviderBaseUrl) -> String {
        format!("{}{}", base.directory_url(self.tlp()), self.relative_path())
    }

    /// The CSAF 2.0 document (category `csaf_security_advisory`) without a self reference.
    /// Same advisory and generator version, same document, byte for byte once serialised.
    pub fn to_csaf(&self, generator_version: &str) -> Value {
        self.render(generator_version, None)
    }

    /// As [`Advisory::to_csaf`], with a `self` reference to [`Advisory::canonical_url`].
    pub fn to_csaf_at(&self, generator_version: &str, base: &ProviderBaseUrl) -> Value {
        self.render(generator_version, Some(base))
    }

    /// Renders the document once, as it will be served (pretty JSON with a final newline), for
    /// [`directory_files`].
    pub fn publish(&self, generator_version: &str, base: &ProviderBaseUrl) -> PublishedAdvisory {
        let doc = self.to_csaf_at(generator_version, base);
        // Serialising a Value built from strings, numbers and maps cannot fail.
        let mut json = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        json.push(b'\n');
        let current = self.current_release_date();
        PublishedAdvisory {
            id: self.content.id.clone(),
            tlp: self.tlp(),
            status: self.status(),
            initial_year: self.initial_release_date().year(),
            current_release_date: current,
            current_release_text: rfc3339(current),
            json,
        }
    }

    fn render(&self, generator_version: &str, base: Option<&ProviderBaseUrl>) -> Value {
        let c = &self.content;
        let mut notes = vec![json!({"category": "summary", "title": "Summary", "text": c.summary})];
        if let Some(d) = &c.details {
            notes.push(json!({"category": "details", "title": "Details", "text": d}));
        }
        if let Some(l) = &c.legal_disclaimer {
            notes.push(
                json!({"category": "legal_disclaimer", "title": "Legal disclaimer", "text": l}),
            );
        }
        let mut references: Vec<Value> = Vec::new();
        if let Some(base) = base {
            references.push(json!({
                "category": "self",
                "summary": format!("Canonical URL of {}", c.id),
                "url": self.canonical_url(base),
            }));
        }
        references.extend(c.references.iter().map(Reference::to_csaf));

        let mut engine = Map::new();
        engine.insert("name".into(), json!(GENERATOR_NAME));
        // The schema wants a non-empty version or none at all.
        if !generator_version.trim().is_empty() {
            engine.insert("version".into(), json!(generator_version));
        }
        let history: Vec<Value> = self
            .revisions
            .iter()
            .map(|r| {
                json!({"number": r.number.to_string(), "date": rfc3339(r.date), "summary": r.summary})
            })
            .collect();
        let tracking = json!({
            "id": c.id,
            "status": self.status().as_str(),
            "version": self.version(),
            "revision_history": history,
            "initial_release_date": rfc3339(self.initial_release_date()),
            "current_release_date": rfc3339(self.current_release_date()),
            "generator": {"engine": engine},
        });

        let mut document = Map::new();
        document.insert("category".into(), json!("csaf_security_advisory"));
        document.insert("csaf_version".into(), json!("2.0"));
        document.insert("lang".into(), json!("en"));
        document.insert("title".into(), json!(c.title));
        document.insert("publisher".into(), c.publisher.to_csaf());
        document.insert(
            "distribution".into(),
            json!({"tlp": {"label": c.tlp.label(), "url": TLP_URL}}),
        );
        document.insert("notes".into(), json!(notes));
        if !references.is_empty() {
            document.insert("references".into(), json!(references));
        }
        document.insert("tracking".into(), tracking);

        json!({
            "document": document,
            "product_tree": self.product_tree(),
            "vulnerabilities": c.vulnerabilities.iter().map(|v| self.vulnerability(v)).collect::<Vec<_>>(),
        })
    }

    /// vendor -> product_name (model) -> product_version (firmware), in the author's order
    /// with repeats merged.
    fn product_tree(&self) -> Value {
        let c = &self.content;
        let mut models: Vec<(&DeviceModel, Vec<&FirmwareVersion>)> = Vec::new();
        for p in &c.products {
            let i = match models.iter().position(|(m, _)| *m == &p.model) {
                Some(i) => i,
                None => {
                    models.push((&p.model, Vec::new()));
                    models.len() - 1
                }
            };
            for v in &p.firmware_versions {
                if !models[i].1.contains(&v) {
                    models[i].1.push(v);
                }
            }
        }
        let vendor = c.publisher.name.as_str();
        let branches: Vec<Value> = models
            .into_iter()
            .map(|(model, versions)| {
                let leaves: Vec<Value> = versions
                    .into_iter()
                    .map(|v| {
                        let id = ProductRef::new(model.clone(), v.clone()).product_id();
                        json!({
                            "category": "product_version",
                            "name": v,
                            "product": {
                                "name": format!("{vendor} {model} {v}"),
                                "product_id": id,
                                "product_identification_helper": {"purl": id},
                            },
                        })
                    })
                    .collect();
                json!({"category": "product_name", "name": model, "branches": leaves})
            })
            .collect();
        json!({"branches": [{"category": "vendor", "name": vendor, "branches": branches}]})
    }

    fn vulnerability(&self, v: &Vulnerability) -> Value {
        let ps = &v.product_status;
        let affected_refs = dedup(&ps.known_affected);
        let affected: Vec<String> = affected_refs.iter().map(|r| r.product_id()).collect();
        let fixed_in: &[ProductRef] = v.remediation.as_ref().map_or(&[], |r| &r.fixed_in);
        let fixed = ids(ps.fixed.iter().chain(fixed_in));

        let mut out = Map::new();
        if let Some(cve) = &v.cve {
            out.insert("cve".into(), json!(cve));
        }
        let mut other: Vec<&OtherId> = Vec::new();
        for id in &v.ids {
            // `ids` is a uniqueItems array.
            if !other.contains(&id) {
                other.push(id);
            }
        }
        if !other.is_empty() {
            out.insert(
                "ids".into(),
                json!(
                    other
                        .iter()
                        .map(|i| json!({"system_name": i.system_name, "text": i.text}))
                        .collect::<Vec<_>>()
                ),
            );
        }
        out.insert("title".into(), json!(v.title));
        if let Some(cwe) = &v.cwe {
            out.insert("cwe".into(), json!({"id": cwe.id, "name": cwe.name}));
        }
        out.insert(
            "notes".into(),
            json!([{"category": "description", "title": "Vulnerability description", "text": v.description}]),
        );

        let mut status = Map::new();
        for (key, list) in [
            ("known_affected", affected.clone()),
            ("fixed", fixed),
            ("known_not_affected", ids(&ps.known_not_affected)),
            ("under_investigation", ids(&ps.under_investigation)),
        ] {
            if !list.is_empty() {
                status.insert(key.into(), json!(list));
            }
        }
        out.insert("product_status".into(), Value::Object(status));

        // Every known-affected product gets a remediation: a vendor fix naming the release that
        // fixes its model, or none_available when its model has no fixed release yet.
        let mut remediations: Vec<Value> = Vec::new();
        let mut by_model: Vec<(&DeviceModel, Vec<String>)> = Vec::new();
        for r in &affected_refs {
            match by_model.iter_mut().find(|(m, _)| *m == &r.model) {
                Some((_, ids)) => ids.push(r.product_id()),
                None => by_model.push((&r.model, vec![r.product_id()])),
            }
        }
        for (model, product_ids) in by_model {
            let fixes: Vec<&str> = dedup(fixed_in)
                .into_iter()
                .filter(|f| &f.model == model)
                .map(|f| f.version.as_str())
                .collect();
            match &v.remediation {
                Some(r) if !fixes.is_empty() => {
                    let mut fix = json!({
                        "category": "vendor_fix",
                        "details": format!("Update {model} to firmware {}. {}", fixes.join(" or "), r.vendor_fix),
                        "product_ids": product_ids,
                    });
                    if let Some(url) = &r.url {
                        fix["url"] = json!(url);
                    }
                    remediations.push(fix);
                }
                _ => remediations.push(json!({
                    "category": "none_available",
                    "details": format!("No firmware release of {model} fixes this vulnerability yet."),
                    "product_ids": product_ids,
                })),
            }
        }
        if let Some(r) = &v.remediation
            && !affected.is_empty()
        {
            for (category, text) in [("mitigation", &r.mitigation), ("workaround", &r.workaround)] {
                if let Some(text) = text {
                    remediations.push(
                        json!({"category": category, "details": text, "product_ids": affected}),
                    );
                }
            }
        }
        if !remediations.is_empty() {
            out.insert("remediations".into(), json!(remediations));
        }

        // A score is about vulnerable products: the known affected ones, else those still under
        // investigation; fixed and unaffected firmware has no score to carry.
        if let Some(cvss) = &v.cvss_v3 {
            let products = if affected.is_empty() {
                ids(&ps.under_investigation)
            } else {
                affected.clone()
            };
            if !products.is_empty() {
                out.insert(
                    "scores".into(),
                    json!([{"cvss_v3": cvss.to_csaf(), "products": products}]),
                );
            }
        }

        let mut threats: Vec<Value> = Vec::new();
        let with_products = |mut t: Value| {
            if !affected.is_empty() {
                t["product_ids"] = json!(affected);
            }
            t
        };
        if let Some(impact) = &v.impact {
            threats.push(with_products(
                json!({"category": "impact", "details": impact}),
            ));
        }
        if v.known_exploited {
            threats.push(with_products(json!({
                "category": "exploit_status",
                "details": "Exploited in the wild: listed in the CISA Known Exploited Vulnerabilities catalog.",
            })));
        }
        if !threats.is_empty() {
            out.insert("threats".into(), json!(threats));
        }
        if !v.references.is_empty() {
            out.insert(
                "references".into(),
                json!(
                    v.references
                        .iter()
                        .map(Reference::to_csaf)
                        .collect::<Vec<_>>()
                ),
            );
        }
        Value::Object(out)
    }
}

/// The refs without repeats, first occurrence first.
fn dedup<'a>(refs: impl IntoIterator<Item = &'a ProductRef>) -> Vec<&'a ProductRef> {
    let mut out: Vec<&ProductRef> = Vec::new();
    for r in refs {
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

fn ids<'a>(refs: impl IntoIterator<Item = &'a ProductRef>) -> Vec<String> {
    dedup(refs)
        .into_iter()
        .map(ProductRef::product_id)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Provider directory
// ---------------------------------------------------------------------------------------------

/// A rendered CSAF document as served, with what the directory needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedAdvisory {
    id: AdvisoryId,
    tlp: Tlp,
    status: AdvisoryStatus,
    initial_year: i32,
    current_release_date: OffsetDateTime,
    /// `current_release_date` exactly as the document writes it, for changes.csv.
    current_release_text: String,
    json: Vec<u8>,
}

impl PublishedAdvisory {
    /// Reads back a stored CSAF document (of any category) so that the directory can be rebuilt
    /// from the files already served. Needs the tracking id, status and dates and a TLP label:
    /// a document without a label is never treated as public.
    pub fn from_csaf_json(json: Vec<u8>) -> Result<Self, PostmarketError> {
        let what = "CSAF document";
        let doc: Value =
            serde_json::from_slice(&json).map_err(|e| invalid(what, format!("not JSON: {e}")))?;
        let field = |ptr: &str| {
            doc.pointer(ptr)
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(what, format!("{ptr} is missing or not a string")))
        };
        let date = |ptr: &str| -> Result<(OffsetDateTime, String), PostmarketError> {
            let text = field(ptr)?;
            let d = OffsetDateTime::parse(text, &Rfc3339)
                .map_err(|e| invalid(what, format!("{ptr}: {text:?} is not RFC 3339: {e}")))?;
            Ok((d, text.to_owned()))
        };
        let id = AdvisoryId::parse(field("/document/tracking/id")?)?;
        let status = field("/document/tracking/status")?.parse()?;
        let tlp = field("/document/distribution/tlp/label")?.parse()?;
        // The year as written: CSAF takes the folder name from the value itself.
        let (initial, _) = date("/document/tracking/initial_release_date")?;
        let (current, current_text) = date("/document/tracking/current_release_date")?;
        Ok(PublishedAdvisory {
            id,
            tlp,
            status,
            initial_year: initial.year(),
            current_release_date: current,
            current_release_text: current_text,
            json,
        })
    }

    pub fn id(&self) -> &AdvisoryId {
        &self.id
    }

    pub fn tlp(&self) -> Tlp {
        self.tlp
    }

    pub fn status(&self) -> AdvisoryStatus {
        self.status
    }

    pub fn current_release_date(&self) -> OffsetDateTime {
        self.current_release_date
    }

    /// The served bytes.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// `<year of initial_release_date>/<file name>`.
    pub fn relative_path(&self) -> String {
        format!("{}/{}", self.initial_year, self.id.file_name())
    }
}

/// The files of the public directory distribution, as (path relative to
/// `/.well-known/csaf/white/`, content), sorted by path:
/// - every WHITE, released advisory at `<year>/<file name>` (requirement 11), with
///   `<file>.sha256` and `<file>.sha512` in `sha256sum` format (requirement 18);
/// - `index.txt`, one path per line (requirement 12);
/// - `changes.csv`, `"<path>","<current_release_date>"` newest first (requirement 13).
///
/// Advisories that are not TLP:WHITE are left out (they must not be public), and so are drafts:
/// a draft is not released. When one advisory comes in several versions, the newest is served.
/// Two different advisories whose ids map to the same file name are an error, as is one
/// advisory twice with the same date but different bytes. Directory listings (requirement 14)
/// are the web server's job.
pub fn directory_files(
    entries: &[PublishedAdvisory],
) -> Result<Vec<(String, Vec<u8>)>, PostmarketError> {
    let what = "CSAF directory";
    let mut chosen: BTreeMap<String, &PublishedAdvisory> = BTreeMap::new();
    for e in entries
        .iter()
        .filter(|e| e.tlp.is_public() && e.status.is_released())
    {
        // Keyed by file name, not path: versions of one advisory share the name even if a
        // stored document disagrees about the year.
        let name = e.id.file_name();
        let Some(old) = chosen.get(&name) else {
            chosen.insert(name, e);
            continue;
        };
        if old.id != e.id {
            return Err(invalid(
                what,
                format!(
                    "advisories {} and {} both map to the file {name}",
                    old.id, e.id
                ),
            ));
        }
        if old.json == e.json {
            continue;
        }
        match e.current_release_date.cmp(&old.current_release_date) {
            std::cmp::Ordering::Greater => {
                chosen.insert(name, e);
            }
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => {
                return Err(invalid(
                    what,
                    format!(
                        "two different documents of {} share the release date {}",
                        e.id, e.current_release_text
                    ),
                ));
            }
        }
    }

    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut paths: Vec<String> = Vec::new();
    let mut changes: Vec<(&PublishedAdvisory, String)> = Vec::new();
    for (name, e) in &chosen {
        let path = e.relative_path();
        files.push((path.clone(), e.json.clone()));
        files.push((
            format!("{path}.sha256"),
            format!("{}  {name}\n", hex::encode(Sha256::digest(&e.json))).into_bytes(),
        ));
        files.push((
            format!("{path}.sha512"),
            format!("{}  {name}\n", hex::encode(Sha512::digest(&e.json))).into_bytes(),
        ));
        paths.push(path.clone());
        changes.push((e, path));
    }
    paths.sort();
    let index: String = paths.iter().map(|p| format!("{p}\n")).collect();
    changes.sort_by(|(a, pa), (b, pb)| {
        (Reverse(a.current_release_date), pa).cmp(&(Reverse(b.current_release_date), pb))
    });
    // Paths hold only [a-z0-9+_./-] and RFC 3339 dates no quote or comma, so quoting each
    // field is all the CSV escaping needed.
    let csv: String = changes
        .iter()
        .map(|(e, p)| format!("\"{p}\",\"{}\"\n", e.current_release_text))
        .collect();
    files.push(("index.txt".into(), index.into_bytes()));
    files.push(("changes.csv".into(), csv.into_bytes()));
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// The role declared in `provider-metadata.json`. `csaf_trusted_provider` is not offered: it
/// requires OpenPGP signatures and keys (requirements 19 and 20), which this module does not
/// produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderRole {
    /// Requirements 1-4 only.
    CsafPublisher,
    /// Publisher plus requirements 5-7, one of 8-10 and the directory distribution 11-14, which
    /// [`directory_files`] and [`provider_metadata`] provide (with the 7.1.18 hashes on top);
    /// valid without signatures. The right choice for medsec's directory.
    CsafProvider,
}

impl ProviderRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderRole::CsafPublisher => "csaf_publisher",
            ProviderRole::CsafProvider => "csaf_provider",
        }
    }
}

/// `/.well-known/csaf/provider-metadata.json` (requirement 7): one directory distribution, the
/// public `white/` folder. Listing and mirroring on aggregators are allowed because everything
/// in that folder is TLP:WHITE and meant to reach every operator of the devices.
pub fn provider_metadata(
    publisher: &Publisher,
    base: &ProviderBaseUrl,
    last_updated: OffsetDateTime,
    role: ProviderRole,
) -> Result<Value, PostmarketError> {
    let last_updated = utc(last_updated).map_err(|_| {
        invalid(
            "provider metadata",
            format!("last_updated {last_updated} cannot be written as RFC 3339"),
        )
    })?;
    Ok(json!({
        "canonical_url": base.provider_metadata_url(),
        "distributions": [{"directory_url": base.directory_url(Tlp::White)}],
        "last_updated": rfc3339(last_updated),
        "list_on_CSAF_aggregators": true,
        "mirror_on_CSAF_aggregators": true,
        "metadata_version": "2.0",
        "publisher": publisher.to_csaf(),
        "role": role.as_str(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn t(s: &str) -> Text {
        Text::parse(s).unwrap()
    }

    fn pr(model: &str, version: &str) -> ProductRef {
        ProductRef::new(
            DeviceModel::parse(model).unwrap(),
            FirmwareVersion::parse(version).unwrap(),
        )
    }

    fn publisher() -> Publisher {
        Publisher {
            name: t("Acme Medical"),
            namespace: HttpsUrl::parse("https://acme.example").unwrap(),
            contact_details: Some(t("psirt@acme.example")),
            issuing_authority: None,
        }
    }

    fn content(tlp: Tlp) -> AdvisoryContent {
        AdvisoryContent {
            id: AdvisoryId::parse("MEDSEC-2026-0001").unwrap(),
            title: t("Infusion pump X2: hard-coded service password"),
            tlp,
            publisher: publisher(),
            summary: t("A hard-coded password allows remote service access."),
            details: None,
            legal_disclaimer: None,
            products: vec![Product {
                model: DeviceModel::parse("infusion-x2").unwrap(),
                firmware_versions: vec![
                    FirmwareVersion::parse("2.1.0").unwrap(),
                    FirmwareVersion::parse("2.2.0").unwrap(),
                ],
            }],
            vulnerabilities: vec![Vulnerability {
                cve: Some(Cve::parse("CVE-2026-10001").unwrap()),
                ids: vec![],
                title: t("Hard-coded service password"),
                description: t("The service interface accepts a fixed password."),
                cwe: None,
                cvss_v3: Some(
                    CvssV3::parse("CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").unwrap(),
                ),
                known_exploited: false,
                impact: None,
                product_status: ProductStatus {
                    known_affected: vec![pr("infusion-x2", "2.1.0")],
                    ..Default::default()
                },
                remediation: Some(Remediation {
                    vendor_fix: t("Install the update from the service portal."),
                    fixed_in: vec![pr("infusion-x2", "2.2.0")],
                    url: None,
                    mitigation: None,
                    workaround: None,
                }),
                references: vec![],
            }],
            references: vec![],
        }
    }

    fn advisory(tlp: Tlp) -> Advisory {
        let mut a = Advisory::new(
            content(tlp),
            "Initial draft.",
            datetime!(2026-03-02 09:00 UTC),
            AdvisoryStatus::Draft,
        )
        .unwrap();
        a.revise(
            "Public release.",
            datetime!(2026-03-10 12:00 UTC),
            AdvisoryStatus::Final,
        )
        .unwrap();
        a
    }

    fn base() -> ProviderBaseUrl {
        ProviderBaseUrl::parse("https://psirt.acme.example/").unwrap()
    }

    #[test]
    fn advisory_ids_follow_the_tracking_id_rules() {
        for ok in [
            "MEDSEC-2026-0001",
            "Example Company - 2019-YH3234",
            "RHBA-2019:0024",
            "a",
        ] {
            assert!(AdvisoryId::parse(ok).is_ok(), "{ok}");
        }
        let long = "A".repeat(MAX_ADVISORY_ID + 1);
        for bad in [
            "",
            " MEDSEC-1",
            "MEDSEC-1 ",
            "MEDSEC\t1",
            "MEDSEC\n1",
            "---",
            "   ",
            &long,
        ] {
            assert!(
                matches!(
                    AdvisoryId::parse(bad),
                    Err(PostmarketError::Invalid {
                        what: "advisory id",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        assert!(AdvisoryId::parse(&"A".repeat(MAX_ADVISORY_ID)).is_ok());
        // Serde goes through the same check.
        assert!(serde_json::from_str::<AdvisoryId>("\" x\"").is_err());
    }

    #[test]
    fn file_names_follow_csaf_5_1() {
        let f = |s: &str| AdvisoryId::parse(s).unwrap().file_name();
        // The examples of CSAF 2.0 section 5.1.
        assert_eq!(
            f("Example Company - 2019-YH3234"),
            "example_company_-_2019-yh3234.json"
        );
        assert_eq!(f("RHBA-2019:0024"), "rhba-2019_0024.json");
        assert_eq!(
            f("cisco-sa-20190513-secureboot"),
            "cisco-sa-20190513-secureboot.json"
        );
        assert_eq!(f("MEDSEC-2026-0001"), "medsec-2026-0001.json");
        // Runs collapse into one underscore; '+' survives; non-ASCII is replaced.
        assert_eq!(f("A//B..C+D"), "a_b_c+d.json");
        assert_eq!(f("Pömpe 1"), "p_mpe_1.json");
    }

    #[test]
    fn tlp_maps_to_csaf_labels_and_only_white_is_public() {
        assert_eq!(Tlp::White.label(), "WHITE");
        assert_eq!(Tlp::Green.label(), "GREEN");
        assert_eq!(Tlp::Amber.label(), "AMBER");
        assert_eq!(Tlp::Red.label(), "RED");
        assert_eq!(
            Tlp::ALL
                .iter()
                .filter(|t| t.is_public())
                .collect::<Vec<_>>(),
            vec![&Tlp::White]
        );
        assert_eq!(
            serde_json::from_str::<Tlp>("\"CLEAR\"").unwrap(),
            Tlp::White
        );
        assert_eq!(serde_json::to_string(&Tlp::White).unwrap(), "\"WHITE\"");
        assert_eq!("clear".parse::<Tlp>().unwrap(), Tlp::White);
        assert_eq!("amber".parse::<Tlp>().unwrap(), Tlp::Amber);
        assert!("AMBER+STRICT".parse::<Tlp>().is_err());
        let doc = advisory(Tlp::Amber).to_csaf("1.0.0");
        assert_eq!(doc["document"]["distribution"]["tlp"]["label"], "AMBER");
        assert_eq!(doc["document"]["distribution"]["tlp"]["url"], TLP_URL);
    }

    #[test]
    fn urls_must_be_https_without_userinfo() {
        assert_eq!(
            HttpsUrl::parse("HTTPS://acme.example/a?b#c")
                .unwrap()
                .as_str(),
            "https://acme.example/a?b#c"
        );
        assert!(HttpsUrl::parse("https://[::1]:8443/x").is_ok());
        for bad in [
            "http://acme.example",
            "https://",
            "https:///path",
            "https://acme.example@evil.example/",
            "https://acme.example/a b",
            "https://acme.example:99999999/",
            "ftp://acme.example",
        ] {
            assert!(HttpsUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(base().as_str(), "https://psirt.acme.example");
        assert!(ProviderBaseUrl::parse("https://acme.example/psirt").is_err());
        assert!(ProviderBaseUrl::parse("https://acme.example?x").is_err());
        assert_eq!(
            base().provider_metadata_url(),
            "https://psirt.acme.example/.well-known/csaf/provider-metadata.json"
        );
    }

    #[test]
    fn cvss_base_scores_match_the_first_calculators() {
        // Expected values from FIRST's cvsscalc30.js / cvsscalc31.js (as bundled in the BSI
        // validator, which recomputes them in test 6.1.9).
        for (vector, score, severity) in [
            (
                "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                9.8,
                "CRITICAL",
            ),
            (
                "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H",
                10.0,
                "CRITICAL",
            ),
            (
                "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N",
                4.3,
                "MEDIUM",
            ),
            ("CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N", 0.0, "NONE"),
            (
                "CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N",
                6.1,
                "MEDIUM",
            ),
            ("CVSS:3.1/AV:A/AC:L/PR:L/UI:N/S:C/C:H/I:L/A:N", 7.6, "HIGH"),
            ("CVSS:3.0/AV:P/AC:H/PR:H/UI:R/S:C/C:L/I:N/A:N", 1.8, "LOW"),
            ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6, "LOW"),
            ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8, "HIGH"),
        ] {
            let c = CvssV3::parse(vector).unwrap();
            assert_eq!(c.base_score(), score, "{vector}");
            assert_eq!(c.base_severity(), severity, "{vector}");
            assert_eq!(c.vector(), vector);
        }
        // Any metric order in, specification order out.
        let c = CvssV3::parse("CVSS:3.1/A:H/I:H/C:H/S:U/UI:N/PR:N/AC:L/AV:N").unwrap();
        assert_eq!(c.vector(), "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H");
        assert_eq!(c.version(), "3.1");
        for bad in [
            "CVSS:2.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/A:H",
            "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:F",
        ] {
            assert!(CvssV3::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn revisions_bump_the_integer_version_and_keep_dates_in_order() {
        let mut a = Advisory::new(
            content(Tlp::Amber),
            "Initial draft.",
            datetime!(2026-03-02 09:00 +01:00),
            AdvisoryStatus::Draft,
        )
        .unwrap();
        assert_eq!(a.version(), "1");
        assert_eq!(a.status(), AdvisoryStatus::Draft);
        // Dates are kept in UTC.
        assert_eq!(a.current_release_date(), datetime!(2026-03-02 08:00 UTC));
        assert_eq!(a.current_release_date().offset(), UtcOffset::UTC);

        a.revise(
            "Review comments.",
            datetime!(2026-03-05 10:00 UTC),
            AdvisoryStatus::Draft,
        )
        .unwrap();
        // Same instant as the previous revision is not earlier.
        a.revise(
            "Public release.",
            datetime!(2026-03-05 10:00 UTC),
            AdvisoryStatus::Final,
        )
        .unwrap();
        assert_eq!(a.version(), "3");
        assert_eq!(a.status(), AdvisoryStatus::Final);
        assert_eq!(
            a.revisions().iter().map(|r| r.number).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        // The initial release is the first released revision, not the first draft.
        assert_eq!(a.initial_release_date(), datetime!(2026-03-05 10:00 UTC));

        let before = a.clone();
        let err = a
            .revise(
                "Backdated.",
                datetime!(2026-03-04 10:00 UTC),
                AdvisoryStatus::Final,
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                PostmarketError::Invalid {
                    what: "revision date",
                    ..
                }
            ),
            "{err}"
        );
        let err = a
            .revise(
                "Back to draft.",
                datetime!(2026-03-06 10:00 UTC),
                AdvisoryStatus::Draft,
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                PostmarketError::Invalid {
                    what: "advisory status",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            a.revise("  ", datetime!(2026-03-06 10:00 UTC), AdvisoryStatus::Final)
                .is_err()
        );
        assert_eq!(
            a, before,
            "a refused revision leaves the advisory unchanged"
        );

        let doc = a.to_csaf("1.0.0");
        let t = &doc["document"]["tracking"];
        assert_eq!(t["version"], "3");
        assert_eq!(t["status"], "final");
        assert_eq!(t["revision_history"][0]["number"], "1");
        assert_eq!(t["revision_history"][2]["number"], "3");
        assert_eq!(t["initial_release_date"], "2026-03-05T10:00:00Z");
        assert_eq!(t["current_release_date"], "2026-03-05T10:00:00Z");
        assert_eq!(t["generator"]["engine"]["name"], "medsec");
        assert_eq!(t["generator"]["engine"]["version"], "1.0.0");
    }

    #[test]
    fn content_changes_are_checked_and_keep_the_id() {
        let mut a = advisory(Tlp::White);
        let before = a.clone();

        let mut c = a.content().clone();
        c.id = AdvisoryId::parse("MEDSEC-2026-0002").unwrap();
        assert!(
            a.revise_with(
                c,
                "New id.",
                datetime!(2026-04-01 00:00 UTC),
                AdvisoryStatus::Final
            )
            .is_err()
        );

        let mut c = a.content().clone();
        c.vulnerabilities[0]
            .product_status
            .known_affected
            .push(pr("infusion-x2", "9.9.9"));
        let err = a
            .revise_with(
                c,
                "Undeclared.",
                datetime!(2026-04-01 00:00 UTC),
                AdvisoryStatus::Final,
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("not one of the advisory's products"),
            "{err}"
        );

        let mut c = a.content().clone();
        c.vulnerabilities[0]
            .product_status
            .known_affected
            .push(pr("infusion-x2", "2.2.0"));
        let err = a
            .revise_with(
                c,
                "Contradiction.",
                datetime!(2026-04-01 00:00 UTC),
                AdvisoryStatus::Final,
            )
            .unwrap_err();
        assert!(err.to_string().contains("cannot be both"), "{err}");

        let mut c = a.content().clone();
        let dup = c.vulnerabilities[0].clone();
        c.vulnerabilities.push(dup);
        let err = a
            .revise_with(
                c,
                "Same CVE twice.",
                datetime!(2026-04-01 00:00 UTC),
                AdvisoryStatus::Final,
            )
            .unwrap_err();
        assert!(err.to_string().contains("6.1.23"), "{err}");

        let mut c = a.content().clone();
        c.products[0]
            .firmware_versions
            .push(FirmwareVersion::parse("all").unwrap());
        assert!(
            a.revise_with(
                c,
                "Range.",
                datetime!(2026-04-01 00:00 UTC),
                AdvisoryStatus::Final
            )
            .is_err()
        );

        let mut c = a.content().clone();
        c.vulnerabilities[0].product_status = ProductStatus::default();
        c.vulnerabilities[0].remediation = None;
        assert!(
            a.revise_with(
                c,
                "No status.",
                datetime!(2026-04-01 00:00 UTC),
                AdvisoryStatus::Final
            )
            .is_err()
        );
        assert_eq!(a, before);

        // An accepted change: the TLP opens up and a note is added.
        let mut c = a.content().clone();
        c.details = Some(t("More."));
        a.revise_with(
            c,
            "Details.",
            datetime!(2026-04-01 00:00 UTC),
            AdvisoryStatus::Final,
        )
        .unwrap();
        assert_eq!(a.version(), "3");
        assert_eq!(a.content().details, Some(t("More.")));
    }

    #[test]
    fn stored_state_round_trips_and_is_checked_on_load() {
        let a = advisory(Tlp::White);
        let stored = serde_json::to_value(&a).unwrap();
        let back: Advisory = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(back, a);

        let mut tampered = stored.clone();
        tampered["revisions"][1]["date"] = json!("2026-01-01T00:00:00Z");
        assert!(serde_json::from_value::<Advisory>(tampered).is_err());
        let mut tampered = stored.clone();
        tampered["revisions"][1]["number"] = json!(3);
        assert!(serde_json::from_value::<Advisory>(tampered).is_err());
        let mut tampered = stored.clone();
        tampered["revisions"] = json!([]);
        assert!(serde_json::from_value::<Advisory>(tampered).is_err());
        let mut tampered = stored.clone();
        tampered["content"]["vulnerabilities"][0]["product_status"]["known_afected"] = json!([]);
        assert!(
            serde_json::from_value::<Advisory>(tampered).is_err(),
            "unknown fields are typos"
        );
        let mut tampered = stored;
        tampered["content"]["vulnerabilities"][0]["product_status"]["fixed"] =
            json!([{"model": "infusion-x3", "version": "1.0.0"}]);
        assert!(serde_json::from_value::<Advisory>(tampered).is_err());
    }

    #[test]
    fn output_is_deterministic() {
        let a = advisory(Tlp::White);
        let one = serde_json::to_vec(&a.to_csaf_at("1.0.0", &base())).unwrap();
        let two = serde_json::to_vec(&a.to_csaf_at("1.0.0", &base())).unwrap();
        assert_eq!(one, two);
        // And the same after a trip through storage.
        let back: Advisory = serde_json::from_slice(&serde_json::to_vec(&a).unwrap()).unwrap();
        assert_eq!(
            serde_json::to_vec(&back.to_csaf_at("1.0.0", &base())).unwrap(),
            one
        );
        assert_eq!(a.publish("1.0.0", &base()), back.publish("1.0.0", &base()));
    }

    #[test]
    fn document_shape() {
        let a = advisory(Tlp::White);
        let d = a.to_csaf_at("1.0.0", &base());
        assert_eq!(d["document"]["category"], "csaf_security_advisory");
        assert_eq!(d["document"]["csaf_version"], "2.0");
        assert_eq!(d["document"]["publisher"]["category"], "vendor");
        assert_eq!(d["document"]["references"][0]["category"], "self");
        assert_eq!(
            d["document"]["references"][0]["url"],
            "https://psirt.acme.example/.well-known/csaf/white/2026/medsec-2026-0001.json"
        );
        let leaves = &d["product_tree"]["branches"][0]["branches"][0]["branches"];
        assert_eq!(
            leaves[0]["product"]["product_id"],
            "pkg:generic/infusion-x2@2.1.0"
        );
        assert_eq!(
            leaves[1]["product"]["product_id"],
            "pkg:generic/infusion-x2@2.2.0"
        );
        let v = &d["vulnerabilities"][0];
        assert_eq!(
            v["product_status"]["known_affected"],
            json!(["pkg:generic/infusion-x2@2.1.0"])
        );
        // fixed_in counts as fixed.
        assert_eq!(
            v["product_status"]["fixed"],
            json!(["pkg:generic/infusion-x2@2.2.0"])
        );
        assert_eq!(v["remediations"][0]["category"], "vendor_fix");
        assert!(
            v["remediations"][0]["details"]
                .as_str()
                .unwrap()
                .contains("2.2.0")
        );
        assert_eq!(v["scores"][0]["cvss_v3"]["baseScore"], json!(8.8));
        assert_eq!(v["scores"][0]["cvss_v3"]["baseSeverity"], "HIGH");
        assert!(v.get("threats").is_none());
        // Without a base there is no self reference; without a version no engine version.
        let d = a.to_csaf("");
        assert!(d["document"].get("references").is_none());
        assert!(
            d["document"]["tracking"]["generator"]["engine"]
                .get("version")
                .is_none()
        );
    }

    #[test]
    fn directory_excludes_non_white_and_drafts() {
        let white = advisory(Tlp::White).publish("1.0.0", &base());
        let mut amber_content = content(Tlp::Amber);
        amber_content.id = AdvisoryId::parse("MEDSEC-2026-0002").unwrap();
        let amber = Advisory::new(
            amber_content,
            "Shared with coordinators.",
            datetime!(2026-03-03 00:00 UTC),
            AdvisoryStatus::Final,
        )
        .unwrap()
        .publish("1.0.0", &base());
        let mut green_content = content(Tlp::Green);
        green_content.id = AdvisoryId::parse("MEDSEC-2026-0003").unwrap();
        let green = Advisory::new(
            green_content,
            "Community.",
            datetime!(2026-03-03 00:00 UTC),
            AdvisoryStatus::Final,
        )
        .unwrap()
        .publish("1.0.0", &base());
        let mut draft_content = content(Tlp::White);
        draft_content.id = AdvisoryId::parse("MEDSEC-2026-0004").unwrap();
        let draft = Advisory::new(
            draft_content,
            "Draft.",
            datetime!(2026-03-03 00:00 UTC),
            AdvisoryStatus::Draft,
        )
        .unwrap()
        .publish("1.0.0", &base());

        let files = directory_files(&[amber, white.clone(), green, draft]).unwrap();
        let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "2026/medsec-2026-0001.json",
                "2026/medsec-2026-0001.json.sha256",
                "2026/medsec-2026-0001.json.sha512",
                "changes.csv",
                "index.txt",
            ]
        );
        let get = |p: &str| {
            files
                .iter()
                .find(|(n, _)| n == p)
                .map(|(_, b)| b.clone())
                .unwrap()
        };
        assert_eq!(get("2026/medsec-2026-0001.json"), white.json());
        assert_eq!(get("index.txt"), b"2026/medsec-2026-0001.json\n");
        assert_eq!(
            get("changes.csv"),
            b"\"2026/medsec-2026-0001.json\",\"2026-03-10T12:00:00Z\"\n"
        );
        assert!(
            directory_files(&[])
                .unwrap()
                .iter()
                .all(|(_, b)| b.is_empty())
        );
    }

    #[test]
    fn hash_files_hold_the_digests_of_the_served_bytes() {
        let white = advisory(Tlp::White).publish("1.0.0", &base());
        let files = directory_files(std::slice::from_ref(&white)).unwrap();
        let get = |p: &str| {
            String::from_utf8(
                files
                    .iter()
                    .find(|(n, _)| n == p)
                    .map(|(_, b)| b.clone())
                    .unwrap(),
            )
            .unwrap()
        };
        let sha256 = get("2026/medsec-2026-0001.json.sha256");
        let sha512 = get("2026/medsec-2026-0001.json.sha512");
        assert_eq!(
            sha256,
            format!(
                "{:x}  medsec-2026-0001.json\n",
                Sha256::digest(white.json())
            )
        );
        assert_eq!(
            sha512,
            format!(
                "{:x}  medsec-2026-0001.json\n",
                Sha512::digest(white.json())
            )
        );
        assert_eq!(sha256.split("  ").next().unwrap().len(), 64);
        assert_eq!(sha512.split("  ").next().unwrap().len(), 128);
        // Known-answer check of the hashing itself (FIPS 180-2 "abc").
        assert_eq!(
            hex::encode(Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn directory_serves_the_newest_version_and_reports_name_clashes() {
        let mut a = advisory(Tlp::White);
        let v2 = a.publish("1.0.0", &base());
        a.revise(
            "Clarified.",
            datetime!(2026-04-01 00:00 UTC),
            AdvisoryStatus::Final,
        )
        .unwrap();
        let v3 = a.publish("1.0.0", &base());
        for entries in [[v2.clone(), v3.clone()], [v3.clone(), v2.clone()]] {
            let files = directory_files(&entries).unwrap();
            assert_eq!(files[0].1, v3.json());
            let csv = files.iter().find(|(n, _)| n == "changes.csv").unwrap();
            assert_eq!(
                csv.1,
                b"\"2026/medsec-2026-0001.json\",\"2026-04-01T00:00:00Z\"\n"
            );
        }
        // The same document twice is fine.
        assert!(directory_files(&[v3.clone(), v3.clone()]).is_ok());

        let mut other = content(Tlp::White);
        other.id = AdvisoryId::parse("medsec 2026 0001").unwrap();
        other.vulnerabilities[0].cve = None;
        let clash = Advisory::new(
            other,
            "Other.",
            datetime!(2026-03-03 00:00 UTC),
            AdvisoryStatus::Final,
        )
        .unwrap();
        assert_eq!(clash.id().file_name(), "medsec_2026_0001.json");
        let mut other = content(Tlp::White);
        other.id = AdvisoryId::parse("MEDSEC_2026_0001").unwrap();
        let clash2 = Advisory::new(
            other,
            "Other.",
            datetime!(2026-03-03 00:00 UTC),
            AdvisoryStatus::Final,
        )
        .unwrap();
        let err = directory_files(&[clash.publish("1", &base()), clash2.publish("1", &base())])
            .unwrap_err();
        assert!(err.to_string().contains("both map to the file"), "{err}");
    }

    #[test]
    fn changes_csv_is_newest_first() {
        let mk = |id: &str, day: u8| {
            let mut c = content(Tlp::White);
            c.id = AdvisoryId::parse(id).unwrap();
            let date = datetime!(2026-01-01 00:00 UTC).replace_day(day).unwrap();
            Advisory::new(c, "Release.", date, AdvisoryStatus::Final)
                .unwrap()
                .publish("1", &base())
        };
        let files = directory_files(&[
            mk("MEDSEC-2026-0003", 2),
            mk("MEDSEC-2026-0001", 9),
            mk("MEDSEC-2026-0002", 5),
        ])
        .unwrap();
        let get = |p: &str| {
            String::from_utf8(files.iter().find(|(n, _)| n == p).unwrap().1.clone()).unwrap()
        };
        assert_eq!(
            get("changes.csv"),
            "\"2026/medsec-2026-0001.json\",\"2026-01-09T00:00:00Z\"\n\
             \"2026/medsec-2026-0002.json\",\"2026-01-05T00:00:00Z\"\n\
             \"2026/medsec-2026-0003.json\",\"2026-01-02T00:00:00Z\"\n"
        );
        assert_eq!(
            get("index.txt"),
            "2026/medsec-2026-0001.json\n2026/medsec-2026-0002.json\n2026/medsec-2026-0003.json\n"
        );
    }

    #[test]
    fn published_documents_read_back() {
        let p = advisory(Tlp::White).publish("1.0.0", &base());
        let back = PublishedAdvisory::from_csaf_json(p.json().to_vec()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.relative_path(), "2026/medsec-2026-0001.json");

        // The folder year is the year as written, not the UTC year.
        let mut doc: Value = serde_json::from_slice(p.json()).unwrap();
        doc["document"]["tracking"]["initial_release_date"] = json!("2027-01-01T00:30:00+01:00");
        let back = PublishedAdvisory::from_csaf_json(serde_json::to_vec(&doc).unwrap()).unwrap();
        assert_eq!(back.relative_path(), "2027/medsec-2026-0001.json");

        // No TLP label: never public, so refused rather than guessed.
        let mut doc: Value = serde_json::from_slice(p.json()).unwrap();
        doc["document"]
            .as_object_mut()
            .unwrap()
            .remove("distribution");
        assert!(PublishedAdvisory::from_csaf_json(serde_json::to_vec(&doc).unwrap()).is_err());
        assert!(PublishedAdvisory::from_csaf_json(b"{".to_vec()).is_err());
    }

    #[test]
    fn provider_metadata_points_at_the_white_directory() {
        let m = provider_metadata(
            &publisher(),
            &base(),
            datetime!(2026-03-10 12:00 UTC),
            ProviderRole::CsafProvider,
        )
        .unwrap();
        assert_eq!(
            m["canonical_url"],
            "https://psirt.acme.example/.well-known/csaf/provider-metadata.json"
        );
        assert_eq!(
            m["distributions"],
            json!([{"directory_url": "https://psirt.acme.example/.well-known/csaf/white/"}])
        );
        assert_eq!(m["last_updated"], "2026-03-10T12:00:00Z");
        assert_eq!(m["metadata_version"], "2.0");
        assert_eq!(m["role"], "csaf_provider");
        assert_eq!(m["publisher"]["category"], "vendor");
        assert_eq!(m["publisher"]["contact_details"], "psirt@acme.example");
    }
}
