//! `Pkcs11KeySource` against a real SoftHSM2 token.
//!
//! SOFTHSM2_CONF is process-wide and SoftHSM reads its token directory once, when the module is
//! initialized, so every token this binary uses is created up front by one shared setup.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use medsec_core::KeyAlgorithm;
use medsec_keys::{KeyError, KeyRef, KeySource, Pkcs11Config, Pkcs11KeySource, Signer};
use zeroize::Zeroizing;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "medsec-test";
/// Login state is per token and shared by every session in the process, so the wrong-PIN test
/// gets a token no other test logs in to.
const PIN_TOKEN: &str = "medsec-pin-test";
const PIN: &str = "1234567890";
const SO_PIN: &str = "0987654321";

/// Sets up SoftHSM once per process; `false` means it is not installed and the test should
/// return early.
fn softhsm() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        if !Path::new(MODULE).exists() {
            if std::env::var_os("CI").is_some() {
                panic!("SoftHSM2 is required in CI: apt-get install softhsm2");
            }
            // Written past libtest's output capture so that the skip is visible in a normal run.
            let _ = writeln!(
                std::io::stderr(),
                "skipping SoftHSM2 tests: {MODULE} not found (apt-get install softhsm2)"
            );
            return false;
        }
        // Under target/ rather than /tmp: the directory must outlive every test, and statics
        // are never dropped, so it could not be cleaned up anyway.
        let dir = tempfile::Builder::new()
            .prefix("softhsm-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        let tokens = dir.join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        // SAFETY: runs once, inside the OnceLock, before any test loads the module (every test
        // calls this first); only std reads the environment concurrently, and std serializes
        // its own environment access.
        unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
        for label in [TOKEN, PIN_TOKEN] {
            let out = Command::new("softhsm2-util")
                .env("SOFTHSM2_CONF", &conf)
                .args(["--init-token", "--free", "--label", label])
                .args(["--pin", PIN, "--so-pin", SO_PIN])
                .output()
                .expect("softhsm2-util must be on PATH alongside the module");
            assert!(
                out.status.success(),
                "softhsm2-util --init-token failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        true
    })
}

fn config(token: &str, pin: &str) -> Pkcs11Config {
    Pkcs11Config {
        module: MODULE.into(),
        token_label: token.into(),
        pin: Zeroizing::new(pin.into()),
    }
}

fn open() -> Pkcs11KeySource {
    Pkcs11KeySource::open(config(TOKEN, PIN)).unwrap()
}

fn verify(signer: &dyn Signer, msg: &[u8], sig: &[u8]) {
    let alg: &'static dyn VerificationAlgorithm = match signer.algorithm() {
        KeyAlgorithm::EcdsaP256 => &signature::ECDSA_P256_SHA256_ASN1,
        KeyAlgorithm::EcdsaP384 => &signature::ECDSA_P384_SHA384_ASN1,
        KeyAlgorithm::Ed25519 => &signature::ED25519,
        other => panic!("unexpected algorithm {other}"),
    };
    UnparsedPublicKey::new(alg, signer.public_key())
        .verify(msg, sig)
        .unwrap_or_else(|_| panic!("{} signature does not verify", signer.algorithm()));
}

fn pkcs11_reason(r: Result<Pkcs11KeySource, KeyError>) -> String {
    match r {
        Err(KeyError::Pkcs11 { reason, .. }) => reason,
        other => panic!("expected KeyError::Pkcs11, got {other:?}"),
    }
}

#[test]
fn generate_sign_and_reload_each_algorithm() {
    if !softhsm() {
        return;
    }
    let cases = [
        (KeyAlgorithm::EcdsaP256, 65),
        (KeyAlgorithm::EcdsaP384, 97),
        (KeyAlgorithm::Ed25519, 32),
    ];
    for (alg, public_len) in cases {
        let label = format!("roundtrip-{alg}");
        let generated = open().generate(&label, alg).unwrap();
        assert_eq!(generated.algorithm(), alg);
        assert_eq!(generated.public_key().len(), public_len);
        if alg != KeyAlgorithm::Ed25519 {
            assert_eq!(generated.public_key()[0], 0x04);
        }
        // Many ECDSA signatures, so r and s with the top bit set and with leading zero bytes
        // both go through the DER conversion.
        for i in 0..24u8 {
            let msg = format!("message {i} for {label}");
            verify(
                &*generated,
                msg.as_bytes(),
                &generated.sign(msg.as_bytes()).unwrap(),
            );
        }

        let key_ref: KeyRef = format!("pkcs11:object={label}").parse().unwrap();
        let loaded = open().load(&key_ref).unwrap();
        assert_eq!(loaded.key_ref(), &key_ref);
        assert_eq!(loaded.algorithm(), alg);
        assert_eq!(loaded.public_key(), generated.public_key());
        assert_eq!(loaded.spki_der(), generated.spki_der());
        let sig = loaded.sign(b"reloaded").unwrap();
        verify(&*loaded, b"reloaded", &sig);
        verify(&*generated, b"reloaded", &sig);
    }
}

