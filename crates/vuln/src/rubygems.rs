//! RubyGems version ordering, as `Gem::Version#<=>` does it: dot-separated numbers and letter
//! runs, where any letter makes a pre-release (`1.0.a` < `1.0`) and trailing zeros do not count
//! (`1.0.0` == `1`).

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Digits without leading zeros, compared by length and then text (no overflow).
    Num(String),
    Str(String),
}

impl Segment {
    fn zero() -> Self {
        Segment::Num(String::new())
    }

    fn is_zero(&self) -> bool {
        matches!(self, Segment::Num(n) if n.is_empty())
    }
}

impl Ord for Segment {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Segment::Num(a), Segment::Num(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            // A letter segment sorts before any number: that is what makes it a pre-release.
            (Segment::Str(_), Segment::Num(_)) => Ordering::Less,
            (Segment::Num(_), Segment::Str(_)) => Ordering::Greater,
            (Segment::Str(a), Segment::Str(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Segment {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A gem version reduced to its canonical segments (`Gem::Version#canonical_segments`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(Vec<Segment>);

impl Version {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let s = s.trim();
        // Gem::Version::ANCHORED_VERSION_PATTERN:
        // [0-9]+(\.[0-9a-zA-Z]+)*(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?  (empty means "0").
        let (release, pre) = match s.split_once('-') {
            Some((r, p)) => (r, Some(p)),
            None => (s, None),
        };
        let mut parts = release.split('.');
        if let Some(first) = parts.next()
            && !first.is_empty()
            && !first.bytes().all(|b| b.is_ascii_digit())
        {
            return Err("must start with a number");
        }
        if parts.any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric())) {
            return Err("release parts must be letters and digits");
        }
        if let Some(p) = pre
            && p.split('.')
                .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err("bad pre-release part");
        }
        if release.is_empty() && pre.is_some() {
            return Err("must start with a number");
        }
        // Gem::Version turns "-" into ".pre.", then reads runs of digits or of letters.
        let text = s.replace('-', ".pre.");
        let mut segments = Vec::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let digit = bytes[i].is_ascii_digit();
            let start = i;
            while i < bytes.len()
                && bytes[i].is_ascii_alphanumeric()
                && bytes[i].is_ascii_digit() == digit
            {
                i += 1;
            }
            if i == start {
                i += 1; // a separator
                continue;
            }
            let run = &text[start..i];
            segments.push(if digit {
                Segment::Num(run.trim_start_matches('0').to_owned())
            } else {
                Segment::Str(run.to_owned())
            });
        }
        // Trailing zeros are dropped from the numeric release part and from the rest separately
        // ("1.0.a.0" is [1, "a"]).
        let split = segments
            .iter()
            .position(|s| matches!(s, Segment::Str(_)))
            .unwrap_or(segments.len());
        let mut rest = segments.split_off(split);
        for part in [&mut segments, &mut rest] {
            while part.last().is_some_and(Segment::is_zero) {
                part.pop();
            }
        }
        segments.extend(rest);
        Ok(Version(segments))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let zero = Segment::zero();
        let len = self.0.len().max(other.0.len());
        (0..len)
            .map(|i| {
                let a = self.0.get(i).unwrap_or(&zero);
                let b = other.0.get(i).unwrap_or(&zero);
                a.cmp(b)
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
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
    fn gem_version_rules() {
        // Cases from Gem::Version's documentation and test suite.
        let chain = [
            "0.9",
            "1.0.a",
            "1.0.a2",
            "1.0.a10",
            "1.0.b1",
            "1.0.rc1",
            "1.0",
            "1.0.1",
            "1.9",
            "1.10",
            "2.0.0-rc1",
            "2.0.0",
        ];
        for w in chain.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(v("1.0.0"), v("1"));
        assert_eq!(v("1.0.0").cmp(&v("1.0")), Ordering::Equal);
        assert_eq!(v("1.0.a.0"), v("1.0.a"));
        assert_eq!(v(""), v("0"));
        assert!(v("1.0.0-rc1") == v("1.0.0.pre.rc1"));
        assert!(v("5.2.4.3") > v("5.2.4"));
        assert!(v("123456789012345678901234567890") > v("99"));
        for bad in ["a", "1..2", "1.0-", "1.0 2", "-1", "1.0_1", "v1.0"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }
}
