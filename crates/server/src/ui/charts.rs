//! Inline SVG charts rendered by the server: horizontal bars (fleet by firmware, findings by
//! severity, rollout stages) and a column histogram (certificate expiry by month). No script,
//! so they pass the strict Content-Security-Policy and work without JavaScript.

use maud::{Markup, html};

/// Horizontal bars, one per `(label, value)`, scaled to the largest value.
pub fn bars(title: &str, rows: &[(String, u64)]) -> Markup {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let h = 22 * rows.len().max(1) + 10;
    html! {
        figure.chart {
            svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 520 {h}")) width="520" height=(h) role="img" aria-label=(title) {
                title { (title) }
                @for (i, (label, v)) in rows.iter().enumerate() {
                    @let y = 5 + i * 22;
                    @let w = (*v as f64 / max as f64 * 300.0).round() as u64;
                    text x="0" y=(y + 14) font-size="12" { (label) }
                    rect x="200" y=(y + 2) width=(w.max(1)) height="16" fill="#3b6ea5" {}
                    text x=(206 + w) y=(y + 14) font-size="12" { (v) }
                }
            }
            figcaption { (title) }
        }
    }
}

/// Columns over ordered buckets (e.g. months), each labelled below.
pub fn columns(title: &str, buckets: &[(String, u64)]) -> Markup {
    let max = buckets.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let n = buckets.len().max(1);
    let bw = 520 / n;
    html! {
        figure.chart {
            svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 540 200" width="540" height="200" role="img" aria-label=(title) {
                title { (title) }
                @for (i, (label, v)) in buckets.iter().enumerate() {
                    @let hgt = (*v as f64 / max as f64 * 140.0).round() as u64;
                    @let x = 10 + i * bw;
                    rect x=(x + 2) y=(160 - hgt) width=(bw.saturating_sub(4).max(1)) height=(hgt.max(1)) fill="#5a8f29" {}
                    text x=(x + bw / 2) y=(155 - hgt) font-size="10" text-anchor="middle" { (v) }
                    text x=(x + bw / 2) y="175" font-size="9" text-anchor="middle" { (label) }
                }
            }
            figcaption { (title) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_scaled() {
        let m = bars("t", &[("<script>x</script>".into(), 10), ("b".into(), 5)]).into_string();
        assert!(m.contains("&lt;script&gt;"));
        assert!(!m.contains("<script>"));
        assert!(m.contains(r#"width="300""#) && m.contains(r#"width="150""#));
        let c = columns("e", &[("2026-01".into(), 0), ("2026-02".into(), 4)]).into_string();
        assert!(c.contains("2026-02"));
    }
}
