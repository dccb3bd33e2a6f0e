//! Package URLs (purl spec): `pkg:type/namespace/name@version?qualifiers#subpath`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// A parsed package URL. Components are stored percent-decoded; `type` is lowercased as the
/// spec requires, and type-specific name normalization is left to the matcher that needs it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Purl {
    pub ty: String,
    pub namespace: Option<String>,
    pub name: String,
    pub version: Option<String>,
    pub qualifiers: BTreeMap<String, String>,
    pub subpath: Option<String>,
}

fn decode(s: &str, whole: &str) -> Result<String, CoreError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .ok_or_else(|| CoreError::invalid("purl", whole, "truncated percent escape"))?;
            let v = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| CoreError::invalid("purl", whole, "bad percent escape"))?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| CoreError::invalid("purl", whole, "not UTF-8 after decoding"))
}

fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || "-._~".contains(c) || (keep_slash && c == '/') {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// The non-empty segments of a namespace or subpath, percent-decoded, that `keep` accepts.
/// A segment is split again at each '/' it decodes to (`%2F`), and the empty pieces that
/// leaves are dropped, so that the parsed purl is what its canonical form (where '/' always
/// separates) parses to; some producers do encode the slashes of a Go module path.
fn segments(
    path: &str,
    whole: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<String>, CoreError> {
    let mut out = Vec::new();
    for raw in path.split('/').filter(|p| !p.is_empty() && keep(p)) {
        let decoded = decode(raw, whole)?;
        out.extend(
            decoded
                .split('/')
                .filter(|p| !p.is_empty() && keep(p))
                .map(str::to_owned),
        );
    }
    Ok(out)
}

impl Purl {
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let bad = |r: &'static str| CoreError::invalid("purl", s, r);
        if s.len() > 4096 {
            return Err(bad("longer than 4096 characters"));
        }
        let rest = s
            .trim()
            .strip_prefix("pkg:")
            .ok_or_else(|| bad("must start with pkg:"))?;
        let rest = rest.trim_start_matches('/');
        let (rest, subpath) = match rest.split_once('#') {
            Some((r, sp)) => {
                let parts = segments(sp, s, |p| p != "." && p != "..")?;
                (r, (!parts.is_empty()).then(|| parts.join("/")))
            }
            None => (rest, None),
        };
        let (rest, qualifiers) = match rest.split_once('?') {
            Some((r, q)) => {
                let mut m = BTreeMap::new();
                for kv in q.split('&').filter(|kv| !kv.is_empty()) {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| bad("qualifier without '='"))?;
                    let k = k.to_ascii_lowercase();
                    if k.is_empty()
                        || !k
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                    {
                        return Err(bad("bad qualifier key"));
                    }
                    let v = decode(v, s)?;
                    if !v.is_empty() {
                        m.insert(k, v);
                    }
                }
                (r, m)
            }
            None => (rest, BTreeMap::new()),
        };
        let rest = rest.trim_end_matches('/');
        let (rest, version) = match rest.rsplit_once('@') {
            // An '@' inside the namespace (npm scopes are percent-encoded as %40) is not a version.
            Some((r, v)) if !v.contains('/') => (r, Some(decode(v, s)?)),
            _ => (rest, None),
        };
        let (ty, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("needs a type and a name"))?;
        let ty = ty.to_ascii_lowercase();
        if ty.is_empty()
            || !ty.starts_with(|c: char| c.is_ascii_alphabetic())
            || !ty
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
        {
            return Err(bad("bad type"));
        }
        let path = path.trim_end_matches('/');
        let (ns, name) = path.rsplit_once('/').unwrap_or(("", path));
        let name = decode(name, s)?;
        if name.is_empty() || name.starts_with('@') {
            return Err(bad(
                "missing name (an npm scope goes in the namespace, encoded %40)",
            ));
        }
        let ns = segments(ns, s, |_| true)?;
        let namespace = (!ns.is_empty()).then(|| ns.join("/"));
        Ok(Purl {
            ty,
            namespace,
            name,
            version: version.filter(|v| !v.is_empty()),
            qualifiers,
            subpath,
        })
    }

    /// The purl without version, qualifiers and subpath: the package's identity.
    pub fn package(&self) -> String {
        match &self.namespace {
            Some(ns) => format!(
                "pkg:{}/{}/{}",
                self.ty,
                encode(ns, true),
                encode(&self.name, false)
            ),
            None => format!("pkg:{}/{}", self.ty, encode(&self.name, false)),
        }
    }
}

