//! PEP 440 version ordering (PyPI), including epochs, pre/post/dev releases and local labels,
//! with the spelling normalizations PEP 440 allows ("1.0-RC1" == "1.0rc1").

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum LocalPart {
    // Alphanumeric segments sort before numeric ones.
    Alpha(String),
    Num(u64),
}

/// epoch, release without trailing zeros, pre, post, dev, local.
type SortKey<'a> = (
    u64,
    Vec<u64>,
    (i8, u8, u64),
    (i8, u64),
    (i8, u64),
    &'a [LocalPart],
);

/// Equality is PEP 440 equivalence ("1.0" == "1.0.0"), so it goes through the sort key.
#[derive(Debug, Clone)]
pub struct Version {
    epoch: u64,
    release: Vec<u64>,
    /// (0=a, 1=b, 2=rc, n)
    pre: Option<(u8, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Vec<LocalPart>,
}

fn num(s: &str) -> Result<u64, &'static str> {
    if s.is_empty() {
        return Ok(0);
    }
    s.parse().map_err(|_| "expected a number")
}

impl Version {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let s = input.trim().to_ascii_lowercase();
        let s = s.strip_prefix('v').unwrap_or(&s);
        let (s, local) = match s.split_once('+') {
            Some((v, l)) => (v, Some(l)),
            None => (s, None),
        };
        let (epoch, s) = match s.split_once('!') {
            Some((e, r)) => (num(e)?, r),
            None => (0, s),
        };
        // Release: digits and dots up to the first other character.
        let end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let rel = s[..end].trim_end_matches('.');
        if rel.is_empty() {
            return Err("no release number");
        }
        let release = rel
            .split('.')
            .map(|p| {
                if p.is_empty() {
                    Err("empty release segment")
                } else {
                    num(p)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut rest = &s[rel.len()..];
        let mut v = Version {
            epoch,
            release,
            pre: None,
            post: None,
            dev: None,
            local: Vec::new(),
        };

        let skip_sep = |r: &str| r.strip_prefix(['.', '-', '_']).unwrap_or(r).to_owned();
        let take_num = |r: &str| -> (String, String) {
            let r = r.strip_prefix(['.', '-', '_']).unwrap_or(r);
            let e = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            (r[..e].to_owned(), r[e..].to_owned())
        };
        let mut owned;
        // Pre-release.
        {
            let r = skip_sep(rest);
            const PRE: [(&str, u8); 8] = [
                ("alpha", 0),
                ("beta", 1),
                ("preview", 2),
                ("pre", 2),
                ("rc", 2),
                ("a", 0),
                ("b", 1),
                ("c", 2),
            ];
            if let Some((word, kind)) = PRE.iter().find(|(w, _)| r.starts_with(w)) {
                let (n, after) = take_num(&r[word.len()..]);
                v.pre = Some((*kind, num(&n)?));
                owned = after;
                rest = &owned;
            }
        }
        // Post-release: ".post1", "-r1", "-rev1", or the implicit "-1".
        {
            let r = skip_sep(rest);
            let mut matched = false;
            for word in ["post", "rev", "r"] {
                if let Some(after) = r.strip_prefix(word) {
                    let (n, after) = take_num(after);
                    v.post = Some(num(&n)?);
                    owned = after;
                    rest = &owned;
                    matched = true;
                    break;
                }
            }
            if !matched
                && rest.starts_with('-')
                && rest[1..].starts_with(|c: char| c.is_ascii_digit())
            {
                let (n, after) = take_num(rest);
                v.post = Some(num(&n)?);
                owned = after;
                rest = &owned;
            }
        }
        // Development release.
        {
            let r = skip_sep(rest);
            if let Some(after) = r.strip_prefix("dev") {
                let (n, after) = take_num(after);
                v.dev = Some(num(&n)?);
                owned = after;
                rest = &owned;
            }
        }
        if !rest.is_empty() {
            return Err("unexpected text after the version");
        }
        if let Some(l) = local {
            v.local = l
                .split(['.', '-', '_'])
                .map(|p| {
                    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric()) {
                        Err("bad local version label")
                    } else if p.bytes().all(|b| b.is_ascii_digit()) {
                        num(p).map(LocalPart::Num)
                    } else {
                        Ok(LocalPart::Alpha(p.to_owned()))
                    }
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(v)
    }

    /// The sort key of `packaging.version`: trailing zeros of the release are insignificant, a
    /// dev release of a final version sorts before its pre-releases, a post release after.
    fn key(&self) -> SortKey<'_> {
        let mut rel = self.release.clone();
        while rel.len() > 1 && rel.last() == Some(&0) {
            rel.pop();
        }
        let pre = match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => (-1, 0, 0),
            (None, _, _) => (1, 0, 0),
            (Some((k, n)), _, _) => (0, k, n),
        };
        let post = match self.post {
            None => (-1, 0),
            Some(n) => (0, n),
        };
        let dev = match self.dev {
            None => (1, 0),
            Some(n) => (0, n),
        };
        (self.epoch, rel, pre, post, dev, &self.local)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn pep440_examples_in_order() {
        // From PEP 440's "summary of permitted suffixes and relative ordering".
        let chain = [
            "1.dev0",
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
            "1.9",
            "1.10",
            "1!0.1",
        ];
        for w in chain.windows(2) {
            assert!(p(w[0]) < p(w[1]), "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn normalization_and_errors() {
        assert_eq!(p("1.0-RC1"), p("1.0rc1"));
        assert_eq!(p("1.0.0"), p("1.0"));
        assert_eq!(p("1.0-1"), p("1.0.post1"));
        assert_eq!(p("1.0alpha2"), p("1.0a2"));
        assert_eq!(p("v2.1"), p("2.1"));
        assert_eq!(p("1.0c1"), p("1.0rc1"));
        for bad in ["", "abc", "1.0+", "1..0", "1.0 garbage"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }
}
