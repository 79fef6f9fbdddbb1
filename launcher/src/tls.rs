//! Ephemeral per-bottle certificate authorities (ECDSA P-256) and the files the sidecars read them from.
//!
//! Every launch mints fresh CAs: one for pipelock (its TLS interception; trusted by the egress-proxy's
//! outbound leg) and one for the egress-proxy (trusted by the agent). P-256 because pipelock refuses RSA
//! and mitmproxy accepts both. Keys live in memory as [`Secret`]s and on disk only in the bottle's stage
//! folder with mode 0600, in the one sidecar's folder that needs them.

use std::fmt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// How long a CA (and a leaf it issues) is valid: a launch outlives no session this long, and a stolen
/// CA dies with it.
pub const CA_VALIDITY_DAYS: i64 = 30;

/// mitmproxy's CA file in its `confdir`: the private key followed by the certificate.
pub const MITMPROXY_CA_FILE: &str = "mitmproxy-ca.pem";
/// The CA certificate alone, for trust stores (`update-ca-certificates` wants `.crt`).
pub const CA_CERT_FILE: &str = "ca.crt";
/// The CA private key alone (pipelock's `tls_interception.ca_key`).
pub const CA_KEY_FILE: &str = "ca.key";

/// What a CA is for; part of its name so `openssl x509 -subject` tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaPurpose {
    /// pipelock's TLS interception.
    Pipelock,
    /// The egress-proxy's TLS interception (the CA the agent trusts).
    EgressProxy,
}

impl CaPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CaPurpose::Pipelock => "pipelock",
            CaPurpose::EgressProxy => "egress-proxy",
        }
    }
}

impl fmt::Display for CaPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a CA or leaf could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to generate the {purpose} CA of bottle {slug:?}: {source}")]
    Generate {
        slug: String,
        purpose: CaPurpose,
        #[source]
        source: rcgen::Error,
    },
    #[error("failed to issue a certificate for {names:?}: {source}")]
    Issue {
        names: Vec<String>,
        #[source]
        source: rcgen::Error,
    },
    #[error("{0}\nhint: check that the bottle's state folder is writable")]
    Write(#[from] crate::state::AtomicError),
    #[error("failed to read a certificate: {0}")]
    Pem(String),
}

/// A per-bottle CA: certificate, key and fingerprint. `Debug` never shows the key.
pub struct BottleCa {
    /// PEM certificate (public: goes into trust stores).
    pub cert_pem: String,
    /// PEM SEC1 private key (`BEGIN EC PRIVATE KEY`, curve named inside): pipelock's CA loader parses
    /// SEC1 only (`x509.ParseECPrivateKey`), and mitmproxy reads any PEM key form.
    pub key_pem: Secret,
    /// SHA-256 of the DER certificate, uppercase hex pairs joined by `:` (as `openssl x509 -fingerprint`).
    pub sha256_fingerprint: String,
    pub purpose: CaPurpose,
    params: CertificateParams,
    key: KeyPair,
}

impl fmt::Debug for BottleCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BottleCa")
            .field("purpose", &self.purpose)
            .field("sha256_fingerprint", &self.sha256_fingerprint)
            .field("key_pem", &self.key_pem)
            .finish_non_exhaustive()
    }
}

/// A leaf certificate issued by a [`BottleCa`] (tests use one for their HTTPS "internet").
#[derive(Debug, Clone)]
pub struct LeafCert {
    pub cert_pem: String,
    pub key_pem: Secret,
}

/// Where [`BottleCa::write_pipelock`] put pipelock's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelockCaFiles {
    /// `<dir>/ca.crt`, mode 0644.
    pub cert: PathBuf,
    /// `<dir>/ca.key`, mode 0600.
    pub key: PathBuf,
}

impl BottleCa {
    /// Mints a CA named `claude-bottle <slug> <purpose> CA`, valid from an hour ago (clock skew between
    /// host and containers) for [`CA_VALIDITY_DAYS`].
    pub fn mint(slug: &str, purpose: CaPurpose) -> Result<Self, TlsError> {
        let err = |source| TlsError::Generate {
            slug: slug.to_owned(),
            purpose,
            source,
        };
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(err)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(
            DnType::CommonName,
            format!("claude-bottle {slug} {purpose} CA"),
        );
        name.push(DnType::OrganizationName, "claude-bottle");
        name.push(DnType::OrganizationalUnitName, format!("bottle {slug}"));
        params.distinguished_name = name;
        // Path length 0: this CA signs leaves only, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params);
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(Self {
            sha256_fingerprint: fingerprint_der(cert.der()),
            cert_pem: cert.pem(),
            key_pem: sec1_pem(&key).map_err(err)?,
            purpose,
            params,
            key,
        })
    }

