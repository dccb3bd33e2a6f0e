//! CycloneDX 1.2-1.6, JSON and XML.

use std::collections::HashSet;

use serde_json::Value;

use crate::{Component, Format, Sbom, SbomError, check_hash, hash, license, parse_purl};

const VERSIONS: [&str; 5] = ["1.2", "1.3", "1.4", "1.5", "1.6"];
const TYPES: [&str; 13] = [
    "application",
    "framework",
    "library",
    "container",
    "platform",
    "operating-system",
    "device",
    "device-driver",
    "firmware",
    "file",
    "machine-learning-model",
    "data",
    "cryptographic-asset",
];

fn check_serial(s: &str, at: &str) -> Result<(), SbomError> {
    let ok = s.strip_prefix("urn:uuid:").is_some_and(|u| {
        u.len() == 36
            && u.char_indices().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    });
    if ok {
        Ok(())
    } else {
        Err(SbomError::at(
            at,
            "serialNumber must be urn:uuid:<RFC 4122 UUID>",
        ))
    }
}

fn check_type(t: &str, at: &str) -> Result<(), SbomError> {
    if TYPES.contains(&t) {
        Ok(())
    } else {
        Err(SbomError::at(at, format!("unknown component type {t:?}")))
    }
}

/// Applies the `medsec:support-level` / `medsec:end-of-support` properties, and `medsec:cpe`,
/// which carries the CPEs after the first because a CycloneDX component has one `cpe` field.
fn apply_property(c: &mut Component, name: &str, value: &str) {
    match name {
        "medsec:support-level" => c.support_level = Some(value.to_owned()),
        "medsec:end-of-support" => c.end_of_support = Some(value.to_owned()),
        "medsec:cpe" => c.cpes.push(value.to_owned()),
        _ => {}
    }
}

// ---------------------------------------------------------------- JSON

fn str_at<'a>(v: &'a Value, key: &str, at: &str) -> Result<Option<&'a str>, SbomError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(SbomError::at(format!("{at}.{key}"), "must be a string")),
    }
}

fn arr<'a>(v: &'a Value, key: &str, at: &str) -> Result<&'a [Value], SbomError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(SbomError::at(format!("{at}.{key}"), "must be an array")),
    }
}

fn json_component(
    v: &Value,
    at: &str,
    out: &mut Vec<Component>,
    refs: &mut HashSet<String>,
) -> Result<(), SbomError> {
    if !v.is_object() {
        return Err(SbomError::at(at, "a component must be an object"));
    }
    let ty =
        str_at(v, "type", at)?.ok_or_else(|| SbomError::at(format!("{at}.type"), "required"))?;
    check_type(ty, &format!("{at}.type"))?;
    let name =
        str_at(v, "name", at)?.ok_or_else(|| SbomError::at(format!("{at}.name"), "required"))?;
    let mut c = Component {
        id: str_at(v, "bom-ref", at)?.map(str::to_owned),
        name: name.to_owned(),
        version: str_at(v, "version", at)?.map(str::to_owned),
        supplier: v
            .get("supplier")
            .and_then(|s| s.get("name"))
            .and_then(Value::as_str)
            .or(str_at(v, "publisher", at)?)
            .map(str::to_owned),
        purl: match str_at(v, "purl", at)? {
            Some(p) => Some(parse_purl(p, &format!("{at}.purl"))?),
            None => None,
        },
        cpes: str_at(v, "cpe", at)?
            .map(|c| vec![c.to_owned()])
            .unwrap_or_default(),
        hashes: Vec::new(),
        licenses: Vec::new(),
        support_level: None,
        end_of_support: None,
    };
    for (i, h) in arr(v, "hashes", at)?.iter().enumerate() {
        let hat = format!("{at}.hashes[{i}]");
        let alg = str_at(h, "alg", &hat)?
            .ok_or_else(|| SbomError::at(format!("{hat}.alg"), "required"))?;
        let content = str_at(h, "content", &hat)?
            .ok_or_else(|| SbomError::at(format!("{hat}.content"), "required"))?;
        check_hash(alg, content, &format!("{hat}.content"))?;
        c.hashes.push(hash(alg, content));
    }
    let lics = arr(v, "licenses", at)?;
    // The schema allows either one SPDX expression or a list of licenses, never both.
    if lics.len() > 1 && lics.iter().any(|l| l.get("expression").is_some()) {
        return Err(SbomError::at(
            format!("{at}.licenses"),
            "an expression must be the only entry",
        ));
    }
    for (i, l) in lics.iter().enumerate() {
        let lat = format!("{at}.licenses[{i}]");
        if l.get("expression").is_some() && l.get("license").is_some() {
            return Err(SbomError::at(
                lat,
                "an entry is either a license or an expression, not both",
            ));
        }
        if let Some(e) = str_at(l, "expression", &lat)? {
            c.licenses.push(license::normalize(e));
        } else if let Some(lic) = l.get("license") {
            let id = str_at(lic, "id", &lat)?.or(str_at(lic, "name", &lat)?);
            c.licenses.push(license::normalize(id.ok_or_else(|| {
                SbomError::at(format!("{lat}.license"), "needs id or name")
            })?));
        } else {
            return Err(SbomError::at(lat, "needs license or expression"));
        }
    }
    for (i, p) in arr(v, "properties", at)?.iter().enumerate() {
        let pat = format!("{at}.properties[{i}]");
        if let (Some(n), Some(val)) = (str_at(p, "name", &pat)?, str_at(p, "value", &pat)?) {
            apply_property(&mut c, n, val);
        }
    }
    if let Some(r) = &c.id {
        refs.insert(r.clone());
    }
    out.push(c);
    for (i, sub) in arr(v, "components", at)?.iter().enumerate() {
        json_component(sub, &format!("{at}.components[{i}]"), out, refs)?;
    }
    Ok(())
}

