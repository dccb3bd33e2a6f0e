//! PKCS#11 key source: CA keys generated and kept inside a token (HSM), used only to sign.
//!
//! Each `Pkcs11KeySource` holds one logged-in read/write session. The signers it hands out share
//! that session behind a mutex: a PKCS#11 session runs one operation at a time anyway, and
//! sharing it keeps the token logged in for as long as any signer is alive.
//!
//! A module may be initialized only once per process, and login state belongs to the token, not
//! the session, so both are tracked process-wide (see `modules()`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use medsec_core::KeyAlgorithm;
use sha2::{Digest, Sha256, Sha384};
use zeroize::Zeroizing;

use crate::{KeyError, KeyRef, KeySource, Signer, check_label};

/// Which module, token and user PIN to use.
#[derive(Clone)]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so.
    pub module: PathBuf,
    /// Label of the initialized token.
    pub token_label: String,
    pub pin: Zeroizing<String>,
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"***")
            .finish()
    }
}

/// Keys in a PKCS#11 token.
pub struct Pkcs11KeySource {
    module: PathBuf,
    token_label: String,
    session: Arc<Mutex<Session>>,
}

impl fmt::Debug for Pkcs11KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11KeySource")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .finish_non_exhaustive()
    }
}

fn p11(op: &'static str, reason: impl Into<String>) -> KeyError {
    KeyError::Pkcs11 {
        op,
        reason: reason.into(),
    }
}

/// cryptoki's Display for return values is a paragraph of spec text; the CKR name is what
/// people search for.
fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, func) => format!("C_{func:?} returned {rv:?}"),
        other => other.to_string(),
    }
}

/// Recovers from poisoning: every cryptoki call used here is a single C call that completes
/// before control returns to Rust, so a panic elsewhere cannot leave the session mid-operation.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serializes every call into PKCS#11 sessions in this process. SoftHSM2's file object store
/// answers CKR_GENERAL_ERROR when one session creates token objects while another searches or
/// uses them; a CA signs at the token's pace anyway, so one call at a time costs little.
/// Always taken before any other lock here.
fn token_guard() -> MutexGuard<'static, ()> {
    static TOKEN_OPS: Mutex<()> = Mutex::new(());
    lock(&TOKEN_OPS)
}

/// One loaded and initialized module.
struct Module {
    ctx: Pkcs11,
    /// Salted digest of the PIN that logged this process in to each slot's token. A second
    /// login to an already logged-in token returns CKR_USER_ALREADY_LOGGED_IN without checking
    /// the PIN, so without this a misconfigured PIN would go unnoticed while another source is
    /// open.
    logins: HashMap<u64, [u8; 32]>,
}

/// Modules by canonical path. C_Initialize may run only once per process per module, and a
/// module must stay loaded while any session exists, so contexts are kept for the process
/// lifetime and never finalized.
fn modules() -> &'static Mutex<HashMap<PathBuf, Module>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Module>>> = OnceLock::new();
    MODULES.get_or_init(|| Mutex::new(HashMap::new()))
}

fn pin_digest(pin: &str) -> Result<[u8; 32], KeyError> {
    static SALT: OnceLock<[u8; 32]> = OnceLock::new();
    let salt = match SALT.get() {
        Some(s) => s,
        None => {
            let mut s = [0u8; 32];
            SystemRandom::new()
                .fill(&mut s)
                .map_err(|_| p11("login", "system RNG failed"))?;
            SALT.get_or_init(|| s)
        }
    };
    let mut h = Sha256::new();
    h.update(salt);
    h.update(pin.as_bytes());
    Ok(h.finalize().into())
}

fn load_module<'a>(
    modules: &'a mut HashMap<PathBuf, Module>,
    path: &Path,
) -> Result<&'a mut Module, KeyError> {
    // The same library under two names (e.g. a symlink) is one dlopen handle and one C_Initialize.
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    if !modules.contains_key(&key) {
        let ctx = Pkcs11::new(&key).map_err(|e| {
            p11(
                "load module",
                format!("{}: {}", path.display(), describe(&e)),
            )
        })?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            // Someone else in this process (another PKCS#11 user) initialized it; that is fine.
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => {
                return Err(p11(
                    "initialize module",
                    format!("{}: {}", path.display(), describe(&e)),
                ));
            }
        }
        modules.insert(
            key.clone(),
            Module {
                ctx,
                logins: HashMap::new(),
            },
        );
    }
    modules
        .get_mut(&key)
        .ok_or_else(|| p11("load module", "module registry lost an entry"))
}

