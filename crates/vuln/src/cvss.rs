//! CVSS vectors, parsed strictly and scored per the FIRST specifications: v3.0/v3.1 base scores,
//! and v4.0 scores (CVSS-B, CVSS-BT, CVSS-BE or CVSS-BTE, depending on which metric groups the
//! vector sets) through the v4.0 macrovector table and severity-distance interpolation.

use std::collections::HashMap;

use crate::VulnError;

/// A parsed CVSS vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Cvss {
    pub version: &'static str,
    pub vector: String,
    /// The score: for v3.x the base score; for v4.0 the score of every metric the vector sets
    /// (threat and environmental ones included, see [`Cvss::nomenclature`]).
    pub base_score: Option<f64>,
    /// Exploitability sub-score (v3.x), the input to the exploitability axis of risk rating.
    /// v4.0 has no such sub-score.
    pub exploitability: Option<f64>,
}

impl Cvss {
    /// Qualitative severity from the score. The v3.1 and v4.0 qualitative severity rating scales
    /// have the same bands: none 0.0, low 0.1-3.9, medium 4.0-6.9, high 7.0-8.9, critical
    /// 9.0-10.0.
    pub fn severity(&self) -> Option<&'static str> {
        self.base_score.map(|s| match s {
            s if s <= 0.0 => "none",
            s if s < 4.0 => "low",
            s if s < 7.0 => "medium",
            s if s < 9.0 => "high",
            _ => "critical",
        })
    }

    /// What a v4.0 score measures, as the specification asks it to be labelled: "CVSS-B" (base
    /// metrics only), "CVSS-BT" (with threat), "CVSS-BE" (with environmental) or "CVSS-BTE".
    /// A metric set to `X` counts as absent. `None` for v3.x.
    pub fn nomenclature(&self) -> Option<&'static str> {
        if self.version != "4.0" {
            return None;
        }
        let (mut threat, mut env) = (false, false);
        for p in self.vector.split('/').skip(1) {
            let Some((k, v)) = p.split_once(':') else {
                continue;
            };
            let Some(i) = V4_METRICS.iter().position(|(m, _)| *m == k) else {
                continue;
            };
            if v != "X" {
                threat |= i == E;
                env |= (CR..MODIFIED + SA + 1).contains(&i);
            }
        }
        Some(match (threat, env) {
            (false, false) => "CVSS-B",
            (true, false) => "CVSS-BT",
            (false, true) => "CVSS-BE",
            (true, true) => "CVSS-BTE",
        })
    }
}

