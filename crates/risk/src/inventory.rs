//! Trust-relationship inventory: the endpoints a device model reaches and the links between them.
//!
//! The TOML file is the source of truth and is edited by hand, so parsing is strict
//! (unknown fields are errors) and every cross-reference error names its line and field.

use std::collections::{BTreeMap, HashMap};

use medsec_core::DeviceModel;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::RiskError;
use crate::error::{line_col, toml_error, toml_ser_error};
use crate::ids::{EndpointId, LinkId};

const FILE: &str = "inventory";

/// What an endpoint is; drives which threat rules apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum EndpointKind {
    /// The medical device itself (one unit of the model).
    Device,
    BackendServer,
    EhrInterface,
    ClinicianTablet,
    CloudService,
    ServiceLaptop,
    /// A physical or local service interface: USB, serial, BLE service mode.
    ServicePort,
    /// Proxy, gateway, firewall or integration engine that relays traffic.
    Gateway,
    DataStore,
    /// A person (imported Threat Dragon actors).
    User,
    Other,
}

/// How the two ends authenticate each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AuthMethod {
    /// Mutual TLS with certificates issued by our own device PKI; mutual by definition.
    #[serde(rename = "mtls-our-pki")]
    MtlsOurPki,
    /// Certificates from another PKI (hospital, public web PKI).
    #[serde(rename = "other-certificate")]
    OtherCertificate,
    #[serde(rename = "shared-secret")]
    SharedSecret,
    #[serde(rename = "password")]
    Password,
    #[serde(rename = "none")]
    None,
}

/// Transport encryption of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Encryption {
    #[serde(rename = "tls-1.3")]
    Tls13,
    #[serde(rename = "tls-1.2")]
    Tls12,
    #[serde(rename = "tls-1.1")]
    Tls11,
    #[serde(rename = "tls-1.0")]
    Tls10,
    #[serde(rename = "none")]
    None,
}

impl Encryption {
    /// TLS below 1.2 (1.0, 1.1): deprecated by RFC 8996.
    pub fn is_weak_tls(self) -> bool {
        matches!(self, Encryption::Tls10 | Encryption::Tls11)
    }
}

/// Classes of data carried by a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DataClass {
    /// Protected health information.
    Phi,
    TherapyCommands,
    Configuration,
    Logs,
    Firmware,
}

/// Direction of data flow, relative to `from` (which initiates the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Data flows from `from` to `to`.
    Outbound,
    /// Data flows from `to` back to `from` (e.g. a pull).
    Inbound,
    Bidirectional,
}

/// Whether a credential is unique per device or the same across units/sites.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialScope {
    #[default]
    PerDevice,
    /// The same secret or password is used on many units: one leak compromises the fleet.
    Shared,
}

/// A node of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub id: EndpointId,
    pub name: String,
    pub kind: EndpointKind,
    /// Network or physical zone the endpoint lives in (free text, used in reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The endpoint is reached through this gateway/proxy endpoint. Chains must be acyclic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<EndpointId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An edge of the graph: one trust relationship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub id: LinkId,
    /// The initiating end.
    pub from: EndpointId,
    pub to: EndpointId,
    pub direction: Direction,
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub auth: AuthMethod,
    /// Both ends authenticate each other. Implied by `mtls-our-pki`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub mutual: bool,
    #[serde(default, skip_serializing_if = "is_per_device")]
    pub credential: CredentialScope,
    pub encryption: Encryption,
    #[serde(default)]
    pub data: Vec<DataClass>,
    /// Name of the trust boundary this link crosses, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_per_device(c: &CredentialScope) -> bool {
    *c == CredentialScope::PerDevice
}

impl Link {
    /// Both ends are authenticated: explicit `mutual = true`, or mTLS from our PKI.
    pub fn is_mutual(&self) -> bool {
        self.auth == AuthMethod::MtlsOurPki || (self.mutual && self.auth != AuthMethod::None)
    }

    pub fn carries(&self, class: DataClass) -> bool {
        self.data.contains(&class)
    }

