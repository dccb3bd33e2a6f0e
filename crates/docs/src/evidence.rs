//! Test evidence imported from the manufacturer: JUnit XML and SARIF files summarised for the cybersecurity testing section.
//!
//! [`parse`] recognises the format (SARIF 2.1.0 JSON, or JUnit XML with a `<testsuites>` or
//! `<testsuite>` root) and reduces the file to an [`EvidenceSummary`]: counts, the tools that
//! produced it and a bounded list of the failures and findings, small enough to store as JSON
//! beside the raw file and to lay out in the premarket file. Parsing is pure and bounded: the
//! input is at most [`MAX_EVIDENCE_BYTES`], XML at most [`MAX_XML_NODES`] nodes, without DTDs,
//! and every list kept is capped, so a hostile file costs bounded time and memory and never
//! panics.
//!
//! The storage the import needs ([`EvidenceStore`]) is defined here too and implemented by the
//! back ends in `medsec-store`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use medsec_core::{Actor, AuditAction, AuditRecord, DeviceModel, FirmwareVersion, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::DocsError;

/// Largest evidence file accepted (64 MiB), by [`parse`] and by the stores.
pub const MAX_EVIDENCE_BYTES: usize = 64 * 1024 * 1024;
/// Most XML nodes (elements, text, comments) a JUnit file may have.
pub const MAX_XML_NODES: u32 = 4_000_000;
/// Deepest nesting of `<testsuite>` elements.
pub const MAX_SUITE_DEPTH: usize = 64;
/// Most failing test cases listed in a JUnit summary (all are counted).
pub const MAX_FAILING_CASES: usize = 100;
/// Most suite names listed in a JUnit summary (all are counted).
pub const MAX_SUITE_NAMES: usize = 100;
/// Most SARIF runs in one file.
pub const MAX_SARIF_RUNS: usize = 256;
/// Most results listed per SARIF run (all are counted).
pub const MAX_SARIF_RESULTS: usize = 200;
/// Most distinct rule ids listed per SARIF run (the most frequent first).
pub const MAX_SARIF_RULES: usize = 1000;
/// Longest message kept (characters); longer ones end in `…`.
pub const MAX_MESSAGE_CHARS: usize = 1000;
/// Longest name (suite, test case, tool, rule, location) kept (characters).
pub const MAX_NAME_CHARS: usize = 300;
/// Most reading notes kept in a JUnit summary.
pub const MAX_NOTES: usize = 20;

const WHAT: &str = "evidence file";

fn invalid(message: impl Into<String>) -> DocsError {
    DocsError::Invalid {
        what: WHAT,
        message: message.into(),
    }
}

fn not_evidence(why: impl fmt::Display) -> DocsError {
    invalid(format!("not JUnit XML or SARIF 2.1.0: {why}"))
}

// ---------------------------------------------------------------- kinds and categories

/// The file format of a piece of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceKind {
    /// JUnit XML test results.
    Junit,
    /// SARIF 2.1.0 static or dynamic analysis results.
    Sarif,
}

impl EvidenceKind {
    pub const ALL: [EvidenceKind; 2] = [EvidenceKind::Junit, EvidenceKind::Sarif];

    /// `junit`, `sarif`.
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::Junit => "junit",
            EvidenceKind::Sarif => "sarif",
        }
    }

    /// The format's name for people: `JUnit XML`, `SARIF 2.1.0`.
    pub fn label(self) -> &'static str {
        match self {
            EvidenceKind::Junit => "JUnit XML",
            EvidenceKind::Sarif => "SARIF 2.1.0",
        }
    }
}

impl fmt::Display for EvidenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EvidenceKind {
    type Err = DocsError;
    fn from_str(s: &str) -> Result<Self, DocsError> {
        EvidenceKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| DocsError::Invalid {
                what: "evidence kind",
                message: format!("{s:?} is not one of junit, sarif"),
            })
    }
}

/// What kind of cybersecurity testing a piece of evidence documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestCategory {
    PenetrationTest,
    Fuzzing,
    StaticAnalysis,
    /// Security functional tests (authentication, authorisation, encryption, update checks).
    Functional,
    Other,
}

impl TestCategory {
    pub const ALL: [TestCategory; 5] = [
        TestCategory::PenetrationTest,
        TestCategory::Fuzzing,
        TestCategory::StaticAnalysis,
        TestCategory::Functional,
        TestCategory::Other,
    ];

    /// `penetration-test`, `fuzzing`, `static-analysis`, `functional`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            TestCategory::PenetrationTest => "penetration-test",
            TestCategory::Fuzzing => "fuzzing",
            TestCategory::StaticAnalysis => "static-analysis",
            TestCategory::Functional => "functional",
            TestCategory::Other => "other",
        }
    }

    /// A heading for the testing section.
    pub fn label(self) -> &'static str {
        match self {
            TestCategory::PenetrationTest => "Penetration testing",
            TestCategory::Fuzzing => "Fuzz testing",
            TestCategory::StaticAnalysis => "Static analysis",
            TestCategory::Functional => "Security functional testing",
            TestCategory::Other => "Other security testing",
        }
    }
}

impl fmt::Display for TestCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TestCategory {
    type Err = DocsError;
    fn from_str(s: &str) -> Result<Self, DocsError> {
        TestCategory::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| DocsError::Invalid {
                what: "test category",
                message: format!(
                    "{s:?} is not one of penetration-test, fuzzing, static-analysis, functional, other"
                ),
            })
    }
}

// ---------------------------------------------------------------- summaries

/// What an evidence file says, reduced to what the documentation needs. Stored as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EvidenceSummary {
    Junit(JunitSummary),
    Sarif(SarifSummary),
}

impl EvidenceSummary {
    pub fn kind(&self) -> EvidenceKind {
        match self {
            EvidenceSummary::Junit(_) => EvidenceKind::Junit,
            EvidenceSummary::Sarif(_) => EvidenceKind::Sarif,
        }
    }

    /// JUnit: no failures and no errors. SARIF: no error-level result that is neither
    /// suppressed nor absent from the baseline.
    pub fn passed(&self) -> bool {
        match self {
            EvidenceSummary::Junit(j) => j.failures == 0 && j.errors == 0,
            EvidenceSummary::Sarif(s) => s.runs.iter().all(|r| r.levels.error == 0),
        }
    }

    /// One line for tables and listings, e.g. `pytest: 8 tests in 1 suite: 5 passed,
    /// 2 failed, 0 errors, 1 skipped` or `Semgrep OSS 1.56.0: 4 results (2 error, 1 warning,
    /// 1 note, 0 none), 1 suppressed`.
    pub fn headline(&self) -> String {
        match self {
            EvidenceSummary::Junit(j) => j.headline(),
            EvidenceSummary::Sarif(s) => s.headline(),
        }
    }
}

/// A JUnit XML report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JunitSummary {
    /// The root element's `name` (`<testsuites name=..>`, or the single `<testsuite>`'s).
    pub name: Option<String>,
    /// Distinct suite names in document order, at most [`MAX_SUITE_NAMES`].
    pub suite_names: Vec<String>,
    /// `<testsuite>` elements, nested ones included.
    pub suites: u64,
    pub tests: u64,
    pub failures: u64,
    pub errors: u64,
    pub skipped: u64,
    /// The `timestamp` of the root, else of the first suite that has one, as written.
    pub timestamp: Option<String>,
    /// Failing and erroring test cases in document order, at most [`MAX_FAILING_CASES`].
    pub failing: Vec<FailingCase>,
    /// Discrepancies noticed while reading (declared counts that disagree with the test cases
    /// listed; the larger number is kept), at most [`MAX_NOTES`].
    pub notes: Vec<String>,
}

impl JunitSummary {
    /// Tests that neither failed, errored nor were skipped.
    pub fn passed_tests(&self) -> u64 {
        self.tests
            .saturating_sub(self.failures)
            .saturating_sub(self.errors)
            .saturating_sub(self.skipped)
    }

