//! Reports: JSON, plain-text tables, Markdown and HTML, all built from one document model so
//! the formats cannot drift apart. HTML escapes every piece of user text.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::RiskError;
use crate::findings::{Finding, auth_str, data_class_str, enc_str};
use crate::inventory::{Direction, Inventory};
use crate::policy::Policy;
use crate::register::{Assessment, Register, SignOffState};
use crate::threats::{ThreatModel, ThreatTarget};
use crate::trace::{Traceability, trace};

/// Everything a risk management report shows, computed once. Serialises as the JSON output.
#[derive(Debug, Clone, Serialize)]
pub struct RiskReport {
    pub title: String,
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    pub inventory: Inventory,
    pub findings: Vec<Finding>,
    pub threats: ThreatModel,
    pub policy: Policy,
    pub register: Register,
    pub assessments: Vec<Assessment>,
    pub traceability: Traceability,
}

impl RiskReport {
    /// Builds the report; `generated_at` is a parameter because this crate reads no clock.
    pub fn build(
        title: &str,
        generated_at: OffsetDateTime,
        inventory: &Inventory,
        findings: &[Finding],
        threats: &ThreatModel,
        register: &Register,
        policy: &Policy,
    ) -> Result<RiskReport, RiskError> {
        Ok(RiskReport {
            title: title.to_owned(),
            generated_at,
            inventory: inventory.clone(),
            findings: findings.to_vec(),
            threats: threats.clone(),
            policy: policy.clone(),
            register: register.clone(),
            assessments: register.assess(policy)?,
            traceability: trace(threats, register, findings),
        })
    }

    pub fn to_json(&self) -> Result<String, RiskError> {
        serde_json::to_string_pretty(self).map_err(|e| RiskError::Serialize {
            what: "report",
            message: e.to_string(),
        })
    }

    pub fn to_text(&self) -> String {
        render_text(&self.blocks())
    }

    pub fn to_markdown(&self) -> String {
        render_markdown(&self.blocks())
    }

    pub fn to_html(&self) -> String {
        render_html(&self.title, &self.blocks())
    }

    fn blocks(&self) -> Vec<Block> {
        let mut b = Vec::new();
        let inv = &self.inventory;
        b.push(Block::Heading(1, self.title.clone()));
        b.push(Block::Para(format!(
            "Device model: {}. Generated: {}.",
            inv.model,
            self.generated_at.format(&Rfc3339).unwrap_or_default()
        )));
        if !inv.description.is_empty() {
            b.push(Block::Para(inv.description.clone()));
        }

        b.push(Block::Heading(2, "Trust relationships".to_owned()));
        b.push(Block::Table(Table::new(
            &["Endpoint", "Name", "Kind", "Zone", "Via"],
            inv.endpoints
                .iter()
                .map(|e| {
                    vec![
                        e.id.to_string(),
                        e.name.clone(),
                        kebab(&e.kind),
                        e.zone.clone().unwrap_or_default(),
                        e.via.as_ref().map(ToString::to_string).unwrap_or_default(),
                    ]
                })
                .collect(),
        )));
        b.push(Block::Table(Table::new(
            &[
                "Link",
                "From",
                "To",
                "Dir",
                "Protocol",
                "Auth",
                "Encryption",
                "Data",
                "Boundary",
            ],
            inv.links
                .iter()
                .map(|l| {
                    vec![
                        l.id.to_string(),
                        l.from.to_string(),
                        l.to.to_string(),
                        match l.direction {
                            Direction::Outbound => "->",
                            Direction::Inbound => "<-",
                            Direction::Bidirectional => "<->",
                        }
                        .to_owned(),
                        match l.port {
                            Some(p) => format!("{}/{p}", l.protocol),
                            None => l.protocol.clone(),
                        },
                        format!(
                            "{}{}",
                            auth_str(l.auth),
                            if l.is_mutual() { " (mutual)" } else { "" }
                        ),
                        enc_str(l.encryption).to_owned(),
                        l.data
                            .iter()
                            .map(|d| data_class_str(*d))
                            .collect::<Vec<_>>()
                            .join(", "),
                        l.boundary.clone().unwrap_or_default(),
                    ]
                })
                .collect(),
        )));

        b.push(Block::Heading(2, "Findings".to_owned()));
        b.push(Block::Table(Table::new(
            &["Finding", "Kind", "Link", "Severity", "Explanation"],
            self.findings
                .iter()
                .map(|f| {
                    vec![
                        f.id.to_string(),
                        f.kind.as_str().to_owned(),
                        f.link.to_string(),
                        f.severity.as_str().to_owned(),
                        f.explanation.clone(),
                    ]
                })
                .collect(),
        )));

        b.push(Block::Heading(2, "Threats".to_owned()));
        b.push(Block::Table(Table::new(
            &["Threat", "Target", "STRIDE", "Phase", "Status", "Title"],
            self.threats
                .threats
                .iter()
                .map(|t| {
                    vec![
                        t.id.to_string(),
                        match &t.target {
                            ThreatTarget::Link(l) => format!("link {l}"),
                            ThreatTarget::Endpoint(e) => format!("endpoint {e}"),
                        },
                        t.category.as_str().to_owned(),
                        t.phase.as_str().to_owned(),
                        t.status.as_str().to_owned(),
                        t.title.clone(),
                    ]
                })
                .collect(),
        )));

        b.push(Block::Heading(2, "Risk acceptability matrix".to_owned()));
        let p = &self.policy;
        let mut headers = vec!["Exploitability / Severity".to_owned()];
        headers.extend(p.severity.iter().map(ToString::to_string));
        let rows = p
            .exploitability
            .iter()
            .zip(&p.matrix)
            .rev() // most exploitable on top, as matrices are usually drawn
            .map(|(e, row)| {
                let mut r = vec![e.to_string()];
                r.extend(row.iter().map(ToString::to_string));
                r
            })
            .collect();
        b.push(Block::Table(Table { headers, rows }));
        b.push(Block::List(
            p.levels
                .iter()
                .map(|l| {
                    format!(
                        "{}: {}{}",
                        l.name,
                        if l.acceptable {
                            "acceptable"
                        } else {
                            "not acceptable"
                        },
                        if l.description.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", l.description)
                        }
                    )
                })
                .collect(),
        ));

