//! Markdown, HTML and SVG renderings of a [`Document`]. Output is deterministic: no clocks,
//! no hash-map iteration, numbers formatted with fixed precision.

use std::fmt::Write as _;

use crate::doc::{Block, Diagram, Document, EdgeStyle, NodeKind, Section, Table};

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Escapes the characters Markdown would read as markup, and keeps table cells on one line.
fn escape_md(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' => {
                o.push('\\');
                o.push(c);
            }
            '\n' | '\r' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

fn f(v: f32) -> String {
    // One decimal is plenty for drawing and keeps output stable across platforms.
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

fn edge_colour(s: EdgeStyle) -> &'static str {
    match s {
        EdgeStyle::Secure => "#1b6e3a",
        EdgeStyle::Weak => "#c0392b",
        EdgeStyle::Flow => "#555555",
    }
}

fn node_fill(k: NodeKind) -> &'static str {
    match k {
        NodeKind::Device => "#dce9f7",
        NodeKind::Server => "#e8f4e8",
        NodeKind::External => "#f6efe0",
        NodeKind::Person => "#f2e6f5",
        NodeKind::Boundary => "none",
    }
}

/// Splits a label into lines of at most `max` characters at spaces.
pub fn wrap_words(s: &str, max: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for w in s.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + w.chars().count() > max {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// The diagram as a standalone SVG element (no external references).
pub fn svg(d: &Diagram) -> String {
    let legend_h = 18.0 * d.legend.len() as f32 + if d.legend.is_empty() { 0.0 } else { 10.0 };
    let (w, h) = (d.width, d.height + legend_h);
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" width="{}" height="{}" role="img" aria-labelledby="{id}-title" font-family="Helvetica, Arial, sans-serif" font-size="11"><title id="{id}-title">{}</title>"#,
        f(w),
        f(h),
        f(w),
        f(h),
        escape_html(&d.title),
        id = escape_html(&d.id)
    );
    o.push_str(r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>"##);
    for n in d.nodes.iter().filter(|n| n.kind == NodeKind::Boundary) {
        let _ = write!(
            o,
            r##"<rect x="{}" y="{}" width="{}" height="{}" rx="6" fill="none" stroke="#8a8a8a" stroke-dasharray="5 4"/>"##,
            f(n.x),
            f(n.y),
            f(n.w),
            f(n.h)
        );
        if !n.label.is_empty() {
            let _ = write!(
                o,
                r##"<text x="{}" y="{}" fill="#666666" font-style="italic">{}</text>"##,
                f(n.x + 6.0),
                f(n.y + 14.0),
                escape_html(&n.label)
            );
        }
    }
    for e in &d.edges {
        let pts: Vec<String> = e
            .points
            .iter()
            .map(|(x, y)| format!("{},{}", f(*x), f(*y)))
            .collect();
        let dash = if e.style == EdgeStyle::Weak {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let start = if e.both_ways {
            r#" marker-start="url(#arrow)""#
        } else {
            ""
        };
        let _ = write!(
            o,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.6"{dash}{start} marker-end="url(#arrow)"/>"#,
            pts.join(" "),
            edge_colour(e.style)
        );
        if let (Some(label), Some((mx, my))) = (&e.label, midpoint(&e.points)) {
            let tw = label.chars().count() as f32 * 5.6 + 6.0;
            let _ = write!(
                o,
                r##"<rect x="{}" y="{}" width="{}" height="14" fill="#ffffff" opacity="0.9"/><text x="{}" y="{}" text-anchor="middle" fill="{}">{}</text>"##,
                f(mx - tw / 2.0),
                f(my - 11.0),
                f(tw),
                f(mx),
                f(my),
                edge_colour(e.style),
                escape_html(label)
            );
        }
    }
    for n in d.nodes.iter().filter(|n| n.kind != NodeKind::Boundary) {
        let rx = if n.kind == NodeKind::Person {
            24.0
        } else {
            6.0
        };
        let _ = write!(
            o,
            r##"<rect x="{}" y="{}" width="{}" height="{}" rx="{}" fill="{}" stroke="#333333" stroke-width="{}"/>"##,
            f(n.x),
            f(n.y),
            f(n.w),
            f(n.h),
            f(rx),
            node_fill(n.kind),
            if n.kind == NodeKind::Device { "2" } else { "1" }
        );
        let mut lines = wrap_words(&n.label, 26);
        lines.truncate(2);
        let sub = n.sublabel.as_deref().unwrap_or("");
        let total = lines.len() + usize::from(!sub.is_empty());
        let y0 = n.y + n.h / 2.0 - (total as f32 - 1.0) * 7.0 + 4.0;
        for (i, l) in lines.iter().enumerate() {
            let _ = write!(
                o,
                r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{}</text>"#,
                f(n.x + n.w / 2.0),
                f(y0 + i as f32 * 14.0),
                escape_html(l)
            );
        }
        if !sub.is_empty() {
            let _ = write!(
                o,
                r##"<text x="{}" y="{}" text-anchor="middle" fill="#555555">{}</text>"##,
                f(n.x + n.w / 2.0),
                f(y0 + lines.len() as f32 * 14.0),
                escape_html(sub)
            );
        }
    }
    for (i, (style, text)) in d.legend.iter().enumerate() {
        let y = d.height + 12.0 + i as f32 * 18.0;
        let dash = if *style == EdgeStyle::Weak {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = write!(
            o,
            r#"<line x1="10" y1="{}" x2="50" y2="{}" stroke="{}" stroke-width="1.6"{dash}/><text x="58" y="{}">{}</text>"#,
            f(y - 4.0),
            f(y - 4.0),
            edge_colour(*style),
            f(y),
            escape_html(text)
        );
    }
    o.push_str("</svg>");
    o
}

/// The middle of a polyline's middle segment, where its label goes.
pub fn midpoint(p: &[(f32, f32)]) -> Option<(f32, f32)> {
    if p.len() < 2 {
        return None;
    }
    let i = (p.len() - 1) / 2;
    let (a, b) = (p.get(i)?, p.get(i + 1)?);
    Some(((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0))
}

fn number(prefix: &str, i: usize) -> String {
    if prefix.is_empty() {
        format!("{}", i + 1)
    } else {
        format!("{prefix}.{}", i + 1)
    }
}

pub fn markdown(doc: &Document) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {}\n", escape_md(&doc.title));
    if let Some(s) = &doc.subtitle {
        let _ = writeln!(o, "{}\n", escape_md(s));
    }
    for (k, v) in &doc.meta {
        let _ = writeln!(o, "- **{}:** {}", escape_md(k), escape_md(v));
    }
    o.push('\n');
    for (i, s) in doc.sections.iter().enumerate() {
        md_section(&mut o, s, &number("", i), 2);
    }
    o
}

fn md_table(o: &mut String, t: &Table) {
    if let Some(c) = &t.caption {
        let _ = writeln!(o, "*{}*\n", escape_md(c));
    }
    let _ = writeln!(
        o,
        "| {} |",
        t.header
            .iter()
            .map(|h| escape_md(h))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(o, "|{}", "---|".repeat(t.header.len()));
    for r in &t.rows {
        let _ = writeln!(
            o,
            "| {} |",
            r.iter()
                .map(|c| escape_md(c))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    o.push('\n');
}

fn md_section(o: &mut String, s: &Section, num: &str, level: usize) {
    let _ = writeln!(
        o,
        "{} {num} {} {{#{}}}\n",
        "#".repeat(level.min(6)),
        escape_md(&s.title),
        s.id
    );
    for b in &s.blocks {
        match b {
            Block::Paragraph(p) => {
                let _ = writeln!(o, "{}\n", escape_md(p));
            }
            Block::Bullets(items) => {
                for i in items {
                    let _ = writeln!(o, "- {}", escape_md(i));
                }
                o.push('\n');
            }
            Block::KeyValue(kv) => {
                for (k, v) in kv {
                    let _ = writeln!(o, "- **{}:** {}", escape_md(k), escape_md(v));
                }
                o.push('\n');
            }
            Block::Table(t) => md_table(o, t),
            Block::Diagram(d) => {
                // Markdown viewers render the SVG file written next to the document.
                let _ = writeln!(o, "![{}]({}.svg)\n", escape_md(&d.title), d.id);
            }
            Block::Callout(c) => {
                let _ = writeln!(o, "> **Gap:** {}\n", escape_md(c));
            }
        }
    }
    for (i, c) in s.children.iter().enumerate() {
        md_section(o, c, &number(num, i), level + 1);
    }
}

const CSS: &str = "body{font-family:Helvetica,Arial,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d1d1d;line-height:1.45}\
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}th,td{border:1px solid #bbb;padding:.25rem .5rem;text-align:left;vertical-align:top}\
th{background:#eef1f5}caption{caption-side:top;text-align:left;font-style:italic;padding:.25rem 0}\
.callout{border-left:4px solid #c0392b;background:#fbeeee;padding:.5rem .75rem;margin:.5rem 0}\
figure{margin:1rem 0;overflow-x:auto}figcaption{font-style:italic}dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:bold}dd{margin:0}\
nav ol{padding-left:1.2rem}";

pub fn html(doc: &Document) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{CSS}</style></head><body>\n<h1>{}</h1>\n",
        escape_html(&doc.title),
        escape_html(&doc.title)
    );
    if let Some(s) = &doc.subtitle {
        let _ = writeln!(o, "<p>{}</p>", escape_html(s));
    }
    o.push_str("<dl>");
    for (k, v) in &doc.meta {
        let _ = write!(o, "<dt>{}</dt><dd>{}</dd>", escape_html(k), escape_html(v));
    }
    o.push_str("</dl>\n<nav><h2>Contents</h2><ol>");
    for (i, s) in doc.sections.iter().enumerate() {
        let _ = write!(
            o,
            "<li><a href=\"#{}\">{} {}</a></li>",
            escape_html(&s.id),
            i + 1,
            escape_html(&s.title)
        );
    }
    o.push_str("</ol></nav>\n");
    for (i, s) in doc.sections.iter().enumerate() {
        html_section(&mut o, s, &number("", i), 2);
    }
    o.push_str("</body></html>\n");
    o
}

fn html_section(o: &mut String, s: &Section, num: &str, level: usize) {
    let h = level.min(6);
    let _ = writeln!(
        o,
        "<section id=\"{}\"><h{h}>{num} {}</h{h}>",
        escape_html(&s.id),
        escape_html(&s.title)
    );
    for b in &s.blocks {
        match b {
            Block::Paragraph(p) => {
                let _ = writeln!(o, "<p>{}</p>", escape_html(p));
            }
            Block::Bullets(items) => {
                o.push_str("<ul>");
                for i in items {
                    let _ = write!(o, "<li>{}</li>", escape_html(i));
                }
                o.push_str("</ul>\n");
            }
            Block::KeyValue(kv) => {
                o.push_str("<dl>");
                for (k, v) in kv {
                    let _ = write!(o, "<dt>{}</dt><dd>{}</dd>", escape_html(k), escape_html(v));
                }
                o.push_str("</dl>\n");
            }
            Block::Table(t) => {
                o.push_str("<table>");
                if let Some(c) = &t.caption {
                    let _ = write!(o, "<caption>{}</caption>", escape_html(c));
                }
                o.push_str("<thead><tr>");
                for c in &t.header {
                    let _ = write!(o, "<th scope=\"col\">{}</th>", escape_html(c));
                }
                o.push_str("</tr></thead><tbody>");
                for r in &t.rows {
                    o.push_str("<tr>");
                    for c in r {
                        let _ = write!(o, "<td>{}</td>", escape_html(c));
                    }
                    o.push_str("</tr>");
                }
                o.push_str("</tbody></table>\n");
            }
            Block::Diagram(d) => {
                let _ = writeln!(
                    o,
                    "<figure>{}<figcaption>{}</figcaption></figure>",
                    svg(d),
                    escape_html(&d.title)
                );
            }
            Block::Callout(c) => {
                let _ = writeln!(
                    o,
                    "<p class=\"callout\"><strong>Gap:</strong> {}</p>",
                    escape_html(c)
                );
            }
        }
    }
    for (i, c) in s.children.iter().enumerate() {
        html_section(o, c, &number(num, i), level + 1);
    }
    o.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Document {
        Document {
            slug: "t".into(),
            title: "T <&>".into(),
            subtitle: None,
            meta: vec![("Model".into(), "pump|x".into())],
            sections: vec![
                Section::new("a", "First")
                    .push(Block::Paragraph("use *stars* and <b>tags</b>".into()))
                    .push(Block::Table(Table {
                        caption: None,
                        header: vec!["a".into(), "b".into()],
                        rows: vec![vec!["x|y".into(), "line\nbreak".into()]],
                    }))
                    .child(Section::new("b", "Second")),
            ],
        }
    }

    #[test]
    fn markup_is_escaped() {
        let m = markdown(&doc());
        assert!(m.contains("use \\*stars\\* and \\<b\\>tags\\</b\\>"), "{m}");
        assert!(m.contains("| x\\|y | line break |"), "{m}");
        assert!(m.contains("### 1.1 Second {#b}"), "{m}");
        let h = html(&doc());
        assert!(h.contains("<title>T &lt;&amp;&gt;</title>"));
        assert!(h.contains("&lt;b&gt;tags&lt;/b&gt;"));
        assert!(!h.contains("<b>tags"));
        assert_eq!(h, html(&doc()));
    }

    #[test]
    fn wrapping_keeps_words() {
        assert_eq!(wrap_words("a bb ccc dddd", 6), vec!["a bb", "ccc", "dddd"]);
        assert_eq!(midpoint(&[(0.0, 0.0), (10.0, 20.0)]), Some((5.0, 10.0)));
    }
}
