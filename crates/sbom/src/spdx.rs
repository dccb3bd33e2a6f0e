//! SPDX 2.2/2.3, JSON and tag-value.

use std::collections::HashMap;

use serde_json::Value;

use crate::{Component, Format, Sbom, SbomError, check_hash, hash, license, parse_purl};

fn meaningful(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty() && v != "NOASSERTION" && v != "NONE").then(|| v.to_owned())
}

fn supplier(v: &str) -> Option<String> {
    meaningful(v).map(|s| {
        s.strip_prefix("Organization:")
            .or_else(|| s.strip_prefix("Person:"))
            .map(|x| x.trim().to_owned())
            .unwrap_or(s)
    })
}

/// An annotation or comment `medsec:support-level=<v>` / `medsec:end-of-support=<date>`.
fn apply_annotation(c: &mut Component, comment: &str) {
    for part in comment.split([';', '\n']) {
        if let Some((k, v)) = part.trim().split_once('=') {
            match k.trim() {
                "medsec:support-level" => c.support_level = Some(v.trim().to_owned()),
                "medsec:end-of-support" => c.end_of_support = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
}

fn external_ref(
    c: &mut Component,
    category: &str,
    ty: &str,
    locator: &str,
    at: &str,
) -> Result<(), SbomError> {
    match (category.replace('_', "-").as_str(), ty) {
        ("PACKAGE-MANAGER", "purl") => c.purl = Some(parse_purl(locator, at)?),
        ("SECURITY", "cpe23Type" | "cpe22Type") => c.cpes.push(locator.to_owned()),
        _ => {}
    }
    Ok(())
}

fn check_version(v: &str, at: &str) -> Result<String, SbomError> {
    match v {
        "SPDX-2.2" | "SPDX-2.3" => Ok(v.trim_start_matches("SPDX-").to_owned()),
        _ => Err(SbomError::at(
            at,
            format!("{v:?} is not SPDX-2.2 or SPDX-2.3"),
        )),
    }
}

fn new_component(id: Option<String>, name: String) -> Component {
    Component {
        id,
        name,
        version: None,
        supplier: None,
        purl: None,
        cpes: Vec::new(),
        hashes: Vec::new(),
        licenses: Vec::new(),
        support_level: None,
        end_of_support: None,
    }
}

pub fn from_json(v: &Value) -> Result<Sbom, SbomError> {
    let s = |val: &Value, k: &str| val.get(k).and_then(Value::as_str).map(str::to_owned);
    let spec = check_version(&s(v, "spdxVersion").unwrap_or_default(), "spdxVersion")?;
    match s(v, "SPDXID").as_deref() {
        Some("SPDXRef-DOCUMENT") => {}
        Some(other) => {
            return Err(SbomError::at(
                "SPDXID",
                format!("must be SPDXRef-DOCUMENT, not {other:?}"),
            ));
        }
        None => return Err(SbomError::at("SPDXID", "required")),
    }
    let empty = Vec::new();
    let packages = match v.get("packages") {
        None => &empty,
        Some(Value::Array(a)) => a,
        Some(_) => return Err(SbomError::at("packages", "must be an array")),
    };
    let mut components = Vec::new();
    for (i, p) in packages.iter().enumerate() {
        let at = format!("packages[{i}]");
        let id = s(p, "SPDXID").ok_or_else(|| SbomError::at(format!("{at}.SPDXID"), "required"))?;
        let name = s(p, "name").ok_or_else(|| SbomError::at(format!("{at}.name"), "required"))?;
        let mut c = new_component(Some(id), name);
        c.version = s(p, "versionInfo");
        c.supplier = s(p, "supplier").and_then(|x| supplier(&x));
        for (j, ck) in p
            .get("checksums")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
            .iter()
            .enumerate()
        {
            let cat = format!("{at}.checksums[{j}]");
            let alg = s(ck, "algorithm")
                .ok_or_else(|| SbomError::at(format!("{cat}.algorithm"), "required"))?;
            let val = s(ck, "checksumValue")
                .ok_or_else(|| SbomError::at(format!("{cat}.checksumValue"), "required"))?;
            check_hash(&alg, &val, &cat)?;
            c.hashes.push(hash(&alg, &val));
        }
        for k in ["licenseConcluded", "licenseDeclared"] {
            if let Some(l) = s(p, k)
                .and_then(|l| meaningful(&l))
                .map(|l| license::normalize(&l))
                && !c.licenses.contains(&l)
            {
                c.licenses.push(l);
            }
        }
        for (j, r) in p
            .get("externalRefs")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
            .iter()
            .enumerate()
        {
            let rat = format!("{at}.externalRefs[{j}].referenceLocator");
            if let (Some(cat), Some(ty), Some(loc)) = (
                s(r, "referenceCategory"),
                s(r, "referenceType"),
                s(r, "referenceLocator"),
            ) {
                external_ref(&mut c, &cat, &ty, &loc, &rat)?;
            }
        }
        // Tag-value's PackageComment is read for the same keys; this keeps a document's meaning
        // when a converter moves between the two.
        if let Some(comment) = s(p, "comment") {
            apply_annotation(&mut c, &comment);
        }
        for a in p
            .get("annotations")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
        {
            if let Some(comment) = s(a, "comment") {
                apply_annotation(&mut c, &comment);
            }
        }
        components.push(c);
    }
    let mut dependencies = Vec::new();
    for r in v
        .get("relationships")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
    {
        let (Some(a), Some(t), Some(b)) = (
            s(r, "spdxElementId"),
            s(r, "relationshipType"),
            s(r, "relatedSpdxElement"),
        ) else {
            continue;
        };
        match t.as_str() {
            "DEPENDS_ON" => dependencies.push((a, b)),
            "DEPENDENCY_OF" => dependencies.push((b, a)),
            _ => {}
        }
    }
    Ok(Sbom {
        format: Format::SpdxJson,
        spec_version: spec,
        components,
        dependencies,
    })
}

/// A tag-value annotation block.
struct Annotation {
    /// `SPDXREF:`, the annotated element.
    target: Option<String>,
    /// The package being read when the block started, for a block without `SPDXREF:`.
    package: Option<usize>,
    comment: Option<String>,
}

pub fn from_tag_value(text: &str) -> Result<Sbom, SbomError> {
    let mut spec = None;
    let mut doc_id = None;
    let mut components: Vec<Component> = Vec::new();
    let mut in_package = false;
    let mut dependencies = Vec::new();
    // Annotations name their element with `SPDXREF:` and often come after all packages (that is
    // where pyspdxtools writes them), so they are collected and applied at the end. A block
    // starts at `Annotator:` and its lines come in any order.
    let mut annotations: Vec<Annotation> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let at = format!("line {}", i + 1);
        let l = raw.trim_end();
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        let Some((tag, value)) = l.split_once(':') else {
            return Err(SbomError::at(at, "expected `Tag: value`"));
        };
        let mut value = value.trim().to_owned();
        // Multi-line <text>...</text> values.
        if let Some(rest) = value.strip_prefix("<text>") {
            let mut buf = rest.to_owned();
            while !buf.contains("</text>") {
                let Some((_, next)) = lines.next() else {
                    return Err(SbomError::at(at, "unterminated <text>"));
                };
                buf.push('\n');
                buf.push_str(next);
            }
            value = buf.split("</text>").next().unwrap_or("").to_owned();
        }
        let tag = tag.trim();
        match tag {
            "SPDXVersion" => spec = Some(check_version(&value, &at)?),
            "SPDXID" if !in_package && doc_id.is_none() => doc_id = Some(value),
            "PackageName" => {
                components.push(new_component(None, value));
                in_package = true;
            }
            "FileName" | "SnippetSPDXID" => in_package = false,
            // A relationship names both ends, so it means the same wherever it appears.
            "Relationship" => {
                let parts: Vec<&str> = value.split_whitespace().collect();
                if let [a, t, b] = parts[..] {
                    match t {
                        "DEPENDS_ON" => dependencies.push((a.to_owned(), b.to_owned())),
                        "DEPENDENCY_OF" => dependencies.push((b.to_owned(), a.to_owned())),
                        _ => {}
                    }
                }
            }
            "Annotator" | "SPDXREF" | "AnnotationComment" => {
                if tag == "Annotator" || annotations.is_empty() {
                    annotations.push(Annotation {
                        target: None,
                        package: components.len().checked_sub(1).filter(|_| in_package),
                        comment: None,
                    });
                }
                if let Some(a) = annotations.last_mut() {
                    match tag {
                        "SPDXREF" => a.target = Some(value),
                        "AnnotationComment" => a.comment = Some(value),
                        _ => {}
                    }
                }
            }
            _ if !in_package => {}
            _ => {
                let Some(c) = components.last_mut() else {
                    continue;
                };
                match tag {
                    "SPDXID" => c.id = Some(value),
                    "PackageVersion" => c.version = Some(value),
                    "PackageSupplier" => c.supplier = supplier(&value),
                    "PackageChecksum" => {
                        let (alg, v) = value.split_once(':').ok_or_else(|| {
                            SbomError::at(&at, "PackageChecksum needs ALG: value")
                        })?;
                        check_hash(alg.trim(), v.trim(), &at)?;
                        c.hashes.push(hash(alg, v));
                    }
                    "PackageLicenseConcluded" | "PackageLicenseDeclared" => {
                        if let Some(l) = meaningful(&value).map(|l| license::normalize(&l))
                            && !c.licenses.contains(&l)
                        {
                            c.licenses.push(l);
                        }
                    }
                    "ExternalRef" => {
                        let parts: Vec<&str> = value.split_whitespace().collect();
                        if let [cat, ty, loc, ..] = parts[..] {
                            external_ref(c, cat, ty, loc, &at)?;
                        } else {
                            return Err(SbomError::at(
                                at,
                                "ExternalRef needs category, type and locator",
                            ));
                        }
                    }
                    "PackageComment" => apply_annotation(c, &value),
                    _ => {}
                }
            }
        }
    }
    // Indexed, so many annotations on a large document stay linear.
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for (i, c) in components.iter().enumerate() {
        if let Some(id) = &c.id {
            by_id.entry(id.clone()).or_insert(i);
        }
    }
    for a in annotations {
        let i = match a.target {
            Some(t) => by_id.get(&t).copied(),
            None => a.package,
        };
        if let (Some(c), Some(comment)) = (i.and_then(|i| components.get_mut(i)), a.comment) {
            apply_annotation(c, &comment);
        }
    }
    let spec = spec.ok_or_else(|| SbomError::at("document", "SPDXVersion is required"))?;
    if doc_id.as_deref() != Some("SPDXRef-DOCUMENT") {
        return Err(SbomError::at(
            "document",
            "SPDXID: SPDXRef-DOCUMENT is required",
        ));
    }
    if let Some((i, _)) = components.iter().enumerate().find(|(_, c)| c.id.is_none()) {
        return Err(SbomError::at(
            format!("package {}", i + 1),
            "SPDXID is required",
        ));
    }
    Ok(Sbom {
        format: Format::SpdxTagValue,
        spec_version: spec,
        components,
        dependencies,
    })
}
