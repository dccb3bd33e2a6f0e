//! One documentation set for a model and firmware version: every document in every requested
//! format, the diagrams as SVG files, the MDS2 and the gaps report, as (file name, bytes).

use std::collections::BTreeSet;

use time::OffsetDateTime;

use crate::doc::{Block, Document, Section};
use crate::inputs::DocInputs;
use crate::{DocsError, gaps, labelling, premarket, render};

/// Output formats of the prose documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    Html,
    Markdown,
    Pdf,
}

impl Format {
    /// `html`, `md` (or `markdown`), `pdf`.
    pub fn parse(s: &str) -> Result<Format, DocsError> {
        match s.trim() {
            "html" => Ok(Format::Html),
            "md" | "markdown" => Ok(Format::Markdown),
            "pdf" => Ok(Format::Pdf),
            other => Err(DocsError::Invalid {
                what: "format",
                message: format!("{other:?} is not html, md or pdf"),
            }),
        }
    }

    /// A comma-separated list, e.g. `html,pdf,md`.
    pub fn parse_list(s: &str) -> Result<BTreeSet<Format>, DocsError> {
        let set: BTreeSet<Format> = s
            .split(',')
            .filter(|x| !x.trim().is_empty())
            .map(Format::parse)
            .collect::<Result<_, _>>()?;
        if set.is_empty() {
            return Err(DocsError::Invalid {
                what: "format",
                message: "name at least one of html, md, pdf".into(),
            });
        }
        Ok(set)
    }
}

/// One generated file, named relative to the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

fn diagrams<'a>(s: &'a Section, out: &mut Vec<&'a crate::doc::Diagram>) {
    for b in &s.blocks {
        if let Block::Diagram(d) = b {
            out.push(d);
        }
    }
    for c in &s.children {
        diagrams(c, out);
    }
}

fn render_doc(
    doc: &Document,
    formats: &BTreeSet<Format>,
    created: OffsetDateTime,
    out: &mut Vec<OutputFile>,
) -> Result<(), DocsError> {
    for f in formats {
        let (ext, bytes) = match f {
            Format::Html => ("html", render::html(doc).into_bytes()),
            Format::Markdown => ("md", render::markdown(doc).into_bytes()),
            Format::Pdf => ("pdf", crate::pdf::render_pdf(doc, created)?),
        };
        out.push(OutputFile {
            name: format!("{}.{ext}", doc.slug),
            bytes,
        });
    }
    Ok(())
}