        b.push(Block::Heading(2, "Risk register".to_owned()));
        b.push(Block::Table(Table::new(
            &[
                "Risk",
                "Threats / vulnerabilities",
                "Hazardous situation",
                "Harm",
                "Initial",
                "Controls",
                "Residual",
                "Controlled",
                "Sign-off",
            ],
            self.register
                .risks
                .iter()
                .zip(&self.assessments)
                .map(|(r, a)| {
                    let mut refs: Vec<String> = r.threats.iter().map(ToString::to_string).collect();
                    refs.extend(r.vulnerabilities.iter().map(ToString::to_string));
                    vec![
                        r.id.to_string(),
                        refs.join(", "),
                        r.hazardous_situation.clone(),
                        r.harm.clone(),
                        format!(
                            "{} ({} x {})",
                            a.initial.level, a.initial.exploitability, a.initial.severity
                        ),
                        r.controls
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        format!(
                            "{} ({} x {})",
                            a.residual.level, a.residual.exploitability, a.residual.severity
                        ),
                        format!(
                            "{}{}",
                            if a.controlled { "yes" } else { "NO" },
                            rationale(&a.rationale)
                        ),
                        sign_off_text(
                            r.sign_off.as_ref().map(|s| (s.by.as_str(), s.at)),
                            a.sign_off,
                        ),
                    ]
                })
                .collect(),
        )));

        b.push(Block::Heading(2, "Controls".to_owned()));
        b.push(Block::Table(Table::new(
            &["Control", "Category", "Requirement", "Tests", "Description"],
            self.register
                .controls
                .iter()
                .map(|c| {
                    vec![
                        c.id.to_string(),
                        c.category.as_str().to_owned(),
                        c.requirement.to_string(),
                        c.tests
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        c.description.clone(),
                    ]
                })
                .collect(),
        )));

        b.push(Block::Heading(2, "Traceability".to_owned()));
        let t = &self.traceability;
        b.push(Block::Table(Table::new(
            &[
                "Threat",
                "Status",
                "Risks",
                "Controls",
                "Tests",
                "Vulnerabilities",
                "Findings",
            ],
            t.rows
                .iter()
                .map(|r| {
                    let j = |v: &[String]| v.join(", ");
                    vec![
                        r.threat.to_string(),
                        r.status.as_str().to_owned(),
                        j(&strs(&r.risks)),
                        j(&strs(&r.controls)),
                        j(&strs(&r.tests)),
                        j(&strs(&r.vulnerabilities)),
                        j(&strs(&r.findings)),
                    ]
                })
                .collect(),
        )));
        for (title, ids) in [
            (
                "Threats without controls",
                strs(&t.threats_without_controls),
            ),
            ("Controls without tests", strs(&t.controls_without_tests)),
            ("Controls not cited by any risk", strs(&t.unused_controls)),
            (
                "Threats cited by the register but not in the threat model",
                strs(&t.unknown_threats),
            ),
        ] {
            b.push(Block::Heading(3, format!("{title} ({})", ids.len())));
            if ids.is_empty() {
                b.push(Block::Para("None.".to_owned()));
            } else {
                b.push(Block::List(ids));
            }
        }
        b
    }
}