fn bad(v: &str, why: &str) -> VulnError {
    VulnError::BadCvss {
        // Vectors come from advisory feeds: keep a hostile one from flooding logs.
        vector: v.chars().take(200).collect(),
        reason: why.to_owned(),
    }
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

/// Parses a CVSS v3.0, v3.1 or v4.0 vector and computes its score.
pub fn parse(vector: &str) -> Result<Cvss, VulnError> {
    let v = vector.trim();
    let mut parts = v.split('/');
    let head = parts.next().unwrap_or("");
    let version: &'static str = match head {
        "CVSS:3.0" => "3.0",
        "CVSS:3.1" => "3.1",
        "CVSS:4.0" => return parse_v4(v),
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

// --- CVSS v4.0 ---------------------------------------------------------------------------------
//
// Scoring follows the FIRST CVSS v4.0 specification ("CVSS v4.0 Scoring") and its reference
// implementation, the FIRST calculator (github.com/FIRSTdotorg/cvss-v4-calculator, from Red Hat's
// github.com/RedHatProductSecurity/cvss-v4-calculator): the metrics fall into six equivalence
// classes EQ1..EQ6, which name a macrovector whose score comes from the table below; the
// vector's score is that score minus the mean, over the EQs that have a lower macrovector, of
// (score drop to the lower macrovector) x (the vector's severity distance from the
// macrovector's highest-severity vector / the macrovector's depth), rounded to one decimal.

/// v4.0 metrics in the order the specification's "Vector String" section requires, with
/// their allowed values. The first eleven (Base) are mandatory; a missing optional one is `X`.
const V4_METRICS: [(&str, &[&str]); 32] = [
    ("AV", &["N", "A", "L", "P"]),
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
    ("E", &["X", "A", "P", "U"]),
    ("CR", &["X", "H", "M", "L"]),
    ("IR", &["X", "H", "M", "L"]),
    ("AR", &["X", "H", "M", "L"]),
    ("MAV", &["X", "N", "A", "L", "P"]),
    ("MAC", &["X", "L", "H"]),
    ("MAT", &["X", "N", "P"]),
    ("MPR", &["X", "N", "L", "H"]),
    ("MUI", &["X", "N", "P", "A"]),
    ("MVC", &["X", "H", "L", "N"]),
    ("MVI", &["X", "H", "L", "N"]),
    ("MVA", &["X", "H", "L", "N"]),
    ("MSC", &["X", "H", "L", "N"]),
    // Safety (S) exists only for the modified subsequent-system integrity and availability.
    ("MSI", &["X", "S", "H", "L", "N"]),
    ("MSA", &["X", "S", "H", "L", "N"]),
    // Supplemental metrics: validated, but they do not change the score.
    ("S", &["X", "N", "P"]),
    ("AU", &["X", "N", "Y"]),
    ("R", &["X", "A", "U", "I"]),
    ("V", &["X", "D", "C"]),
    ("RE", &["X", "L", "M", "H"]),
    ("U", &["X", "Clear", "Green", "Amber", "Red"]),
];
const MANDATORY: usize = 11;

// Positions in V4_METRICS.
const AV: usize = 0;
const AC: usize = 1;
const AT: usize = 2;
const PR: usize = 3;
const UI: usize = 4;
const VC: usize = 5;
const VI: usize = 6;
const VA: usize = 7;
const SC: usize = 8;
const SI: usize = 9;
const SA: usize = 10;
const E: usize = 11;
const CR: usize = 12;
const IR: usize = 13;
const AR: usize = 14;
/// MAV..MSA sit at their base metric's position plus this.
const MODIFIED: usize = 15;

/// Severity level of a metric value, highest severity first, in steps of the specification's
/// severity-distance unit (0.1). SC/SI/SA start at H = 1 so that MSI:S/MSA:S (Safety) can be 0.
fn v4_level(metric: usize, value: &str) -> i64 {
    let order: &[&str] = match metric {
        AV => &["N", "A", "L", "P"],
        PR => &["N", "L", "H"],
        UI => &["N", "P", "A"],
        AC => &["L", "H"],
        AT => &["N", "P"],
        VC | VI | VA => &["H", "L", "N"],
        SC | SI | SA => &["S", "H", "L", "N"],
        _ => &["H", "M", "L"], // CR, IR, AR
    };
    // Values were checked against V4_METRICS when parsing, so the position always exists.
    order.iter().position(|o| *o == value).unwrap_or(0) as i64
}

/// A v4.0 vector's values by position in V4_METRICS (`X` where the vector leaves a metric out).
struct V4<'a>([&'a str; 32]);

impl<'a> V4<'a> {
    fn parse(v: &'a str) -> Result<Self, VulnError> {
        let mut vals = ["X"; 32];
        let mut seen = [false; 32];
        // Position in V4_METRICS from which the next metric may come.
        let mut next = 0;
        for p in v.split('/').skip(1) {
            let (k, val) = p
                .split_once(':')
                .ok_or_else(|| bad(v, &format!("{p:?} is not METRIC:VALUE")))?;
            let i = V4_METRICS
                .iter()
                .position(|(m, _)| *m == k)
                .ok_or_else(|| bad(v, &format!("unknown metric {k:?}")))?;
            if seen[i] {
                return Err(bad(v, &format!("metric {k} repeated")));
            }
            if i < next {
                return Err(bad(
                    v,
                    &format!(
                        "metric {k} after {}: v4.0 fixes the order of metrics",
                        V4_METRICS[next - 1].0
                    ),
                ));
            }
            if let Some((m, _)) = V4_METRICS[next..i.min(MANDATORY).max(next)].first() {
                let later = v.split('/').any(|p| p.split(':').next() == Some(*m));
                return Err(bad(
                    v,
                    &if later {
                        format!("metric {m} out of order: v4.0 fixes the order of metrics")
                    } else {
                        format!("missing base metric {m}")
                    },
                ));
            }
            if !V4_METRICS[i].1.contains(&val) {
                return Err(bad(v, &format!("{k}:{val} is not allowed")));
            }
            vals[i] = val;
            seen[i] = true;
            next = i + 1;
        }
        if next < MANDATORY {
            return Err(bad(
                v,
                &format!("missing base metric {}", V4_METRICS[next].0),
            ));
        }
        Ok(V4(vals))
    }

