//! Debian/Ubuntu version ordering, as `dpkg --compare-versions` does it:
//! `[epoch:]upstream[-revision]`, where `~` sorts before everything, even the end of the string.

use std::cmp::Ordering;

struct Parsed<'a> {
    epoch: u64,
    upstream: &'a str,
    revision: &'a str,
}

fn parse(s: &str) -> Result<Parsed<'_>, &'static str> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty version");
    }
    let (epoch, rest) = match s.split_once(':') {
        Some((e, r)) => (e.parse().map_err(|_| "epoch is not a number")?, r),
        None => (0, s),
    };
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((u, r)) => (u, r),
        None => (rest, ""),
    };
    if upstream.is_empty() || !upstream.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("the upstream version must start with a digit");
    }
    let ok = |p: &str, extra: &str| {
        p.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+~".contains(c) || extra.contains(c))
    };
    if !ok(upstream, "-:") || !ok(revision, "") {
        return Err("invalid character");
    }
    Ok(Parsed {
        epoch,
        upstream,
        revision,
    })
}

/// dpkg's character weight: `~` lowest, then end of string (or a digit, passed as `None`),
/// then letters, then the rest.
fn order(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit prefix, compared by weight.
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
            let bc = order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            if i < a.len() && !a[i].is_ascii_digit() {
                i += 1;
            }
            if j < b.len() && !b[j].is_ascii_digit() {
                j += 1;
            }
        }
        // Digit run, compared numerically (leading zeros ignored, any length).
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let si = i;
        let sj = j;
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (da, db) = (&a[si..i], &b[sj..j]);
        let c = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
        if c != Ordering::Equal {
            return c;
        }
    }
    Ordering::Equal
}

/// Compares two Debian versions; on error says which one (`true` = `a`) is malformed.
pub fn compare(a: &str, b: &str) -> Result<Ordering, (bool, &'static str)> {
    let pa = parse(a).map_err(|e| (true, e))?;
    let pb = parse(b).map_err(|e| (false, e))?;
    Ok(pa
        .epoch
        .cmp(&pb.epoch)
        .then_with(|| verrevcmp(pa.upstream, pb.upstream))
        .then_with(|| verrevcmp(pa.revision, pb.revision)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lt(a: &str, b: &str) {
        assert_eq!(compare(a, b), Ok(Ordering::Less), "{a} < {b}");
        assert_eq!(compare(b, a), Ok(Ordering::Greater), "{b} > {a}");
    }

    #[test]
    fn dpkg_rules() {
        lt("1.0~rc1", "1.0");
        lt("1.0~~", "1.0~");
        lt("1.0", "1.0a");
        lt("1.0a", "1.0+b1");
        lt("1.9", "1.10");
        lt("2.0", "1:0.9");
        lt("1.2.3-1", "1.2.3-1ubuntu1");
        lt("1.2.3-1ubuntu1", "1.2.3-2");
        lt("7.88.1-10+deb12u5", "7.88.1-10+deb12u12");
        lt("2.36-9+deb12u4", "2.36-9+deb12u14");
        assert_eq!(compare("1.0-1", "1.00-1"), Ok(Ordering::Equal));
        assert_eq!(compare("0:1.0", "1.0"), Ok(Ordering::Equal));
        assert!(compare("", "1").is_err());
        assert!(compare("a1", "1").is_err());
        assert!(compare("x:1", "1").is_err());
    }
}
