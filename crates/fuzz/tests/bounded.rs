//! Bounded property tests of every fuzz target, run by plain `cargo test`: a few thousand
//! cases per target, each either arbitrary bytes or a seed from `corpus/<target>/` with a
//! random list of byte-level mutations (flip, set, insert, delete, duplicate a range,
//! truncate, splice in a range of another seed). Also: every seed and every regression
//! fixture (`regressions/<target>/<bug>`) runs through its target, and the list of targets
//! matches the corpus directories and the cargo-fuzz binaries in `/fuzz`.
//!
//! `MEDSEC_FUZZ_CASES=<n>` sets the number of cases per target (default: each target's own
//! count below, chosen so the whole file stays well under a minute in debug on one core);
//! `MEDSEC_FUZZ_SEED=<n>` draws other cases (default 0, so every run draws the same ones).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use medsec_fuzz::{TARGETS, target};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir`, sorted by name; none if it does not exist.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = rd
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read fixture"))
        })
        .collect();
    out.sort();
    out
}

fn subdirs(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.expect("dir entry").path())
                .filter(|p| p.is_dir())
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn seeds(name: &str) -> Vec<Vec<u8>> {
    files(&crate_dir().join("corpus").join(name))
        .into_iter()
        .map(|(_, b)| b)
        .collect()
}

