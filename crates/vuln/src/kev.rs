//! The CISA Known Exploited Vulnerabilities catalog (JSON feed), as a set of CVE ids.

use std::collections::HashMap;

use serde::Deserialize;

use crate::VulnError;

#[derive(Debug, Clone, Deserialize)]
pub struct KevEntry {
    #[serde(rename = "cveID")]
    pub cve: String,
    #[serde(rename = "dateAdded", default)]
    pub date_added: String,
    #[serde(rename = "knownRansomwareCampaignUse", default)]
    pub ransomware: String,
    #[serde(rename = "dueDate", default)]
    pub due_date: String,
}

#[derive(Deserialize)]
struct Catalog {
    #[serde(rename = "catalogVersion", default)]
    version: String,
    vulnerabilities: Vec<KevEntry>,
}

/// The catalog, indexed by CVE id.
#[derive(Debug, Default)]
pub struct Kev {
    pub version: String,
    by_cve: HashMap<String, KevEntry>,
}

impl Kev {
    pub fn from_json(bytes: &[u8]) -> Result<Self, VulnError> {
        let c: Catalog = serde_json::from_slice(bytes)
            .map_err(|e| VulnError::BadFeed(format!("not a KEV catalog: {e}")))?;
        let by_cve = c
            .vulnerabilities
            .into_iter()
            .map(|e| (e.cve.clone(), e))
            .collect();
        Ok(Kev {
            version: c.version,
            by_cve,
        })
    }

    pub fn len(&self) -> usize {
        self.by_cve.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_cve.is_empty()
    }

    /// Every CVE id listed.
    pub fn cves(&self) -> impl Iterator<Item = &str> {
        self.by_cve.keys().map(String::as_str)
    }

    pub fn contains(&self, cve: &str) -> bool {
        self.by_cve.contains_key(cve)
    }

    /// The KEV entry of any of these identifiers (a finding's CVE usually sits among aliases).
    pub fn lookup<'a>(&self, ids: impl IntoIterator<Item = &'a String>) -> Option<&KevEntry> {
        ids.into_iter().find_map(|id| self.by_cve.get(id))
    }
}