    fn headline(&self) -> String {
        let label = self
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(self.suite_names.first().map(String::as_str))
            .unwrap_or("JUnit");
        format!(
            "{label}: {} in {}: {} passed, {} failed, {} {}, {} skipped",
            plural(self.tests, "test", "tests"),
            plural(self.suites, "suite", "suites"),
            self.passed_tests(),
            self.failures,
            self.errors,
            if self.errors == 1 { "error" } else { "errors" },
            self.skipped,
        )
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// How a listed test case went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaseOutcome {
    /// `<failure>`: an assertion did not hold.
    Failure,
    /// `<error>`: the test could not run to completion.
    Error,
}

/// One failing or erroring JUnit test case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailingCase {
    /// The enclosing suite's name.
    pub suite: Option<String>,
    pub classname: Option<String>,
    pub name: String,
    pub outcome: CaseOutcome,
    /// The `type` attribute (e.g. `AssertionError`).
    pub failure_type: Option<String>,
    /// The `message` attribute, else the first line of the element's text; whitespace
    /// collapsed, at most [`MAX_MESSAGE_CHARS`].
    pub message: Option<String>,
}

/// A SARIF 2.1.0 log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SarifSummary {
    pub runs: Vec<SarifRun>,
}

impl SarifSummary {
    fn headline(&self) -> String {
        if self.runs.is_empty() {
            return "SARIF: no runs".to_string();
        }
        self.runs
            .iter()
            .map(SarifRun::headline)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// One SARIF run: one tool's analysis.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SarifRun {
    /// `tool.driver.name`.
    pub tool: String,
    /// `tool.driver.semanticVersion`, else `version`.
    pub tool_version: Option<String>,
    /// Every result in the run.
    pub results_total: u64,
    /// Results neither suppressed nor absent, by level.
    pub levels: LevelCounts,
    /// Results with accepted suppressions (`suppressions` non-empty, none under review or
    /// rejected).
    pub suppressed: u64,
    /// Results whose `baselineState` is `absent`: found before, no longer present.
    pub absent: u64,
    /// Results neither suppressed nor absent, by rule id, the most frequent first, at most
    /// [`MAX_SARIF_RULES`].
    pub rules: Vec<RuleCount>,
    /// The first [`MAX_SARIF_RESULTS`] results that are not absent, suppressed ones marked.
    pub results: Vec<SarifFinding>,
}

impl SarifRun {
    fn headline(&self) -> String {
        let tool = match &self.tool_version {
            Some(v) => format!("{} {v}", self.tool),
            None => self.tool.clone(),
        };
        let l = &self.levels;
        let mut s = format!(
            "{tool}: {} ({} error, {} warning, {} note, {} none)",
            plural(l.total(), "result", "results"),
            l.error,
            l.warning,
            l.note,
            l.none
        );
        if self.suppressed > 0 {
            s.push_str(&format!(", {} suppressed", self.suppressed));
        }
        if self.absent > 0 {
            s.push_str(&format!(", {} absent from baseline", self.absent));
        }
        s
    }
}

/// Result counts by SARIF level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelCounts {
    pub error: u64,
    pub warning: u64,
    pub note: u64,
    pub none: u64,
}

impl LevelCounts {
    pub fn total(&self) -> u64 {
        self.error
            .saturating_add(self.warning)
            .saturating_add(self.note)
            .saturating_add(self.none)
    }

    fn add(&mut self, level: SarifLevel) {
        let c = match level {
            SarifLevel::Error => &mut self.error,
            SarifLevel::Warning => &mut self.warning,
            SarifLevel::Note => &mut self.note,
            SarifLevel::None => &mut self.none,
        };
        *c = c.saturating_add(1);
    }
}

/// A SARIF result level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SarifLevel {
    Error,
    Warning,
    Note,
    None,
}

impl SarifLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            SarifLevel::Error => "error",
            SarifLevel::Warning => "warning",
            SarifLevel::Note => "note",
            SarifLevel::None => "none",
        }
    }

    fn parse(s: &str) -> Option<SarifLevel> {
        Some(match s {
            "error" => SarifLevel::Error,
            "warning" => SarifLevel::Warning,
            "note" => SarifLevel::Note,
            "none" => SarifLevel::None,
            _ => return None,
        })
    }
}

/// How many open results one rule produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCount {
    pub rule_id: String,
    pub count: u64,
}

/// One SARIF result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SarifFinding {
    pub rule_id: Option<String>,
    /// The effective level: the result's, else its rule's default, else per the SARIF rules.
    pub level: SarifLevel,
    /// `message.text` (or the rule's message string with its arguments filled in);
    /// whitespace collapsed, at most [`MAX_MESSAGE_CHARS`].
    pub message: String,
    /// The first location as `uri:line` (or `uri`).
    pub location: Option<String>,
    pub suppressed: bool,
}

// ---------------------------------------------------------------- detection

/// Recognises and summarises an evidence file. `kind_hint` (the format the user said it is)
/// must agree with the content; the content decides.
pub fn parse(kind_hint: Option<EvidenceKind>, bytes: &[u8]) -> Result<EvidenceSummary, DocsError> {
    if bytes.len() > MAX_EVIDENCE_BYTES {
        return Err(invalid(format!(
            "the file is {} bytes; evidence files are limited to {} MiB",
            bytes.len(),
            MAX_EVIDENCE_BYTES / (1024 * 1024)
        )));
    }
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(invalid(
            "the file is UTF-16 encoded; convert it to UTF-8 and import it again",
        ));
    }
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Err(not_evidence("the file is empty"));
    };
    let detected = match body[start] {
        b'{' | b'[' => EvidenceKind::Sarif,
        b'<' => EvidenceKind::Junit,
        _ => {
            let head: String = String::from_utf8_lossy(&body[start..body.len().min(start + 16)])
                .chars()
                .collect();
            return Err(not_evidence(format!(
                "the file is neither XML nor JSON (it starts with {head:?})"
            )));
        }
    };
    match detected {
        EvidenceKind::Sarif => {
            if kind_hint == Some(EvidenceKind::Junit) {
                return Err(invalid(
                    "expected JUnit XML, but the file is JSON (SARIF is imported as kind sarif)",
                ));
            }
            parse_sarif(body).map(EvidenceSummary::Sarif)
        }
        EvidenceKind::Junit => {
            let text = std::str::from_utf8(body).map_err(|e| {
                let at = e.valid_up_to();
                let line = 1 + body[..at].iter().filter(|&&b| b == b'\n').count();
                invalid(format!(
                    "the XML is not UTF-8: invalid byte at offset {at} (line {line})"
                ))
            })?;
            let root = sniff_root(text);
            if kind_hint == Some(EvidenceKind::Sarif) {
                return Err(invalid(format!(
                    "expected SARIF 2.1.0 (JSON), but the file is XML{}",
                    root.map(|r| format!(" with root element <{r}>"))
                        .unwrap_or_default()
                )));
            }
            match root {
                Some(r) if matches!(local(r), "testsuites" | "testsuite") => {}
                Some(r) => return Err(not_evidence(format!("root element is <{r}>"))),
                None => return Err(not_evidence("the XML has no root element")),
            }
            parse_junit(text).map(EvidenceSummary::Junit)
        }
    }
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// The first element name of an XML text, found lexically (past the declaration, comments,
/// processing instructions and a DOCTYPE), so that files that are not well-formed XML (most
/// HTML) are still named by what they are.
fn sniff_root(text: &str) -> Option<&str> {
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("<?") {
            rest = &r[r.find("?>")? + 2..];
        } else if let Some(r) = rest.strip_prefix("<!--") {
            rest = &r[r.find("-->")? + 3..];
        } else if rest.starts_with("<!") {
            // DOCTYPE, possibly with an internal subset in brackets.
            let close = rest.find('>')?;
            let open = rest.find('[');
            rest = match open {
                Some(o) if o < close => {
                    let r = &rest[o..];
                    let end = r.find("]")?;
                    let r = &r[end..];
                    &r[r.find('>')? + 1..]
                }
                _ => &rest[close + 1..],
            };
        } else if let Some(r) = rest.strip_prefix('<') {
            let end = r
                .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .unwrap_or(r.len());
            let name = &r[..end];
            return (!name.is_empty()).then_some(name).map(|n| {
                // Bound what is echoed back in messages.
                match n.char_indices().nth(64) {
                    Some((i, _)) => &n[..i],
                    None => n,
                }
            });
        } else {
            return None;
        }
    }
}

