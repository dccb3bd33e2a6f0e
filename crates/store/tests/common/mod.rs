//! Setup shared by the story tests: a CA with a cheap key source, one profile, CSRs.

#![allow(dead_code)]

use std::sync::Arc;

use medsec_ca::{Ca, CaInitSpec, CaStore, CaUrls, Profile};
use medsec_core::{Actor, DeviceModel, KeyAlgorithm, Name};
use medsec_keys::{EncryptedFileKeySource, KdfParams, Passphrase};
use time::Duration;

pub fn keys(dir: &std::path::Path) -> Arc<EncryptedFileKeySource> {
    let pass = Passphrase::new(b"story test passphrase".to_vec()).unwrap();
    // The cheapest Argon2id cost the key source accepts keeps the suite fast.
    let kdf = KdfParams {
        m_kib: 19 * 1024,
        t: 2,
        p: 1,
    };
    Arc::new(
        EncryptedFileKeySource::new(dir.join("keys"), pass)
            .with_kdf(kdf)
            .unwrap(),
    )
}

pub fn spec() -> CaInitSpec {
    CaInitSpec {
        root_name: Name::parse("root").unwrap(),
        root_common_name: "Story Root".into(),
        issuing_name: Name::parse("issuing").unwrap(),
        issuing_common_name: "Story Issuing".into(),
        organization: "Story Medical".into(),
        country: Some("CA".into()),
        key_algorithm: KeyAlgorithm::EcdsaP256,
        root_validity_days: 3650,
        issuing_validity_days: 1825,
        root_crl_validity: Duration::days(30),
        issuing_crl_validity: Duration::days(1),
        urls: CaUrls {
            crl_url_template: Some("http://pki.example/crl/{ca}.crl".into()),
            ocsp_url: Some("http://pki.example/ocsp".into()),
            crl_shards: 1,
        },
    }
}

pub fn profile() -> Profile {
    Profile {
        name: Name::parse("pump").unwrap(),
        model: DeviceModel::parse("pump-x2").unwrap(),
        issuer: Name::parse("issuing").unwrap(),
        key_types: vec![KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519],
        validity_days: 365,
        server_auth: false,
        organization: "Story Medical".into(),
        cn_template: "{model}-{serial}".into(),
        requires_bootstrap: true,
        rekey_overlap_days: 7,
    }
}

pub fn csr(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .der()
        .to_vec()
}

pub async fn ready<S: CaStore>(store: S, dir: &std::path::Path) -> (Ca<S>, Actor) {
    let ca = Ca::new(store, keys(dir));
    let actor = Actor::parse("test:story").unwrap();
    ca.init(&spec(), &actor).await.unwrap();
    ca.put_profile(&profile(), &actor).await.unwrap();
    (ca, actor)
}

/// A PostgreSQL store on a fresh database of the test process's throwaway cluster.
pub async fn pg() -> medsec_store::PgStore {
    let url = medsec_store::pg_cluster::Cluster::fresh_database().unwrap();
    medsec_store::PgStore::connect(&url, &Default::default())
        .await
        .unwrap()
}