pub fn from_json(v: &Value) -> Result<Sbom, SbomError> {
    match v.get("bomFormat") {
        Some(Value::String(s)) if s == "CycloneDX" => {}
        Some(_) => return Err(SbomError::at("bomFormat", "must be \"CycloneDX\"")),
        None => return Err(SbomError::at("bomFormat", "required")),
    }
    let spec =
        str_at(v, "specVersion", "")?.ok_or_else(|| SbomError::at("specVersion", "required"))?;
    if !VERSIONS.contains(&spec) {
        return Err(SbomError::at(
            "specVersion",
            format!("{spec:?} is not a supported CycloneDX version (1.2 to 1.6)"),
        ));
    }
    if let Some(s) = str_at(v, "serialNumber", "")? {
        check_serial(s, "serialNumber")?;
    }
    let mut components = Vec::new();
    let mut refs = HashSet::new();
    // The described product itself is a component too: its own code can be vulnerable.
    if let Some(m) = v.get("metadata").and_then(|m| m.get("component")) {
        json_component(m, "metadata.component", &mut components, &mut refs)?;
    }
    for (i, c) in arr(v, "components", "")?.iter().enumerate() {
        json_component(c, &format!("components[{i}]"), &mut components, &mut refs)?;
    }
    let mut dependencies = Vec::new();
    for (i, d) in arr(v, "dependencies", "")?.iter().enumerate() {
        let at = format!("dependencies[{i}]");
        let from =
            str_at(d, "ref", &at)?.ok_or_else(|| SbomError::at(format!("{at}.ref"), "required"))?;
        if !refs.contains(from) {
            return Err(SbomError::at(
                format!("{at}.ref"),
                format!("{from:?} names no component"),
            ));
        }
        for (j, to) in arr(d, "dependsOn", &at)?.iter().enumerate() {
            let to = to
                .as_str()
                .ok_or_else(|| SbomError::at(format!("{at}.dependsOn[{j}]"), "must be a string"))?;
            if !refs.contains(to) {
                return Err(SbomError::at(
                    format!("{at}.dependsOn[{j}]"),
                    format!("{to:?} names no component"),
                ));
            }
            dependencies.push((from.to_owned(), to.to_owned()));
        }
    }
    Ok(Sbom {
        format: Format::CycloneDxJson,
        spec_version: spec.to_owned(),
        components,
        dependencies,
    })
}

// ---------------------------------------------------------------- XML

