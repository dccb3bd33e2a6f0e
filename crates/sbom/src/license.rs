//! SPDX license ids and expressions: recognising them (the CycloneDX export must tell an id, an
//! expression and a free-text name apart) and writing an expression one way, so the same
//! expression from two tools compares equal.

use std::collections::HashSet;
use std::sync::OnceLock;

/// Splits an expression into words and parentheses: `(MIT OR X)` -> `(`, `MIT`, `OR`, `X`, `)`.
fn tokens(s: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    for word in s.split_whitespace() {
        let mut w = word;
        while let Some(r) = w.strip_prefix('(') {
            tokens.push("(");
            w = r;
        }
        let mut closing = 0;
        while let Some(r) = w.strip_suffix(')') {
            closing += 1;
            w = r;
        }
        if !w.is_empty() {
            tokens.push(w);
        }
        tokens.extend(std::iter::repeat_n(")", closing));
    }
    tokens
}

/// A license as the model stores it. A valid SPDX expression is written with single spaces,
/// uppercase operators and without parentheses around the whole, as the SPDX tools write it
/// (pyspdxtools turns `(MIT OR X)` into `MIT OR X`); anything else is kept as given.
pub(crate) fn normalize(s: &str) -> String {
    if !is_expression(s) {
        return s.to_owned();
    }
    let mut t = tokens(s);
    while t.first() == Some(&"(") && closing_paren(&t, 0) == Some(t.len() - 1) {
        t = t[1..t.len() - 1].to_vec();
    }
    let mut out = String::with_capacity(s.len());
    let mut prev: Option<&str> = None;
    for tok in t {
        if tok != ")" && prev.is_some_and(|p| p != "(") {
            out.push(' ');
        }
        // Only operators can be these words in a valid expression: no license id is.
        match tok {
            "and" | "or" | "with" => out.push_str(&tok.to_ascii_uppercase()),
            _ => out.push_str(tok),
        }
        prev = Some(tok);
    }
    out
}

/// Index of the parenthesis closing the one at `open`.
fn closing_paren(t: &[&str], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, tok) in t.iter().enumerate().skip(open) {
        match *tok {
            "(" => depth += 1,
            ")" => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn license_ids() -> &'static HashSet<&'static str> {
    static IDS: OnceLock<HashSet<&'static str>> = OnceLock::new();
    IDS.get_or_init(|| {
        include_str!("spdx_license_ids.txt")
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// Whether `s` is an id the CycloneDX schema's license `id` enum admits (case-sensitive, as the
/// enum is).
pub(crate) fn is_license_id(s: &str) -> bool {
    license_ids().contains(s)
}

/// Whether `s` is an SPDX license expression (SPDX spec annex D) whose licenses are all known
/// SPDX ids or `LicenseRef-`s: `MIT OR (Apache-2.0 WITH LLVM-exception)`, `GPL-2.0-only+`,
/// `LicenseRef-acme`. A free-text name such as "Apache License 2.0" is not.
pub(crate) fn is_expression(s: &str) -> bool {
    let mut p = ExprParser {
        tokens: tokens(s),
        pos: 0,
    };
    p.or_expr(0) && p.pos == p.tokens.len()
}

/// Deepest parenthesis nesting looked into: the text comes from an untrusted SBOM, and the
/// parser recurses once per level.
const MAX_NESTING: usize = 32;

/// Recursive descent over the annex D grammar: OR binds loosest, then AND, then WITH. Operator
/// chains loop rather than recurse, so only parentheses deepen the stack.
struct ExprParser<'a> {
    tokens: Vec<&'a str>,
    pos: usize,
}

impl<'a> ExprParser<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.tokens.get(self.pos).copied()
    }

    fn eat_op(&mut self, op: &str) -> bool {
        // The spec allows operators all upper- or all lowercase, not mixed.
        let hit = self
            .peek()
            .is_some_and(|t| t == op || t == op.to_ascii_lowercase());
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn or_expr(&mut self, depth: usize) -> bool {
        loop {
            if !self.and_expr(depth) {
                return false;
            }
            if !self.eat_op("OR") {
                return true;
            }
        }
    }

    fn and_expr(&mut self, depth: usize) -> bool {
        loop {
            if !self.with_expr(depth) {
                return false;
            }
            if !self.eat_op("AND") {
                return true;
            }
        }
    }

    fn with_expr(&mut self, depth: usize) -> bool {
        if self.peek() == Some("(") {
            if depth >= MAX_NESTING {
                return false;
            }
            self.pos += 1;
            return self.or_expr(depth + 1) && self.peek() == Some(")") && {
                self.pos += 1;
                true
            };
        }
        let Some(t) = self.peek() else {
            return false;
        };
        if !simple_expression(t) {
            return false;
        }
        self.pos += 1;
        if self.eat_op("WITH") {
            let Some(e) = self.peek() else {
                return false;
            };
            self.pos += 1;
            return is_license_id(e);
        }
        true
    }
}

/// A license id (optionally `+`, "or later"), `LicenseRef-x` or `DocumentRef-x:LicenseRef-y`.
fn simple_expression(t: &str) -> bool {
    let idstring = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    let license_ref = |s: &str| s.strip_prefix("LicenseRef-").is_some_and(idstring);
    if let Some((doc, r)) = t.split_once(':') {
        return doc.strip_prefix("DocumentRef-").is_some_and(idstring) && license_ref(r);
    }
    license_ref(t) || is_license_id(t.strip_suffix('+').unwrap_or(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions() {
        for e in [
            "MIT",
            "MIT OR Apache-2.0",
            "(LGPL-2.0-only OR LicenseRef-3)",
            "MIT+",
            "GPL-2.0-only WITH Classpath-exception-2.0",
            "Apache-2.0 AND (MIT OR GPL-2.0-only)",
            "LicenseRef-acme",
            "DocumentRef-spdx-tool-1.2:LicenseRef-MIT-Style-2",
            "MIT and BSD-3-Clause",
        ] {
            assert!(is_expression(e), "{e}");
        }
        for name in [
            "Apache License 2.0",
            "mit",
            "mit+",
            "MIT OR",
            "(MIT",
            "MIT)",
            "()",
            "MIT OR Apache License",
            "MIT WITH Apache-2.0-ish",
            "MIT AnD Apache-2.0",
            "LicenseRef-",
            "",
        ] {
            assert!(!is_expression(name), "{name:?}");
        }
        let deep = format!("{}MIT{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(!is_expression(&deep));
        let nested = format!("{}MIT{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert!(is_expression(&nested));
        let long = vec!["MIT"; 100_000].join(" OR ");
        assert!(is_expression(&long));
    }

    #[test]
    fn normalized_form() {
        for (given, want) in [
            (
                "(LGPL-2.0-only OR LicenseRef-3)",
                "LGPL-2.0-only OR LicenseRef-3",
            ),
            ("((MIT))", "MIT"),
            ("(MIT OR X) AND (Apache-2.0)", "(MIT OR X) AND (Apache-2.0)"),
            (
                "(MIT OR Apache-2.0) AND (BSD-3-Clause)",
                "(MIT OR Apache-2.0) AND (BSD-3-Clause)",
            ),
            ("  MIT   or\tApache-2.0 ", "MIT OR Apache-2.0"),
            (
                "( MIT OR ( Apache-2.0 AND Zlib ) )",
                "MIT OR (Apache-2.0 AND Zlib)",
            ),
            ("Apache License 2.0", "Apache License 2.0"),
            (" (Acme) ", " (Acme) "),
        ] {
            assert_eq!(normalize(given), want, "{given:?}");
        }
    }
}