    /// The value scoring uses: a modified base metric (MAV...) overrides its base metric, and an
    /// unset E, CR, IR or AR takes its worst case (E:A, xR:H), as the specification requires.
    fn get(&self, i: usize) -> &'a str {
        let v = self.0[i];
        match i {
            E if v == "X" => "A",
            CR | IR | AR if v == "X" => "H",
            _ if i < MANDATORY && self.0[i + MODIFIED] != "X" => self.0[i + MODIFIED],
            _ => v,
        }
    }

    fn macrovector(&self) -> [u8; 6] {
        let h = |i| self.get(i) == "H";
        let n = |i| self.get(i) == "N";
        let eq1 = if n(AV) && n(PR) && n(UI) {
            0
        } else if (n(AV) || n(PR) || n(UI)) && self.get(AV) != "P" {
            1
        } else {
            2
        };
        let eq2 = if self.get(AC) == "L" && self.get(AT) == "N" {
            0
        } else {
            1
        };
        let eq3 = if h(VC) && h(VI) {
            0
        } else if h(VC) || h(VI) || h(VA) {
            1
        } else {
            2
        };
        let eq4 = if self.0[MODIFIED + SI] == "S" || self.0[MODIFIED + SA] == "S" {
            0
        } else if h(SC) || h(SI) || h(SA) {
            1
        } else {
            2
        };
        let eq5 = match self.get(E) {
            "A" => 0,
            "P" => 1,
            _ => 2,
        };
        let eq6 = if (h(CR) && h(VC)) || (h(IR) && h(VI)) || (h(AR) && h(VA)) {
            0
        } else {
            1
        };
        [eq1, eq2, eq3, eq4, eq5, eq6]
    }
}