/// Collapses whitespace (newlines included) to single spaces, drops other control
/// characters and bounds the length.
fn clean(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut n = 0;
    let mut space = false;
    for c in s.trim().chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if c.is_control() {
            continue;
        }
        if n >= max {
            out.push('…');
            return out;
        }
        if space && !out.is_empty() {
            out.push(' ');
            n += 1;
        }
        space = false;
        out.push(c);
        n += 1;
    }
    out
}

fn opt_clean(s: Option<&str>, max: usize) -> Option<String> {
    s.map(|s| clean(s, max)).filter(|s| !s.is_empty())
}

// ---------------------------------------------------------------- JUnit

fn xml_error(text: &str, e: &roxmltree::Error) -> DocsError {
    match e {
        roxmltree::Error::UnclosedRootNode | roxmltree::Error::UnexpectedEndOfStream => {
            // Where the content stops (trailing whitespace is no content).
            let content = text.trim_end();
            let line = 1 + content.matches('\n').count();
            let col = 1 + content.rsplit('\n').next().map_or(0, |l| l.chars().count());
            invalid(format!(
                "invalid XML at line {line}, column {col}: the file ends before the XML is complete (truncated?)"
            ))
        }
        roxmltree::Error::DtdDetected => {
            invalid("invalid XML: DOCTYPE declarations are not accepted in JUnit reports")
        }
        roxmltree::Error::NodesLimitReached => invalid(format!(
            "the XML has more than {MAX_XML_NODES} nodes; split the report"
        )),
        _ => {
            let pos = e.pos();
            let msg = e.to_string().replacen(&format!(" at {pos}"), "", 1);
            invalid(format!(
                "invalid XML at line {}, column {}: {msg}",
                pos.row, pos.col
            ))
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    tests: u64,
    failures: u64,
    errors: u64,
    skipped: u64,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.tests = self.tests.saturating_add(o.tests);
        self.failures = self.failures.saturating_add(o.failures);
        self.errors = self.errors.saturating_add(o.errors);
        self.skipped = self.skipped.saturating_add(o.skipped);
    }
}

struct JunitReader<'d, 'i> {
    doc: &'d roxmltree::Document<'i>,
    out: JunitSummary,
    seen_names: HashSet<String>,
}

fn parse_junit(text: &str) -> Result<JunitSummary, DocsError> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_XML_NODES,
        ..Default::default()
    };
    let doc =
        roxmltree::Document::parse_with_options(text, opts).map_err(|e| xml_error(text, &e))?;
    let root = doc.root_element();
    let mut r = JunitReader {
        doc: &doc,
        out: JunitSummary::default(),
        seen_names: HashSet::new(),
    };
    r.out.name = opt_clean(root.attribute("name"), MAX_NAME_CHARS);
    r.out.timestamp = opt_clean(root.attribute("timestamp"), 64);
    let counts = match root.tag_name().name() {
        "testsuites" => r.suite(root, None, 0)?,
        "testsuite" => {
            r.enter_suite(root);
            let name = r.out.name.clone();
            r.suite(root, name.as_deref(), 0)?
        }
        other => return Err(not_evidence(format!("root element is <{other}>"))),
    };
    r.out.tests = counts.tests;
    r.out.failures = counts.failures;
    r.out.errors = counts.errors;
    r.out.skipped = counts.skipped;
    Ok(r.out)
}

impl JunitReader<'_, '_> {
    fn at(&self, n: roxmltree::Node<'_, '_>) -> String {
        let p = self.doc.text_pos_at(n.range().start);
        format!("line {}, column {}", p.row, p.col)
    }

    fn note(&mut self, s: String) {
        if self.out.notes.len() < MAX_NOTES {
            self.out.notes.push(s);
        }
    }

    fn enter_suite(&mut self, n: roxmltree::Node<'_, '_>) {
        self.out.suites = self.out.suites.saturating_add(1);
        if self.out.timestamp.is_none() {
            self.out.timestamp = opt_clean(n.attribute("timestamp"), 64);
        }
        if let Some(name) = opt_clean(n.attribute("name"), MAX_NAME_CHARS)
            && self.out.suite_names.len() < MAX_SUITE_NAMES
            && self.seen_names.insert(name.clone())
        {
            self.out.suite_names.push(name);
        }
    }

    fn count_attr(&self, n: roxmltree::Node<'_, '_>, attr: &str) -> Result<Option<u64>, DocsError> {
        let Some(v) = n.attribute(attr) else {
            return Ok(None);
        };
        let v = v.trim();
        if v.is_empty() {
            return Ok(None);
        }
        v.parse::<u64>().map(Some).map_err(|_| {
            invalid(format!(
                "{}: <{}> attribute {attr}={:?} is not a count",
                self.at(n),
                n.tag_name().name(),
                clean(v, 40)
            ))
        })
    }

    /// Counts one `<testsuites>` or `<testsuite>`: its test cases and nested suites, or what
    /// its attributes declare if that is more.
    fn suite(
        &mut self,
        n: roxmltree::Node<'_, '_>,
        suite_name: Option<&str>,
        depth: usize,
    ) -> Result<Counts, DocsError> {
        if depth > MAX_SUITE_DEPTH {
            return Err(invalid(format!(
                "{}: test suites nested deeper than {MAX_SUITE_DEPTH} levels",
                self.at(n)
            )));
        }
        let mut counted = Counts::default();
        let mut listed = false;
        for c in n.children().filter(|c| c.is_element()) {
            match c.tag_name().name() {
                "testsuite" => {
                    listed = true;
                    self.enter_suite(c);
                    let name = opt_clean(c.attribute("name"), MAX_NAME_CHARS);
                    let sub = self.suite(c, name.as_deref(), depth + 1)?;
                    counted.add(sub);
                }
                "testcase" => {
                    listed = true;
                    counted.add(self.case(c, suite_name));
                }
                _ => {}
            }
        }
        let declared = Counts {
            tests: self.count_attr(n, "tests")?.unwrap_or(0),
            failures: self.count_attr(n, "failures")?.unwrap_or(0),
            errors: self.count_attr(n, "errors")?.unwrap_or(0),
            skipped: match self.count_attr(n, "skipped")? {
                Some(s) => s,
                None => self.count_attr(n, "skips")?.unwrap_or(0),
            },
        };
        if listed {
            let label = match suite_name {
                Some(s) => format!("suite {s:?}"),
                None => format!("<{}>", n.tag_name().name()),
            };
            for (what, d, c) in [
                ("tests", declared.tests, counted.tests),
                ("failures", declared.failures, counted.failures),
                ("errors", declared.errors, counted.errors),
                ("skipped", declared.skipped, counted.skipped),
            ] {
                // Only a declared number that disagrees is worth a note; an absent one is 0.
                if d != c && (d != 0 || n.attribute(what).is_some()) {
                    self.note(format!(
                        "{label} declares {what}={d} but lists {c}; {} kept",
                        d.max(c)
                    ));
                }
            }
        }
        Ok(Counts {
            tests: declared.tests.max(counted.tests),
            failures: declared.failures.max(counted.failures),
            errors: declared.errors.max(counted.errors),
            skipped: declared.skipped.max(counted.skipped),
        })
    }

