//! Chain order and linkage on rcgen-made chains; stable problem names.

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::CertificateDer;

use super::*;

struct Ca {
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn params(cn: &str, ca: bool) -> CertificateParams {
    let mut params = CertificateParams::new(if ca { vec![] } else { vec![cn.to_owned()] }).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    params
}

fn root(cn: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let params = params(cn, true);
    let der = params.self_signed(&key).unwrap().der().clone();
    Ca { der, issuer: Issuer::new(params, key) }
}

fn intermediate(cn: &str, by: &Ca) -> Ca {
    let key = KeyPair::generate().unwrap();
    let params = params(cn, true);
    let der = params.signed_by(&key, &by.issuer).unwrap().der().clone();
    Ca { der, issuer: Issuer::new(params, key) }
}

fn leaf(cn: &str, by: &Ca) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    params(cn, false).signed_by(&key, &by.issuer).unwrap().der().clone()
}

#[test]
fn a_chain_in_issuing_order_is_in_order() {
    let root = root("Test Root");
    let inter = intermediate("Test Intermediate", &root);
    let leaf = leaf("example.com", &inter);
    let order = check_chain_order(&[leaf.clone(), inter.der.clone()]);
    assert!(order.in_order, "{:?}", order.problems);
    let order = check_chain_order(&[leaf.clone(), inter.der.clone(), root.der.clone()]);
    assert!(order.in_order, "{:?}", order.problems);
    assert!(check_chain_order(&[leaf]).in_order);
    assert!(check_chain_order(&[]).in_order);
}

#[test]
fn a_swapped_chain_is_out_of_order_and_says_where_the_issuer_is() {
    let root = root("Test Root");
    let inter = intermediate("Test Intermediate", &root);
    let leaf = leaf("example.com", &inter);
    let order = check_chain_order(&[leaf, root.der.clone(), inter.der.clone()]);
    assert!(!order.in_order);
    assert_eq!(order.problems.len(), 2, "{:?}", order.problems);
    assert!(order.problems[0].contains("certificate 1 (CN=example.com)"), "{}", order.problems[0]);
    assert!(order.problems[0].contains("its issuer is certificate 3"), "{}", order.problems[0]);
    assert!(order.problems[0].contains("out of order"), "{}", order.problems[0]);
}

#[test]
fn a_missing_issuer_is_reported() {
    let root = root("Test Root");
    let inter = intermediate("Test Intermediate", &root);
    let leaf = leaf("example.com", &inter);
    let order = check_chain_order(&[leaf, root.der.clone()]);
    assert!(!order.in_order);
    assert!(order.problems[0].contains("CN=Test Intermediate is not in the file"), "{}", order.problems[0]);
}

#[test]
fn same_name_but_wrong_key_is_not_the_issuer() {
    let root = root("Test Root");
    let inter = intermediate("Test Intermediate", &root);
    let impostor = intermediate("Test Intermediate", &root);
    let leaf = leaf("example.com", &inter);
    let order = check_chain_order(&[leaf, impostor.der]);
    assert!(!order.in_order);
}

#[test]
fn garbage_does_not_parse() {
    let order = check_chain_order(&[CertificateDer::from(vec![1, 2, 3])]);
    assert!(!order.in_order);
    assert!(order.problems[0].contains("does not parse"));
}

#[test]
fn anchor_subjects_print_like_certificate_subjects() {
    let root = root("Test Root");
    let anchor = webpki::anchor_from_trusted_cert(&root.der).unwrap();
    assert_eq!(anchor_subject(&anchor), "CN=Test Root");
    // Long names use the long form of the DER length.
    let long = super::tests::root(&"x".repeat(200));
    let anchor = webpki::anchor_from_trusted_cert(&long.der).unwrap();
    assert_eq!(anchor_subject(&anchor), format!("CN={}", "x".repeat(200)));
}

#[test]
fn problems_have_stable_names() {
    assert_eq!(ChainProblem::UnknownIssuer.as_str(), "unknown-issuer");
    assert_eq!(serde_json::to_string(&ChainProblem::HostnameMismatch).unwrap(), "\"hostname-mismatch\"");
    assert_eq!(ChainProblem::SelfSigned.to_string(), "self-signed");
}

#[test]
fn a_reversed_chain_is_out_of_order() {
    let root = root("Test Root");
    let inter = intermediate("Test Intermediate", &root);
    let leaf = leaf("example.com", &inter);
    let order = check_chain_order(&[inter.der.clone(), leaf]);
    assert!(!order.in_order);
    assert_eq!(order.problems.len(), 1, "{:?}", order.problems);
    assert!(order.problems[0].contains("which it issued: the chain is out of order"), "{}", order.problems[0]);
}
