//! CVSS v3.0/v3.1 base vectors: parsed strictly and scored per the FIRST specification.
//! CVSS v4.0 vectors are parsed and checked here; their scoring (a macrovector table) is not
//! implemented yet, so a v4.0 vector carries no computed score.

use std::collections::HashMap;

use crate::VulnError;

/// A parsed CVSS vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Cvss {
    pub version: &'static str,
    pub vector: String,
    /// Base score for v3.x; `None` for v4.0.
    pub base_score: Option<f64>,
    /// Exploitability sub-score (v3.x), the input to the exploitability axis of risk rating.
    pub exploitability: Option<f64>,
}

impl Cvss {
    /// Qualitative severity from the base score (FIRST v3.1 table).
    pub fn severity(&self) -> Option<&'static str> {
        self.base_score.map(|s| match s {
            s if s <= 0.0 => "none",
            s if s < 4.0 => "low",
            s if s < 7.0 => "medium",
            s if s < 9.0 => "high",
            _ => "critical",
        })
    }
}

fn bad(v: &str, why: &str) -> VulnError {
    VulnError::BadRange(format!("CVSS vector {v:?}: {why}"))
}

/// CVSS 3.1 Roundup: the smallest number with one decimal that is >= the input, computed on
/// integers so that floating-point noise cannot round 4.000001 up to 4.1.
fn roundup(x: f64) -> f64 {
    let i = (x * 100_000.0).round() as i64;
    if i % 10_000 == 0 {
        i as f64 / 100_000.0
    } else {
        ((i / 10_000) + 1) as f64 / 10.0
    }
}

pub fn parse(vector: &str) -> Result<Cvss, VulnError> {
    let v = vector.trim();
    let mut parts = v.split('/');
    let head = parts.next().unwrap_or("");
    let version: &'static str = match head {
        "CVSS:3.0" => "3.0",
        "CVSS:3.1" => "3.1",
        "CVSS:4.0" => "4.0",
        _ => return Err(bad(v, "must start with CVSS:3.0, CVSS:3.1 or CVSS:4.0")),
    };
    let mut m: HashMap<&str, &str> = HashMap::new();
    for p in parts {
        let (k, val) = p
            .split_once(':')
            .ok_or_else(|| bad(v, "metric without ':'"))?;
        if m.insert(k, val).is_some() {
            return Err(bad(v, "metric repeated"));
        }
    }
    let get = |k: &str, allowed: &[&str]| -> Result<String, VulnError> {
        let val = m
            .get(k)
            .ok_or_else(|| bad(v, &format!("missing base metric {k}")))?;
        if allowed.contains(val) {
            Ok((*val).to_owned())
        } else {
            Err(bad(v, &format!("{k}:{val} is not allowed")))
        }
    };
    if version == "4.0" {
        for (k, allowed) in [
            ("AV", &["N", "A", "L", "P"][..]),
            ("AC", &["L", "H"]),
            ("AT", &["N", "P"]),
            ("PR", &["N", "L", "H"]),
            ("UI", &["N", "P", "A"]),
            ("VC", &["H", "L", "N"]),
            ("VI", &["H", "L", "N"]),
            ("VA", &["H", "L", "N"]),
            ("SC", &["H", "L", "N"]),
            ("SI", &["H", "L", "N"]),
            ("SA", &["H", "L", "N"]),
        ] {
            get(k, allowed)?;
        }
        return Ok(Cvss {
            version,
            vector: v.to_owned(),
            base_score: None,
            exploitability: None,
        });
    }
    let av = match get("AV", &["N", "A", "L", "P"])?.as_str() {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        _ => 0.2,
    };
    let ac = match get("AC", &["L", "H"])?.as_str() {
        "L" => 0.77,
        _ => 0.44,
    };
    let scope_changed = get("S", &["U", "C"])? == "C";
    let pr = match (get("PR", &["N", "L", "H"])?.as_str(), scope_changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        (_, false) => 0.27,
        (_, true) => 0.5,
    };
    let ui = match get("UI", &["N", "R"])?.as_str() {
        "N" => 0.85,
        _ => 0.62,
    };
    let cia = |k: &str| -> Result<f64, VulnError> {
        Ok(match get(k, &["H", "L", "N"])?.as_str() {
            "H" => 0.56,
            "L" => 0.22,
            _ => 0.0,
        })
    };
    let (c, i, a) = (cia("C")?, cia("I")?, cia("A")?);
    let iss = 1.0 - (1.0 - c) * (1.0 - i) * (1.0 - a);
    let impact = if scope_changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02).powi(15)
    } else {
        6.42 * iss
    };
    let exploitability = 8.22 * av * ac * pr * ui;
    let base = if impact <= 0.0 {
        0.0
    } else if scope_changed {
        roundup((1.08 * (impact + exploitability)).min(10.0))
    } else {
        roundup((impact + exploitability).min(10.0))
    };
    Ok(Cvss {
        version,
        vector: v.to_owned(),
        base_score: Some(base),
        exploitability: Some((exploitability * 10.0).round() / 10.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_scores() {
        // Scores as published by NVD for these vectors.
        for (v, score) in [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
            ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
            ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
            ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
            ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N", 0.0),
        ] {
            let c = parse(v).unwrap();
            assert_eq!(c.base_score, Some(score), "{v}");
        }
        assert_eq!(
            parse("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
                .unwrap()
                .severity(),
            Some("critical")
        );
        let v4 = parse("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N").unwrap();
        assert_eq!((v4.version, v4.base_score), ("4.0", None));
        for bad in [
            "",
            "CVSS:2.0/AV:N",
            "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:3.1/AV:N/AC:L",
            "CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