#[test]
fn signers_outlive_their_source_and_share_it_across_threads() {
    if !softhsm() {
        return;
    }
    let signer = open().generate("threads", KeyAlgorithm::EcdsaP256).unwrap();
    let signer: std::sync::Arc<dyn Signer> = signer.into();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let s = std::sync::Arc::clone(&signer);
            std::thread::spawn(move || {
                let msg = [i as u8; 10];
                verify(&*s, &msg, &s.sign(&msg).unwrap());
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn same_label_twice_is_refused() {
    if !softhsm() {
        return;
    }
    let src = open();
    let first = src.generate("twice", KeyAlgorithm::Ed25519).unwrap();
    for alg in [KeyAlgorithm::Ed25519, KeyAlgorithm::EcdsaP256] {
        match src.generate("twice", alg) {
            Err(KeyError::AlreadyExists { key }) => assert!(key.contains("twice"), "{key}"),
            other => panic!(
                "expected AlreadyExists, got {other:?}",
                other = other.map(|s| s.key_ref().clone())
            ),
        }
    }
    // The refused attempts must not have disturbed the original key.
    let loaded = open().load(first.key_ref()).unwrap();
    assert_eq!(loaded.public_key(), first.public_key());
}

#[test]
fn wrong_token_label_names_the_available_tokens() {
    if !softhsm() {
        return;
    }
    let reason = pkcs11_reason(Pkcs11KeySource::open(config("no-such-token", PIN)));
    assert!(reason.contains("\"no-such-token\""), "{reason}");
    assert!(reason.contains(&format!("\"{TOKEN}\"")), "{reason}");
    assert!(reason.contains(&format!("\"{PIN_TOKEN}\"")), "{reason}");
    assert!(!reason.contains(PIN), "{reason}");
}

#[test]
fn wrong_pin_is_rejected_without_echoing_it() {
    if !softhsm() {
        return;
    }
    let wrong = "5555555555";
    let reason = pkcs11_reason(Pkcs11KeySource::open(config(PIN_TOKEN, wrong)));
    assert!(reason.contains("wrong user PIN"), "{reason}");
    assert!(reason.contains(PIN_TOKEN), "{reason}");
    assert!(!reason.contains(wrong), "{reason}");

    // Once a source is logged in, the token reports "already logged in" without checking the
    // PIN; a wrong PIN must still be refused then.
    let _logged_in = Pkcs11KeySource::open(config(PIN_TOKEN, PIN)).unwrap();
    let reason = pkcs11_reason(Pkcs11KeySource::open(config(PIN_TOKEN, wrong)));
    assert!(reason.contains("wrong user PIN"), "{reason}");
    assert!(reason.contains("already logged in"), "{reason}");
    assert!(!reason.contains(wrong), "{reason}");
    Pkcs11KeySource::open(config(PIN_TOKEN, PIN)).unwrap();
}

#[test]
fn missing_module_is_a_clear_error() {
    if !softhsm() {
        return;
    }
    let mut c = config(TOKEN, PIN);
    c.module = "/nonexistent/libnothing.so".into();
    let reason = pkcs11_reason(Pkcs11KeySource::open(c));
    assert!(reason.contains("/nonexistent/libnothing.so"), "{reason}");
}

#[test]
fn load_errors() {
    if !softhsm() {
        return;
    }
    let src = open();
    assert!(matches!(
        src.load(&"pkcs11:object=never-generated".parse().unwrap()),
        Err(KeyError::NotFound { .. })
    ));
    assert!(matches!(
        src.load(&"file:some-key".parse().unwrap()),
        Err(KeyError::BadRef { .. })
    ));
    assert!(matches!(
        src.generate("rsa", KeyAlgorithm::Rsa2048),
        Err(KeyError::UnsupportedAlgorithm(KeyAlgorithm::Rsa2048))
    ));
    assert!(matches!(
        src.generate("../escape", KeyAlgorithm::EcdsaP256),
        Err(KeyError::BadRef { .. })
    ));
}

#[test]
fn destroy_frees_the_label() {
    if !softhsm() {
        return;
    }
    let src = open();
    let kept = src
        .generate("destroy-kept", KeyAlgorithm::EcdsaP256)
        .unwrap();
    let first = src.generate("destroy-me", KeyAlgorithm::EcdsaP256).unwrap();
    let r: KeyRef = "pkcs11:object=destroy-me".parse().unwrap();
    src.destroy(&r).unwrap();
    assert!(matches!(src.load(&r), Err(KeyError::NotFound { .. })));
    assert!(matches!(src.destroy(&r), Err(KeyError::NotFound { .. })));
    // Both halves are gone: a stray public key would make this AlreadyExists.
    let second = src.generate("destroy-me", KeyAlgorithm::Ed25519).unwrap();
    assert_ne!(second.public_key(), first.public_key());
    let loaded = src.load(&r).unwrap();
    assert_eq!(loaded.public_key(), second.public_key());
    verify(
        &*loaded,
        b"after destroy",
        &loaded.sign(b"after destroy").unwrap(),
    );
    // Another key is untouched.
    let other = src.load(kept.key_ref()).unwrap();
    assert_eq!(other.public_key(), kept.public_key());
    assert!(matches!(
        src.destroy(&"pkcs11:object=never-generated".parse().unwrap()),
        Err(KeyError::NotFound { .. })
    ));
    assert!(matches!(
        src.destroy(&"file:destroy-me".parse().unwrap()),
        Err(KeyError::BadRef { .. })
    ));
}

#[test]
fn private_key_is_sensitive_and_not_extractable() {
    if !softhsm() {
        return;
    }
    let label = "attributes";
    let signer = open().generate(label, KeyAlgorithm::EcdsaP384).unwrap();

    // A second context on the same library: C_Initialize then reports it is already done,
    // which is expected since the key source initialized it.
    let ctx = Pkcs11::new(MODULE).unwrap();
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("C_Initialize: {e}"),
    }
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == TOKEN)
        .unwrap();
    let session = ctx.open_ro_session(slot).unwrap();
    match session.login(UserType::User, Some(&AuthPin::from(PIN.to_owned()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("C_Login: {e}"),
    }
    let find = |class| {
        let found = session
            .find_objects(&[Attribute::Class(class), Attribute::Label(label.into())])
            .unwrap();
        assert_eq!(found.len(), 1, "{class:?}");
        found[0]
    };
    let private = find(ObjectClass::PRIVATE_KEY);
    let public = find(ObjectClass::PUBLIC_KEY);

    let attrs = session
        .get_attributes(
            private,
            &[
                AttributeType::Extractable,
                AttributeType::Sensitive,
                AttributeType::NeverExtractable,
                AttributeType::AlwaysSensitive,
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Sign,
                AttributeType::Id,
            ],
        )
        .unwrap();
    let mut private_id = None;
    let mut seen = 0;
    for a in attrs {
        seen += 1;
        match a {
            Attribute::Extractable(v) => assert!(!v, "CKA_EXTRACTABLE"),
            Attribute::Sensitive(v) => assert!(v, "CKA_SENSITIVE"),
            Attribute::NeverExtractable(v) => assert!(v, "CKA_NEVER_EXTRACTABLE"),
            Attribute::AlwaysSensitive(v) => assert!(v, "CKA_ALWAYS_SENSITIVE"),
            Attribute::Token(v) => assert!(v, "CKA_TOKEN"),
            Attribute::Private(v) => assert!(v, "CKA_PRIVATE"),
            Attribute::Sign(v) => assert!(v, "CKA_SIGN"),
            Attribute::Id(id) => private_id = Some(id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, 8, "every requested attribute is present");
    let private_id = private_id.unwrap();
    assert_eq!(private_id.len(), 16);

    // The key value itself must be unreadable.
    let value = session
        .get_attributes(private, &[AttributeType::Value])
        .unwrap();
    assert!(
        value.is_empty(),
        "CKA_VALUE of the private key was readable"
    );

    let public_attrs = session
        .get_attributes(public, &[AttributeType::Id, AttributeType::Label])
        .unwrap();
    assert!(public_attrs.contains(&Attribute::Id(private_id)));
    assert!(public_attrs.contains(&Attribute::Label(label.into())));
    drop(signer);
}
