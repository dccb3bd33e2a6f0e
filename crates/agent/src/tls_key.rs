//! TLS client authentication with a key rustls never holds: a rustls `SigningKey` whose
//! signatures come from a `medsec_keys::Signer`, so a key inside a PKCS#11 token
//! authenticates exactly like a key file.
//!
//! Each key offers the one scheme its type allows: ECDSA in TLS 1.3 binds the hash to the
//! curve (P-256 with SHA-256, P-384 with SHA-384), and the `Signer` hashes accordingly;
//! Ed25519 has only one. The encodings line up without conversion: rustls wants DER
//! `ECDSA-Sig-Value` and the raw 64 Ed25519 bytes, which is what `medsec_keys` returns.
//!
//! A token signs in a blocking call inside the handshake. The agent makes one connection at a
//! time, so there is nothing else for the runtime thread to do meanwhile.

use std::sync::Arc;

use medsec_core::KeyAlgorithm;
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
use rustls::sign::{CertifiedKey, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

use crate::AgentError;

/// A `medsec_keys::Signer` as a rustls signing key.
pub(crate) struct SignerKey {
    signer: Arc<dyn medsec_keys::Signer>,
    scheme: SignatureScheme,
    algorithm: SignatureAlgorithm,
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerKey")
            .field("key", &self.signer.key_ref())
            .field("scheme", &self.scheme)
            .finish()
    }
}

impl SignerKey {
    pub(crate) fn new(signer: Arc<dyn medsec_keys::Signer>) -> Result<Self, AgentError> {
        let (scheme, algorithm) = match signer.algorithm() {
            KeyAlgorithm::EcdsaP256 => (
                SignatureScheme::ECDSA_NISTP256_SHA256,
                SignatureAlgorithm::ECDSA,
            ),
            KeyAlgorithm::EcdsaP384 => (
                SignatureScheme::ECDSA_NISTP384_SHA384,
                SignatureAlgorithm::ECDSA,
            ),
            KeyAlgorithm::Ed25519 => (SignatureScheme::ED25519, SignatureAlgorithm::ED25519),
            other => {
                return Err(AgentError::Key(format!(
                    "{other} keys cannot be used for TLS client authentication"
                )));
            }
        };
        Ok(SignerKey {
            signer,
            scheme,
            algorithm,
        })
    }
}

impl SigningKey for SignerKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        // Not offered: rustls then sends no certificate and the server says what it misses,
        // which is clearer than a signature it cannot check.
        offered.contains(&self.scheme).then(|| {
            Box::new(SchemeSigner {
                signer: Arc::clone(&self.signer),
                scheme: self.scheme,
            }) as Box<dyn rustls::sign::Signer>
        })
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.signer.spki_der()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }
}

/// One handshake's signer, bound to the scheme chosen.
struct SchemeSigner {
    signer: Arc<dyn medsec_keys::Signer>,
    scheme: SignatureScheme,
}

impl std::fmt::Debug for SchemeSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemeSigner")
            .field("key", &self.signer.key_ref())
            .field("scheme", &self.scheme)
            .finish()
    }
}

impl rustls::sign::Signer for SchemeSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        // A token can fail here (removed, PIN reset, session lost); the handshake then fails
        // with this text instead of a bare alert.
        self.signer.sign(message).map_err(|e| {
            rustls::Error::General(format!("device key {}: {e}", self.signer.key_ref()))
        })
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