/// Tokens that parsers of these formats branch on, for insertions.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e999",
    b"18446744073709551616",
    b"\\u0000",
    b"\\ud800",
    b"<",
    b">",
    b"</",
    b"&amp;",
    b"<![CDATA[",
    b"=",
    b"\n",
    b"\r\n",
    b"\t",
    b" ",
    b"\0",
    b"\xff",
    b"\xc3",
    b"-----BEGIN ",
    b"SPDXVersion: SPDX-2.3\n",
    b"[[",
    b"]]",
    b"#",
    b"'''",
    b"\"\"\"",
    b"%",
    b"/",
    b"..",
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Token {
        at: usize,
        token: usize,
    },
    Delete {
        at: usize,
        len: usize,
    },
    Duplicate {
        from: usize,
        len: usize,
        at: usize,
    },
    Truncate {
        at: usize,
    },
    Splice {
        seed: usize,
        from: usize,
        len: usize,
        at: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        3 => (at, 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        2 => (at, any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        2 => (at, prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        3 => (at, 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Token { at, token }),
        2 => (at, 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        2 => (at, 1usize..64, any::<usize>())
            .prop_map(|(from, len, at)| Mutation::Duplicate { from, len, at }),
        1 => at.prop_map(|at| Mutation::Truncate { at }),
        2 => (any::<usize>(), at, 1usize..256, any::<usize>())
            .prop_map(|(seed, from, len, at)| Mutation::Splice { seed, from, len, at }),
    ]
}

/// Applies `m` to `b`; positions wrap around the current length.
fn apply(b: &mut Vec<u8>, m: &Mutation, seeds: &[Vec<u8>]) {
    let pos = |at: usize, n: usize| at % (n + 1);
    match m {
        Mutation::Flip { at, bit } if !b.is_empty() => {
            let i = at % b.len();
            b[i] ^= 1 << bit;
        }
        Mutation::Set { at, byte } if !b.is_empty() => {
            let i = at % b.len();
            b[i] = *byte;
        }
        Mutation::Insert { at, bytes } => {
            let i = pos(*at, b.len());
            b.splice(i..i, bytes.iter().copied());
        }
        Mutation::Token { at, token } => {
            let i = pos(*at, b.len());
            b.splice(i..i, TOKENS[*token].iter().copied());
        }
        Mutation::Delete { at, len } if !b.is_empty() => {
            let i = at % b.len();
            let end = (i + len).min(b.len());
            b.drain(i..end);
        }
        Mutation::Duplicate { from, len, at } if !b.is_empty() => {
            let i = from % b.len();
            let part = b[i..(i + len).min(b.len())].to_vec();
            let j = pos(*at, b.len());
            b.splice(j..j, part);
        }
        Mutation::Truncate { at } => {
            let i = pos(*at, b.len());
            b.truncate(i);
        }
        Mutation::Splice {
            seed,
            from,
            len,
            at,
        } if !seeds.is_empty() => {
            let s = &seeds[seed % seeds.len()];
            if !s.is_empty() {
                let i = from % s.len();
                let part = &s[i..(i + len).min(s.len())];
                let j = pos(*at, b.len());
                b.splice(j..j, part.iter().copied());
            }
        }
        _ => {}
    }
}

/// Arbitrary bytes (1 in 4) or a mutated seed.
fn input(seeds: Arc<Vec<Vec<u8>>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len().max(1);
    let mutated = (0..n, prop::collection::vec(mutation(), 0..8)).prop_map(move |(i, ms)| {
        let mut b = seeds.get(i).cloned().unwrap_or_default();
        for m in &ms {
            apply(&mut b, m, &seeds);
        }
        b
    });
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512),
        3 => mutated,
    ]
}

fn run(name: &str, default_cases: u32) {
    let cases = std::env::var("MEDSEC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let f = target(name).unwrap_or_else(|| panic!("no target {name}"));
    let seeds = Arc::new(seeds(name));
    // A fixed seed by default, so `cargo test` is reproducible (CI never flakes on a case a
    // previous run did not draw); MEDSEC_FUZZ_SEED=<n> explores other cases.
    let seed: u64 = std::env::var("MEDSEC_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(name.len() as u64).to_le_bytes());
    key[16..16 + name.len().min(16)].copy_from_slice(&name.as_bytes()[..name.len().min(16)]);
    let config = Config {
        cases,
        failure_persistence: None,
        // Shrinking re-runs the target; keep a failure's report quick.
        max_shrink_iters: 2048,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &key);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let result = runner.run(&input(seeds), |data| {
        f(&data);
        Ok(())
    });
    if let Err(e) = result {
        panic!(
            "target {name} failed (MEDSEC_FUZZ_SEED={seed}): {e}\nsave the minimal input as crates/fuzz/regressions/{name}/<bug-name> and fix the parser"
        );
    }
}

/// One test per target, with its number of cases (the slow ones run fewer: `tuf_metadata` makes
/// a datastore directory per case). The names must be
/// those of `TARGETS`; `property_tests_cover_every_target` checks it.
macro_rules! targets {
    ($($name:ident: $cases:expr,)*) => {
        const TESTED: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                run(stringify!($name), $cases);
            }
        )*
    };
}

targets! {
    csr: 4000,
    est_csr_body: 4000,
    ocsp_request: 4000,
    sbom_cyclonedx_json: 4000,
    sbom_cyclonedx_xml: 4000,
    sbom_spdx_json: 4000,
    sbom_spdx_tag_value: 4000,
    osv_record: 4000,
    osv_zip: 4000,
    kev_catalog: 4000,
    tuf_metadata: 2000,
    director_instruction: 4000,
    event_batch: 4000,
    syslog_message: 4000,
    syslog_stream: 4000,
    cvd_report: 4000,
    detection_rules: 4000,
    risk_inventory: 4000,
    risk_register: 4000,
    risk_policy: 4000,
    risk_rules: 4000,
    threat_dragon: 4000,
    admin_api_json: 4000,
}

#[test]
fn property_tests_cover_every_target() {
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(TESTED, names.as_slice());
}

#[test]
fn every_target_has_seeds() {
    for (name, _) in TARGETS {
        assert!(
            !seeds(name).is_empty(),
            "corpus/{name}/ is empty or missing"
        );
    }
    let known: BTreeSet<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    let dirs = subdirs(&crate_dir().join("corpus"));
    assert_eq!(dirs, known, "corpus directories and TARGETS differ");
}

#[test]
fn seeds_run_clean() {
    let mut failed = Vec::new();
    for (name, f) in TARGETS {
        for (file, data) in files(&crate_dir().join("corpus").join(name)) {
            if std::panic::catch_unwind(|| f(&data)).is_err() {
                failed.push(format!("corpus/{name}/{file}"));
            }
        }
    }
    assert!(failed.is_empty(), "seeds failing their target: {failed:#?}");
}

#[test]
fn regressions_run_clean() {
    let dir = crate_dir().join("regressions");
    for sub in subdirs(&dir) {
        let f = target(&sub).unwrap_or_else(|| panic!("regressions/{sub}: no such target"));
        for (file, data) in files(&dir.join(&sub)) {
            if file == "README.md" {
                continue;
            }
            let r = std::panic::catch_unwind(|| f(&data));
            assert!(r.is_ok(), "regression regressions/{sub}/{file} fails again");
        }
    }
}

/// The cargo-fuzz project builds one binary per target, each calling the function of the
/// same name.
#[test]
fn cargo_fuzz_targets_match() {
    let fuzz = crate_dir().join("../../fuzz");
    let known: BTreeSet<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    let bins: BTreeSet<String> = files(&fuzz.join("fuzz_targets"))
        .into_iter()
        .map(|(f, body)| {
            let name = f
                .strip_suffix(".rs")
                .expect("fuzz target file is .rs")
                .to_owned();
            let body = String::from_utf8(body).expect("UTF-8");
            assert!(
                body.contains(&format!("medsec_fuzz::{name}(")),
                "fuzz_targets/{f} does not call medsec_fuzz::{name}"
            );
            name
        })
        .collect();
    assert_eq!(bins, known, "fuzz/fuzz_targets and TARGETS differ");
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for name in &known {
        assert!(
            manifest.contains(&format!(
                "name = \"{name}\"\npath = \"fuzz_targets/{name}.rs\""
            )),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
    }
    assert_eq!(
        manifest.matches("[[bin]]").count(),
        known.len(),
        "fuzz/Cargo.toml has extra binaries"
    );
}