/// Macrovector scores (EQ1..EQ6 -> score), all 270 entries of the specification's table
/// (`cvss_lookup.js` of the FIRST calculator), sorted by macrovector.
#[rustfmt::skip]
const MACROVECTOR_SCORES: [(&str, f64); 270] = [
    ("000000", 10.0), ("000001", 9.9), ("000010", 9.8), ("000011", 9.5), ("000020", 9.5),
    ("000021", 9.2), ("000100", 10.0), ("000101", 9.6), ("000110", 9.3), ("000111", 8.7),
    ("000120", 9.1), ("000121", 8.1), ("000200", 9.3), ("000201", 9.0), ("000210", 8.9),
    ("000211", 8.0), ("000220", 8.1), ("000221", 6.8), ("001000", 9.8), ("001001", 9.5),
    ("001010", 9.5), ("001011", 9.2), ("001020", 9.0), ("001021", 8.4), ("001100", 9.3),
    ("001101", 9.2), ("001110", 8.9), ("001111", 8.1), ("001120", 8.1), ("001121", 6.5),
    ("001200", 8.8), ("001201", 8.0), ("001210", 7.8), ("001211", 7.0), ("001220", 6.9),
    ("001221", 4.8), ("002001", 9.2), ("002011", 8.2), ("002021", 7.2), ("002101", 7.9),
    ("002111", 6.9), ("002121", 5.0), ("002201", 6.9), ("002211", 5.5), ("002221", 2.7),
    ("010000", 9.9), ("010001", 9.7), ("010010", 9.5), ("010011", 9.2), ("010020", 9.2),
    ("010021", 8.5), ("010100", 9.5), ("010101", 9.1), ("010110", 9.0), ("010111", 8.3),
    ("010120", 8.4), ("010121", 7.1), ("010200", 9.2), ("010201", 8.1), ("010210", 8.2),
    ("010211", 7.1), ("010220", 7.2), ("010221", 5.3), ("011000", 9.5), ("011001", 9.3),
    ("011010", 9.2), ("011011", 8.5), ("011020", 8.5), ("011021", 7.3), ("011100", 9.2),
    ("011101", 8.2), ("011110", 8.0), ("011111", 7.2), ("011120", 7.0), ("011121", 5.9),
    ("011200", 8.4), ("011201", 7.0), ("011210", 7.1), ("011211", 5.2), ("011220", 5.0),
    ("011221", 3.0), ("012001", 8.6), ("012011", 7.5), ("012021", 5.2), ("012101", 7.1),
    ("012111", 5.2), ("012121", 2.9), ("012201", 6.3), ("012211", 2.9), ("012221", 1.7),
    ("100000", 9.8), ("100001", 9.5), ("100010", 9.4), ("100011", 8.7), ("100020", 9.1),
    ("100021", 8.1), ("100100", 9.4), ("100101", 8.9), ("100110", 8.6), ("100111", 7.4),
    ("100120", 7.7), ("100121", 6.4), ("100200", 8.7), ("100201", 7.5), ("100210", 7.4),
    ("100211", 6.3), ("100220", 6.3), ("100221", 4.9), ("101000", 9.4), ("101001", 8.9),
    ("101010", 8.8), ("101011", 7.7), ("101020", 7.6), ("101021", 6.7), ("101100", 8.6),
    ("101101", 7.6), ("101110", 7.4), ("101111", 5.8), ("101120", 5.9), ("101121", 5.0),
    ("101200", 7.2), ("101201", 5.7), ("101210", 5.7), ("101211", 5.2), ("101220", 5.2),
    ("101221", 2.5), ("102001", 8.3), ("102011", 7.0), ("102021", 5.4), ("102101", 6.5),
    ("102111", 5.8), ("102121", 2.6), ("102201", 5.3), ("102211", 2.1), ("102221", 1.3),
    ("110000", 9.5), ("110001", 9.0), ("110010", 8.8), ("110011", 7.6), ("110020", 7.6),
    ("110021", 7.0), ("110100", 9.0), ("110101", 7.7), ("110110", 7.5), ("110111", 6.2),
    ("110120", 6.1), ("110121", 5.3), ("110200", 7.7), ("110201", 6.6), ("110210", 6.8),
    ("110211", 5.9), ("110220", 5.2), ("110221", 3.0), ("111000", 8.9), ("111001", 7.8),
    ("111010", 7.6), ("111011", 6.7), ("111020", 6.2), ("111021", 5.8), ("111100", 7.4),
    ("111101", 5.9), ("111110", 5.7), ("111111", 5.7), ("111120", 4.7), ("111121", 2.3),
    ("111200", 6.1), ("111201", 5.2), ("111210", 5.7), ("111211", 2.9), ("111220", 2.4),
    ("111221", 1.6), ("112001", 7.1), ("112011", 5.9), ("112021", 3.0), ("112101", 5.8),
    ("112111", 2.6), ("112121", 1.5), ("112201", 2.3), ("112211", 1.3), ("112221", 0.6),
    ("200000", 9.3), ("200001", 8.7), ("200010", 8.6), ("200011", 7.2), ("200020", 7.5),
    ("200021", 5.8), ("200100", 8.6), ("200101", 7.4), ("200110", 7.4), ("200111", 6.1),
    ("200120", 5.6), ("200121", 3.4), ("200200", 7.0), ("200201", 5.4), ("200210", 5.2),
    ("200211", 4.0), ("200220", 4.0), ("200221", 2.2), ("201000", 8.5), ("201001", 7.5),
    ("201010", 7.4), ("201011", 5.5), ("201020", 6.2), ("201021", 5.1), ("201100", 7.2),
    ("201101", 5.7), ("201110", 5.5), ("201111", 4.1), ("201120", 4.6), ("201121", 1.9),
    ("201200", 5.3), ("201201", 3.6), ("201210", 3.4), ("201211", 1.9), ("201220", 1.9),
    ("201221", 0.8), ("202001", 6.4), ("202011", 5.1), ("202021", 2.0), ("202101", 4.7),
    ("202111", 2.1), ("202121", 1.1), ("202201", 2.4), ("202211", 0.9), ("202221", 0.4),
    ("210000", 8.8), ("210001", 7.5), ("210010", 7.3), ("210011", 5.3), ("210020", 6.0),
    ("210021", 5.0), ("210100", 7.3), ("210101", 5.5), ("210110", 5.9), ("210111", 4.0),
    ("210120", 4.1), ("210121", 2.0), ("210200", 5.4), ("210201", 4.3), ("210210", 4.5),
    ("210211", 2.2), ("210220", 2.0), ("210221", 1.1), ("211000", 7.5), ("211001", 5.5),
    ("211010", 5.8), ("211011", 4.5), ("211020", 4.0), ("211021", 2.1), ("211100", 6.1),
    ("211101", 5.1), ("211110", 4.8), ("211111", 1.8), ("211120", 2.0), ("211121", 0.9),
    ("211200", 4.6), ("211201", 1.8), ("211210", 1.7), ("211211", 0.7), ("211220", 0.8),
    ("211221", 0.2), ("212001", 5.3), ("212011", 2.4), ("212021", 1.4), ("212101", 2.4),
    ("212111", 1.2), ("212121", 0.5), ("212201", 1.0), ("212211", 0.3), ("212221", 0.1),
];