    fn case(&mut self, n: roxmltree::Node<'_, '_>, suite_name: Option<&str>) -> Counts {
        let mut c = Counts {
            tests: 1,
            ..Counts::default()
        };
        let child = |name: &str| {
            n.children()
                .find(|x| x.is_element() && x.tag_name().name() == name)
        };
        let (outcome, el) = if let Some(e) = child("error") {
            c.errors = 1;
            (CaseOutcome::Error, e)
        } else if let Some(f) = child("failure") {
            c.failures = 1;
            (CaseOutcome::Failure, f)
        } else {
            if child("skipped").is_some() {
                c.skipped = 1;
            }
            return c;
        };
        if self.out.failing.len() < MAX_FAILING_CASES {
            let message = opt_clean(el.attribute("message"), MAX_MESSAGE_CHARS).or_else(|| {
                let text: String = el
                    .descendants()
                    .filter(|d| d.is_text())
                    .filter_map(|d| d.text())
                    .take(64)
                    .collect();
                text.lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .map(|l| clean(l, MAX_MESSAGE_CHARS))
            });
            self.out.failing.push(FailingCase {
                suite: suite_name.map(str::to_owned),
                classname: opt_clean(n.attribute("classname"), MAX_NAME_CHARS),
                name: opt_clean(n.attribute("name"), MAX_NAME_CHARS)
                    .unwrap_or_else(|| "(unnamed)".to_string()),
                outcome,
                failure_type: opt_clean(el.attribute("type"), MAX_NAME_CHARS),
                message,
            });
        }
        c
    }
}

// ---------------------------------------------------------------- SARIF

/// Just enough of a JSON document to tell whether it is SARIF.
#[derive(Deserialize)]
struct Probe {
    version: Option<serde_json::Value>,
    runs: Option<serde::de::IgnoredAny>,
    #[serde(rename = "$schema")]
    schema: Option<serde_json::Value>,
    #[serde(rename = "bomFormat")]
    bom_format: Option<serde::de::IgnoredAny>,
}

mod sarif_json {
    //! The parts of the SARIF 2.1.0 object model the summary reads; everything else is
    //! skipped. Optional wherever SARIF allows absence or `null`.

    use std::collections::BTreeMap;

    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Log {
        pub runs: Option<Vec<Run>>,
    }

    #[derive(Deserialize)]
    pub struct Run {
        pub tool: Tool,
        pub results: Option<Vec<Res>>,
        pub artifacts: Option<Vec<Artifact>>,
    }

