//! Packagist (Composer) version ordering, as PHP's `version_compare` does it (which is what OSV
//! specifies for Packagist): a leading `v` is ignored, `-`, `_` and `+` are dots, a dot goes
//! between digits and letters, and letter parts rank dev < alpha = a < beta = b < RC = rc <
//! (a number) < pl = p.

use std::cmp::Ordering;

/// The canonical form split into parts: "1.0.0-RC1" is ["1", "0", "0", "RC", "1"].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(Vec<String>);

impl Version {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let s = s.trim();
        let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
        if s.is_empty() {
            return Err("empty version");
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("versions are printable ASCII without spaces");
        }
        // php_canonicalize_version, then split at the dots (never two in a row).
        let mut parts = Vec::new();
        let mut cur = String::new();
        let mut prev_digit: Option<bool> = None;
        for c in s.chars() {
            if !c.is_ascii_alphanumeric() {
                if !cur.is_empty() {
                    parts.push(std::mem::take(&mut cur));
                }
                prev_digit = None;
                continue;
            }
            let digit = c.is_ascii_digit();
            if prev_digit.is_some_and(|p| p != digit) && !cur.is_empty() {
                parts.push(std::mem::take(&mut cur));
            }
            cur.push(c);
            prev_digit = Some(digit);
        }
        if !cur.is_empty() {
            parts.push(cur);
        }
        if parts.is_empty() {
            return Err("no version parts");
        }
        Ok(Version(parts))
    }
}

fn is_num(p: &str) -> bool {
    p.bytes().next().is_some_and(|b| b.is_ascii_digit())
}

/// Rank of a letter part by its prefix, as PHP's compare_special_version_forms; `#` stands for
/// a number. Anything else ranks below `dev`.
fn special(p: &str) -> i8 {
    const FORMS: [(&str, i8); 10] = [
        ("dev", 0),
        ("alpha", 1),
        ("a", 1),
        ("beta", 2),
        ("b", 2),
        ("RC", 3),
        ("rc", 3),
        ("#", 4),
        ("pl", 5),
        ("p", 5),
    ];
    FORMS
        .iter()
        .find(|(f, _)| p.starts_with(f))
        .map_or(-1, |(_, r)| *r)
}

fn cmp_parts(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (is_num(x), is_num(y)) {
            (true, true) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            (false, false) => special(x).cmp(&special(y)),
            (true, false) => special("#").cmp(&special(y)),
            (false, true) => special(x).cmp(&special("#")),
        };
        if o.is_ne() {
            return o;
        }
    }
    let hash = ["#".to_owned()];
    // One version goes on: a number makes it the larger one; a letter part ranks against "#"
    // (so 1.0 < 1.0.1 and 1.0-p1, but 1.0 > 1.0-RC1).
    match a.len().cmp(&b.len()) {
        Ordering::Greater if is_num(&a[b.len()]) => Ordering::Greater,
        Ordering::Greater => cmp_parts(&a[b.len()..], &hash),
        Ordering::Less if is_num(&b[a.len()]) => Ordering::Less,
        Ordering::Less => cmp_parts(&hash, &b[a.len()..]),
        Ordering::Equal => Ordering::Equal,
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_parts(&self.0, &other.0)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn version_compare_rules() {
        // Orderings PHP's version_compare gives (php.net documentation and its tests).
        let chain = [
            "1.0.0-dev",
            "1.0.0-alpha",
            "1.0.0-alpha2",
            "1.0.0-beta1",
            "1.0.0-RC1",
            "1.0.0-rc2",
            "1.0.0",
            "1.0.0.1",
            // A patch level ranks above any number in its place: 1.0.0-pl1 > 1.0.0.1.
            "1.0.0-pl1",
            "1.0.1",
            "1.9",
            "1.10",
            "10.4.9",
            "10.5.0",
        ];
        for w in chain.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(v("v2.1.1"), v("2.1.1"));
        assert_eq!(v("1.0rc1").cmp(&v("1.0-RC1")), Ordering::Equal);
        assert_eq!(v("1.0-RC1").cmp(&v("1.0_rc+1")), Ordering::Equal);
        // No normalisation to four parts: "1.0" is below "1.0.0", as in PHP.
        assert!(v("1.0") < v("1.0.0"));
        assert!(v("99999999999999999999999") > v("1"));
        for bad in ["", "v", "1 .0", "1.0\u{e9}"] {
            assert!(Version::parse(bad).is_err(), "{bad:?}");
        }
    }
}