fn macrovector_score(mv: [u8; 6]) -> Option<f64> {
    let key = mv.map(|d| b'0' + d);
    MACROVECTOR_SCORES
        .binary_search_by(|(k, _)| k.as_bytes().cmp(&key[..]))
        .ok()
        .map(|i| MACROVECTOR_SCORES[i].1)
}

// Highest-severity vectors of each EQ level (the specification's `max_composed`), as values of
// [AV, PR, UI], [AC, AT], [VC, VI, VA, CR, IR, AR] (EQ3 and EQ6 together) and [SC, SI, SA].
// EQ5's is E itself, at distance 0.
const EQ1_MAX: [&[[&str; 3]]; 3] = [
    &[["N", "N", "N"]],
    &[["A", "N", "N"], ["N", "L", "N"], ["N", "N", "P"]],
    &[["P", "N", "N"], ["A", "L", "P"]],
];
const EQ2_MAX: [&[[&str; 2]]; 2] = [&[["L", "N"]], &[["H", "N"], ["L", "P"]]];
const EQ3EQ6_MAX: [[&[[&str; 6]]; 2]; 3] = [
    [
        &[["H", "H", "H", "H", "H", "H"]],
        &[
            ["H", "H", "L", "M", "M", "H"],
            ["H", "H", "H", "M", "M", "M"],
        ],
    ],
    [
        &[
            ["L", "H", "H", "H", "H", "H"],
            ["H", "L", "H", "H", "H", "H"],
        ],
        &[
            ["L", "H", "L", "H", "M", "H"],
            ["L", "H", "H", "H", "M", "M"],
            ["H", "L", "H", "M", "H", "M"],
            ["H", "L", "L", "M", "H", "H"],
            ["L", "L", "H", "H", "H", "M"],
        ],
    ],
    // EQ3 2 with EQ6 0 cannot happen: EQ6 0 needs a High VC, VI or VA.
    [&[], &[["L", "L", "L", "H", "H", "H"]]],
];
const EQ4_MAX: [[&str; 3]; 3] = [["H", "S", "S"], ["H", "H", "H"], ["L", "L", "L"]];

// Depth of each EQ level's macrovectors in severity-distance steps (`max_severity`).
const EQ1_DEPTH: [i64; 3] = [1, 4, 5];
const EQ2_DEPTH: [i64; 2] = [1, 2];
// EQ3 2 with EQ6 0 cannot happen; its 1 only keeps the divisor below non-zero.
const EQ3EQ6_DEPTH: [[i64; 2]; 3] = [[7, 6], [8, 8], [1, 10]];
const EQ4_DEPTH: [i64; 3] = [6, 5, 4];

/// The metrics of a composed highest-severity vector, in the order EQ1_MAX..EQ4_MAX give them.
const MAX_ORDER: [usize; 14] = [AV, PR, UI, AC, AT, VC, VI, VA, CR, IR, AR, SC, SI, SA];

