//! Certificates for the Vault tests: a CSR to sign, and a check that a signed leaf chains to
//! the PKI's root.

use hakube_vault::client::SignRequest;

/// A CSR for `name` (its only SAN), with a fresh key.
pub fn csr(name: &str) -> SignRequest {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    SignRequest {
        csr_pem: p.serialize_request(&key).unwrap().pem().unwrap(),
        common_name: None,
        alt_names: vec![name.to_owned()],
        ttl: "1h".into(),
    }
}

fn der(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

/// leaf -> chain -> root, by names and signatures; the root self-signed.
pub fn assert_chains_to(leaf_pem: &str, chain: &[String], root_pem: &str) {
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let mut certs: Vec<Vec<u8>> = vec![der(leaf_pem)];
    certs.extend(chain.iter().map(|c| der(c)));
    let root = der(root_pem);
    if certs.last() != Some(&root) {
        certs.push(root);
    }
    assert!(certs.len() >= 3, "leaf, intermediate, root");
    for w in certs.windows(2) {
        let (_, child) = X509Certificate::from_der(&w[0]).unwrap();
        let (_, parent) = X509Certificate::from_der(&w[1]).unwrap();
        assert_eq!(child.issuer(), parent.subject());
        child.verify_signature(Some(parent.public_key())).unwrap();
    }
    let (_, root) = X509Certificate::from_der(certs.last().unwrap()).unwrap();
    root.verify_signature(None).unwrap();
}