    pub fn crosses_boundary(&self) -> bool {
        self.boundary.is_some()
    }

    /// The endpoint at the other end from `e`, if `e` is an end of this link.
    pub fn other_end(&self, e: &EndpointId) -> Option<&EndpointId> {
        if &self.from == e {
            Some(&self.to)
        } else if &self.to == e {
            Some(&self.from)
        } else {
            None
        }
    }
}

/// The trust-relationship inventory of one device model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub model: DeviceModel,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, rename = "endpoint")]
    pub endpoints: Vec<Endpoint>,
    #[serde(default, rename = "link")]
    pub links: Vec<Link>,
}

// Parsing-side mirrors of the public types: the same schema, but with spans on the fields
// whose errors are found after parsing (ids and references), so those errors can name a line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    model: DeviceModel,
    #[serde(default)]
    description: String,
    #[serde(default)]
    endpoint: Vec<RawEndpoint>,
    #[serde(default)]
    link: Vec<RawLink>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    id: Spanned<EndpointId>,
    name: String,
    kind: EndpointKind,
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    via: Option<Spanned<EndpointId>>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    id: Spanned<LinkId>,
    from: Spanned<EndpointId>,
    to: Spanned<EndpointId>,
    direction: Direction,
    protocol: Spanned<String>,
    #[serde(default)]
    port: Option<u16>,
    auth: AuthMethod,
    #[serde(default)]
    mutual: Option<Spanned<bool>>,
    #[serde(default)]
    credential: CredentialScope,
    encryption: Encryption,
    #[serde(default)]
    data: Vec<DataClass>,
    #[serde(default)]
    boundary: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// Where each checked field sits in the source, keyed by (section, index, field).
#[derive(Default)]
struct Lines(HashMap<(&'static str, usize, &'static str), usize>);

impl Lines {
    fn get(&self, section: &'static str, idx: usize, field: &'static str) -> Option<usize> {
        self.0.get(&(section, idx, field)).copied()
    }
}

