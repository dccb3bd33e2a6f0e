//! Maven version ordering after Maven's `ComparableVersion`: dot and dash separated items, digit/
//! letter transitions as separators, known qualifiers ordered
//! alpha < beta < milestone < rc < snapshot < (release) < sp, unknown qualifiers after those.
//! Every string is a valid Maven version, so comparison cannot fail.

use std::cmp::Ordering;

#[derive(Debug, Clone)]
enum Item {
    Int(u128),
    Str(String),
    List(Vec<Item>),
}

const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];

/// The sortable form of a qualifier: known ones by rank, unknown ones after all of them.
fn qualifier_key(q: &str) -> String {
    let q = match q {
        "ga" | "final" | "release" => "",
        "cr" => "rc",
        other => other,
    };
    match QUALIFIERS.iter().position(|k| *k == q) {
        Some(i) => i.to_string(),
        None => format!("{}-{q}", QUALIFIERS.len()),
    }
}

fn is_null(i: &Item) -> bool {
    match i {
        Item::Int(n) => *n == 0,
        Item::Str(s) => qualifier_key(s) == qualifier_key(""),
        Item::List(l) => l.is_empty(),
    }
}

fn trim(list: &mut Vec<Item>) {
    while list.last().is_some_and(is_null) {
        list.pop();
    }
}

fn parse(v: &str) -> Vec<Item> {
    let v = v.trim().to_ascii_lowercase();
    // A stack of lists: '-' opens a nested list, as in Maven.
    let mut stack: Vec<Vec<Item>> = vec![Vec::new()];
    let mut token = String::new();
    let mut digits = false;
    let push =
        |stack: &mut Vec<Vec<Item>>, token: &mut String, digits: bool, followed_by_digit: bool| {
            if token.is_empty() {
                if let Some(l) = stack.last_mut() {
                    l.push(Item::Int(0));
                }
                return;
            }
            let item = if digits {
                Item::Int(token.parse().unwrap_or(u128::MAX))
            } else {
                // "a1", "b2", "m3" abbreviate alpha/beta/milestone when a number follows.
                let s = match (token.as_str(), followed_by_digit) {
                    ("a", true) => "alpha".to_owned(),
                    ("b", true) => "beta".to_owned(),
                    ("m", true) => "milestone".to_owned(),
                    _ => token.clone(),
                };
                Item::Str(s)
            };
            if let Some(l) = stack.last_mut() {
                l.push(item);
            }
            token.clear();
        };
    for c in v.chars() {
        match c {
            '.' => push(&mut stack, &mut token, digits, false),
            '-' => {
                push(&mut stack, &mut token, digits, false);
                stack.push(Vec::new());
            }
            c if c.is_ascii_digit() => {
                if !token.is_empty() && !digits {
                    // letter -> digit transition: acts like '-'
                    push(&mut stack, &mut token, false, true);
                    stack.push(Vec::new());
                }
                digits = true;
                token.push(c);
            }
            c => {
                if !token.is_empty() && digits {
                    push(&mut stack, &mut token, true, false);
                    stack.push(Vec::new());
                }
                digits = false;
                token.push(c);
            }
        }
    }
    if !token.is_empty() {
        push(&mut stack, &mut token, digits, false);
    }
    // Close nested lists from the innermost out, trimming trailing nulls at each level.
    while stack.len() > 1 {
        let mut inner = stack.pop().unwrap_or_default();
        trim(&mut inner);
        if let Some(outer) = stack.last_mut() {
            outer.push(Item::List(inner));
        }
    }
    let mut root = stack.pop().unwrap_or_default();
    trim(&mut root);
    root
}

fn cmp_item(a: Option<&Item>, b: Option<&Item>) -> Ordering {
    use Item::*;
    match (a, b) {
        (None, None) => Ordering::Equal,
        (Some(x), None) => cmp_null(x),
        (None, Some(y)) => cmp_null(y).reverse(),
        (Some(Int(x)), Some(Int(y))) => x.cmp(y),
        (Some(Int(_)), Some(_)) => Ordering::Greater,
        (Some(Str(_)), Some(Int(_))) => Ordering::Less,
        (Some(Str(x)), Some(Str(y))) => qualifier_key(x).cmp(&qualifier_key(y)),
        (Some(Str(_)), Some(List(_))) => Ordering::Less,
        (Some(List(_)), Some(Int(_))) => Ordering::Less,
        (Some(List(_)), Some(Str(_))) => Ordering::Greater,
        (Some(List(x)), Some(List(y))) => cmp_list(x, y),
    }
}

fn cmp_null(x: &Item) -> Ordering {
    match x {
        Item::Int(n) => {
            if *n == 0 {
                Ordering::Equal
            } else {
                Ordering::Greater
            }
        }
        Item::Str(s) => qualifier_key(s).cmp(&qualifier_key("")),
        Item::List(l) => match l.first() {
            None => Ordering::Equal,
            Some(f) => cmp_null(f),
        },
    }
}

fn cmp_list(a: &[Item], b: &[Item]) -> Ordering {
    (0..a.len().max(b.len()))
        .map(|i| cmp_item(a.get(i), b.get(i)))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

pub fn compare(a: &str, b: &str) -> Ordering {
    cmp_list(&parse(a), &parse(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maven_order() {
        // The ordering Maven's own ComparableVersionTest checks, abridged.
        let chain = [
            "1-alpha2snapshot",
            "1-alpha2",
            "1-alpha-123",
            "1-beta-2",
            "1-beta123",
            "1-m2",
            "1-m11",
            "1-rc",
            "1-cr2",
            "1-rc123",
            "1-SNAPSHOT",
            "1",
            "1-sp",
            "1-sp2",
            "1-sp123",
            "1-abc",
            "1-def",
            "1-pom-1",
            "1-1-snapshot",
            "1-1",
            "1-2",
            "1-123",
            "2.0.0",
            "2.0.1",
            "2.1",
            "2.10",
        ];
        for w in chain.windows(2) {
            assert_eq!(compare(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
        }
        for (a, b) in [
            ("1", "1.0"),
            ("1", "1.0.0"),
            ("1.0", "1-0"),
            ("1-ga", "1"),
            ("1-final", "1"),
            ("1.0.RELEASE", "1"),
            ("1a1", "1-alpha-1"),
            ("1CR1", "1rc1"),
        ] {
            assert_eq!(compare(a, b), Ordering::Equal, "{a} == {b}");
        }
        assert_eq!(compare("2.12.0", "2.9.10.8"), Ordering::Greater);
    }
}
