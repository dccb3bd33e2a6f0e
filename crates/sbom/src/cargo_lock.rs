//! A Rust workspace's `Cargo.lock` as an SBOM: every locked package a component, crates.io
//! packages with `pkg:cargo/<name>@<version>` purls and their `.crate` SHA-256, the lock's
//! dependency lists as the graph. This is how medsec describes its own supply chain.
//!
//! Only crates.io packages get a purl: the OSV `crates.io` ecosystem (RustSec) speaks about
//! them alone. Workspace (path) packages are the product's own code, git and other-registry
//! packages are not on crates.io; they stay components, without purl, so they are listed but
//! never matched against crates.io advisories under a name they do not own.

use std::collections::HashMap;

use medsec_core::Purl;
use serde_json::{Value, json};

use crate::{Component, ExportMeta, Format, Hash, Sbom, SbomError, to_cyclonedx_json};

/// The `source` of crates.io packages, in both index protocols Cargo writes.
const CRATES_IO: [&str; 2] = [
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
];

/// Where a locked package comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockSource {
    /// No `source`: a path dependency, i.e. a member of the workspace being described.
    Workspace,
    CratesIo,
    /// Another registry, with its `source` string.
    Registry(String),
    /// A git dependency, with its `source` string (URL and commit).
    Git(String),
}

/// One `[[package]]` of the lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub source: LockSource,
    /// SHA-256 of the `.crate` file (lowercase hex), for registry packages.
    pub checksum: Option<String>,
    /// Indices into [`CargoLock::packages`] of this package's dependencies.
    pub dependencies: Vec<usize>,
}

impl LockedPackage {
    /// `pkg:cargo/<name>@<version>` for a crates.io package, else `None`.
    pub fn purl(&self) -> Option<Purl> {
        (self.source == LockSource::CratesIo).then(|| Purl {
            ty: "cargo".into(),
            namespace: None,
            name: self.name.clone(),
            version: Some(self.version.clone()),
            qualifiers: Default::default(),
            subpath: None,
        })
    }

    /// The bom-ref: the purl where there is one, else the kind of source with name and
    /// version, which the lock file guarantees unique per kind.
    fn id(&self) -> String {
        match (&self.source, self.purl()) {
            (_, Some(p)) => p.to_string(),
            (LockSource::Workspace, None) => format!("workspace:{}@{}", self.name, self.version),
            (LockSource::Git(_), None) => format!("git:{}@{}", self.name, self.version),
            (_, None) => format!("registry:{}@{}", self.name, self.version),
        }
    }
}

/// A parsed `Cargo.lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CargoLock {
    /// The lock file format version (`version = N`); 1 when absent, as Cargo reads it.
    pub version: u32,
    pub packages: Vec<LockedPackage>,
}

/// Raw form as written by Cargo; everything else in the file is ignored.
#[derive(serde::Deserialize)]
struct RawLock {
    version: Option<i64>,
    #[serde(default)]
    package: Vec<RawPackage>,
}

#[derive(serde::Deserialize)]
struct RawPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
}

