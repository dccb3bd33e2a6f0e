//! TUF signing keys in a PKCS#11 token (SoftHSM2): the repository is created, a model added,
//! a release published and the root rotated with every key inside the token, and python-tuf
//! verifies the result over loopback.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use medsec_core::{DeviceModel, FirmwareVersion, KeyAlgorithm};
use medsec_keys::{KeySource, Pkcs11Config, Pkcs11KeySource};
use medsec_updates::repo::{Image, NewRelease, Repository};
use zeroize::Zeroizing;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

#[test]
fn repository_keys_in_softhsm_verify_with_python_tuf() {
    if !Path::new(MODULE).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "SoftHSM2 is required in CI: apt-get install softhsm2"
        );
        eprintln!("skipping: {MODULE} not found (apt-get install softhsm2)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tokens = tmp.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = tmp.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    // SAFETY: this test binary has this one test; nothing else reads the environment yet.
    unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
    let out = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", "tuf"])
        .args(["--pin", "1234567890", "--so-pin", "0987654321"])
        .output()
        .expect("softhsm2-util on PATH");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: Arc<dyn KeySource> = Arc::new(
        Pkcs11KeySource::open(Pkcs11Config {
            module: MODULE.into(),
            token_label: "tuf".into(),
            pin: Zeroizing::new("1234567890".into()),
        })
        .unwrap(),
    );
    let dir = tmp.path().join("repo");
    let mut repo = Repository::init(&dir, keys.clone(), common::options()).unwrap();
    let model = DeviceModel::parse("pump-x2").unwrap();
    repo.add_model(&model, 1, 1).unwrap();
    let image = b"firmware signed by keys that never left the token".to_vec();
    let rel = repo
        .publish(&NewRelease {
            model: &model,
            version: &FirmwareVersion::parse("3.0").unwrap(),
            security_version: 5,
            hardware_id: None,
            image: Image::Bytes(&image),
            sbom: None,
        })
        .unwrap();
    let old = repo
        .role_keyids(&medsec_updates::repo::RoleRef::Root)
        .unwrap();
    repo.rotate_root(1, &old[..1], None).unwrap();
    // Every key reference the repository keeps points into the token.
    let catalogue = std::fs::read_to_string(dir.join("repo.json")).unwrap();
    assert!(catalogue.contains("pkcs11:"), "{catalogue}");
    assert!(!catalogue.contains("file:"), "{catalogue}");
    // The token refuses to hand out a private key; signing works through it only.
    let probe = keys.generate("probe", KeyAlgorithm::EcdsaP256).unwrap();
    assert!(probe.sign(b"x").is_ok());
    let root_v1 = repo.root_json(1).unwrap();
    drop(repo);

    let url = common::serve(dir);
    let md = tmp.path().join("py-md");
    let dl = tmp.path().join("py-dl");
    std::fs::create_dir_all(&md).unwrap();
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::write(md.join("root.json"), root_v1).unwrap();
    let o = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tuf_client.py"))
        .arg(format!("{url}/metadata/"))
        .arg(format!("{url}/targets/"))
        .arg(&md)
        .arg(&dl)
        .arg(&rel.target_name)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python-tuf (pip install tuf==7.0.1):\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["length"], image.len());
    assert_eq!(v["root_version"], 2);
}
