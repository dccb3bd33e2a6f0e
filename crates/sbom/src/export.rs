//! CycloneDX 1.5 JSON export of a parsed SBOM, as the SBOM of one device firmware.
//!
//! The output depends only on its inputs (the caller supplies the timestamp and serial number),
//! so exporting the same SBOM twice gives byte-identical documents that can be signed and
//! compared.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::{Map, Value, json};

use crate::license::{is_expression, is_license_id};
use crate::{Component, Sbom, SbomError, canonical_alg};

/// A BOM serial number: an RFC 4122 UUID, held as `urn:uuid:<lowercase uuid>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SerialNumber(String);

impl SerialNumber {
    /// Accepts `urn:uuid:<uuid>` or a bare UUID in either case; stores it lowercase because the
    /// CycloneDX schema's pattern only admits lowercase hex.
    pub fn parse(s: &str) -> Result<Self, SbomError> {
        let s = s.trim();
        let u = s
            .get(..9)
            .filter(|p| p.eq_ignore_ascii_case("urn:uuid:"))
            .map_or(s, |_| &s[9..]);
        let ok = u.len() == 36
            && u.char_indices().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            });
        if !ok {
            return Err(SbomError::at(
                "serial number",
                format!("{s:?} is not a UUID (urn:uuid:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"),
            ));
        }
        Ok(SerialNumber(format!("urn:uuid:{}", u.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SerialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An RFC 3339 date-time such as `2025-03-01T12:00:00Z`, as CycloneDX's `metadata.timestamp`
/// requires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Timestamp(String);

impl Timestamp {
    /// Checks the RFC 3339 `date-time` grammar and the calendar (no 31 April, 29 February only in
    /// leap years). A leap second (`:60`) is refused: RFC 3339 allows it, but common date
    /// parsers that read CycloneDX (Python's `datetime`, Java's `java.time`) do not. Lowercase
    /// `t` and `z` are stored uppercase.
    pub fn parse(s: &str) -> Result<Self, SbomError> {
        let t = s.trim().to_ascii_uppercase();
        if rfc3339_ok(t.as_bytes()) {
            Ok(Timestamp(t))
        } else {
            Err(SbomError::at(
                "timestamp",
                format!("{s:?} is not an RFC 3339 date-time (YYYY-MM-DDThh:mm:ss[.f](Z|±hh:mm))"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn rfc3339_ok(b: &[u8]) -> bool {
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let d = b.get(r)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| d.iter().fold(0, |n, c| n * 10 + u32::from(c - b'0')))
    };
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return false;
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return false;
    }
    if !(1..=days).contains(&d) || h > 23 || mi > 59 || sec > 59 {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest {
        b"Z" => true,
        [b'+' | b'-', oh1, oh2, b':', om1, om2] => {
            let two = |a: u8, b: u8| {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| u32::from(a - b'0') * 10 + u32::from(b - b'0'))
            };
            matches!(
                (two(*oh1, *oh2), two(*om1, *om2)),
                (Some(0..=23), Some(0..=59))
            )
        }
        _ => false,
    }
}

/// What an exported SBOM describes, and the values that would otherwise make two exports of the
/// same SBOM differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportMeta {
    /// The product or model the firmware runs on; `metadata.component.name`.
    pub product: String,
    /// `metadata.component.version`.
    pub firmware_version: String,
    /// The device manufacturer: `metadata.manufacture` and the firmware's supplier.
    pub manufacturer: String,
    /// When the SBOM was made: `metadata.timestamp`.
    pub timestamp: Timestamp,
    /// `serialNumber`. CycloneDX wants a new one for every BOM made; the caller supplies it so
    /// that exporting the same SBOM with the same metadata is reproducible.
    pub serial_number: SerialNumber,
}

/// Exports `sbom` as a CycloneDX 1.5 JSON BOM whose `metadata.component` is the firmware named
/// by `meta` and whose `components` are all of `sbom`'s components, flat, in order.
///
/// What CycloneDX 1.5 cannot hold is adapted, never dropped silently except as listed:
/// - `bom-ref` is the component's id; a component without one, or whose id an earlier
///   component already uses, gets one made from its purl or name and version, made unique.
/// - `type` is `container`, `operating-system` or `device` when the purl type or the first
///   CPE's part says so, else `library`: the model keeps no component type.
/// - The first CPE is `cpe`; the others are `medsec:cpe` properties.
/// - Hashes whose algorithm CycloneDX has no name for, or whose value is not the hex length
///   its schema admits, are dropped.
/// - A license that is a valid SPDX id becomes `{license: {id}}`; a sole valid SPDX expression
///   becomes `{expression}` (the schema allows one expression, alone); anything else,
///   including an expression next to other licenses, `{license: {name}}`, so its text survives.
/// - Dependency edges whose ends are not both components (SPDX relationships to the document
///   or to files) are dropped; an edge to a duplicated id means its first holder.
pub fn to_cyclonedx_json(sbom: &Sbom, meta: &ExportMeta) -> Value {
    let (product_ref, refs) = assign_refs(&sbom.components, meta);
    let components: Vec<Value> = sbom
        .components
        .iter()
        .zip(&refs)
        .map(|(c, r)| component(c, r))
        .collect();
    let mut bom = json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": meta.serial_number.as_str(),
        "version": 1,
        "metadata": {
            "timestamp": meta.timestamp.as_str(),
            "tools": {"components": [{
                "type": "application",
                "name": "medsec",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": {
                "type": "firmware",
                "bom-ref": product_ref,
                "name": meta.product,
                "version": meta.firmware_version,
                "supplier": {"name": meta.manufacturer},
            },
            "manufacture": {"name": meta.manufacturer},
        },
        "components": components,
    });
    let deps = dependencies(sbom, &refs);
    if !deps.is_empty()
        && let Some(o) = bom.as_object_mut()
    {
        o.insert("dependencies".into(), Value::Array(deps));
    }
    bom
}

/// One unique bom-ref per component, in order, and the firmware's. Ids are kept first (the
/// dependency graph uses them); made-up refs then avoid every kept one.
fn assign_refs(components: &[Component], meta: &ExportMeta) -> (String, Vec<String>) {
    let mut taken: HashSet<String> = HashSet::new();
    let mut refs: Vec<Option<String>> = components
        .iter()
        .map(|c| {
            c.id.as_ref()
                .filter(|id| !id.is_empty() && taken.insert((*id).clone()))
                .cloned()
        })
        .collect();
    // The next suffix to try per base, so many components sharing a name stay linear.
    let mut next: HashMap<String, usize> = HashMap::new();
    let mut unique = |base: String| {
        let base = if base.is_empty() {
            "component".to_owned()
        } else {
            base
        };
        let n = next.entry(base.clone()).or_insert(1);
        let mut cand = base.clone();
        if *n > 1 {
            cand = format!("{base} ({n})");
        }
        while !taken.insert(cand.clone()) {
            *n += 1;
            cand = format!("{base} ({n})");
        }
        *n += 1;
        cand
    };
    let product = unique(format!("{}@{}", meta.product, meta.firmware_version));
    for (r, c) in refs.iter_mut().zip(components) {
        if r.is_none() {
            // Content-derived rather than positional, so adding a component does not renumber
            // every other one between two exports.
            let base = match (&c.purl, &c.version) {
                (Some(p), _) => p.to_string(),
                (None, Some(v)) => format!("{}@{v}", c.name),
                (None, None) => c.name.clone(),
            };
            *r = Some(unique(base));
        }
    }
    (product, refs.into_iter().flatten().collect())
}

fn component(c: &Component, bom_ref: &str) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), component_type(c).into());
    o.insert("bom-ref".into(), bom_ref.into());
    if let Some(s) = &c.supplier {
        o.insert("supplier".into(), json!({ "name": s }));
    }
    o.insert("name".into(), c.name.as_str().into());
    if let Some(v) = &c.version {
        o.insert("version".into(), v.as_str().into());
    }
    let hashes: Vec<Value> = c
        .hashes
        .iter()
        .filter_map(|h| {
            let alg = canonical_alg(&h.alg)?;
            hash_content_ok(&h.value).then(|| json!({"alg": alg, "content": h.value}))
        })
        .collect();
    if !hashes.is_empty() {
        o.insert("hashes".into(), hashes.into());
    }
    if let Some(l) = licenses(&c.licenses) {
        o.insert("licenses".into(), l);
    }
    if let Some(cpe) = c.cpes.first() {
        o.insert("cpe".into(), cpe.as_str().into());
    }
    if let Some(p) = &c.purl {
        o.insert("purl".into(), p.to_string().into());
    }
    let mut props = Vec::new();
    let mut prop = |name: &str, value: &str| props.push(json!({"name": name, "value": value}));
    for cpe in c.cpes.iter().skip(1) {
        prop("medsec:cpe", cpe);
    }
    if let Some(s) = &c.support_level {
        prop("medsec:support-level", s);
    }
    if let Some(e) = &c.end_of_support {
        prop("medsec:end-of-support", e);
    }
    if !props.is_empty() {
        o.insert("properties".into(), props.into());
    }
    Value::Object(o)
}

/// The CycloneDX type a component is known to have: a container image by its purl type, an
/// operating system or a hardware device by its first CPE's part (`o`, `h`). The model keeps no
/// type of its own, so everything else is a library, which CPE part `a` and most purls mean.
fn component_type(c: &Component) -> &'static str {
    if c.purl
        .as_ref()
        .is_some_and(|p| p.ty == "docker" || p.ty == "oci")
    {
        return "container";
    }
    let part = c.cpes.first().and_then(|cpe| {
        cpe.strip_prefix("cpe:2.3:")
            .or_else(|| cpe.strip_prefix("cpe:/"))
            .and_then(|rest| rest.split(':').next())
    });
    match part {
        Some("o") => "operating-system",
        Some("h") => "device",
        _ => "library",
    }
}

/// The schema's `hash-content` pattern: 32, 40, 64, 96 or 128 hex digits.
fn hash_content_ok(v: &str) -> bool {
    [32, 40, 64, 96, 128].contains(&v.len()) && v.bytes().all(|b| b.is_ascii_hexdigit())
}

fn licenses(ls: &[String]) -> Option<Value> {
    if ls.is_empty() {
        return None;
    }
    if let [only] = ls
        && !is_license_id(only)
        && is_expression(only)
    {
        return Some(json!([{ "expression": only }]));
    }
    Some(
        ls.iter()
            .map(|l| {
                if is_license_id(l) {
                    json!({"license": {"id": l}})
                } else {
                    json!({"license": {"name": l}})
                }
            })
            .collect(),
    )
}

/// The dependency graph grouped by dependent, in first-seen order, each target once, as the
/// schema's `uniqueItems` requires.
fn dependencies(sbom: &Sbom, refs: &[String]) -> Vec<Value> {
    // A component's id is its bom-ref exactly when it kept it (first holder of a non-empty id).
    let kept: HashSet<&str> = sbom
        .components
        .iter()
        .zip(refs)
        .filter(|(c, r)| c.id.as_deref() == Some(r.as_str()))
        .map(|(_, r)| r.as_str())
        .collect();
    let mut order: Vec<&str> = Vec::new();
    let mut targets: HashMap<&str, Vec<&str>> = HashMap::new();
    for (from, to) in &sbom.dependencies {
        if !kept.contains(from.as_str()) || !kept.contains(to.as_str()) {
            continue;
        }
        let t = targets.entry(from).or_insert_with(|| {
            order.push(from);
            Vec::new()
        });
        if !t.contains(&to.as_str()) {
            t.push(to);
        }
    }
    order
        .into_iter()
        .map(|f| json!({"ref": f, "dependsOn": targets.get(f).cloned().unwrap_or_default()}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_numbers() {
        let s = SerialNumber::parse("urn:uuid:3E671687-395B-41F5-A30F-A58921A69B79").unwrap();
        assert_eq!(s.as_str(), "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79");
        assert_eq!(
            SerialNumber::parse("3e671687-395b-41f5-a30f-a58921a69b79").unwrap(),
            s
        );
        for bad in [
            "",
            "urn:uuid:",
            "3e671687395b41f5a30fa58921a69b79",
            "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b7g",
            "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79-",
        ] {
            assert!(SerialNumber::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        for ok in [
            "2025-03-01T12:00:00Z",
            "2024-02-29T23:59:59.123456+01:00",
            "2025-03-01t12:00:00z",
            "2000-02-29T00:00:00-05:30",
        ] {
            assert!(Timestamp::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            Timestamp::parse("2025-03-01t12:00:00z").unwrap().as_str(),
            "2025-03-01T12:00:00Z"
        );
        for bad in [
            "",
            "2025-03-01",
            "2025-03-01 12:00:00Z",
            "2025-03-01T12:00:00",
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2025-04-31T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-03-01T24:00:00Z",
            "2025-03-01T12:00:60Z",
            "2025-03-01T12:00:00.Z",
            "2025-03-01T12:00:00+1:00",
            "2025-03-01T12:00:00+01:60",
            "2025-03-01T12:00:00ZZ",
            "２025-03-01T12:00:00Z",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_refs_are_unique_and_linear() {
        let c = |name: &str, id: Option<&str>| Component {
            id: id.map(str::to_owned),
            name: name.into(),
            version: None,
            supplier: None,
            purl: None,
            cpes: Vec::new(),
            hashes: Vec::new(),
            licenses: Vec::new(),
            support_level: None,
            end_of_support: None,
        };
        let meta = ExportMeta {
            product: "p".into(),
            firmware_version: "1".into(),
            manufacturer: "m".into(),
            timestamp: Timestamp::parse("2025-01-01T00:00:00Z").unwrap(),
            serial_number: SerialNumber::parse("3e671687-395b-41f5-a30f-a58921a69b79").unwrap(),
        };
        let mut cs = vec![c("foo", Some("foo (3)")), c("", None), c("", Some(""))];
        cs.extend((0..200_000).map(|_| c("foo", None)));
        let (product, refs) = assign_refs(&cs, &meta);
        assert_eq!(product, "p@1");
        assert_eq!(
            &refs[..6],
            [
                "foo (3)",
                "component",
                "component (2)",
                "foo",
                "foo (2)",
                "foo (4)"
            ]
        );
        assert_eq!(refs.iter().collect::<HashSet<_>>().len(), refs.len());
    }

    #[test]
    fn license_classification() {
        let l = |v: &[&str]| licenses(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(l(&["MIT"]), Some(json!([{"license": {"id": "MIT"}}])));
        assert_eq!(
            l(&["GPL-2.0+"]),
            Some(json!([{"license": {"id": "GPL-2.0+"}}]))
        );
        for e in [
            "MIT OR Apache-2.0",
            "(LGPL-2.0-only OR LicenseRef-3)",
            "MIT+",
            "GPL-2.0-only WITH Classpath-exception-2.0",
            "Apache-2.0 AND (MIT OR GPL-2.0-only)",
            "LicenseRef-acme",
            "DocumentRef-spdx-tool-1.2:LicenseRef-MIT-Style-2",
            "MIT and BSD-3-Clause",
        ] {
            assert_eq!(l(&[e]), Some(json!([{ "expression": e }])), "{e}");
        }
        for name in [
            "Apache License 2.0",
            "mit",
            "MIT OR",
            "(MIT",
            "MIT)",
            "MIT OR Apache License",
            "MIT WITH Apache-2.0-ish",
            "MIT AnD Apache-2.0",
            "mit+",
            "",
        ] {
            assert_eq!(
                l(&[name]),
                Some(json!([{"license": {"name": name}}])),
                "{name:?}"
            );
        }
        // An expression cannot share the list: it is kept as a name.
        assert_eq!(
            l(&["MIT", "MIT OR Apache-2.0"]),
            Some(json!([{"license": {"id": "MIT"}}, {"license": {"name": "MIT OR Apache-2.0"}}]))
        );
        assert_eq!(l(&[]), None);
    }
}
