//! Alpine apk version ordering: `1.2.3[letter][_suffix[N]]...[-rN]`, where `_alpha`, `_beta`,
//! `_pre` and `_rc` sort before the release and `_cvs`, `_svn`, `_git`, `_hg`, `_p` after it.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    numbers: Vec<u64>,
    letter: Option<u8>,
    /// (rank, n): rank < 0 before the release, > 0 after it.
    suffixes: Vec<(i8, u64)>,
    revision: u64,
}

fn suffix_rank(s: &str) -> Option<i8> {
    Some(match s {
        "alpha" => -4,
        "beta" => -3,
        "pre" => -2,
        "rc" => -1,
        "cvs" => 1,
        "svn" => 2,
        "git" => 3,
        "hg" => 4,
        "p" => 5,
        _ => return None,
    })
}

impl Version {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let s = s.trim();
        let (body, revision) = match s.rsplit_once("-r") {
            Some((b, r)) => (
                b,
                r.parse()
                    .map_err(|_| "revision after -r must be a number")?,
            ),
            None => (s, 0),
        };
        let mut parts = body.split('_');
        let head = parts.next().unwrap_or("");
        let (nums, letter) = match head.as_bytes().last() {
            Some(c) if c.is_ascii_lowercase() => (&head[..head.len() - 1], Some(*c)),
            _ => (head, None),
        };
        if nums.is_empty() {
            return Err("no version number");
        }
        let numbers = nums
            .split('.')
            .map(|n| {
                if n.is_empty() {
                    Err("empty number")
                } else {
                    n.parse().map_err(|_| "expected a number")
                }
            })
            .collect::<Result<Vec<u64>, _>>()?;
        let suffixes = parts
            .map(|p| {
                let e = p.find(|c: char| c.is_ascii_digit()).unwrap_or(p.len());
                let rank = suffix_rank(&p[..e]).ok_or("unknown suffix")?;
                let n = if e == p.len() {
                    0
                } else {
                    p[e..].parse().map_err(|_| "bad suffix number")?
                };
                Ok((rank, n))
            })
            .collect::<Result<Vec<_>, &'static str>>()?;
        Ok(Version {
            numbers,
            letter,
            suffixes,
            revision,
        })
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        // Numbers: compared piecewise; a longer version wins when the shared part is equal.
        let n = self
            .numbers
            .iter()
            .zip(&other.numbers)
            .map(|(a, b)| a.cmp(b))
            .find(|o| o.is_ne());
        n.unwrap_or_else(|| self.numbers.len().cmp(&other.numbers.len()))
            .then_with(|| self.letter.cmp(&other.letter))
            .then_with(|| {
                // A missing suffix counts as the release itself (rank 0).
                let len = self.suffixes.len().max(other.suffixes.len());
                (0..len)
                    .map(|i| {
                        let a = self.suffixes.get(i).copied().unwrap_or((0, 0));
                        let b = other.suffixes.get(i).copied().unwrap_or((0, 0));
                        a.cmp(&b)
                    })
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            })
            .then_with(|| self.revision.cmp(&other.revision))
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
    fn apk_rules() {
        lt("1.2.3_rc1", "1.2.3");
        lt("1.2.3_alpha", "1.2.3_beta");
        lt("1.2.3", "1.2.3_p1");
        lt("1.2.3", "1.2.3a");
        lt("1.2.3-r0", "1.2.3-r1");
        lt("1.2.3-r9", "1.2.3-r10");
        lt("1.9", "1.10");
        lt("3.0.8-r3", "3.0.15-r0");
        lt("1.2", "1.2.1");
        assert_eq!(
            Version::parse("1.2.3").unwrap(),
            Version::parse("1.2.3-r0").unwrap()
        );
        for bad in ["", "abc", "1.2_bogus", "1.2-rX"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }
}