fn find_slot(ctx: &Pkcs11, token_label: &str) -> Result<Slot, KeyError> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| p11("find token", describe(&e)))?;
    let mut found = Vec::new();
    let mut available = Vec::new();
    for slot in slots {
        let info = ctx
            .get_token_info(slot)
            .map_err(|e| p11("find token", describe(&e)))?;
        if !info.token_initialized() {
            continue;
        }
        if info.label() == token_label {
            found.push(slot);
        }
        available.push(format!("{:?}", info.label()));
    }
    match found.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(p11(
            "find token",
            format!(
                "no initialized token labelled {token_label:?}; available: {}",
                if available.is_empty() {
                    "none".to_owned()
                } else {
                    available.join(", ")
                }
            ),
        )),
        many => Err(p11(
            "find token",
            format!(
                "{} tokens are labelled {token_label:?}; relabel them so the choice is unambiguous",
                many.len()
            ),
        )),
    }
}

fn login(
    module: &mut Module,
    slot: Slot,
    session: &Session,
    config: &Pkcs11Config,
) -> Result<(), KeyError> {
    let digest = pin_digest(&config.pin)?;
    let token = &config.token_label;
    let pin = AuthPin::from(config.pin.as_str().to_owned());
    match session.login(UserType::User, Some(&pin)) {
        Ok(()) => {
            module.logins.insert(slot.id(), digest);
            Ok(())
        }
        Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
            match module.logins.get(&slot.id()) {
                Some(known)
                    if aws_lc_rs::constant_time::verify_slices_are_equal(known, &digest)
                        .is_err() =>
                {
                    Err(p11(
                        "login",
                        format!(
                            "wrong user PIN for token {token:?} (it differs from the PIN this process is already logged in with)"
                        ),
                    ))
                }
                // Logged in by this process with the same PIN, or by some other PKCS#11 user in the
                // process whose PIN we cannot compare; either way the token already trusts us.
                _ => Ok(()),
            }
        }
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
            Err(p11("login", format!("wrong user PIN for token {token:?}")))
        }
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(p11(
            "login",
            format!(
                "the user PIN of token {token:?} is locked; the security officer must reset it"
            ),
        )),
        Err(e) => Err(p11("login", format!("token {token:?}: {}", describe(&e)))),
    }
}

impl Pkcs11KeySource {
    /// Loads and initializes the module (once per process), finds the token by label, opens a
    /// read/write session and logs in as the user.
    pub fn open(config: Pkcs11Config) -> Result<Self, KeyError> {
        let _token = token_guard();
        // Held throughout so that concurrent opens see each other's logins.
        let mut modules = lock(modules());
        let module = load_module(&mut modules, &config.module)?;
        let slot = find_slot(&module.ctx, &config.token_label)?;
        let session = module.ctx.open_rw_session(slot).map_err(|e| {
            p11(
                "open session",
                format!("token {:?}: {}", config.token_label, describe(&e)),
            )
        })?;
        login(module, slot, &session, &config)?;
        Ok(Pkcs11KeySource {
            module: config.module.clone(),
            token_label: config.token_label.clone(),
            session: Arc::new(Mutex::new(session)),
        })
    }

    /// Label of the token this source uses.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }
}

// DER OBJECT IDENTIFIERs of the curves (prime256v1, secp384r1, id-Ed25519 from RFC 8410).
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const ED25519_OID_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
// PrintableString "edwards25519": PKCS#11 3.0 also allows this curve-name form for Edwards
// keys, and some tokens accept only it. (SoftHSM2 2.6.1 accepts both.)
const ED25519_NAME_PARAMS: &[u8] = b"\x13\x0cedwards25519";

/// What the token needs to know about each supported algorithm.
struct Curve {
    key_type: KeyType,
    /// Encodings to try on generation, preferred first; any of them is recognised on load.
    params: &'static [&'static [u8]],
    /// Length of the raw public key: an uncompressed point, or the Ed25519 key.
    point_len: usize,
}