    #[derive(Deserialize)]
    pub struct Tool {
        pub driver: Component,
        pub extensions: Option<Vec<Component>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Component {
        pub name: String,
        pub version: Option<String>,
        pub semantic_version: Option<String>,
        pub rules: Option<Vec<Descriptor>>,
        pub global_message_strings: Option<BTreeMap<String, MsgString>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Descriptor {
        pub id: Option<String>,
        pub default_configuration: Option<Config>,
        pub message_strings: Option<BTreeMap<String, MsgString>>,
    }

    #[derive(Deserialize)]
    pub struct Config {
        pub level: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct MsgString {
        pub text: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Res {
        pub rule_id: Option<String>,
        pub rule_index: Option<i64>,
        pub rule: Option<RuleRef>,
        pub kind: Option<String>,
        pub level: Option<String>,
        pub message: Option<Message>,
        pub locations: Option<Vec<Location>>,
        pub suppressions: Option<Vec<Suppression>>,
        pub baseline_state: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct RuleRef {
        pub id: Option<String>,
        pub index: Option<i64>,
        pub tool_component: Option<ComponentRef>,
    }

    #[derive(Deserialize)]
    pub struct ComponentRef {
        pub index: Option<i64>,
    }

    #[derive(Deserialize)]
    pub struct Message {
        pub text: Option<String>,
        pub markdown: Option<String>,
        pub id: Option<String>,
        pub arguments: Option<Vec<String>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Location {
        pub physical_location: Option<Physical>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Physical {
        pub artifact_location: Option<ArtifactLocation>,
        pub region: Option<Region>,
    }

    #[derive(Deserialize)]
    pub struct ArtifactLocation {
        pub uri: Option<String>,
        pub index: Option<i64>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Region {
        pub start_line: Option<u64>,
    }

    #[derive(Deserialize)]
    pub struct Artifact {
        pub location: Option<ArtifactLocation>,
    }

    #[derive(Deserialize)]
    pub struct Suppression {
        pub status: Option<String>,
    }
}

fn json_error(e: &serde_json::Error) -> DocsError {
    match e.classify() {
        serde_json::error::Category::Eof => invalid(format!(
            "invalid JSON at line {}, column {}: the file ends before the JSON is complete (truncated?)",
            e.line(),
            e.column()
        )),
        _ => invalid(format!("invalid JSON: {e}")),
    }
}

fn parse_sarif(body: &[u8]) -> Result<SarifSummary, DocsError> {
    if body.trim_ascii_start().starts_with(b"[") {
        return Err(not_evidence(
            "the JSON's top level is not an object (SARIF is an object with \"version\" and \"runs\")",
        ));
    }
    let probe: Probe = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) if e.is_data() => return Err(invalid(format!("not SARIF 2.1.0: {e}"))),
        Err(e) => return Err(json_error(&e)),
    };
    let looks_sarif = probe.runs.is_some()
        || matches!(&probe.schema, Some(serde_json::Value::String(s)) if s.to_ascii_lowercase().contains("sarif"));
    match &probe.version {
        Some(serde_json::Value::String(v)) if v == "2.1.0" => {
            if probe.runs.is_none() {
                return Err(invalid("SARIF 2.1.0 log without \"runs\""));
            }
        }
        Some(serde_json::Value::String(v)) if looks_sarif => {
            return Err(invalid(format!(
                "SARIF version {:?} is not supported; only 2.1.0 is",
                clean(v, 40)
            )));
        }
        None if looks_sarif => {
            return Err(invalid("SARIF log without \"version\" (2.1.0 expected)"));
        }
        _ if probe.bom_format.is_some() => {
            return Err(not_evidence(
                "the JSON is a CycloneDX SBOM (import it as an SBOM instead)",
            ));
        }
        _ => {
            return Err(not_evidence(
                "the JSON has no \"version\": \"2.1.0\" and \"runs\"",
            ));
        }
    }
    let log: sarif_json::Log =
        serde_json::from_slice(body).map_err(|e| invalid(format!("not valid SARIF 2.1.0: {e}")))?;
    let runs = log.runs.unwrap_or_default();
    if runs.len() > MAX_SARIF_RUNS {
        return Err(invalid(format!(
            "the SARIF log has {} runs; at most {MAX_SARIF_RUNS} are accepted",
            runs.len()
        )));
    }
    runs.iter()
        .enumerate()
        .map(|(i, r)| sarif_run(i, r))
        .collect::<Result<Vec<_>, _>>()
        .map(|runs| SarifSummary { runs })
}

fn sarif_run(i: usize, run: &sarif_json::Run) -> Result<SarifRun, DocsError> {
    use sarif_json::{Descriptor, Res};

    let driver = &run.tool.driver;
    let extensions = run.tool.extensions.as_deref().unwrap_or(&[]);
    let no_rules: &[Descriptor] = &[];
    let rules_of = |component: Option<i64>| -> &[Descriptor] {
        match component {
            None => driver.rules.as_deref().unwrap_or(no_rules),
            Some(c) => usize::try_from(c)
                .ok()
                .and_then(|c| extensions.get(c))
                .and_then(|e| e.rules.as_deref())
                .unwrap_or(no_rules),
        }
    };
    let mut by_id: HashMap<&str, &Descriptor> = HashMap::new();
    for d in extensions
        .iter()
        .rev()
        .flat_map(|e| e.rules.as_deref().unwrap_or(no_rules))
        .chain(driver.rules.as_deref().unwrap_or(no_rules))
    {
        if let Some(id) = d.id.as_deref() {
            by_id.insert(id, d);
        }
    }
    let artifacts = run.artifacts.as_deref().unwrap_or(&[]);

    let mut out = SarifRun {
        tool: clean(&driver.name, MAX_NAME_CHARS),
        tool_version: opt_clean(
            driver
                .semantic_version
                .as_deref()
                .or(driver.version.as_deref()),
            MAX_NAME_CHARS,
        ),
        ..SarifRun::default()
    };
    let mut rule_counts: BTreeMap<String, u64> = BTreeMap::new();
    for (j, res) in run.results.as_deref().unwrap_or(&[]).iter().enumerate() {
        let Res {
            rule_id,
            rule_index,
            rule,
            kind,
            level,
            message,
            locations,
            suppressions,
            baseline_state,
        } = res;
        out.results_total = out.results_total.saturating_add(1);
        let component = rule
            .as_ref()
            .and_then(|r| r.tool_component.as_ref())
            .and_then(|c| c.index);
        let index = rule.as_ref().and_then(|r| r.index).or(*rule_index);
        let id = rule_id
            .as_deref()
            .or_else(|| rule.as_ref().and_then(|r| r.id.as_deref()));
        let by_index = index
            .and_then(|x| usize::try_from(x).ok())
            .and_then(|x| rules_of(component).get(x));
        let descriptor = match id {
            Some(id) => by_index
                .filter(|d| d.id.as_deref() == Some(id))
                .or_else(|| by_id.get(id).copied()),
            None => by_index,
        };
        let id = id.or_else(|| descriptor.and_then(|d| d.id.as_deref()));

        let level = match level.as_deref() {
            Some(l) => SarifLevel::parse(l).ok_or_else(|| {
                invalid(format!(
                    "not valid SARIF 2.1.0: run {i} result {j}: level {:?} is not error, warning, note or none",
                    clean(l, 40)
                ))
            })?,
            // SARIF §3.27.10: a result that is not a failure has level none; otherwise the
            // rule's default configuration decides, else warning.
            None if kind.as_deref().is_some_and(|k| k != "fail") => SarifLevel::None,
            None => descriptor
                .and_then(|d| d.default_configuration.as_ref())
                .and_then(|c| c.level.as_deref())
                .and_then(SarifLevel::parse)
                .unwrap_or(SarifLevel::Warning),
        };
        if baseline_state.as_deref() == Some("absent") {
            out.absent = out.absent.saturating_add(1);
            continue;
        }
        // §3.27.23: suppressed when every suppression is accepted (status absent means
        // accepted); one under review or rejected leaves the result open.
        let suppressed = suppressions.as_deref().is_some_and(|s| {
            !s.is_empty()
                && s.iter()
                    .all(|x| matches!(x.status.as_deref(), None | Some("accepted")))
        });
        if suppressed {
            out.suppressed = out.suppressed.saturating_add(1);
        } else {
            out.levels.add(level);
            let key = id.map_or_else(|| "(no rule)".to_string(), |i| clean(i, MAX_NAME_CHARS));
            let n = rule_counts.entry(key).or_default();
            *n = n.saturating_add(1);
        }
        if out.results.len() < MAX_SARIF_RESULTS {
            out.results.push(SarifFinding {
                rule_id: opt_clean(id, MAX_NAME_CHARS),
                level,
                message: message
                    .as_ref()
                    .map(|m| message_text(m, descriptor, driver))
                    .unwrap_or_default(),
                location: locations
                    .as_deref()
                    .and_then(|l| l.first())
                    .and_then(|l| location(l, artifacts)),
                suppressed,
            });
        }
    }
    let mut rules: Vec<RuleCount> = rule_counts
        .into_iter()
        .map(|(rule_id, count)| RuleCount { rule_id, count })
        .collect();
    rules.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.rule_id.cmp(&b.rule_id))
    });
    rules.truncate(MAX_SARIF_RULES);
    out.rules = rules;
    Ok(out)
}

fn message_text(
    m: &sarif_json::Message,
    rule: Option<&sarif_json::Descriptor>,
    driver: &sarif_json::Component,
) -> String {
    if let Some(t) = m.text.as_deref().or(m.markdown.as_deref()) {
        return clean(t, MAX_MESSAGE_CHARS);
    }
    let Some(id) = m.id.as_deref() else {
        return String::new();
    };
    let template = rule
        .and_then(|r| r.message_strings.as_ref())
        .and_then(|s| s.get(id))
        .or_else(|| {
            driver
                .global_message_strings
                .as_ref()
                .and_then(|s| s.get(id))
        })
        .and_then(|s| s.text.as_deref());
    match template {
        Some(t) => clean(
            &fill_placeholders(t, m.arguments.as_deref().unwrap_or(&[])),
            MAX_MESSAGE_CHARS,
        ),
        None => clean(&format!("(message {id})"), MAX_MESSAGE_CHARS),
    }
}

/// Replaces `{0}`, `{1}`... with the arguments; `{{` and `}}` are literal braces. Output is
/// bounded so that arguments repeated many times cannot blow up.
fn fill_placeholders(template: &str, args: &[String]) -> String {
    let limit = MAX_MESSAGE_CHARS * 4;
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if out.len() > limit {
            break;
        }
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                let arg = digits
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| args.get(n))
                    .filter(|_| chars.peek() == Some(&'}'));
                match arg {
                    Some(a) => {
                        chars.next();
                        out.extend(a.chars().take(limit));
                    }
                    None => {
                        out.push('{');
                        out.push_str(&digits);
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn location(l: &sarif_json::Location, artifacts: &[sarif_json::Artifact]) -> Option<String> {
    let p = l.physical_location.as_ref()?;
    let a = p.artifact_location.as_ref()?;
    let uri = a.uri.as_deref().or_else(|| {
        let i = usize::try_from(a.index?).ok()?;
        artifacts.get(i)?.location.as_ref()?.uri.as_deref()
    })?;
    let uri = clean(uri, MAX_NAME_CHARS);
    Some(match p.region.as_ref().and_then(|r| r.start_line) {
        Some(line) => format!("{uri}:{line}"),
        None => uri,
    })
}

// ---------------------------------------------------------------- storage

/// The SHA-256 of a file, lowercase hex: how evidence files are identified.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An evidence file ready to store: parsed, hashed and attributed.
#[derive(Clone, PartialEq, Eq)]
pub struct NewEvidence {
    pub model: DeviceModel,
    pub version: FirmwareVersion,
    pub category: TestCategory,
    pub kind: EvidenceKind,
    /// The file's name without directories.
    pub file_name: String,
    /// [`sha256_hex`] of `bytes`.
    pub sha256: String,
    /// [`parse`] of `bytes`.
    pub summary: EvidenceSummary,
    /// Kept to the second by the stores.
    pub imported_at: OffsetDateTime,
    pub author: Actor,
    /// The file as imported, at most [`MAX_EVIDENCE_BYTES`].
    pub bytes: Vec<u8>,
}

impl fmt::Debug for NewEvidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewEvidence")
            .field("model", &self.model)
            .field("version", &self.version)
            .field("category", &self.category)
            .field("kind", &self.kind)
            .field("file_name", &self.file_name)
            .field("sha256", &self.sha256)
            .field("summary", &self.summary)
            .field("imported_at", &self.imported_at)
            .field("author", &self.author)
            .field("bytes", &format_args!("[{} bytes]", self.bytes.len()))
            .finish()
    }
}

impl NewEvidence {
    /// Parses `bytes` (see [`parse`]), hashes them and keeps the last path component of
    /// `file_name`. Fails on a file that is not evidence, or on a name that is empty, longer
    /// than 255 bytes or has control characters.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: DeviceModel,
        version: FirmwareVersion,
        category: TestCategory,
        file_name: &str,
        bytes: Vec<u8>,
        kind_hint: Option<EvidenceKind>,
        author: Actor,
        imported_at: OffsetDateTime,
    ) -> Result<NewEvidence, DocsError> {
        let base = file_name
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(file_name)
            .trim();
        if base.is_empty() || base.len() > 255 || base.chars().any(char::is_control) {
            return Err(DocsError::Invalid {
                what: "evidence file name",
                message: format!(
                    "{:?}: must be 1 to 255 bytes without control characters",
                    clean(file_name, 80)
                ),
            });
        }
        let summary = parse(kind_hint, &bytes)?;
        Ok(NewEvidence {
            model,
            version,
            category,
            kind: summary.kind(),
            file_name: base.to_string(),
            sha256: sha256_hex(&bytes),
            summary,
            imported_at,
            author,
            bytes,
        })
    }

    /// The audit record of importing this file (`evidence.imported`, subject
    /// `model@version`).
    pub fn audit_record(&self) -> AuditRecord {
        AuditRecord::new(
            &self.author,
            AuditAction::EvidenceImported,
            format!("{}@{}", self.model, self.version),
            serde_json::json!({
                "file": self.file_name,
                "sha256": self.sha256,
                "kind": self.kind.as_str(),
                "category": self.category.as_str(),
                "passed": self.summary.passed(),
            }),
        )
    }
}

/// A stored evidence file's record (the bytes are read with [`EvidenceStore::evidence_file`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvidence {
    pub id: u64,
    pub model: DeviceModel,
    pub version: FirmwareVersion,
    pub category: TestCategory,
    pub kind: EvidenceKind,
    pub file_name: String,
    pub sha256: String,
    pub size: u64,
    pub summary: EvidenceSummary,
    #[serde(with = "time::serde::rfc3339")]
    pub imported_at: OffsetDateTime,
    pub author: Actor,
}

/// Where imported evidence is kept, implemented by the back ends in `medsec-store`.
#[async_trait]
pub trait EvidenceStore: Send + Sync {
    /// Stores the record and the file with `audit` in one transaction; returns the new id.
    /// The same file (same SHA-256) for the same model and version is refused (`Conflict`);
    /// a file over [`MAX_EVIDENCE_BYTES`], or whose hash or summary kind does not match, is
    /// refused (`Refused`).
    async fn add_evidence(&self, e: &NewEvidence, audit: &AuditRecord) -> Result<u64, StoreError>;
    /// The evidence of one firmware version, in import order.
    async fn list_evidence(
        &self,
        model: &DeviceModel,
        version: &FirmwareVersion,
    ) -> Result<Vec<StoredEvidence>, StoreError>;
    /// The file as imported.
    async fn evidence_file(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError>;
}

/// The checks every store applies before writing (shared so the back ends agree).
pub fn check_new_evidence(e: &NewEvidence) -> Result<(), StoreError> {
    if e.bytes.len() > MAX_EVIDENCE_BYTES {
        return Err(StoreError::Refused(format!(
            "evidence file {} is {} bytes; the limit is {MAX_EVIDENCE_BYTES}",
            e.file_name,
            e.bytes.len()
        )));
    }
    if sha256_hex(&e.bytes) != e.sha256 {
        return Err(StoreError::Refused(format!(
            "evidence file {}: the recorded SHA-256 does not match its bytes",
            e.file_name
        )));
    }
    if e.summary.kind() != e.kind {
        return Err(StoreError::Refused(format!(
            "evidence file {}: recorded as {} but summarised as {}",
            e.file_name,
            e.kind,
            e.summary.kind()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/evidence")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn junit(name: &str) -> JunitSummary {
        match parse(None, &fixture(name)).unwrap() {
            EvidenceSummary::Junit(j) => j,
            other => panic!("{name}: {other:?}"),
        }
    }

    fn sarif(name: &str) -> SarifSummary {
        match parse(None, &fixture(name)).unwrap() {
            EvidenceSummary::Sarif(s) => s,
            other => panic!("{name}: {other:?}"),
        }
    }

    fn err(hint: Option<EvidenceKind>, bytes: &[u8]) -> String {
        match parse(hint, bytes) {
            Err(e) => e.to_string(),
            Ok(s) => panic!("accepted: {s:?}"),
        }
    }

    #[test]
    fn names_round_trip() {
        for k in EvidenceKind::ALL {
            assert_eq!(k.as_str().parse::<EvidenceKind>().unwrap(), k);
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        for c in TestCategory::ALL {
            assert_eq!(c.as_str().parse::<TestCategory>().unwrap(), c);
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        assert!("pentest".parse::<TestCategory>().is_err());
        assert!("JUnit".parse::<EvidenceKind>().is_err());
    }

    #[test]
    fn pytest_pentest_with_two_failures() {
        let j = junit("junit-pentest-two-failures.xml");
        assert_eq!(j.suites, 1);
        assert_eq!(j.suite_names, vec!["pytest".to_string()]);
        assert_eq!((j.tests, j.failures, j.errors, j.skipped), (8, 2, 0, 1));
        assert_eq!(j.passed_tests(), 5);
        assert_eq!(
            j.timestamp.as_deref(),
            Some("2024-05-14T09:12:33.418211+00:00")
        );
        assert_eq!(j.failing.len(), 2);
        let f = &j.failing[0];
        assert_eq!(f.name, "test_pairing_requires_mitm_protection");
        assert_eq!(f.classname.as_deref(), Some("pentest.test_ble_pairing"));
        assert_eq!(f.suite.as_deref(), Some("pytest"));
        assert_eq!(f.outcome, CaseOutcome::Failure);
        assert!(
            f.message
                .as_deref()
                .unwrap()
                .starts_with("AssertionError: pump accepted Just Works pairing"),
            "{f:?}"
        );
        assert!(!f.message.as_deref().unwrap().contains('\n'));
        assert!(j.notes.is_empty(), "{:?}", j.notes);
        let s = EvidenceSummary::Junit(j);
        assert!(!s.passed());
        assert_eq!(
            s.headline(),
            "pytest: 8 tests in 1 suite: 5 passed, 2 failed, 0 errors, 1 skipped"
        );
    }

    #[test]
    fn ctest_fuzzing_single_testsuite_root() {
        let j = junit("junit-ctest-fuzzing-one-failure.xml");
        assert_eq!(j.name.as_deref(), Some("fuzz-x86_64-linux"));
        assert_eq!(j.suites, 1);
        assert_eq!((j.tests, j.failures, j.errors, j.skipped), (4, 1, 0, 0));
        assert_eq!(j.failing.len(), 1);
        assert_eq!(j.failing[0].name, "fuzz_hl7_parser");
        assert_eq!(j.failing[0].message.as_deref(), Some("Failed"));
        assert_eq!(j.timestamp.as_deref(), Some("2024-05-15T02:00:11"));
        assert!(!EvidenceSummary::Junit(j).passed());
    }

    #[test]
    fn failure_without_message_attribute_uses_its_first_text_line() {
        // jest-junit writes the failure as text only.
        let xml = b"<testsuites name=\"jest tests\" tests=\"1\" failures=\"1\" errors=\"0\">
            <testsuite name=\"api auth\" tests=\"1\" failures=\"1\" errors=\"0\" skipped=\"0\">
              <testcase classname=\"api auth rejects expired tokens\" name=\"rejects expired tokens\">
                <failure>

    Error: expect(received).toBe(expected)
        at Object.&lt;anonymous&gt; (auth.test.js:12:5)</failure>
              </testcase>
            </testsuite>
          </testsuites>";
        let EvidenceSummary::Junit(j) = parse(None, xml).unwrap() else {
            panic!()
        };
        assert_eq!(
            j.failing[0].message.as_deref(),
            Some("Error: expect(received).toBe(expected)")
        );
        assert_eq!(j.failing[0].suite.as_deref(), Some("api auth"));
    }

    #[test]
    fn nested_suites_and_missing_attributes() {
        let j = junit("junit-functional-nested.xml");
        // The root declares nothing; three nested suites, one without any count attribute.
        assert_eq!(j.suites, 4);
        assert_eq!(
            j.suite_names,
            vec![
                "security-functional".to_string(),
                "authentication".into(),
                "authorization".into(),
                "secure-update".into()
            ]
        );
        assert_eq!((j.tests, j.failures, j.errors, j.skipped), (7, 0, 1, 0));
        assert_eq!(j.failing.len(), 1);
        assert_eq!(j.failing[0].outcome, CaseOutcome::Error);
        assert_eq!(j.failing[0].suite.as_deref(), Some("secure-update"));
        assert_eq!(j.failing[0].failure_type.as_deref(), Some("TimeoutError"));
        // "authorization" declares 3 tests but lists 2: the larger is kept, and noted.
        assert!(
            j.notes
                .iter()
                .any(|n| n.contains("authorization") && n.contains("tests=3")),
            "{:?}",
            j.notes
        );
        let s = EvidenceSummary::Junit(j);
        assert!(!s.passed());
        assert!(
            s.headline()
                .starts_with("Security functional tests: 7 tests in 4 suites")
        );
    }

    #[test]
    fn attributes_only_report_counts_from_attributes() {
        let xml = br#"<testsuites name="zap" tests="12" failures="0" errors="0">
            <testsuite name="zap-api-scan" tests="12" failures="0" errors="0" skipped="2"/>
        </testsuites>"#;
        let EvidenceSummary::Junit(j) = parse(Some(EvidenceKind::Junit), xml).unwrap() else {
            panic!()
        };
        assert_eq!((j.tests, j.failures, j.errors, j.skipped), (12, 0, 0, 2));
        assert!(j.notes.is_empty());
        assert!(EvidenceSummary::Junit(j).passed());
    }

    #[test]
    fn failing_list_is_bounded_but_all_are_counted() {
        let mut xml = String::from("<testsuite name=\"many\">");
        for i in 0..(MAX_FAILING_CASES + 50) {
            xml.push_str(&format!(
                "<testcase name=\"t{i}\"><failure message=\"{}\"/></testcase>",
                "x".repeat(3000)
            ));
        }
        xml.push_str("</testsuite>");
        let EvidenceSummary::Junit(j) = parse(None, xml.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(j.failures as usize, MAX_FAILING_CASES + 50);
        assert_eq!(j.failing.len(), MAX_FAILING_CASES);
        let m = j.failing[0].message.as_deref().unwrap();
        assert_eq!(m.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(m.ends_with('…'));
    }

    #[test]
    fn truncated_junit_names_the_position() {
        let e = err(None, &fixture("junit-truncated.xml"));
        assert!(
            e.starts_with("invalid evidence file: invalid XML at line "),
            "{e}"
        );
        assert!(e.contains("column"), "{e}");
        assert!(e.contains("truncated"), "{e}");
    }

    #[test]
    fn malformed_xml_names_line_and_column() {
        let e = err(
            None,
            b"<testsuites>\n  <testsuite name=\"a\">\n  </testsuites>\n",
        );
        assert!(e.contains("invalid XML at line 3, column"), "{e}");
        assert!(e.contains("expected 'testsuite' tag"), "{e}");
    }

    #[test]
    fn bad_count_attribute_is_refused_with_position() {
        let e = err(
            None,
            b"<testsuites>\n<testsuite name=\"a\" tests=\"-1\"/></testsuites>",
        );
        assert!(e.contains("line 2, column 1"), "{e}");
        assert!(e.contains("tests=\"-1\" is not a count"), "{e}");
    }

    #[test]
    fn html_is_not_evidence() {
        let e = err(None, &fixture("not-evidence.html"));
        assert_eq!(
            e,
            "invalid evidence file: not JUnit XML or SARIF 2.1.0: root element is <html>"
        );
    }

    #[test]
    fn other_inputs_are_refused_clearly() {
        assert!(err(None, b"").contains("the file is empty"));
        assert!(err(None, b"  \n").contains("the file is empty"));
        assert!(err(None, b"PK\x03\x04zipzip").contains("neither XML nor JSON"));
        assert!(err(None, b"\xFF\xFE<\0t\0").contains("UTF-16"));
        assert!(err(None, b"<testsuite>\xC3\x28</testsuite>").contains("not UTF-8"));
        assert!(
            err(None, b"<?xml version=\"1.0\"?>\n<!-- c -->\n<bom/>")
                .contains("root element is <bom>")
        );
        assert!(err(None, b"<!-- only a comment -->").contains("no root element"));
        assert!(err(None, b"[1, 2]").contains("top level is not an object"));
        assert!(
            err(
                None,
                b"{\"bomFormat\": \"CycloneDX\", \"specVersion\": \"1.5\", \"version\": 1}"
            )
            .contains("CycloneDX")
        );
        assert!(err(None, b"{\"a\": 1}").contains("no \"version\": \"2.1.0\""));
        assert!(err(None, b"{\"version\": \"2.1.0\", \"runs\": [").contains("truncated"));
        assert!(err(None, b"{\"version\": \"2.1.0\", \"runs\": [}").contains("line 1"));
        // A DTD is refused (entity expansion is not worth the risk).
        let e = err(
            None,
            b"<!DOCTYPE testsuites [<!ENTITY a \"x\">]><testsuites>&a;</testsuites>",
        );
        assert!(e.contains("DOCTYPE"), "{e}");
    }

    #[test]
    fn hint_must_match_content() {
        let e = err(
            Some(EvidenceKind::Sarif),
            &fixture("junit-pentest-two-failures.xml"),
        );
        assert_eq!(
            e,
            "invalid evidence file: expected SARIF 2.1.0 (JSON), but the file is XML with root element <testsuites>"
        );
        let e = err(
            Some(EvidenceKind::Junit),
            &fixture("sarif-semgrep-findings.sarif"),
        );
        assert!(
            e.contains("expected JUnit XML, but the file is JSON"),
            "{e}"
        );
        assert!(
            parse(
                Some(EvidenceKind::Sarif),
                &fixture("sarif-semgrep-findings.sarif")
            )
            .is_ok()
        );
    }

    #[test]
    fn semgrep_findings() {
        let s = sarif("sarif-semgrep-findings.sarif");
        assert_eq!(s.runs.len(), 1);
        let r = &s.runs[0];
        assert_eq!(r.tool, "Semgrep OSS");
        assert_eq!(r.tool_version.as_deref(), Some("1.56.0"));
        assert_eq!(r.results_total, 5);
        // Semgrep writes no result level: the rule's default configuration gives it.
        assert_eq!(
            r.levels,
            LevelCounts {
                error: 2,
                warning: 1,
                note: 1,
                none: 0
            }
        );
        assert_eq!(r.suppressed, 1);
        assert_eq!(
            r.rules[0],
            RuleCount {
                rule_id: "c.lang.security.insecure-use-strcpy-fn.insecure-use-strcpy-fn".into(),
                count: 2
            }
        );
        assert_eq!(r.rules.len(), 3);
        assert_eq!(r.results.len(), 5);
        assert_eq!(
            r.results[0].location.as_deref(),
            Some("src/comms/hl7_parser.c:142")
        );
        assert_eq!(r.results[0].level, SarifLevel::Error);
        assert!(r.results[4].suppressed);
        let summary = EvidenceSummary::Sarif(s);
        assert!(!summary.passed());
        assert_eq!(
            summary.headline(),
            "Semgrep OSS 1.56.0: 4 results (2 error, 1 warning, 1 note, 0 none), 1 suppressed"
        );
    }

    #[test]
    fn codeql_with_extension_rules_and_suppressed_error_passes() {
        let s = sarif("sarif-codeql-no-errors.sarif");
        let r = &s.runs[0];
        assert_eq!(r.tool, "CodeQL");
        assert_eq!(r.tool_version.as_deref(), Some("2.16.3"));
        // One result without a level takes the extension rule's default (warning); the
        // error-level one is suppressed with an accepted justification.
        assert_eq!(
            r.levels,
            LevelCounts {
                error: 0,
                warning: 2,
                note: 1,
                none: 0
            }
        );
        assert_eq!(r.suppressed, 1);
        // Location through the artifacts table.
        assert_eq!(
            r.results[0].location.as_deref(),
            Some("firmware/net/tls_client.c:88")
        );
        // Message from the rule's message strings with arguments.
        assert!(
            r.results
                .iter()
                .any(|f| f.message == "Variable 'session_key' is not cleared before free."),
            "{:?}",
            r.results
        );
        assert!(EvidenceSummary::Sarif(s).passed());
    }

    #[test]
    fn sarif_semantics_kind_baseline_and_review() {
        let json = br#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "t",
            "rules": [{"id": "R1", "defaultConfiguration": {"level": "error"}}]}},
            "results": [
              {"ruleId": "R1", "kind": "pass", "message": {"text": "ok"}},
              {"ruleId": "R1", "message": {"text": "fixed"}, "baselineState": "absent"},
              {"ruleId": "R1", "message": {"text": "disputed"},
               "suppressions": [{"kind": "external", "status": "underReview"}]},
              {"ruleIndex": 0, "message": {"text": "by index"},
               "suppressions": [{"kind": "inSource"}]}
            ]}]}"#;
        let EvidenceSummary::Sarif(s) = parse(None, json).unwrap() else {
            panic!()
        };
        let r = &s.runs[0];
        assert_eq!(r.results_total, 4);
        assert_eq!(r.levels.none, 1);
        assert_eq!(r.levels.error, 1, "under review is not suppressed");
        assert_eq!(r.absent, 1);
        assert_eq!(r.suppressed, 1);
        assert_eq!(r.results.len(), 3);
        assert_eq!(r.results[2].rule_id.as_deref(), Some("R1"));
        assert!(!EvidenceSummary::Sarif(s.clone()).passed());
    }

    #[test]
    fn sarif_errors() {
        let e = err(None, &fixture("sarif-version-2.0.0.sarif"));
        assert!(
            e.contains("SARIF version \"2.0.0\" is not supported"),
            "{e}"
        );
        let e = err(
            None,
            br#"{"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]}"#,
        );
        assert!(
            e.contains("not valid SARIF 2.1.0: missing field `name`"),
            "{e}"
        );
        assert!(e.contains("line 1"), "{e}");
        let e = err(
            None,
            br#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}},
                "results": [{"level": "critical", "message": {"text": "m"}}]}]}"#,
        );
        assert!(e.contains("level \"critical\""), "{e}");
        assert!(err(None, br#"{"version": "2.1.0"}"#).contains("without \"runs\""));
        let many = format!(
            r#"{{"version": "2.1.0", "runs": [{}]}}"#,
            vec![r#"{"tool": {"driver": {"name": "x"}}}"#; MAX_SARIF_RUNS + 1].join(",")
        );
        assert!(err(None, many.as_bytes()).contains("runs; at most"));
    }

    #[test]
    fn empty_runs_and_results() {
        let EvidenceSummary::Sarif(s) = parse(
            None,
            br#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x", "version": "1"}}, "results": null}]}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(s.runs[0].results_total, 0);
        let s = EvidenceSummary::Sarif(s);
        assert!(s.passed());
        assert_eq!(
            s.headline(),
            "x 1: 0 results (0 error, 0 warning, 0 note, 0 none)"
        );
        let s = parse(None, br#"{"version": "2.1.0", "runs": []}"#).unwrap();
        assert_eq!(s.headline(), "SARIF: no runs");
    }

    #[test]
    fn placeholders() {
        let args = vec!["a".to_string(), "b".to_string()];
        assert_eq!(fill_placeholders("{0} and {1}", &args), "a and b");
        assert_eq!(fill_placeholders("{{0}} {2} {x", &args), "{0} {2} {x");
    }

    #[test]
    fn summaries_round_trip_through_json() {
        for name in [
            "junit-pentest-two-failures.xml",
            "junit-functional-nested.xml",
            "junit-ctest-fuzzing-one-failure.xml",
            "sarif-semgrep-findings.sarif",
            "sarif-codeql-no-errors.sarif",
        ] {
            let s = parse(None, &fixture(name)).unwrap();
            let json = serde_json::to_string(&s).unwrap();
            let back: EvidenceSummary = serde_json::from_str(&json).unwrap();
            assert_eq!(back, s, "{name}");
        }
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        // Deep nesting of suites.
        let deep = format!(
            "{}{}",
            "<testsuite>".repeat(MAX_SUITE_DEPTH + 5),
            "</testsuite>".repeat(MAX_SUITE_DEPTH + 5)
        );
        assert!(err(None, deep.as_bytes()).contains("nested deeper"));
        // Deep JSON: serde_json's recursion limit answers.
        let deep = format!(
            r#"{{"version": "2.1.0", "runs": {}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(parse(None, deep.as_bytes()).is_err());
        // Huge counts saturate instead of overflowing.
        let xml = format!(
            r#"<testsuites><testsuite tests="{m}" failures="{m}"/><testsuite tests="{m}" failures="{m}"/></testsuites>"#,
            m = u64::MAX
        );
        let EvidenceSummary::Junit(j) = parse(None, xml.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(j.tests, u64::MAX);
        // Every prefix of a real file fails cleanly or parses.
        for name in [
            "junit-pentest-two-failures.xml",
            "sarif-semgrep-findings.sarif",
        ] {
            let f = fixture(name);
            for cut in (0..f.len()).step_by(7) {
                let _ = parse(None, &f[..cut]);
            }
        }
        // Over the size limit.
        let big = vec![b' '; MAX_EVIDENCE_BYTES + 1];
        assert!(err(None, &big).contains("limited to 64 MiB"));
    }

    #[test]
    fn new_evidence_hashes_names_and_audits() {
        let bytes = fixture("sarif-semgrep-findings.sarif");
        let e = NewEvidence::new(
            DeviceModel::parse("pump-x2").unwrap(),
            FirmwareVersion::parse("2.4.1").unwrap(),
            TestCategory::StaticAnalysis,
            "/home/ci/out/sarif-semgrep-findings.sarif",
            bytes.clone(),
            None,
            Actor::parse("user:qa").unwrap(),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(e.file_name, "sarif-semgrep-findings.sarif");
        assert_eq!(e.kind, EvidenceKind::Sarif);
        assert_eq!(e.sha256, sha256_hex(&bytes));
        assert_eq!(e.sha256.len(), 64);
        check_new_evidence(&e).unwrap();
        let a = e.audit_record();
        assert_eq!(a.action, AuditAction::EvidenceImported);
        assert_eq!(a.subject, "pump-x2@2.4.1");
        assert_eq!(a.details["passed"], false);
        assert!(format!("{e:?}").contains("bytes]"));

        let mut tampered = e.clone();
        tampered.bytes.push(b'\n');
        assert!(matches!(
            check_new_evidence(&tampered),
            Err(StoreError::Refused(_))
        ));
        for bad in ["", "dir/", "a\nb"] {
            assert!(
                NewEvidence::new(
                    e.model.clone(),
                    e.version.clone(),
                    e.category,
                    bad,
                    bytes.clone(),
                    None,
                    e.author.clone(),
                    e.imported_at,
                )
                .is_err(),
                "{bad:?}"
            );
        }
    }
}