/// The v4.0 score in tenths, computed exactly: scores, severity distances and depths are all
/// multiples of 0.1, so the interpolated score is a fraction of integers and its rounding half
/// up to one decimal needs no floating point. Floating point is what the reference calculator
/// first used, and its noise (8.6 - 7.2 = 1.3999999999999995) rounded some x.x5 ties down;
/// Red Hat's calculator and library fixed that in 2024 (RedHatProductSecurity/
/// cvss-v4-calculator#67, RedHatProductSecurity/cvss#65; FIRSTdotorg/cvss-v4-calculator#4
/// backports it), and exact arithmetic gives their fixed results.
fn score_v4(m: &V4<'_>) -> Option<i64> {
    if [VC, VI, VA, SC, SI, SA].iter().all(|&i| m.get(i) == "N") {
        return Some(0);
    }
    let mv = m.macrovector();
    let [eq1, eq2, eq3, eq4, _, eq6] = mv.map(usize::from);
    let tenths = |score: f64| (score * 10.0).round() as i64;
    let value = tenths(macrovector_score(mv)?);
    let lower = |eqs: &[usize]| {
        let mut l = mv;
        for &i in eqs {
            l[i] += 1;
        }
        macrovector_score(l).map(tenths)
    };
    // EQ3 and EQ6 are joint: 00 steps down to 01 or 10 (the higher of the two), 01 and 11 to
    // the next EQ3, 10 to 11; 21 has no lower macrovector.
    let lower_eq3eq6 = match (eq3, eq6) {
        (0, 0) => match (lower(&[5]), lower(&[2])) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        },
        (0, 1) | (1, 1) => lower(&[2]),
        (1, 0) => lower(&[5]),
        _ => lower(&[2, 5]),
    };

    // Severity distances from the first composed highest-severity vector that the scored vector
    // does not exceed in any metric (as the reference does if none qualifies: the last one).
    let mut dist = [0i64; 14];
    let m4 = &EQ4_MAX[eq4];
    'search: for m1 in EQ1_MAX[eq1] {
        for m2 in EQ2_MAX[eq2] {
            for m36 in EQ3EQ6_MAX[eq3][eq6] {
                let max = m1.iter().chain(m2).chain(m36).chain(m4);
                for (k, (&metric, top)) in MAX_ORDER.iter().zip(max).enumerate() {
                    dist[k] = v4_level(metric, m.get(metric)) - v4_level(metric, top);
                }
                if dist.iter().all(|d| *d >= 0) {
                    break 'search;
                }
            }
        }
    }
    let current = [
        dist[0] + dist[1] + dist[2],
        dist[3] + dist[4],
        dist[5] + dist[6] + dist[7] + dist[8] + dist[9] + dist[10],
        dist[11] + dist[12] + dist[13],
    ];
    let depth = [
        EQ1_DEPTH[eq1],
        EQ2_DEPTH[eq2],
        EQ3EQ6_DEPTH[eq3][eq6],
        EQ4_DEPTH[eq4],
    ];
    let lowers = [lower(&[0]), lower(&[1]), lower_eq3eq6, lower(&[3])];
    // mean = sum over EQs with a lower macrovector of (value - lower) * current / depth, divided
    // by how many there are; EQ5 (E) counts towards that number with a proportion of 0.
    let common: i64 = depth.iter().product();
    let mut sum = 0;
    let mut existing = 0;
    for k in 0..4 {
        if let Some(l) = lowers[k] {
            existing += 1;
            sum += (value - l) * current[k] * (common / depth[k]);
        }
    }
    if lower(&[4]).is_some() {
        existing += 1;
    }
    // score = value - sum / (common * existing), as one fraction, clamped to 0..=10.
    let den = common * i64::max(existing, 1);
    let num = (value * den - sum).clamp(0, 100 * den);
    // Round half up (num >= 0, so integer division floors).
    Some((2 * num + den) / (2 * den))
}