impl Curve {
    fn of(alg: KeyAlgorithm) -> Option<Curve> {
        match alg {
            KeyAlgorithm::EcdsaP256 => Some(Curve {
                key_type: KeyType::EC,
                params: &[P256_PARAMS],
                point_len: 65,
            }),
            KeyAlgorithm::EcdsaP384 => Some(Curve {
                key_type: KeyType::EC,
                params: &[P384_PARAMS],
                point_len: 97,
            }),
            KeyAlgorithm::Ed25519 => Some(Curve {
                key_type: KeyType::EC_EDWARDS,
                params: &[ED25519_OID_PARAMS, ED25519_NAME_PARAMS],
                point_len: 32,
            }),
            _ => None,
        }
    }

    fn mechanism(&self) -> Mechanism<'static> {
        if self.key_type == KeyType::EC_EDWARDS {
            Mechanism::EccEdwardsKeyPairGen
        } else {
            Mechanism::EccKeyPairGen
        }
    }
}

fn algorithm_of(key_type: KeyType, params: &[u8]) -> Option<KeyAlgorithm> {
    [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Ed25519,
    ]
    .into_iter()
    .find(|&alg| {
        Curve::of(alg).is_some_and(|c| c.key_type == key_type && c.params.contains(&params))
    })
}

/// CKA_ID links the two halves of a key pair; deriving it from the label keeps it stable and
/// lets other PKCS#11 tools pair them.
fn key_id(label: &str) -> Vec<u8> {
    Sha256::digest(label.as_bytes())[..16].to_vec()
}

/// CKA_EC_POINT is specified as a DER OCTET STRING around the point, but some tokens return the
/// bare point; the expected length tells the two apart unambiguously.
fn unwrap_ec_point(value: &[u8], point_len: usize) -> Option<&[u8]> {
    let raw = match value {
        [0x04, len, rest @ ..]
            if point_len < 0x80 && *len as usize == point_len && rest.len() == point_len =>
        {
            rest
        }
        _ if value.len() == point_len => value,
        _ => return None,
    };
    // Edwards keys are 32 opaque bytes; Weierstrass points must be uncompressed.
    if point_len != 32 && raw.first() != Some(&0x04) {
        return None;
    }
    Some(raw)
}

fn find_keys(session: &Session, template: &[Attribute]) -> Result<Vec<ObjectHandle>, KeyError> {
    session
        .find_objects(template)
        .map_err(|e| p11("find objects", describe(&e)))
}

fn read_public_key(
    session: &Session,
    handle: ObjectHandle,
    curve: &Curve,
) -> Result<Vec<u8>, KeyError> {
    let attrs = session
        .get_attributes(handle, &[AttributeType::EcPoint])
        .map_err(|e| p11("read public key", describe(&e)))?;
    let point = attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or_else(|| {
            p11(
                "read public key",
                "the public key object has no CKA_EC_POINT",
            )
        })?;
    unwrap_ec_point(&point, curve.point_len)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            p11(
                "read public key",
                format!(
                    "CKA_EC_POINT is {} bytes, not a {}-byte point with or without its OCTET STRING header",
                    point.len(),
                    curve.point_len
                ),
            )
        })
}

fn generate_pair(
    session: &Session,
    curve: &Curve,
    label: &str,
) -> Result<(ObjectHandle, ObjectHandle), KeyError> {
    let id = key_id(label);
    let private_template = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Derive(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.clone()),
    ];
    let mut last_err = None;
    for params in curve.params {
        let public_template = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
            Attribute::EcParams(params.to_vec()),
        ];
        match session.generate_key_pair(&curve.mechanism(), &public_template, &private_template) {
            Ok(pair) => return Ok(pair),
            // Only a rejected curve encoding is worth retrying with the next encoding.
            Err(
                e @ CkError::Pkcs11(
                    RvError::DomainParamsInvalid
                    | RvError::CurveNotSupported
                    | RvError::AttributeValueInvalid
                    | RvError::TemplateInconsistent,
                    _,
                ),
            ) => last_err = Some(e),
            Err(e) => return Err(p11("generate key pair", describe(&e))),
        }
    }
    Err(p11(
        "generate key pair",
        last_err.map_or_else(|| "no curve parameters to try".to_owned(), |e| describe(&e)),
    ))
}

/// The object label of a `pkcs11:` reference, checked; other references are refused.
fn token_label_of(key: &KeyRef) -> Result<&str, KeyError> {
    match key {
        KeyRef::Pkcs11 { label } => {
            check_label(label)?;
            Ok(label)
        }
        other => Err(KeyError::BadRef {
            value: other.to_string(),
            reason: "not a pkcs11: key; use the key file source for file: keys",
        }),
    }
}