/// The client identity for rustls: `chain` (leaf first) with `signer` as its key.
pub(crate) fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    signer: Arc<dyn medsec_keys::Signer>,
) -> Result<CertifiedKey, AgentError> {
    if chain.is_empty() {
        return Err(AgentError::Key(
            "no certificate to authenticate with".into(),
        ));
    }
    Ok(CertifiedKey::new(chain, Arc::new(SignerKey::new(signer)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
    use medsec_keys::KeyRef;

    use crate::keys::{DeviceKey, SUPPORTED};

    const ALL_SCHEMES: [SignatureScheme; 6] = [
        SignatureScheme::ECDSA_NISTP384_SHA384,
        SignatureScheme::ECDSA_NISTP256_SHA256,
        SignatureScheme::ED25519,
        SignatureScheme::RSA_PSS_SHA256,
        SignatureScheme::ECDSA_NISTP521_SHA512,
        SignatureScheme::RSA_PKCS1_SHA256,
    ];

    /// How a TLS peer checks a signature of `scheme`.
    fn verifier(scheme: SignatureScheme) -> &'static dyn VerificationAlgorithm {
        match scheme {
            SignatureScheme::ECDSA_NISTP256_SHA256 => &signature::ECDSA_P256_SHA256_ASN1,
            SignatureScheme::ECDSA_NISTP384_SHA384 => &signature::ECDSA_P384_SHA384_ASN1,
            SignatureScheme::ED25519 => &signature::ED25519,
            other => panic!("unexpected scheme {other:?}"),
        }
    }

    /// Signs as rustls would (choose_scheme, then sign) and verifies like the peer.
    fn sign_and_verify(key: &SignerKey, offered: &[SignatureScheme]) -> SignatureScheme {
        let signer = key.choose_scheme(offered).expect("a scheme is offered");
        let spki = key.public_key().unwrap();
        let public = medsec_keys::public_key_from_spki(key.signer.algorithm(), &spki).unwrap();
        // TLS 1.3 CertificateVerify content is 64 spaces, a context string, 0, a hash; any
        // bytes do for the signature itself, but a realistic length is no worse.
        let msg = [
            b" ".repeat(64),
            b"TLS 1.3, client CertificateVerify\0".to_vec(),
            vec![7; 32],
        ]
        .concat();
        for _ in 0..8 {
            let sig = rustls::sign::Signer::sign(&*signer, &msg).unwrap();
            UnparsedPublicKey::new(verifier(signer.scheme()), &public)
                .verify(&msg, &sig)
                .unwrap_or_else(|_| panic!("{:?} signature does not verify", signer.scheme()));
            assert!(
                UnparsedPublicKey::new(verifier(signer.scheme()), &public)
                    .verify(b"another message", &sig)
                    .is_err()
            );
        }
        signer.scheme()
    }

    #[test]
    fn each_key_type_signs_with_its_scheme_and_verifies() {
        let want = [
            (
                KeyAlgorithm::EcdsaP256,
                SignatureScheme::ECDSA_NISTP256_SHA256,
                SignatureAlgorithm::ECDSA,
            ),
            (
                KeyAlgorithm::EcdsaP384,
                SignatureScheme::ECDSA_NISTP384_SHA384,
                SignatureAlgorithm::ECDSA,
            ),
            (
                KeyAlgorithm::Ed25519,
                SignatureScheme::ED25519,
                SignatureAlgorithm::ED25519,
            ),
        ];
        for (alg, scheme, sig_alg) in want {
            let k = DeviceKey::generate(alg).unwrap();
            let key = SignerKey::new(k.signer()).unwrap();
            assert_eq!(key.algorithm(), sig_alg);
            assert_eq!(sign_and_verify(&key, &ALL_SCHEMES), scheme);
            assert_eq!(sign_and_verify(&key, &[scheme]), scheme);
            assert_eq!(key.public_key().unwrap().as_ref(), k.spki_der());
        }
    }

    #[test]
    fn a_scheme_the_peer_does_not_offer_is_not_chosen() {
        for alg in SUPPORTED {
            let key = SignerKey::new(DeviceKey::generate(alg).unwrap().signer()).unwrap();
            let others: Vec<_> = ALL_SCHEMES
                .into_iter()
                .filter(|s| *s != key.scheme)
                .collect();
            assert!(key.choose_scheme(&others).is_none(), "{alg}");
            assert!(key.choose_scheme(&[]).is_none(), "{alg}");
        }
    }

    /// A signer that fails, as a token does when it is pulled out mid-handshake.
    struct Broken(KeyRef, Vec<u8>);

    impl medsec_keys::Signer for Broken {
        fn key_ref(&self) -> &KeyRef {
            &self.0
        }
        fn algorithm(&self) -> KeyAlgorithm {
            KeyAlgorithm::EcdsaP256
        }
        fn public_key(&self) -> &[u8] {
            &self.1
        }
        fn sign(&self, _: &[u8]) -> Result<Vec<u8>, medsec_keys::KeyError> {
            Err(medsec_keys::KeyError::Sign("CKR_DEVICE_REMOVED".into()))
        }
    }

    #[test]
    fn signing_failures_become_rustls_errors_naming_the_key() {
        let key = SignerKey::new(Arc::new(Broken(
            KeyRef::Pkcs11 {
                label: "device-key".into(),
            },
            vec![4; 65],
        )))
        .unwrap();
        let signer = key
            .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
            .unwrap();
        let e = rustls::sign::Signer::sign(&*signer, b"x").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("pkcs11:object=device-key"), "{text}");
        assert!(text.contains("CKR_DEVICE_REMOVED"), "{text}");
    }

    #[test]
    fn rsa_and_empty_chains_are_refused() {
        struct Rsa(KeyRef);
        impl medsec_keys::Signer for Rsa {
            fn key_ref(&self) -> &KeyRef {
                &self.0
            }
            fn algorithm(&self) -> KeyAlgorithm {
                KeyAlgorithm::Rsa2048
            }
            fn public_key(&self) -> &[u8] {
                &[]
            }
            fn sign(&self, _: &[u8]) -> Result<Vec<u8>, medsec_keys::KeyError> {
                Ok(Vec::new())
            }
        }
        let e = SignerKey::new(Arc::new(Rsa(KeyRef::File { label: "r".into() }))).unwrap_err();
        assert!(e.to_string().contains("rsa-2048"), "{e}");
        let k = DeviceKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        assert!(certified_key(Vec::new(), k.signer()).is_err());
    }

    /// Moves TLS records between the two ends until both have finished the handshake.
    fn handshake(
        client: &mut rustls::ClientConnection,
        server: &mut rustls::ServerConnection,
    ) -> Result<(), rustls::Error> {
        fn pump(
            from: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
            to: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
        ) -> Result<(), rustls::Error> {
            let mut buf = Vec::new();
            while from.wants_write() {
                from.write_tls(&mut buf).unwrap();
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                to.read_tls(&mut rd).unwrap();
                to.process_new_packets()?;
            }
            Ok(())
        }
        for _ in 0..10 {
            pump(client, server)?;
            pump(server, client)?;
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        panic!("the handshake did not finish");
    }

    /// A real rustls server that requires client certificates accepts the adapter's
    /// signatures in TLS 1.3 and 1.2, for every key type.
    #[test]
    fn a_rustls_server_accepts_client_auth_through_the_adapter() {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::server::WebPkiClientVerifier;

        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "adapter test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, &ca_key);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone()).unwrap();
        let roots = Arc::new(roots);

        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let provider = crate::transport::provider();
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .unwrap();

        for alg in SUPPORTED {
            let device = DeviceKey::generate(alg).unwrap();
            let spki = rcgen::SubjectPublicKeyInfo::from_der(&device.spki_der()).unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "device");
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
            let device_cert = params.signed_by(&spki, &issuer).unwrap();
            let identity = certified_key(vec![device_cert.der().clone()], device.signer()).unwrap();
            identity.keys_match().unwrap();
            let client_cfg =
                crate::transport::client_config(roots.clone(), Some(identity)).unwrap();

            for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
                let server_cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
                    .with_protocol_versions(&[version])
                    .unwrap()
                    .with_client_cert_verifier(client_verifier.clone())
                    .with_single_cert(
                        vec![server_cert.der().clone()],
                        PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
                    )
                    .unwrap();
                let mut server = rustls::ServerConnection::new(Arc::new(server_cfg)).unwrap();
                let mut client = rustls::ClientConnection::new(
                    client_cfg.clone(),
                    "localhost".try_into().unwrap(),
                )
                .unwrap();
                handshake(&mut client, &mut server)
                    .unwrap_or_else(|e| panic!("{alg} over {version:?}: {e}"));
                assert_eq!(
                    server.peer_certificates().unwrap()[0].as_ref(),
                    device_cert.der().as_ref(),
                    "{alg} over {version:?}"
                );
            }
        }
    }
}