fn line(doc: &roxmltree::Document<'_>, n: roxmltree::Node<'_, '_>) -> String {
    format!("line {}", doc.text_pos_at(n.range().start).row)
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn text(n: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    child(n, name).map(|c| c.text().unwrap_or("").trim().to_owned())
}

fn xml_component(
    doc: &roxmltree::Document<'_>,
    n: roxmltree::Node<'_, '_>,
    out: &mut Vec<Component>,
    refs: &mut HashSet<String>,
) -> Result<(), SbomError> {
    let at = line(doc, n);
    let ty = n
        .attribute("type")
        .ok_or_else(|| SbomError::at(&at, "component needs a type attribute"))?;
    check_type(ty, &at)?;
    let name = text(n, "name")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SbomError::at(&at, "component needs a name"))?;
    let purl = match child(n, "purl") {
        Some(p) => Some(parse_purl(p.text().unwrap_or("").trim(), &line(doc, p))?),
        None => None,
    };
    let mut c = Component {
        id: n.attribute("bom-ref").map(str::to_owned),
        name,
        version: text(n, "version"),
        supplier: child(n, "supplier")
            .and_then(|s| text(s, "name"))
            .or_else(|| text(n, "publisher")),
        purl,
        cpes: text(n, "cpe").into_iter().collect(),
        hashes: Vec::new(),
        licenses: Vec::new(),
        support_level: None,
        end_of_support: None,
    };
    if let Some(hs) = child(n, "hashes") {
        for h in hs.children().filter(|h| h.is_element()) {
            let alg = h
                .attribute("alg")
                .ok_or_else(|| SbomError::at(line(doc, h), "hash needs alg"))?;
            let v = h.text().unwrap_or("").trim();
            check_hash(alg, v, &line(doc, h))?;
            c.hashes.push(hash(alg, v));
        }
    }
    if let Some(ls) = child(n, "licenses") {
        let entries: Vec<_> = ls.children().filter(|l| l.is_element()).collect();
        if entries.len() > 1 && entries.iter().any(|e| e.tag_name().name() == "expression") {
            return Err(SbomError::at(
                line(doc, ls),
                "an expression must be the only license entry",
            ));
        }
        for e in entries {
            match e.tag_name().name() {
                "expression" => c
                    .licenses
                    .push(license::normalize(e.text().unwrap_or("").trim())),
                "license" => {
                    let id = text(e, "id")
                        .or_else(|| text(e, "name"))
                        .ok_or_else(|| SbomError::at(line(doc, e), "license needs id or name"))?;
                    c.licenses.push(license::normalize(&id));
                }
                _ => {}
            }
        }
    }
    if let Some(ps) = child(n, "properties") {
        for p in ps.children().filter(|p| p.is_element()) {
            if let Some(name) = p.attribute("name") {
                apply_property(&mut c, name, p.text().unwrap_or("").trim());
            }
        }
    }
    if let Some(r) = &c.id {
        refs.insert(r.clone());
    }
    out.push(c);
    if let Some(subs) = child(n, "components") {
        for s in subs
            .children()
            .filter(|s| s.is_element() && s.tag_name().name() == "component")
        {
            xml_component(doc, s, out, refs)?;
        }
    }
    Ok(())
}

pub fn from_xml(text_in: &str) -> Result<Sbom, SbomError> {
    let doc = roxmltree::Document::parse(text_in)
        .map_err(|e| SbomError::at(format!("line {}", e.pos().row), format!("invalid XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "bom" {
        return Err(SbomError::at(
            line(&doc, root),
            "the root element must be <bom>",
        ));
    }
    let ns = root.tag_name().namespace().unwrap_or("");
    let spec = ns
        .strip_prefix("http://cyclonedx.org/schema/bom/")
        .filter(|v| VERSIONS.contains(v))
        .ok_or_else(|| {
            SbomError::at(
                line(&doc, root),
                format!("namespace {ns:?} is not a CycloneDX 1.2-1.6 namespace"),
            )
        })?
        .to_owned();
    if let Some(s) = root.attribute("serialNumber") {
        check_serial(s, &line(&doc, root))?;
    }
    let mut components = Vec::new();
    let mut refs = HashSet::new();
    // The described product itself is a component too: its own code can be vulnerable.
    if let Some(m) = child(root, "metadata").and_then(|m| child(m, "component")) {
        xml_component(&doc, m, &mut components, &mut refs)?;
    }
    if let Some(cs) = child(root, "components") {
        for c in cs
            .children()
            .filter(|c| c.is_element() && c.tag_name().name() == "component")
        {
            xml_component(&doc, c, &mut components, &mut refs)?;
        }
    }
    let mut dependencies = Vec::new();
    if let Some(ds) = child(root, "dependencies") {
        for d in ds.children().filter(|d| d.is_element()) {
            let Some(from) = d.attribute("ref") else {
                continue;
            };
            if !refs.contains(from) {
                return Err(SbomError::at(
                    line(&doc, d),
                    format!("dependency {from:?} names no component"),
                ));
            }
            for to in d.children().filter(|t| t.is_element()) {
                let Some(t) = to.attribute("ref") else {
                    continue;
                };
                if !refs.contains(t) {
                    return Err(SbomError::at(
                        line(&doc, to),
                        format!("dependency {t:?} names no component"),
                    ));
                }
                dependencies.push((from.to_owned(), t.to_owned()));
            }
        }
    }
    Ok(Sbom {
        format: Format::CycloneDxXml,
        spec_version: spec,
        components,
        dependencies,
    })
}
