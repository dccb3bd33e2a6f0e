//! The soak harness (`medsec bench soak`) in its bounded form: every server path held at a low
//! rate for a few seconds against a real `medsec serve`, judged by the same rules as the
//! 10-minute runs recorded in bench/RESULTS.md (no errors, nothing late, RSS and descriptors
//! flat, p99 stable).

use std::process::Command;

#[test]
fn every_path_holds_a_low_rate_steadily() {
    let o = Command::new(env!("CARGO_BIN_EXE_medsec"))
        .args(["bench", "soak", "--paths", "est,ocsp,events,tuf"])
        .args(["--seconds", "8", "--window", "2", "--concurrency", "8"])
        .args(["--est-rate", "20", "--ocsp-rate", "200"])
        .args(["--events-rate", "10", "--tuf-rate", "100"])
        .output()
        .expect("running medsec bench soak");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "soak failed:\n{out}\n{err}");
    for label in [
        "### EST simpleenroll",
        "### OCSP",
        "### event ingest",
        "### TUF file serving",
    ] {
        let at = out
            .find(label)
            .unwrap_or_else(|| panic!("no {label} section in:\n{out}"));
        let rest = &out[at + 4..];
        let section = &out[at..at + 4 + rest.find("### ").unwrap_or(rest.len())];
        assert!(section.contains("Verdict: steady"), "{section}");
        // Four windows of two seconds, each with its requests, RSS and descriptor count.
        let rows: Vec<&str> = section
            .lines()
            .filter(|l| l.starts_with("| ") && l.contains(" s |"))
            .collect();
        assert_eq!(rows.len(), 4, "{section}");
        for r in rows {
            let cells: Vec<&str> = r.split('|').map(str::trim).collect();
            assert!(cells[2].parse::<u64>().unwrap() > 0, "no requests in {r}");
            assert_eq!(cells[3], "0", "errors in {r}");
            assert!(cells[7].ends_with("MiB"), "no RSS in {r}");
            assert!(
                cells[8].parse::<u64>().unwrap() > 0,
                "no descriptor count in {r}"
            );
        }
    }
}

#[test]
fn a_zero_rate_is_refused() {
    let o = Command::new(env!("CARGO_BIN_EXE_medsec"))
        .args(["bench", "soak", "--paths", "ocsp", "--ocsp-rate", "0"])
        .output()
        .expect("running medsec bench soak");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("at least 1"));
}