fn strs<T: ToString>(v: &[T]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

fn rationale(r: &str) -> String {
    if r.is_empty() {
        String::new()
    } else {
        format!(": {r}")
    }
}

fn sign_off_text(s: Option<(&str, OffsetDateTime)>, state: SignOffState) -> String {
    match (s, state) {
        (Some((by, at)), SignOffState::Valid) => format!("{by}, {}", at.date()),
        (Some((by, at)), _) => format!("INVALIDATED ({by}, {}; inputs changed)", at.date()),
        (None, _) => "missing".to_owned(),
    }
}

/// Serde's kebab-case name of a unit enum variant (what the files use).
fn kebab<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

enum Block {
    Heading(u8, String),
    Para(String),
    List(Vec<String>),
    Table(Table),
}

struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[&str], rows: Vec<Vec<String>>) -> Self {
        Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows,
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn render_text(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        match b {
            Block::Heading(level, t) => {
                let t = one_line(t);
                let rule = if *level == 1 { '=' } else { '-' };
                out.push_str(&format!(
                    "{t}\n{}\n\n",
                    rule.to_string().repeat(t.chars().count())
                ));
            }
            Block::Para(p) => out.push_str(&format!("{p}\n\n")),
            Block::List(items) => {
                for i in items {
                    out.push_str(&format!("  * {}\n", one_line(i)));
                }
                out.push('\n');
            }
            Block::Table(t) => {
                if t.rows.is_empty() {
                    out.push_str("(none)\n\n");
                    continue;
                }
                let cells: Vec<Vec<String>> = t
                    .rows
                    .iter()
                    .map(|r| r.iter().map(|c| one_line(c)).collect())
                    .collect();
                let mut w: Vec<usize> = t.headers.iter().map(|h| h.chars().count()).collect();
                for r in &cells {
                    for (i, c) in r.iter().enumerate() {
                        if let Some(x) = w.get_mut(i) {
                            *x = (*x).max(c.chars().count());
                        }
                    }
                }
                let line = |r: &[String]| {
                    let parts: Vec<String> = r
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            let pad = w
                                .get(i)
                                .copied()
                                .unwrap_or(0)
                                .saturating_sub(c.chars().count());
                            format!("{c}{}", " ".repeat(pad))
                        })
                        .collect();
                    format!("{}\n", parts.join("  ").trim_end())
                };
                out.push_str(&line(&t.headers));
                out.push_str(&line(&w.iter().map(|n| "-".repeat(*n)).collect::<Vec<_>>()));
                for r in &cells {
                    out.push_str(&line(r));
                }
                out.push('\n');
            }
        }
    }
    out
}

/// Escapes text for a Markdown table cell or paragraph: pipes, HTML-significant characters
/// (Markdown renderers pass raw HTML through) and the characters that start emphasis/links.
fn md(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in one_line(s).chars() {
        match c {
            '|' | '\\' | '*' | '_' | '`' | '[' | ']' | '#' => {
                o.push('\\');
                o.push(c);
            }
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            _ => o.push(c),
        }
    }
    o
}

fn render_markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        match b {
            Block::Heading(level, t) => {
                out.push_str(&format!(
                    "{} {}\n\n",
                    "#".repeat(usize::from(*level)),
                    md(t)
                ));
            }
            Block::Para(p) => out.push_str(&format!("{}\n\n", md(p))),
            Block::List(items) => {
                for i in items {
                    out.push_str(&format!("- {}\n", md(i)));
                }
                out.push('\n');
            }
            Block::Table(t) => {
                if t.rows.is_empty() {
                    out.push_str("_None._\n\n");
                    continue;
                }
                let row = |r: &[String]| {
                    format!(
                        "| {} |\n",
                        r.iter().map(|c| md(c)).collect::<Vec<_>>().join(" | ")
                    )
                };
                out.push_str(&row(&t.headers));
                out.push_str(&format!("|{}\n", " --- |".repeat(t.headers.len())));
                for r in &t.rows {
                    out.push_str(&row(r));
                }
                out.push('\n');
            }
        }
    }
    out
}

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

fn render_html(title: &str, blocks: &[Block]) -> String {
    let h = escape_html;
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n\
<style>body{{font-family:sans-serif;max-width:75em;margin:auto}}table{{border-collapse:collapse;margin-bottom:1em}}\
td,th{{border:1px solid #999;padding:.2em .5em;vertical-align:top;text-align:left}}th{{background:#eee}}</style>\n</head>\n<body>\n",
        h(title)
    );
    for b in blocks {
        match b {
            Block::Heading(level, t) => out.push_str(&format!("<h{level}>{}</h{level}>\n", h(t))),
            Block::Para(p) => out.push_str(&format!("<p>{}</p>\n", h(p))),
            Block::List(items) => {
                out.push_str("<ul>\n");
                for i in items {
                    out.push_str(&format!("<li>{}</li>\n", h(i)));
                }
                out.push_str("</ul>\n");
            }
            Block::Table(t) => {
                if t.rows.is_empty() {
                    out.push_str("<p><em>None.</em></p>\n");
                    continue;
                }
                out.push_str("<table>\n<thead><tr>");
                for c in &t.headers {
                    out.push_str(&format!("<th>{}</th>", h(c)));
                }
                out.push_str("</tr></thead>\n<tbody>\n");
                for r in &t.rows {
                    out.push_str("<tr>");
                    for c in r {
                        out.push_str(&format!("<td>{}</td>", h(c)));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody>\n</table>\n");
            }
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}