impl KeySource for Pkcs11KeySource {
    fn generate(&self, label: &str, alg: KeyAlgorithm) -> Result<Box<dyn Signer>, KeyError> {
        check_label(label)?;
        let curve = Curve::of(alg).ok_or(KeyError::UnsupportedAlgorithm(alg))?;
        let key_ref = KeyRef::Pkcs11 {
            label: label.to_owned(),
        };
        let _token = token_guard();
        // Held from the existence check to the end of generation so that two generates of one
        // label through this source cannot both pass the check.
        let session = lock(&self.session);
        // A stray public key under the label would make `load` ambiguous, so it blocks too.
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
            let existing = find_keys(
                &session,
                &[
                    Attribute::Class(class),
                    Attribute::Label(label.as_bytes().to_vec()),
                ],
            )?;
            if !existing.is_empty() {
                return Err(KeyError::AlreadyExists {
                    key: key_ref.to_string(),
                });
            }
        }
        let (public_handle, private_handle) = generate_pair(&session, &curve, label)?;
        let public = match read_public_key(&session, public_handle, &curve) {
            Ok(p) => p,
            Err(e) => {
                // Best effort: a half-usable pair left behind would block retrying the label.
                let _ = session.destroy_object(private_handle);
                let _ = session.destroy_object(public_handle);
                return Err(e);
            }
        };
        drop(session);
        Ok(Box::new(Pkcs11Signer {
            key_ref,
            alg,
            public,
            key: private_handle,
            session: Arc::clone(&self.session),
        }))
    }

    fn load(&self, key: &KeyRef) -> Result<Box<dyn Signer>, KeyError> {
        let label = token_label_of(key)?;
        let label_attr = Attribute::Label(label.as_bytes().to_vec());
        let _token = token_guard();
        let session = lock(&self.session);
        let private_keys = find_keys(
            &session,
            &[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                label_attr.clone(),
            ],
        )?;
        let private_handle = match private_keys.as_slice() {
            [h] => *h,
            [] => {
                return Err(KeyError::NotFound {
                    key: format!("{key} in token {:?}", self.token_label),
                });
            }
            many => {
                return Err(p11(
                    "load key",
                    format!(
                        "{} private keys are labelled {label:?}; remove the extras",
                        many.len()
                    ),
                ));
            }
        };
        let attrs = session
            .get_attributes(
                private_handle,
                &[
                    AttributeType::KeyType,
                    AttributeType::EcParams,
                    AttributeType::Id,
                ],
            )
            .map_err(|e| p11("load key", describe(&e)))?;
        let (mut key_type, mut params, mut id) = (None, None, None);
        for a in attrs {
            match a {
                Attribute::KeyType(t) => key_type = Some(t),
                Attribute::EcParams(p) => params = Some(p),
                Attribute::Id(i) => id = Some(i),
                _ => {}
            }
        }
        let key_type =
            key_type.ok_or_else(|| p11("load key", format!("{key} has no CKA_KEY_TYPE")))?;
        let alg = params
            .as_deref()
            .and_then(|p| algorithm_of(key_type, p))
            .ok_or_else(|| {
                p11(
                    "load key",
                    format!("{key} is a {key_type} key on a curve medsec does not use (need P-256, P-384 or Ed25519)"),
                )
            })?;
        let curve = Curve::of(alg).ok_or(KeyError::UnsupportedAlgorithm(alg))?;
        let mut public_template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY), label_attr];
        // Matching on CKA_ID as well rules out pairing with an unrelated public key that
        // happens to share the label.
        if let Some(id) = id.filter(|i| !i.is_empty()) {
            public_template.push(Attribute::Id(id));
        }
        let public_handle = match find_keys(&session, &public_template)?.as_slice() {
            [h] => *h,
            [] => {
                return Err(p11(
                    "load key",
                    format!("{key} has a private key but no matching public key object"),
                ));
            }
            many => {
                return Err(p11(
                    "load key",
                    format!("{} public keys match {key}; remove the extras", many.len()),
                ));
            }
        };
        let public = read_public_key(&session, public_handle, &curve)?;
        drop(session);
        Ok(Box::new(Pkcs11Signer {
            key_ref: key.clone(),
            alg,
            public,
            key: private_handle,
            session: Arc::clone(&self.session),
        }))
    }

    fn destroy(&self, key: &KeyRef) -> Result<(), KeyError> {
        let label = token_label_of(key)?;
        let label_attr = Attribute::Label(label.as_bytes().to_vec());
        let _token = token_guard();
        let session = lock(&self.session);
        let private_keys = find_keys(
            &session,
            &[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                label_attr.clone(),
            ],
        )?;
        if private_keys.is_empty() {
            return Err(KeyError::NotFound {
                key: format!("{key} in token {:?}", self.token_label),
            });
        }
        let public_keys = find_keys(
            &session,
            &[Attribute::Class(ObjectClass::PUBLIC_KEY), label_attr],
        )?;
        // Private halves first: once they are gone the key is unusable whatever else fails.
        for handle in private_keys.into_iter().chain(public_keys) {
            session
                .destroy_object(handle)
                .map_err(|e| p11("destroy key", format!("{key}: {}", describe(&e))))?;
        }
        Ok(())
    }
}

