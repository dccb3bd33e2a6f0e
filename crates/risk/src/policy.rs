//! Risk policy as data: severity and exploitability scales and the acceptability matrix.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::RiskError;
use crate::error::{line_col, toml_error, toml_ser_error};
use crate::ids::LevelName;

const FILE: &str = "policy";

/// One risk level of the matrix (`low`, `medium`, `high`) and whether it is acceptable
/// without further risk control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskLevel {
    pub name: LevelName,
    pub acceptable: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// The acceptability policy. Rows of `matrix` follow `exploitability` (first = least
/// exploitable), columns follow `severity` (first = least severe).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub severity: Vec<LevelName>,
    pub exploitability: Vec<LevelName>,
    pub matrix: Vec<Vec<LevelName>>,
    #[serde(rename = "level")]
    pub levels: Vec<RiskLevel>,
}

/// The outcome of looking up one cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rating {
    pub exploitability: LevelName,
    pub severity: LevelName,
    pub level: LevelName,
    pub acceptable: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    severity: Spanned<Vec<LevelName>>,
    exploitability: Spanned<Vec<LevelName>>,
    matrix: Spanned<Vec<Spanned<Vec<Spanned<LevelName>>>>>,
    level: Vec<RiskLevel>,
}

const DEFAULT_POLICY: &str = include_str!("default_policy.toml");

impl Policy {
    pub fn from_toml(src: &str) -> Result<Policy, RiskError> {
        let raw: RawPolicy = toml::from_str(src).map_err(|e| toml_error(FILE, src, &e))?;
        let at = |span: std::ops::Range<usize>, field: &str, message: String| RiskError::Invalid {
            file: FILE,
            line: Some(line_col(src, span.start).0),
            field: field.to_owned(),
            message,
        };
        for (field, scale) in [
            ("severity", &raw.severity),
            ("exploitability", &raw.exploitability),
        ] {
            if scale.get_ref().is_empty() {
                return Err(at(
                    scale.span(),
                    field,
                    "scale must not be empty".to_owned(),
                ));
            }
            let unique: BTreeSet<_> = scale.get_ref().iter().collect();
            if unique.len() != scale.get_ref().len() {
                return Err(at(
                    scale.span(),
                    field,
                    "scale has duplicate level names".to_owned(),
                ));
            }
        }
        let names: BTreeSet<&LevelName> = raw.level.iter().map(|l| &l.name).collect();
        if names.len() != raw.level.len() {
            return Err(RiskError::Invalid {
                file: FILE,
                line: None,
                field: "level.name".to_owned(),
                message: "duplicate risk level name".to_owned(),
            });
        }
        let rows = raw.matrix.get_ref();
        if rows.len() != raw.exploitability.get_ref().len() {
            return Err(at(
                raw.matrix.span(),
                "matrix",
                format!(
                    "{} rows, but the exploitability scale has {} levels",
                    rows.len(),
                    raw.exploitability.get_ref().len()
                ),
            ));
        }
        for row in rows {
            if row.get_ref().len() != raw.severity.get_ref().len() {
                return Err(at(
                    row.span(),
                    "matrix",
                    format!(
                        "row has {} cells, but the severity scale has {} levels",
                        row.get_ref().len(),
                        raw.severity.get_ref().len()
                    ),
                ));
            }
            for cell in row.get_ref() {
                if !names.contains(cell.get_ref()) {
                    return Err(at(
                        cell.span(),
                        "matrix",
                        format!(
                            "risk level {:?} is not defined by a [[level]]",
                            cell.get_ref().as_str()
                        ),
                    ));
                }
            }
        }
        let matrix = raw
            .matrix
            .into_inner()
            .into_iter()
            .map(|r| {
                r.into_inner()
                    .into_iter()
                    .map(Spanned::into_inner)
                    .collect()
            })
            .collect();
        Ok(Policy {
            severity: raw.severity.into_inner(),
            exploitability: raw.exploitability.into_inner(),
            matrix,
            levels: raw.level,
        })
    }

    pub fn to_toml(&self) -> Result<String, RiskError> {
        toml::to_string(self).map_err(|e| toml_ser_error(FILE, e))
    }

    /// The default: ISO 14971-style 5 severity levels, 5 exploitability levels, 3 risk levels.
    pub fn default_policy() -> Result<Policy, RiskError> {
        Policy::from_toml(DEFAULT_POLICY)
    }