impl Inventory {
    /// Parses and checks an inventory file.
    pub fn from_toml(src: &str) -> Result<Inventory, RiskError> {
        let raw: RawInventory = toml::from_str(src).map_err(|e| toml_error(FILE, src, &e))?;
        let mut lines = Lines::default();
        let mut at = |section, idx, field, span: std::ops::Range<usize>| {
            lines
                .0
                .insert((section, idx, field), line_col(src, span.start).0);
        };
        let endpoints = raw
            .endpoint
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                at("endpoint", i, "id", e.id.span());
                if let Some(v) = &e.via {
                    at("endpoint", i, "via", v.span());
                }
                Endpoint {
                    id: e.id.into_inner(),
                    name: e.name,
                    kind: e.kind,
                    zone: e.zone,
                    via: e.via.map(Spanned::into_inner),
                    description: e.description,
                }
            })
            .collect();
        let links = raw
            .link
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                at("link", i, "id", l.id.span());
                at("link", i, "from", l.from.span());
                at("link", i, "to", l.to.span());
                at("link", i, "protocol", l.protocol.span());
                if let Some(m) = &l.mutual {
                    at("link", i, "mutual", m.span());
                }
                Link {
                    id: l.id.into_inner(),
                    from: l.from.into_inner(),
                    to: l.to.into_inner(),
                    direction: l.direction,
                    protocol: l.protocol.into_inner(),
                    port: l.port,
                    auth: l.auth,
                    mutual: l.mutual.is_some_and(|m| *m.get_ref()),
                    credential: l.credential,
                    encryption: l.encryption,
                    data: l.data,
                    boundary: l.boundary,
                    description: l.description,
                }
            })
            .collect();
        let inv = Inventory {
            model: raw.model,
            description: raw.description,
            endpoints,
            links,
        };
        inv.check(&lines)?;
        Ok(inv)
    }

    /// Writes the inventory back as TOML; `from_toml(to_toml(x)) == x`.
    pub fn to_toml(&self) -> Result<String, RiskError> {
        toml::to_string(self).map_err(|e| toml_ser_error(FILE, e))
    }

    /// Checks the cross-reference rules on an inventory built in code (no line numbers).
    pub fn validate(&self) -> Result<(), RiskError> {
        self.check(&Lines::default())
    }

    pub fn endpoint(&self, id: &EndpointId) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| &e.id == id)
    }

    pub fn link(&self, id: &LinkId) -> Option<&Link> {
        self.links.iter().find(|l| &l.id == id)
    }

    /// Links with `e` at either end.
    pub fn links_of<'a>(&'a self, e: &'a EndpointId) -> impl Iterator<Item = &'a Link> + 'a {
        self.links
            .iter()
            .filter(move |l| &l.from == e || &l.to == e)
    }

    /// The gateways traffic to `e` passes through, nearest first. Finite because `via` chains
    /// are checked to be acyclic on load.
    pub fn via_chain(&self, e: &EndpointId) -> Vec<EndpointId> {
        let mut out = Vec::new();
        let mut cur = self.endpoint(e).and_then(|x| x.via.clone());
        while let Some(v) = cur {
            if out.contains(&v) {
                break; // defensive: an unchecked, hand-built inventory could still loop
            }
            cur = self.endpoint(&v).and_then(|x| x.via.clone());
            out.push(v);
        }
        out
    }

    fn check(&self, lines: &Lines) -> Result<(), RiskError> {
        let invalid = |section, idx, field: &'static str, message: String| RiskError::Invalid {
            file: FILE,
            line: lines.get(section, idx, field),
            field: format!("{section}.{field}"),
            message,
        };
        let mut index: BTreeMap<&EndpointId, usize> = BTreeMap::new();
        for (i, e) in self.endpoints.iter().enumerate() {
            if index.insert(&e.id, i).is_some() {
                return Err(invalid(
                    "endpoint",
                    i,
                    "id",
                    format!("duplicate endpoint id {:?}", e.id.as_str()),
                ));
            }
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            if let Some(v) = &e.via
                && !index.contains_key(v)
            {
                return Err(invalid(
                    "endpoint",
                    i,
                    "via",
                    format!("endpoint {:?} is not defined", v.as_str()),
                ));
            }
        }
        // A via chain that loops would make "reached through" meaningless and send any
        // walker in circles; report the first endpoint (in file order) that is on a cycle.
        for (i, e) in self.endpoints.iter().enumerate() {
            let mut path = vec![e.id.as_str()];
            let mut cur = e.via.as_ref();
            while let Some(v) = cur {
                path.push(v.as_str());
                if v == &e.id {
                    return Err(invalid(
                        "endpoint",
                        i,
                        "via",
                        format!("via chain is cyclic: {}", path.join(" -> ")),
                    ));
                }
                if path.len() > self.endpoints.len() + 1 {
                    break; // a cycle not through `e`; reported when its own member is visited
                }
                cur = index.get(v).and_then(|&j| self.endpoints[j].via.as_ref());
            }
        }
        let mut link_ids = BTreeMap::new();
        for (i, l) in self.links.iter().enumerate() {
            if link_ids.insert(&l.id, i).is_some() {
                return Err(invalid(
                    "link",
                    i,
                    "id",
                    format!("duplicate link id {:?}", l.id.as_str()),
                ));
            }
            for (field, end) in [("from", &l.from), ("to", &l.to)] {
                if !index.contains_key(end) {
                    return Err(invalid(
                        "link",
                        i,
                        field,
                        format!("endpoint {:?} is not defined", end.as_str()),
                    ));
                }
            }
            if l.from == l.to {
                return Err(invalid(
                    "link",
                    i,
                    "to",
                    format!("link connects {:?} to itself", l.to.as_str()),
                ));
            }
            if l.protocol.trim().is_empty() {
                return Err(invalid(
                    "link",
                    i,
                    "protocol",
                    "must not be empty".to_owned(),
                ));
            }
            if l.mutual && l.auth == AuthMethod::None {
                return Err(invalid(
                    "link",
                    i,
                    "mutual",
                    "mutual authentication is impossible with auth = \"none\"".to_owned(),
                ));
            }
        }
        Ok(())
    }
}