/// The MDS2 facts medsec can state from the inputs: the device's links from the trust
/// inventory, its PKI identity, signed updates, the SBOM, findings, support and CVD.
pub fn mds2_facts(i: &DocInputs) -> crate::mds2::Mds2Facts {
    use crate::mds2::{
        CvdFacts, DeviceIdentity, LinkAuthentication, Mds2Facts, Mds2Link, SbomFacts, UpdateFacts,
        VulnerabilityFacts,
    };
    use medsec_risk::{AuthMethod, DataClass, EndpointKind};
    let mut f = Mds2Facts::new(
        i.manufacturer.clone(),
        i.model.to_string(),
        i.version.to_string(),
        format!("MDS2-{}-{}", i.model, i.version),
        i.as_of,
    );
    f.manufacturer_contact = i.cvd.contacts.first().cloned();
    let mut mtls = false;
    if let Some(r) = &i.risk {
        let inv = &r.inventory;
        let kind = |id: &medsec_risk::EndpointId| {
            inv.endpoints.iter().find(|e| &e.id == id).map(|e| e.kind)
        };
        f.device_description = (!inv.description.is_empty()).then(|| inv.description.clone());
        for l in &inv.links {
            let (fk, tk) = (kind(&l.from), kind(&l.to));
            if fk != Some(EndpointKind::Device) && tk != Some(EndpointKind::Device) {
                continue;
            }
            let peer = if fk == Some(EndpointKind::Device) {
                tk
            } else {
                fk
            };
            mtls |= l.auth == AuthMethod::MtlsOurPki;
            f.links.push(Mds2Link {
                name: l.id.to_string(),
                protocol: l.protocol.clone(),
                encrypted: l.encryption != medsec_risk::Encryption::None,
                authentication: if l.auth == AuthMethod::None {
                    LinkAuthentication::None
                } else if l.is_mutual() {
                    LinkAuthentication::Mutual
                } else {
                    LinkAuthentication::OneWay
                },
                carries_phi: l.carries(DataClass::Phi),
                external: peer == Some(EndpointKind::CloudService),
                remote_service: matches!(
                    peer,
                    Some(EndpointKind::ServiceLaptop | EndpointKind::ServicePort)
                ),
            });
        }
    }
    if !i.pki.profiles.is_empty() {
        let keys: BTreeSet<String> = i
            .pki
            .profiles
            .iter()
            .flat_map(|p| p.key_types.iter().cloned())
            .collect();
        f.device_identity = Some(DeviceIdentity {
            mutual_tls: mtls,
            key_types: keys.into_iter().collect(),
            crl_urls: i.pki.crl_urls.clone(),
            ocsp_urls: i.pki.ocsp_url.iter().cloned().collect(),
        });
    }
    if i.updates.tuf_repository {
        f.updates = Some(UpdateFacts {
            signed_tuf: true,
            rollback_protection: true,
        });
    }
    if !i.components.is_empty() {
        f.sbom = Some(SbomFacts {
            component_count: i.components.len(),
            formats: vec!["CycloneDX 1.5".into()],
            components_with_supplier: i.components.iter().filter(|c| c.supplier.is_some()).count(),
            components_with_version: i.components.iter().filter(|c| c.version.is_some()).count(),
        });
    }
    let open: Vec<_> = i.findings.iter().filter(|v| v.is_open()).collect();
    f.vulnerabilities = Some(VulnerabilityFacts {
        open_findings: open.len(),
        kev_findings: open.iter().filter(|v| v.kev).count(),
    });
    f.end_of_support = i.firmware.as_ref().and_then(|x| x.end_of_support);
    if !i.cvd.contacts.is_empty() || i.cvd.intake_url.is_some() {
        f.cvd = Some(CvdFacts {
            contacts: i.cvd.contacts.clone(),
            intake_url: i.cvd.intake_url.clone(),
            policy_url: i.cvd.policy_urls.first().cloned(),
        });
    }
    f.event_logging = !i.monitoring.detection_rules.is_empty();
    f.backup_restore = Some(
        "Configuration backup and restore by authorised service personnel; backups contain no private keys.".into(),
    );
    f
}

/// The premarket file, the labelling section and the gaps report in `formats`, their diagrams
/// as SVG files, the gaps as JSON, and the MDS2 as XLSX and JSON (answers not derived from
/// the data come from `mds2_answers`, a TOML file). `created` only reaches the PDF creation
/// date.
pub fn build_documents(
    inputs: &DocInputs,
    formats: &BTreeSet<Format>,
    mds2_answers: Option<&str>,
    created: OffsetDateTime,
) -> Result<Vec<OutputFile>, DocsError> {
    let docs = [
        premarket::build(inputs),
        labelling::build(inputs),
        gaps::build(inputs),
    ];
    let mut out = Vec::new();
    for d in &docs {
        render_doc(d, formats, created, &mut out)?;
        let mut ds = Vec::new();
        for s in &d.sections {
            diagrams(s, &mut ds);
        }
        for g in ds {
            out.push(OutputFile {
                name: format!("{}.svg", g.id),
                bytes: render::svg(g).into_bytes(),
            });
        }
    }
    let gaps = serde_json::to_vec_pretty(&gaps::gaps(inputs)).map_err(|e| DocsError::Render {
        format: "json",
        message: e.to_string(),
    })?;
    out.push(OutputFile {
        name: "gaps.json".into(),
        bytes: gaps,
    });
    let mds2 = crate::mds2::build(&mds2_facts(inputs), mds2_answers)?;
    out.push(OutputFile {
        name: "mds2.xlsx".into(),
        bytes: mds2.to_xlsx()?,
    });
    out.push(OutputFile {
        name: "mds2.json".into(),
        bytes: serde_json::to_vec_pretty(&mds2.to_json()).map_err(|e| DocsError::Render {
            format: "json",
            message: e.to_string(),
        })?,
    });
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}
