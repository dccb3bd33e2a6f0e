//! Regenerates the seeds that need signing keys: the trusted TUF root (`data/tuf-root.json`)
//! with `corpus/tuf_metadata/`, and `corpus/director_instruction/` (signed with the test key
//! `data/director.pk8`). Ignored by default; run it after changing the metadata format or
//! before the seeds' expiry (ten years, the most the repository allows):
//!
//! `cargo test -p medsec-fuzz --test make_seeds -- --ignored`

use std::path::{Path, PathBuf};
use std::sync::Arc;

use medsec_core::{DeviceModel, FirmwareVersion, KeyAlgorithm};
use medsec_keys::{EncryptedFileKeySource, KdfParams, KeyRef, Passphrase, SoftwareSigner};
use medsec_updates::{Expiries, Image, Instruction, NewRelease, RepoOptions, Repository};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The newest `<N>.<role>.json` (or `<role>.json`) in `dir`.
fn newest(dir: &Path, role: &str) -> Option<Vec<u8>> {
    let mut best: Option<(u64, PathBuf)> = None;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let v = if name == format!("{role}.json") {
            0
        } else if let Some(n) = name.strip_suffix(&format!(".{role}.json")) {
            match n.parse::<u64>() {
                Ok(v) => v,
                Err(_) => continue,
            }
        } else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| v > *b) {
            best = Some((v, p));
        }
    }
    best.map(|(_, p)| std::fs::read(p).unwrap())
}

/// One `tuf_metadata` input: timestamp, snapshot, targets, the model's role and (when the
/// root was rotated) `2.root.json`, separated by NUL bytes.
fn write_case(meta: &Path, out: &Path, name: &str) {
    let mut parts = vec![
        newest(meta, "timestamp").unwrap(),
        newest(meta, "snapshot").unwrap(),
        newest(meta, "targets").unwrap(),
        newest(meta, "fuzz-pump").unwrap_or_default(),
    ];
    if let Ok(r2) = std::fs::read(meta.join("2.root.json")) {
        parts.push(r2);
    }
    std::fs::write(out.join(name), parts.join(&0u8)).unwrap();
}

#[test]
#[ignore = "rewrites the seed corpus; run by hand"]
fn make_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let keys_dir = tmp.path().join("keys");
    std::fs::create_dir_all(&keys_dir).unwrap();
    let pass = Passphrase::new(b"medsec fuzz seed passphrase".to_vec()).unwrap();
    let keys = Arc::new(
        EncryptedFileKeySource::new(keys_dir, pass)
            .with_kdf(KdfParams {
                m_kib: 19 * 1024,
                t: 2,
                p: 1,
            })
            .unwrap(),
    );
    let ten_years = 3650 * 86_400;
    let opts = RepoOptions {
        expiries: Expiries {
            root_secs: ten_years,
            targets_secs: ten_years,
            releases_secs: ten_years,
            snapshot_secs: ten_years,
            timestamp_secs: ten_years,
        },
        ..RepoOptions::default()
    };
    let repo_dir = tmp.path().join("repo");
    let mut repo = Repository::init(&repo_dir, keys, opts).unwrap();
    let meta = repo.metadata_dir();
    std::fs::copy(
        meta.join("1.root.json"),
        crate_dir().join("data/tuf-root.json"),
    )
    .unwrap();

    let out = crate_dir().join("corpus/tuf_metadata");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let model = DeviceModel::parse("fuzz-pump").unwrap();
    repo.add_model(&model, 1, 1).unwrap();
    write_case(&meta, &out, "model-without-release");
    let v1 = FirmwareVersion::parse("1.0.0").unwrap();
    let r1 = repo
        .publish(&NewRelease {
            model: &model,
            version: &v1,
            security_version: 1,
            hardware_id: None,
            image: Image::Bytes(b"fuzz firmware 1.0.0"),
            sbom: None,
        })
        .unwrap();
    write_case(&meta, &out, "one-release");
    let v2 = FirmwareVersion::parse("1.1.0").unwrap();
    repo.publish(&NewRelease {
        model: &model,
        version: &v2,
        security_version: 2,
        hardware_id: Some("rev-b"),
        image: Image::Bytes(b"fuzz firmware 1.1.0 for rev-b"),
        sbom: Some(b"{}"),
    })
    .unwrap();
    write_case(&meta, &out, "two-releases");
    repo.rotate_root(1, &[], None).unwrap();
    write_case(&meta, &out, "root-rotated");

    // Director instructions for the first release, signed with the fixed test key.
    let key = std::fs::read(crate_dir().join("data/director.pk8")).unwrap();
    let kr: KeyRef = "file:fuzz-director".parse().unwrap();
    let signer = SoftwareSigner::from_pkcs8(kr.clone(), KeyAlgorithm::EcdsaP256, &key).unwrap();
    let other = SoftwareSigner::from_pkcs8_any(
        kr,
        &std::fs::read(crate_dir().join("data/ocsp-ca.pk8")).unwrap(),
    )
    .unwrap();
    let out = crate_dir().join("corpus/director_instruction");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let honest = Instruction {
        device: "urn:medsec:device:fuzz-pump:SN-0001".into(),
        rollout: "r-0001".into(),
        target: r1.target_name.clone(),
        length: r1.length,
        sha256: r1.sha256.clone(),
        security_version: 1,
        counter: 5,
        issued_at: 1_740_000_000,
        expires: 1_760_000_000,
    };
    let cases = [
        ("valid", honest.clone(), &signer),
        (
            "other-device",
            Instruction {
                device: "urn:medsec:device:fuzz-pump:SN-0002".into(),
                ..honest.clone()
            },
            &signer,
        ),
        (
            "expired",
            Instruction {
                expires: 1_700_000_000,
                ..honest.clone()
            },
            &signer,
        ),
        (
            "replayed-counter",
            Instruction {
                counter: 2,
                ..honest.clone()
            },
            &signer,
        ),
        ("untrusted-key", honest.clone(), &other),
    ];
    for (name, i, s) in cases {
        let env = medsec_updates::SignedInstruction::sign(&i, s).unwrap();
        std::fs::write(out.join(name), serde_json::to_vec(&env).unwrap()).unwrap();
    }
}