/// Parses a `Cargo.lock` (format versions 1 to 4). The whole file is checked: names, versions,
/// checksums, and every dependency entry must name exactly one locked package.
pub fn parse_cargo_lock(text: &str) -> Result<CargoLock, SbomError> {
    if text.len() > crate::MAX_BYTES {
        return Err(SbomError::TooLarge(crate::MAX_BYTES));
    }
    let raw: RawLock = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or_else(
            || "Cargo.lock".to_owned(),
            |s| {
                let before = &text.as_bytes()[..s.start.min(text.len())];
                format!(
                    "line {}",
                    before.iter().filter(|&&b| b == b'\n').count() + 1
                )
            },
        );
        SbomError::at(at, format!("not a Cargo.lock: {}", e.message()))
    })?;
    let version = match raw.version {
        None => 1,
        Some(v @ 1..=4) => v as u32,
        Some(v) => {
            return Err(SbomError::at(
                "version",
                format!("Cargo.lock format version {v} is not supported (1-4 are)"),
            ));
        }
    };
    let mut packages = Vec::with_capacity(raw.package.len());
    for (i, p) in raw.package.iter().enumerate() {
        let at = |field: &str| format!("package[{i}].{field}");
        if p.name.is_empty()
            || !p
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(SbomError::at(
                at("name"),
                format!("{:?} is not a crate name", p.name),
            ));
        }
        if p.version.is_empty()
            || !p
                .version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-+".contains(&b))
        {
            return Err(SbomError::at(
                at("version"),
                format!("{:?} is not a version", p.version),
            ));
        }
        let source = match p.source.as_deref() {
            None => LockSource::Workspace,
            Some(s) if CRATES_IO.contains(&s) => LockSource::CratesIo,
            Some(s) if s.starts_with("git+") => LockSource::Git(s.to_owned()),
            Some(s) if s.starts_with("registry+") || s.starts_with("sparse+") => {
                LockSource::Registry(s.to_owned())
            }
            Some(s) => {
                return Err(SbomError::at(
                    at("source"),
                    format!("unknown source kind {s:?}"),
                ));
            }
        };
        if let Some(c) = &p.checksum {
            crate::check_hash("SHA-256", c, &at("checksum"))?;
        }
        packages.push(LockedPackage {
            name: p.name.clone(),
            version: p.version.clone(),
            source,
            checksum: p.checksum.as_ref().map(|c| c.to_ascii_lowercase()),
            dependencies: Vec::new(),
        });
    }
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in raw.package.iter().enumerate() {
        by_name.entry(p.name.as_str()).or_default().push(i);
    }
    let mut deps = Vec::with_capacity(raw.package.len());
    for (i, p) in raw.package.iter().enumerate() {
        let resolved = p
            .dependencies
            .iter()
            .enumerate()
            .map(|(j, d)| {
                resolve(d, &by_name, &raw.package).map_err(|reason| {
                    SbomError::at(format!("package[{i}].dependencies[{j}]"), reason)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        deps.push(resolved);
    }
    for (p, d) in packages.iter_mut().zip(deps) {
        p.dependencies = d;
    }
    Ok(CargoLock { version, packages })
}

/// A dependency entry is `name`, `name version` or `name version (source)`: Cargo writes just
/// enough to be unambiguous, so the entry must match exactly one package.
fn resolve(
    entry: &str,
    by_name: &HashMap<&str, Vec<usize>>,
    raw: &[RawPackage],
) -> Result<usize, String> {
    let (spec, source) = match entry.split_once(" (") {
        Some((s, rest)) => (
            s,
            Some(
                rest.strip_suffix(')')
                    .ok_or_else(|| format!("{entry:?}: unclosed source"))?,
            ),
        ),
        None => (entry, None),
    };
    let mut parts = spec.split(' ');
    let name = parts.next().unwrap_or_default();
    let version = parts.next();
    if parts.next().is_some() {
        return Err(format!("{entry:?} is not `name [version] [(source)]`"));
    }
    let found: Vec<usize> = by_name
        .get(name)
        .into_iter()
        .flatten()
        .copied()
        .filter(|&k| version.is_none_or(|v| raw[k].version == v))
        .filter(|&k| source.is_none_or(|s| raw[k].source.as_deref() == Some(s)))
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!("{entry:?} names no locked package")),
        _ => Err(format!("{entry:?} names more than one locked package")),
    }
}

impl CargoLock {
    /// The lock as medsec's component model: one component per package (crates.io ones with
    /// purl and SHA-256), and the lock's dependency edges.
    pub fn to_sbom(&self) -> Sbom {
        let components = self
            .packages
            .iter()
            .map(|p| Component {
                id: Some(p.id()),
                name: p.name.clone(),
                version: Some(p.version.clone()),
                supplier: None,
                purl: p.purl(),
                cpes: Vec::new(),
                hashes: p
                    .checksum
                    .iter()
                    .map(|c| Hash {
                        alg: "SHA-256".into(),
                        value: c.clone(),
                    })
                    .collect(),
                licenses: Vec::new(),
                support_level: None,
                end_of_support: None,
            })
            .collect();
        let dependencies = self
            .packages
            .iter()
            .flat_map(|p| {
                // Indices from parse_cargo_lock are valid; a hand-built lock's stray index is
                // skipped rather than trusted.
                p.dependencies
                    .iter()
                    .filter_map(|&d| Some((p.id(), self.packages.get(d)?.id())))
            })
            .collect();
        Sbom {
            // The model names the format an SBOM was read from and has no Cargo.lock variant
            // (adding one would break every exhaustive match over stored formats); this SBOM
            // exists to be written as CycloneDX JSON, which is what a reader will parse.
            format: Format::CycloneDxJson,
            spec_version: "1.5".into(),
            components,
            dependencies,
        }
    }

    /// The lock as a CycloneDX 1.5 JSON BOM describing an application (`meta.product`) made of
    /// the workspace packages, which depend on the rest.
    pub fn to_cyclonedx_json(&self, meta: &ExportMeta) -> Value {
        let mut bom = to_cyclonedx_json(&self.to_sbom(), meta);
        // A Rust workspace is software, not device firmware.
        bom["metadata"]["component"]["type"] = "application".into();
        let product_ref = bom["metadata"]["component"]["bom-ref"].clone();
        let members: Vec<Value> = self
            .packages
            .iter()
            .filter(|p| p.source == LockSource::Workspace)
            .map(|p| p.id().into())
            .collect();
        if !members.is_empty() {
            let entry = json!({"ref": product_ref, "dependsOn": members});
            match bom.get_mut("dependencies").and_then(Value::as_array_mut) {
                Some(d) => d.insert(0, entry),
                None => bom["dependencies"] = Value::Array(vec![entry]),
            }
        }
        bom
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
# This file is automatically @generated by Cargo.
version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = [
 "serde",
 "syn 1.0.109",
 "syn 2.0.100",
 "gitdep",
]

[[package]]
name = "serde"
version = "1.0.219"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "5f0e2c6ed6606019b4e29e69dbaba95b11854410e5347d525002456dbbb786b6"

[[package]]
name = "syn"
version = "1.0.109"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "72b64191b275b66ffe2469e8af2c1cfe3bafa67b529ead792a6d0160888b4237"

[[package]]
name = "syn"
version = "2.0.100"
source = "sparse+https://index.crates.io/"
checksum = "B09A44ACCAD81E1BA1CD74A32461BA89DEE89095BA17B32F5D03683B1B1FC2A0"

[[package]]
name = "gitdep"
version = "0.3.0"
source = "git+https://example.invalid/gitdep#0123456789abcdef"
"#;

    #[test]
    fn packages_purls_and_graph() {
        let lock = parse_cargo_lock(LOCK).unwrap();
        assert_eq!(lock.version, 4);
        let s = lock.to_sbom();
        let purls: Vec<Option<String>> = s
            .components
            .iter()
            .map(|c| c.purl.as_ref().map(|p| p.to_string()))
            .collect();
        assert_eq!(
            purls,
            [
                None,
                Some("pkg:cargo/serde@1.0.219".into()),
                Some("pkg:cargo/syn@1.0.109".into()),
                Some("pkg:cargo/syn@2.0.100".into()),
                None,
            ]
        );
        assert_eq!(
            s.components[3].hashes[0].value,
            "b09a44accad81e1ba1cd74a32461ba89dee89095ba17b32f5d03683b1b1fc2a0"
        );
        assert!(s.components[4].hashes.is_empty());
        assert_eq!(s.dependencies.len(), 4);
        assert_eq!(
            s.dependencies[2],
            ("workspace:app@0.1.0".into(), "pkg:cargo/syn@2.0.100".into())
        );
        assert_eq!(
            s.dependencies[3].1, "git:gitdep@0.3.0",
            "git packages have no purl"
        );
    }

    #[test]
    fn cyclonedx_names_the_application() {
        let meta = ExportMeta {
            product: "app".into(),
            firmware_version: "0.1.0".into(),
            manufacturer: "m".into(),
            timestamp: crate::Timestamp::parse("2025-01-01T00:00:00Z").unwrap(),
            serial_number: crate::SerialNumber::parse("3e671687-395b-41f5-a30f-a58921a69b79")
                .unwrap(),
        };
        let bom = parse_cargo_lock(LOCK).unwrap().to_cyclonedx_json(&meta);
        assert_eq!(bom["metadata"]["component"]["type"], "application");
        assert_eq!(bom["dependencies"][0]["ref"], "app@0.1.0");
        assert_eq!(
            bom["dependencies"][0]["dependsOn"],
            json!(["workspace:app@0.1.0"])
        );
        // Round trip through the CycloneDX reader (which lists the application itself too).
        let back = crate::parse(bom.to_string().as_bytes()).unwrap();
        assert_eq!(back.components.len(), 6);
        assert_eq!(back.components[0].name, "app");
        assert_eq!(back.dependencies.len(), 5);
    }

    #[test]
    fn bad_locks_name_the_place() {
        let err = |t: &str| parse_cargo_lock(t).unwrap_err().to_string();
        assert!(err("version = 9\n").contains("version 9 is not supported"));
        assert!(err("[[package]]\nname = \"x\"\n").contains("line"));
        assert!(err("not toml at all [").contains("not a Cargo.lock"));
        let bad_name = "[[package]]\nname = \"a b\"\nversion = \"1.0.0\"\n";
        assert!(err(bad_name).starts_with("package[0].name"));
        let bad_sum = "[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"abc\"\n";
        assert!(err(bad_sum).starts_with("package[0].checksum"));
        let dangling = "[[package]]\nname = \"a\"\nversion = \"1.0.0\"\ndependencies = [\"b\"]\n";
        assert!(err(dangling).contains("package[0].dependencies[0]"));
        let ambiguous = format!(
            "{}[[package]]\nname = \"b\"\nversion = \"1.0.0\"\n[[package]]\nname = \"b\"\nversion = \"2.0.0\"\n",
            dangling
        );
        assert!(err(&ambiguous).contains("more than one"));
        let odd_source =
            "[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"path+file:///x\"\n";
        assert!(err(odd_source).contains("unknown source kind"));
    }
}