/// A private key in a token, signing through its source's session.
struct Pkcs11Signer {
    key_ref: KeyRef,
    alg: KeyAlgorithm,
    public: Vec<u8>,
    key: ObjectHandle,
    session: Arc<Mutex<Session>>,
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("key_ref", &self.key_ref)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Signer for Pkcs11Signer {
    fn key_ref(&self) -> &KeyRef {
        &self.key_ref
    }
    fn algorithm(&self) -> KeyAlgorithm {
        self.alg
    }
    fn public_key(&self) -> &[u8] {
        &self.public
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let failed = |e: CkError| KeyError::Sign(format!("{}: {}", self.key_ref, describe(&e)));
        // CKM_ECDSA signs a digest: hashing here sends 32-48 bytes to the token instead of the
        // whole message, and works on tokens without the combined CKM_ECDSA_SHA* mechanisms.
        let (digest, field_len) = match self.alg {
            KeyAlgorithm::EcdsaP256 => (Sha256::digest(msg).to_vec(), 32),
            KeyAlgorithm::EcdsaP384 => (Sha384::digest(msg).to_vec(), 48),
            KeyAlgorithm::Ed25519 => {
                let mech = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
                let _token = token_guard();
                let sig = lock(&self.session)
                    .sign(&mech, self.key, msg)
                    .map_err(failed)?;
                if sig.len() != 64 {
                    return Err(KeyError::Sign(format!(
                        "{}: token returned a {}-byte Ed25519 signature",
                        self.key_ref,
                        sig.len()
                    )));
                }
                return Ok(sig);
            }
            other => return Err(KeyError::UnsupportedAlgorithm(other)),
        };
        let _token = token_guard();
        let raw = lock(&self.session)
            .sign(&Mechanism::Ecdsa, self.key, &digest)
            .map_err(failed)?;
        ecdsa_raw_to_der(&raw, field_len)
    }
}

/// Converts PKCS#11's fixed-width r || s into the DER `ECDSA-Sig-Value` X.509 expects.
fn ecdsa_raw_to_der(raw: &[u8], field_len: usize) -> Result<Vec<u8>, KeyError> {
    if field_len == 0 || raw.len() != 2 * field_len {
        return Err(KeyError::Sign(format!(
            "token returned a {}-byte ECDSA signature, expected {}",
            raw.len(),
            2 * field_len
        )));
    }
    let (r, s) = raw.split_at(field_len);
    let mut body = Vec::with_capacity(raw.len() + 6);
    push_der_uint(&mut body, r);
    push_der_uint(&mut body, s);
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(0x30);
    push_der_len(&mut out, body.len());
    out.extend_from_slice(&body);
    Ok(out)
}

/// DER INTEGERs are minimal two's complement: drop leading zeros, then add one back if the top
/// bit would otherwise make the value negative.
fn push_der_uint(out: &mut Vec<u8>, be: &[u8]) {
    let trimmed = match be.iter().position(|&b| b != 0) {
        Some(i) => &be[i..],
        None => &[0u8][..],
    };
    let pad = trimmed[0] & 0x80 != 0;
    out.push(0x02);
    push_der_len(out, trimmed.len() + usize::from(pad));
    if pad {
        out.push(0x00);
    }
    out.extend_from_slice(trimmed);
}

fn push_der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_integer_is_minimal_and_positive() {
        let mut raw = [0u8; 64];
        raw[0] = 0x80; // r: top bit set, needs a 0x00 pad
        raw[31] = 0x01;
        raw[32 + 30] = 0x01; // s: thirty leading zeros, stripped
        raw[32 + 31] = 0x23;
        let der = ecdsa_raw_to_der(&raw, 32).unwrap();
        let mut want = vec![0x30, 0x27, 0x02, 0x21, 0x00, 0x80];
        want.extend_from_slice(&[0u8; 30]);
        want.extend_from_slice(&[0x01, 0x02, 0x02, 0x01, 0x23]);
        assert_eq!(der, want);
    }