fn parse_v4(v: &str) -> Result<Cvss, VulnError> {
    let m = V4::parse(v)?;
    let tenths = score_v4(&m).ok_or_else(|| bad(v, "no macrovector score"))?;
    Ok(Cvss {
        version: "4.0",
        vector: v.to_owned(),
        base_score: Some(tenths as f64 / 10.0),
        exploitability: None,
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

    /// Scores of the FIRST v4.0 calculator. Sources:
    /// [RH] RedHatProductSecurity/cvss, tests/vectors_simple4, vectors_threat4,
    ///      vectors_security4 and tests/test_cvss4.py (the library's vectors are checked against
    ///      the FIRST/Red Hat calculator, github.com/RedHatProductSecurity/cvss-v4-calculator);
    /// [EX] the CVSS v4.0 examples as scored in haskell/security-advisories,
    ///      code/cvss/test/Spec.hs (its environmental ones list CR/IR/AR after the M* metrics;
    ///      they are given here in the specification's order, which does not change the score);
    /// [TIE] RedHatProductSecurity/cvss-v4-calculator issue #66 / PR #67: exactly 8.55, which
    ///      the calculator printed as 8.5 before its 2024 rounding fix.
    const V4_SCORES: [(&str, f64); 24] = [
        // Base metrics only (CVSS-B).
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:H/VA:L/SC:N/SI:H/SA:L",
            9.2,
        ), // RH
        (
            "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:A/VC:N/VI:N/VA:N/SC:L/SI:N/SA:N",
            2.1,
        ), // RH
        (
            "CVSS:4.0/AV:N/AC:H/AT:N/PR:H/UI:A/VC:N/VI:N/VA:N/SC:N/SI:H/SA:N",
            4.0,
        ), // RH
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N",
            8.7,
        ), // RH
        (
            "CVSS:4.0/AV:L/AC:L/AT:P/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            7.3,
        ), // EX
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:P/VC:H/VI:L/VA:N/SC:H/SI:H/SA:H",
            8.6,
        ), // TIE
        // Supplemental metrics do not change the score.
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/S:P/AU:Y/V:C/RE:L",
            9.4,
        ), // EX
        (
            "CVSS:4.0/AV:L/AC:L/AT:N/PR:H/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/R:I",
            9.3,
        ), // EX
        // Threat (CVSS-BT): E:A is the default, P and U lower the score.
        (
            "CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/E:A",
            7.3,
        ), // RH
        (
            "CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/E:P",
            5.9,
        ), // RH
        (
            "CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/E:U",
            4.1,
        ), // RH
        (
            "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:P/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:U",
            5.2,
        ), // EX
        // Security requirements (CVSS-BE).
        (
            "CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/CR:M/IR:M/AR:M",
            5.5,
        ), // RH
        (
            "CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/CR:L/IR:L/AR:L",
            5.4,
        ), // RH
        (
            "CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/CR:H/IR:M/AR:L",
            7.1,
        ), // RH
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N/AR:L",
            7.9,
        ), // RH
        // Modified base metrics, including Safety (MSI:S / MSA:S).
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N/MSI:H",
            7.7,
        ), // RH: a modified impact lifts an all-None base off 0.0
        (
            "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:L/VA:L/SC:N/SI:N/SA:N/CR:H/IR:L/AR:L/MAV:N/MAC:H/MVC:H/MVI:L/MVA:L",
            8.1,
        ), // EX
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/E:P/CR:L/IR:H/AR:L/MAV:L/MAC:H/MAT:N/MPR:N/MUI:N/MVC:N/MVI:H/MVA:L/MSC:N/MSI:S/MSA:L",
            7.0,
        ), // EX
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/E:P/CR:L/IR:H/AR:H/MAV:A/MAC:H/MAT:N/MPR:L/MUI:N/MVC:L/MVI:H/MVA:H/MSC:L/MSI:S/MSA:S",
            7.4,
        ), // EX
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/E:P/CR:M/IR:H/AR:M/MAV:N/MAC:H/MAT:N/MPR:L/MUI:N/MVC:H/MVI:H/MVA:H/MSC:H/MSI:S/MSA:H",
            8.7,
        ), // EX
        (
            "CVSS:4.0/AV:A/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:N/SC:N/SI:N/SA:N/MSI:S/S:P",
            9.7,
        ), // EX
        // No impact at all scores 0.0 whatever else is set.
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N/E:A",
            0.0,
        ), // RH
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N/CR:H/IR:H/AR:H",
            0.0,
        ), // RH
    ];

    #[test]
    fn v4_scores_match_the_reference_calculator() {
        for (v, score) in V4_SCORES {
            let c = parse(v).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!((c.version, c.base_score), ("4.0", Some(score)), "{v}");
            assert_eq!(c.exploitability, None);
        }
    }

    #[test]
    fn v4_macrovectors_and_table() {
        // Every macrovector the EQ rules can produce has a score, and none other is listed:
        // EQ3 2 (no High VC/VI/VA) cannot come with EQ6 0.
        let mut n = 0;
        for mv in 0..324u32 {
            let d = [
                mv / 108,
                mv / 54 % 2,
                mv / 18 % 3,
                mv / 6 % 3,
                mv / 2 % 3,
                mv % 2,
            ];
            let mv: [u8; 6] = d.map(|x| x as u8);
            let possible = !(mv[2] == 2 && mv[5] == 0);
            assert_eq!(macrovector_score(mv).is_some(), possible, "{mv:?}");
            n += usize::from(possible);
        }
        assert_eq!(n, MACROVECTOR_SCORES.len());
        assert!(MACROVECTOR_SCORES.windows(2).all(|w| w[0].0 < w[1].0));
        let m =
            V4::parse("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H").unwrap();
        assert_eq!(m.macrovector(), [0, 0, 0, 1, 0, 0]);
        assert_eq!(
            parse("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H")
                .unwrap()
                .base_score,
            Some(10.0)
        );
        // MSI:S moves EQ4 to 0; E:X/CR:X count as their worst cases (E:A, CR:H).
        let m = V4::parse(
            "CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:H/VI:L/VA:L/SC:N/SI:N/SA:N/E:X/CR:X/MSI:S",
        )
        .unwrap();
        assert_eq!(m.macrovector(), [2, 1, 1, 0, 0, 0]);
    }

    #[test]
    fn v4_severity_and_nomenclature() {
        let sev = |v: &str| parse(v).unwrap().severity();
        let base = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N";
        assert_eq!(
            sev(&format!("{base}/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N")),
            Some("critical")
        ); // 9.3
        assert_eq!(
            sev(&format!("{base}/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N")),
            Some("high")
        ); // 8.7
        assert_eq!(
            sev(&format!("{base}/VC:L/VI:L/VA:L/SC:N/SI:N/SA:N")),
            Some("medium")
        ); // 6.9
        assert_eq!(
            sev(&format!("{base}/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N")),
            Some("none")
        );
        assert_eq!(
            sev("CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:A/VC:N/VI:N/VA:N/SC:L/SI:N/SA:N"),
            Some("low") // 2.1
        );
        let nom = |v: &str| parse(v).unwrap().nomenclature();
        let b = format!("{base}/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N");
        assert_eq!(nom(&b), Some("CVSS-B"));
        assert_eq!(nom(&format!("{b}/E:X/CR:X/U:Red")), Some("CVSS-B"));
        assert_eq!(nom(&format!("{b}/E:U")), Some("CVSS-BT"));
        assert_eq!(nom(&format!("{b}/MSI:S")), Some("CVSS-BE"));
        assert_eq!(nom(&format!("{b}/E:P/AR:L")), Some("CVSS-BTE"));
        assert_eq!(nom("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), None);
    }

    #[test]
    fn v4_refuses_malformed_vectors() {
        let b = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N";
        for (v, why) in [
            ("CVSS:4.0".to_owned(), "missing base metric AV"),
            (b.replace("/AT:N", ""), "missing base metric AT"),
            (b.replace("/SA:N", ""), "missing base metric SA"),
            (b.replace("/PR:N", "") + "/E:A", "missing base metric PR"),
            (format!("{b}/SA:N"), "metric SA repeated"),
            (format!("{b}/E:A/E:X"), "metric E repeated"),
            (
                b.replace("AV:N/AC:L", "AC:L/AV:N"),
                "metric AV out of order",
            ),
            (format!("{b}/CR:H/E:A"), "metric E after CR"),
            (format!("{b}/MAV:N/AR:L"), "metric AR after MAV"),
            (format!("{b}/S:P/MSI:S"), "metric MSI after S"),
            (b.replace("AV:N", "AV:X"), "AV:X is not allowed"),
            (b.replace("SA:N", "SA:S"), "SA:S is not allowed"),
            (format!("{b}/MSC:S"), "MSC:S is not allowed"),
            (format!("{b}/U:RED"), "U:RED is not allowed"),
            (format!("{b}/E:a"), "E:a is not allowed"),
            (format!("{b}/JJ:H"), "unknown metric \"JJ\""),
            (format!("{b}/"), "\"\" is not METRIC:VALUE"),
            (format!("{b}/E"), "\"E\" is not METRIC:VALUE"),
            ("CVSS:4.1/AV:N".to_owned(), "must start with"),
        ] {
            match parse(&v) {
                Err(VulnError::BadCvss { reason, .. }) => {
                    assert!(reason.contains(why), "{v}: {reason:?}, wanted {why:?}")
                }
                other => panic!("{v}: {other:?}"),
            }
        }
        // Optional metrics may be left out or given as X anywhere in their place.
        assert!(parse(&format!("{b}/E:X/CR:X/IR:X/AR:X/MAV:X/MSA:X/S:X/U:X")).is_ok());
    }
}