    /// Issues a server certificate for `names` (DNS names), P-256, signed by this CA.
    pub fn issue_leaf(&self, names: &[&str]) -> Result<LeafCert, TlsError> {
        let err = |source| TlsError::Issue {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            source,
        };
        let owned: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(owned).map_err(err)?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(err)?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).map_err(err)?;
        Ok(LeafCert {
            cert_pem: cert.pem(),
            key_pem: sec1_pem(&key).map_err(err)?,
        })
    }

    /// mitmproxy's `confdir/mitmproxy-ca.pem`: key then certificate.
    pub fn mitmproxy_pem(&self) -> Secret {
        Secret::new(format!("{}{}", self.key_pem.expose(), self.cert_pem))
    }

    /// Writes `<dir>/mitmproxy-ca.pem` (0600) and `<dir>/ca.crt` (0644); returns the former.
    pub fn write_mitmproxy(&self, dir: &Path) -> Result<PathBuf, TlsError> {
        write_file(&dir.join(CA_CERT_FILE), self.cert_pem.as_bytes(), 0o644)?;
        let path = dir.join(MITMPROXY_CA_FILE);
        write_file(&path, self.mitmproxy_pem().expose().as_bytes(), 0o600)?;
        Ok(path)
    }

    /// Writes pipelock's `<dir>/ca.crt` (0644) and `<dir>/ca.key` (0600).
    pub fn write_pipelock(&self, dir: &Path) -> Result<PipelockCaFiles, TlsError> {
        let files = PipelockCaFiles {
            cert: dir.join(CA_CERT_FILE),
            key: dir.join(CA_KEY_FILE),
        };
        write_file(&files.cert, self.cert_pem.as_bytes(), 0o644)?;
        write_file(&files.key, self.key_pem.expose().as_bytes(), 0o600)?;
        Ok(files)
    }

    /// Writes the certificate alone (a trust-store file), mode 0644.
    pub fn write_cert(&self, path: &Path) -> Result<(), TlsError> {
        write_file(path, self.cert_pem.as_bytes(), 0o644)
    }
}

/// The SHA-256 fingerprint of the first certificate in `pem`, as in [`BottleCa::sha256_fingerprint`].
pub fn fingerprint_pem(pem: &str) -> Result<String, TlsError> {
    let block = pem::parse(pem).map_err(|e| TlsError::Pem(e.to_string()))?;
    if block.tag() != "CERTIFICATE" {
        return Err(TlsError::Pem(format!(
            "expected a CERTIFICATE block, found {:?}",
            block.tag()
        )));
    }
    Ok(fingerprint_der(block.contents()))
}

/// The key as SEC1 PEM with its named curve: ring generates PKCS#8, whose inner key omits the curve
/// (it lives in the wrapper's algorithm), and Go's `ParseECPrivateKey` needs it named, so the curve is
/// moved in rather than the label changed.
fn sec1_pem(key: &KeyPair) -> Result<Secret, rcgen::Error> {
    use sec1::der::{Decode as _, Encode as _};
    let pkcs8_der = key.serialize_der();
    let info = pkcs8::PrivateKeyInfo::from_der(&pkcs8_der)
        .map_err(|_| rcgen::Error::CouldNotParseKeyPair)?;
    let curve = info
        .algorithm
        .parameters_oid()
        .map_err(|_| rcgen::Error::CouldNotParseKeyPair)?;
    let mut ec = sec1::EcPrivateKey::from_der(info.private_key)
        .map_err(|_| rcgen::Error::CouldNotParseKeyPair)?;
    ec.parameters = Some(sec1::EcParameters::NamedCurve(curve));
    let der = ec
        .to_der()
        .map_err(|_| rcgen::Error::CouldNotParseKeyPair)?;
    let config = ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF);
    Ok(Secret::new(::pem::encode_config(
        &::pem::Pem::new("EC PRIVATE KEY", der),
        config,
    )))
}

fn fingerprint_der(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn set_validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(CA_VALIDITY_DAYS);
}

