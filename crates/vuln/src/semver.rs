//! SemVer 2.0.0 ordering (npm, crates.io, Go modules with their `v` prefix).

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ident {
    Num(u64),
    Alpha(String),
}

impl Ord for Ident {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Ident::Num(a), Ident::Num(b)) => a.cmp(b),
            // Numeric identifiers sort before alphanumeric ones (SemVer 11.4.3).
            (Ident::Num(_), Ident::Alpha(_)) => Ordering::Less,
            (Ident::Alpha(_), Ident::Num(_)) => Ordering::Greater,
            (Ident::Alpha(a), Ident::Alpha(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Ident {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    core: [u64; 3],
    pre: Vec<Ident>,
}

impl Version {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let s = s.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        // Build metadata does not take part in ordering.
        let s = s.split('+').next().unwrap_or("");
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (s, None),
        };
        let mut parts = core.split('.');
        let mut nums = [0u64; 3];
        // Missing MINOR/PATCH read as zero: SBOMs carry "0.14" for crates and Go modules, and
        // refusing them would silently drop the component from matching.
        for (i, n) in nums.iter_mut().enumerate() {
            let Some(p) = parts.next() else {
                if i == 0 {
                    return Err("expected MAJOR.MINOR.PATCH");
                }
                break;
            };
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err("version parts must be numbers");
            }
            *n = p.parse().map_err(|_| "number too large")?;
        }
        if parts.next().is_some() {
            return Err("more than three version parts");
        }
        let pre = match pre {
            None => Vec::new(),
            Some(p) => p
                .split('.')
                .map(|id| {
                    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    {
                        Err("bad pre-release identifier")
                    } else if id.bytes().all(|b| b.is_ascii_digit()) {
                        id.parse().map(Ident::Num).map_err(|_| "number too large")
                    } else {
                        Ok(Ident::Alpha(id.to_owned()))
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Version { core: nums, pre })
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core
            .cmp(&other.core)
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                // A pre-release sorts before its release.
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
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

    fn lt(a: &str, b: &str) {
        assert!(
            Version::parse(a).unwrap() < Version::parse(b).unwrap(),
            "{a} < {b}"
        );
    }

    #[test]
    fn spec_order() {
        // The SemVer 2.0.0 example chain, plus the string-comparison trap.
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
        ];
        for w in chain.windows(2) {
            lt(w[0], w[1]);
        }
        lt("1.9.0", "1.10.0");
        lt("v0.0.0-20200101000000-abcdef123456", "v0.1.0");
        assert_eq!(
            Version::parse("1.0.0+build.1").unwrap(),
            Version::parse("1.0.0").unwrap()
        );
        assert_eq!(
            Version::parse("0.14").unwrap(),
            Version::parse("0.14.0").unwrap()
        );
        for bad in ["1.0.0.0", "a.b.c", "1.0.0-", "1.0.0-al$pha", ""] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }
}
