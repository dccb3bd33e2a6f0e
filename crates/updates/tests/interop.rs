//! Interop with real TUF clients: python-tuf's ngclient and tuf-js refresh from the repository
//! served over loopback and download a release, across a root rotation and key revocations.
//!
//! The peers must be installed (scripts/test.sh does it); a missing peer fails the test with
//! an install hint rather than skipping it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use medsec_core::{DeviceModel, FirmwareVersion};
use medsec_updates::{Image, NewRelease, Repository, RoleRef};
use sha2::{Digest, Sha256};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python_tuf_ready() {
    let ok = Command::new("python3")
        .args(["-c", "import tuf.ngclient"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python-tuf is missing: run `python3 -m pip install 'tuf==7.0.1'` (scripts/test.sh does)"
    );
}

fn tuf_js_dir() -> PathBuf {
    let dir = workspace_root().join("tools/tuf-js-client");
    let ok = Command::new("node")
        .arg("--version")
        .status()
        .is_ok_and(|s| s.success())
        && dir.join("node_modules/tuf-js").is_dir();
    assert!(
        ok,
        "tuf-js is missing: run `npm ci --prefix tools/tuf-js-client` (needs node >= 20.17; \
         scripts/test.sh does)"
    );
    dir
}

/// A client with its own persistent metadata directory, bootstrapped with root v1.
struct Client {
    kind: &'static str,
    metadata_dir: PathBuf,
    download_dir: PathBuf,
}

impl Client {
    fn new(kind: &'static str, base: &Path, root_v1: &[u8]) -> Self {
        let metadata_dir = base.join(format!("{kind}-metadata"));
        let download_dir = base.join(format!("{kind}-downloads"));
        std::fs::create_dir_all(&metadata_dir).unwrap();
        std::fs::create_dir_all(&download_dir).unwrap();
        std::fs::write(metadata_dir.join("root.json"), root_v1).unwrap();
        Client {
            kind,
            metadata_dir,
            download_dir,
        }
    }

    /// Refreshes and downloads `target`; returns the client's JSON report.
    fn fetch(&self, url: &str, target: &str) -> serde_json::Value {
        let md_url = format!("{url}/metadata/");
        let tg_url = format!("{url}/targets/");
        let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
        let mut cmd = match self.kind {
            "python-tuf" => {
                let mut c = Command::new("python3");
                c.arg(tests.join("tuf_client.py"));
                c
            }
            _ => {
                let mut c = Command::new("node");
                c.arg(tests.join("tuf_js_client.mjs"));
                c.env("TUF_JS_DIR", tuf_js_dir());
                c
            }
        };
        let out = cmd
            .args([&md_url, &tg_url])
            .arg(&self.metadata_dir)
            .arg(&self.download_dir)
            .arg(target)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} failed for {target}:\nstdout: {}\nstderr: {}",
            self.kind,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn check(report: &serde_json::Value, target: &str, image: &[u8], sv: u64) {
    // python-tuf also reports the root version it ended up trusting.
    if let Some(v) = report.get("root_version") {
        assert!(v.as_u64().unwrap() >= 1);
    }
    assert_eq!(report["name"], target, "{report}");
    assert_eq!(report["length"], image.len(), "{report}");
    assert_eq!(
        report["sha256"],
        hex::encode(Sha256::digest(image)),
        "{report}"
    );
    assert_eq!(report["custom"]["security_version"], sv, "{report}");
    assert_eq!(report["custom"]["model"], "pump-x2", "{report}");
}

fn scenario(kinds: &[&'static str]) {
    let f = common::fixture();
    let mut repo = Repository::init(&f.repo_dir, f.keys.clone(), common::options()).unwrap();
    let m = DeviceModel::parse("pump-x2").unwrap();
    repo.add_model(&m, 2, 1).unwrap();
    let url = common::serve(f.repo_dir.clone());
    let root_v1 = repo.root_json(1).unwrap();
    let clients: Vec<Client> = kinds
        .iter()
        .map(|k| Client::new(k, f.tmp.path(), &root_v1))
        .collect();

    let publish = |repo: &mut Repository, v: &str, sv: u64, img: &[u8]| {
        let v = FirmwareVersion::parse(v).unwrap();
        repo.publish(&NewRelease {
            model: &m,
            version: &v,
            security_version: sv,
            hardware_id: None,
            image: Image::Bytes(img),
            sbom: Some(b"{}"),
        })
        .unwrap()
        .target_name
    };

    // 1. A first release.
    let t1 = publish(&mut repo, "1.0.0", 1, b"image one");
    for c in &clients {
        check(&c.fetch(&url, &t1), &t1, b"image one", 1);
    }

    // 2. Root rotation (two of three keys replaced), then a release.
    let old = repo.role_keyids(&RoleRef::Root).unwrap();
    repo.rotate_root(2, &old[..2], None).unwrap();
    let t2 = publish(&mut repo, "1.1.0", 2, b"image two");
    for c in &clients {
        let r = c.fetch(&url, &t2);
        check(&r, &t2, b"image two", 2);
        if c.kind == "python-tuf" {
            assert_eq!(r["root_version"], 2, "{r}");
        }
    }

    // 3. Revocations: a release key, the timestamp key and the snapshot key.
    let rel = repo.role_keyids(&RoleRef::Release(m.clone())).unwrap();
    repo.revoke_key(&RoleRef::Release(m.clone()), &rel[0])
        .unwrap();
    for role in [RoleRef::Timestamp, RoleRef::Snapshot] {
        let old = repo.role_keyids(&role).unwrap();
        repo.add_key(&role).unwrap();
        repo.revoke_key(&role, &old[0]).unwrap();
    }
    let t3 = publish(&mut repo, "2.0.0", 3, b"image three");
    for c in &clients {
        let r = c.fetch(&url, &t3);
        check(&r, &t3, b"image three", 3);
        if c.kind == "python-tuf" {
            // +2 roots for each of the timestamp and snapshot key replacements.
            assert_eq!(r["root_version"], 6, "{r}");
        }
    }

    // 4. A fresh client bootstrapped with root v1 walks the whole chain.
    for k in kinds {
        let fresh = Client::new(k, &f.tmp.path().join("fresh"), &root_v1);
        check(&fresh.fetch(&url, &t1), &t1, b"image one", 1);
    }
}

#[test]
fn python_tuf_refreshes_and_downloads() {
    python_tuf_ready();
    scenario(&["python-tuf"]);
}

#[test]
fn tuf_js_refreshes_and_downloads() {
    tuf_js_dir();
    scenario(&["tuf-js"]);
}