/// Writes `bytes` to `path` with `mode` from the first byte on, so a key is never readable by
/// others, not even for a moment, and a reader never sees half a file.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    Ok(crate::state::atomic::write_atomic_mode(path, bytes, mode)?)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use x509_parser::prelude::*;

    fn parse(pem: &str) -> Vec<u8> {
        ::pem::parse(pem).expect("valid pem").into_contents()
    }

    #[test]
    fn ca_is_p256_with_ca_flag_and_key_usage() {
        let ca = BottleCa::mint("dev-2", CaPurpose::Pipelock).expect("mint");
        let der = parse(&ca.cert_pem);
        let (_, cert) = X509Certificate::from_der(&der).expect("parse");
        assert_eq!(
            cert.subject().to_string(),
            "CN=claude-bottle dev-2 pipelock CA, O=claude-bottle, OU=bottle dev-2"
        );
        let spki = cert.public_key();
        assert_eq!(
            spki.algorithm.algorithm,
            x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
        );
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .expect("named curve");
        assert_eq!(curve, x509_parser::oid_registry::OID_EC_P256);
        let bc = cert
            .basic_constraints()
            .expect("one extension")
            .expect("present");
        assert!(bc.critical && bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(0));
        let ku = cert.key_usage().expect("one").expect("present").value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        assert!(
            cert.extensions()
                .iter()
                .any(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
        );
        assert!(
            ca.key_pem
                .expose()
                .starts_with("-----BEGIN EC PRIVATE KEY-----"),
            "pipelock loads SEC1 keys only"
        );
        assert!(
            !ca.key_pem.expose().contains('\r'),
            "LF line ends, like every other PEM we write"
        );
        // The curve is named inside the key (Go's ParseECPrivateKey needs it without a PKCS#8 wrapper).
        let der = parse(ca.key_pem.expose());
        let p256_oid = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        assert!(der.windows(p256_oid.len()).any(|w| w == p256_oid));
    }

    #[test]
    fn fingerprint_is_stable_and_distinct() {
        let a = BottleCa::mint("b", CaPurpose::EgressProxy).expect("mint");
        let b = BottleCa::mint("b", CaPurpose::EgressProxy).expect("mint");
        assert_eq!(
            fingerprint_pem(&a.cert_pem).expect("fp"),
            a.sha256_fingerprint
        );
        assert_eq!(
            fingerprint_pem(&a.cert_pem).expect("fp"),
            a.sha256_fingerprint
        );
        assert_ne!(a.sha256_fingerprint, b.sha256_fingerprint);
        assert_eq!(a.sha256_fingerprint.len(), 32 * 3 - 1);
        assert!(fingerprint_pem(a.key_pem.expose()).is_err());
    }

    #[test]
    fn debug_hides_the_key() {
        let ca = BottleCa::mint("b", CaPurpose::EgressProxy).expect("mint");
        let text = format!("{ca:?}");
        assert!(text.contains("[redacted]"));
        assert!(!text.contains("PRIVATE KEY"));
    }

    #[test]
    fn files_have_their_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = BottleCa::mint("b", CaPurpose::Pipelock).expect("mint");
        let files = ca.write_pipelock(dir.path()).expect("write");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&files.key), 0o600);
        assert_eq!(mode(&files.cert), 0o644);
        assert_eq!(
            std::fs::read_to_string(&files.key).expect("read"),
            ca.key_pem.expose()
        );

        let mitm_dir = tempfile::tempdir().expect("tempdir");
        let mitm = BottleCa::mint("b", CaPurpose::EgressProxy).expect("mint");
        let path = mitm.write_mitmproxy(mitm_dir.path()).expect("write");
        assert_eq!(mode(&path), 0o600);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        assert!(text.ends_with(&mitm.cert_pem));
        // Rewriting replaces the file and keeps the mode.
        mitm.write_mitmproxy(mitm_dir.path()).expect("rewrite");
        assert_eq!(mode(&path), 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(mitm_dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");
    }

    #[test]
    fn leaves_are_signed_by_the_ca() {
        let ca = BottleCa::mint("t", CaPurpose::Pipelock).expect("mint");
        let leaf = ca
            .issue_leaf(&["api.github.com", "example.com"])
            .expect("leaf");
        let ca_der = parse(&ca.cert_pem);
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).expect("ca");
        let der = parse(&leaf.cert_pem);
        let (_, cert) = X509Certificate::from_der(&der).expect("leaf");
        assert_eq!(cert.issuer(), ca_cert.subject());
        cert.verify_signature(Some(ca_cert.public_key()))
            .expect("signed by the CA");
        let sans = cert
            .subject_alternative_name()
            .expect("one")
            .expect("present");
        assert_eq!(sans.value.general_names.len(), 2);
    }
}