impl fmt::Display for Purl {
    /// Canonical form: qualifiers sorted, components percent-encoded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.package())?;
        if let Some(v) = &self.version {
            write!(f, "@{}", encode(v, false))?;
        }
        if !self.qualifiers.is_empty() {
            let q: Vec<String> = self
                .qualifiers
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v, true)))
                .collect();
            write!(f, "?{}", q.join("&"))?;
        }
        if let Some(sp) = &self.subpath {
            write!(f, "#{}", encode(sp, true))?;
        }
        Ok(())
    }
}

impl FromStr for Purl {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        Purl::parse(s)
    }
}

impl Serialize for Purl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Purl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Purl::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        let p = Purl::parse("pkg:npm/%40angular/animation@12.3.1").unwrap();
        assert_eq!(
            (
                p.namespace.as_deref(),
                p.name.as_str(),
                p.version.as_deref()
            ),
            (Some("@angular"), "animation", Some("12.3.1"))
        );
        let p = Purl::parse("pkg:maven/org.apache.xmlgraphics/batik-anim@1.9.1?packaging=sources&repository_url=repo.spring.io/release").unwrap();
        assert_eq!(p.namespace.as_deref(), Some("org.apache.xmlgraphics"));
        assert_eq!(p.qualifiers["repository_url"], "repo.spring.io/release");
        let p = Purl::parse("pkg:deb/debian/curl@7.50.3-1?arch=i386&distro=jessie").unwrap();
        assert_eq!(p.qualifiers["distro"], "jessie");
        let p = Purl::parse("pkg:golang/google.golang.org/genproto#googleapis/api/annotations")
            .unwrap();
        assert_eq!(p.namespace.as_deref(), Some("google.golang.org"));
        assert_eq!(p.subpath.as_deref(), Some("googleapis/api/annotations"));
        let p = Purl::parse("PKG:NPM/foo@1.0.0".replace("PKG", "pkg").as_str()).unwrap();
        assert_eq!(p.ty, "npm");
        let s = "pkg:npm/%40scope/name@1.0.0?a=b";
        assert_eq!(Purl::parse(s).unwrap().to_string(), s);
    }

    /// Found by the sbom_cyclonedx_json fuzz campaign: a subpath segment holding `%2F%2F`
    /// decoded to `//`, which the canonical form wrote as two separators, so the purl read
    /// back from our own export was another one.
    #[test]
    fn encoded_slashes_parse_as_the_canonical_form_does() {
        for (input, namespace, subpath) in [
            (
                "pkg:npm/juice-shop@14.1.1#2Bhttps:%2F%2Fgithub.com/juice-shop",
                None,
                Some("2Bhttps:/github.com/juice-shop"),
            ),
            ("pkg:npm/x@1#%2E%2E/a/%2E/b", None, Some("a/b")),
            ("pkg:npm/x@1#%2F", None, None),
            (
                "pkg:golang/github.com%2Fgorilla/mux@v1.8.0",
                Some("github.com/gorilla"),
                None,
            ),
            ("pkg:golang/a%2F%2Fb//c/mux", Some("a/b/c"), None),
        ] {
            let p = Purl::parse(input).unwrap();
            assert_eq!(p.namespace.as_deref(), namespace, "{input}");
            assert_eq!(p.subpath.as_deref(), subpath, "{input}");
            let canonical = p.to_string();
            assert_eq!(
                Purl::parse(&canonical).unwrap(),
                p,
                "{input} -> {canonical}"
            );
        }
        // Empty segments around the name are not part of it.
        let p = Purl::parse("pkg:npm/foo/@1.0").unwrap();
        assert_eq!((p.namespace.as_deref(), p.name.as_str()), (None, "foo"));
        // A '/' in the name has no separator role: it stays encoded.
        let p = Purl::parse("pkg:generic/ns/a%2Fb@1").unwrap();
        assert_eq!(p.name, "a/b");
        assert_eq!(Purl::parse(&p.to_string()).unwrap(), p);
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "npm/foo",
            "pkg:",
            "pkg:npm",
            "pkg:/foo",
            "pkg:npm/%zz",
            "pkg:1npm/foo",
            "pkg:npm/foo?noeq",
        ] {
            assert!(Purl::parse(bad).is_err(), "{bad}");
        }
    }
}