    #[test]
    fn der_integer_edge_cases() {
        let enc = |b: &[u8]| {
            let mut v = Vec::new();
            push_der_uint(&mut v, b);
            v
        };
        assert_eq!(enc(&[0, 0, 0]), [0x02, 0x01, 0x00]);
        assert_eq!(enc(&[0, 0, 0x7f]), [0x02, 0x01, 0x7f]);
        assert_eq!(enc(&[0, 0, 0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(enc(&[0, 0x80, 0]), [0x02, 0x03, 0x00, 0x80, 0x00]);
        assert_eq!(enc(&[0x01, 0x00]), [0x02, 0x02, 0x01, 0x00]);
        // Long enough to need the long-form length (as a P-521-sized signature would).
        let der = ecdsa_raw_to_der(&[0xff; 140], 70).unwrap();
        assert_eq!(&der[..5], &[0x30, 0x81, 0x92, 0x02, 0x47]);
        assert_eq!(der.len(), 3 + 0x92);
        assert!(ecdsa_raw_to_der(&[1; 63], 32).is_err());
    }

    #[test]
    fn der_signatures_verify_with_aws_lc() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
        let rng = SystemRandom::new();
        let cases = [
            (
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &signature::ECDSA_P256_SHA256_ASN1,
                32,
            ),
            (
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                &signature::ECDSA_P384_SHA384_ASN1,
                48,
            ),
        ];
        for (signing, verifying, field_len) in cases {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
            let key = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref()).unwrap();
            let public = UnparsedPublicKey::new(verifying, key.public_key().as_ref().to_vec());
            // Enough signatures that r or s with the top bit set (half of them) is certain.
            for i in 0..32u8 {
                let msg = [i; 7];
                let raw = key.sign(&rng, &msg).unwrap();
                let der = ecdsa_raw_to_der(raw.as_ref(), field_len).unwrap();
                public.verify(&msg, &der).unwrap();
            }
        }
    }

    #[test]
    fn ec_point_with_and_without_octet_string() {
        let mut point = vec![0x04];
        point.extend_from_slice(&[0x3f; 64]);
        assert_eq!(unwrap_ec_point(&point, 65), Some(&point[..]));
        let mut wrapped = vec![0x04, 65];
        wrapped.extend_from_slice(&point);
        assert_eq!(unwrap_ec_point(&wrapped, 65), Some(&point[..]));
        let ed = [0x04, 32]
            .iter()
            .chain(&[7u8; 32])
            .copied()
            .collect::<Vec<_>>();
        assert_eq!(unwrap_ec_point(&ed, 32), Some(&[7u8; 32][..]));
        assert_eq!(unwrap_ec_point(&[7u8; 32], 32), Some(&[7u8; 32][..]));
        assert_eq!(unwrap_ec_point(&point[..64], 65), None);
        let compressed = [0x02].iter().chain(&[1u8; 64]).copied().collect::<Vec<_>>();
        assert_eq!(unwrap_ec_point(&compressed, 65), None);
    }

    #[test]
    fn curve_params_identify_algorithms() {
        assert_eq!(
            algorithm_of(KeyType::EC, P256_PARAMS),
            Some(KeyAlgorithm::EcdsaP256)
        );
        assert_eq!(
            algorithm_of(KeyType::EC, P384_PARAMS),
            Some(KeyAlgorithm::EcdsaP384)
        );
        for p in [ED25519_OID_PARAMS, ED25519_NAME_PARAMS] {
            assert_eq!(
                algorithm_of(KeyType::EC_EDWARDS, p),
                Some(KeyAlgorithm::Ed25519)
            );
        }
        assert_eq!(algorithm_of(KeyType::EC, ED25519_OID_PARAMS), None);
        assert_eq!(algorithm_of(KeyType::RSA, &[]), None);
        assert_eq!(key_id("root").len(), 16);
    }

    #[test]
    fn config_debug_hides_pin() {
        let c = Pkcs11Config {
            module: "/x.so".into(),
            token_label: "t".into(),
            pin: Zeroizing::new("s3cret-pin".into()),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