    pub fn default_policy_toml() -> &'static str {
        DEFAULT_POLICY
    }

    fn index(
        scale: &[LevelName],
        name: &LevelName,
        which: &'static str,
    ) -> Result<usize, RiskError> {
        scale
            .iter()
            .position(|l| l == name)
            .ok_or_else(|| RiskError::UnknownLevel {
                scale: which,
                value: name.to_string(),
                known: scale
                    .iter()
                    .map(LevelName::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    pub fn severity_index(&self, s: &LevelName) -> Result<usize, RiskError> {
        Self::index(&self.severity, s, "severity")
    }

    pub fn exploitability_index(&self, e: &LevelName) -> Result<usize, RiskError> {
        Self::index(&self.exploitability, e, "exploitability")
    }

    /// Looks up the matrix cell for (exploitability, severity).
    pub fn rate(
        &self,
        exploitability: &LevelName,
        severity: &LevelName,
    ) -> Result<Rating, RiskError> {
        let r = self.exploitability_index(exploitability)?;
        let c = self.severity_index(severity)?;
        // Dimensions are checked on load; a hand-built policy could still be ragged.
        let level = self
            .matrix
            .get(r)
            .and_then(|row| row.get(c))
            .ok_or_else(|| RiskError::Invalid {
                file: FILE,
                line: None,
                field: "matrix".to_owned(),
                message: format!("no cell for row {r}, column {c}"),
            })?;
        let acceptable = self
            .levels
            .iter()
            .find(|l| &l.name == level)
            .is_some_and(|l| l.acceptable);
        Ok(Rating {
            exploitability: exploitability.clone(),
            severity: severity.clone(),
            level: level.clone(),
            acceptable,
        })
    }

    /// Maps a rank on the fixed 0..=4 CVSS-derived scale onto this policy's exploitability
    /// scale (which may have a different number of levels).
    pub fn exploitability_for_rank(&self, rank: u8) -> Option<&LevelName> {
        let n = self.exploitability.len();
        if n == 0 {
            return None;
        }
        let idx = (usize::from(rank.min(4)) * (n - 1) + 2) / 4;
        self.exploitability.get(idx)
    }
}

/// A parsed CVSS v3.0/v3.1 base vector; only the exploitability metrics matter here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CvssVector {
    text: String,
    av: char,
    ac: char,
    pr: char,
    ui: char,
    scope_changed: bool,
}

impl CvssVector {
    pub fn parse(s: &str) -> Result<CvssVector, RiskError> {
        let err = |reason: &str| RiskError::Cvss {
            vector: s.chars().take(120).collect(),
            reason: reason.to_owned(),
        };
        let mut parts = s.split('/');
        match parts.next() {
            Some("CVSS:3.0" | "CVSS:3.1") => {}
            Some(p) if p.starts_with("CVSS:") => {
                return Err(err("only CVSS v3.0 and v3.1 are supported"));
            }
            _ => return Err(err("must start with CVSS:3.x/")),
        }
        let (mut av, mut ac, mut pr, mut ui, mut sc) = (None, None, None, None, None);
        for p in parts {
            let (k, v) = p.split_once(':').ok_or_else(|| err("metric without ':'"))?;
            let mut chars = v.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return Err(err("metric values are single letters"));
            };
            let slot = match k {
                "AV" if "NALP".contains(c) => &mut av,
                "AC" if "LH".contains(c) => &mut ac,
                "PR" if "NLH".contains(c) => &mut pr,
                "UI" if "NR".contains(c) => &mut ui,
                "S" if "UC".contains(c) => &mut sc,
                "AV" | "AC" | "PR" | "UI" | "S" => return Err(err("invalid metric value")),
                _ => continue, // impact and temporal metrics do not affect exploitability
            };
            if slot.replace(c).is_some() {
                return Err(err("metric given twice"));
            }
        }
        match (av, ac, pr, ui, sc) {
            (Some(av), Some(ac), Some(pr), Some(ui), Some(sc)) => Ok(CvssVector {
                text: s.to_owned(),
                av,
                ac,
                pr,
                ui,
                scope_changed: sc == 'C',
            }),
            _ => Err(err("AV, AC, PR, UI and S are required")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The CVSS v3.1 exploitability sub-score, 8.22 × AV × AC × PR × UI (0.1 .. 3.9).
    pub fn exploitability_score(&self) -> f64 {
        let av = match self.av {
            'N' => 0.85,
            'A' => 0.62,
            'L' => 0.55,
            _ => 0.2,
        };
        let ac = if self.ac == 'L' { 0.77 } else { 0.44 };
        let pr = match (self.pr, self.scope_changed) {
            ('N', _) => 0.85,
            ('L', false) => 0.62,
            ('L', true) => 0.68,
            (_, false) => 0.27,
            (_, true) => 0.5,
        };
        let ui = if self.ui == 'N' { 0.85 } else { 0.62 };
        8.22 * av * ac * pr * ui
    }

    /// Rank 0 (hardest) ..= 4 (easiest). A KEV listing means it is exploited in the wild,
    /// which overrides whatever the vector suggests.
    pub fn exploitability_rank(&self, kev: bool) -> u8 {
        if kev {
            return 4;
        }
        match self.exploitability_score() {
            s if s >= 3.5 => 4,
            s if s >= 2.5 => 3,
            s if s >= 1.5 => 2,
            s if s >= 0.7 => 1,
            _ => 0,
        }
    }
}

impl TryFrom<String> for CvssVector {
    type Error = RiskError;
    fn try_from(s: String) -> Result<Self, RiskError> {
        CvssVector::parse(&s)
    }
}

impl From<CvssVector> for String {
    fn from(v: CvssVector) -> String {
        v.text
    }
}
