//! Opening a verified, bound LDAP connection to one domain controller.
//!
//! TLS is mandatory: LDAPS, or StartTLS on plain LDAP. The server certificate is checked
//! against `ad.ca_file` (or the system trust store); `insecure_skip_verify` turns that off and
//! says so in a warning on every run. The bind is a simple bind whose password comes from
//! `LASTSEEN_AD_PASSWORD` or `ad.password_file` and is held in a [`Secret`] that never prints.

use std::path::Path;
use std::sync::Arc;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{AdConfig, AdError};

/// The environment variable that overrides `ad.password_file`.
pub const PASSWORD_ENV: &str = "LASTSEEN_AD_PASSWORD";

/// A password that shows as `[redacted]` in every `Debug` output.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Reads the bind password: the environment wins over the file. An empty password is refused,
/// because LDAP treats a simple bind without one as an anonymous bind that "succeeds".
pub fn load_password(config: &AdConfig) -> Result<Secret, AdError> {
    let password = match std::env::var(PASSWORD_ENV) {
        Ok(password) => password,
        Err(_) => {
            let path = config.password_file.as_deref().ok_or_else(|| {
                AdError::Password(format!("set ad.password_file or {PASSWORD_ENV}"))
            })?;
            let text = std::fs::read_to_string(path).map_err(|error| {
                AdError::Password(format!("cannot read {}: {error}", path.display()))
            })?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            text.strip_suffix('\r').unwrap_or(text).to_owned()
        }
    };

    if password.is_empty() {
        return Err(AdError::Password(
            "the password is empty, which LDAP would take as an anonymous bind".into(),
        ));
    }
    Ok(Secret(password))
}

/// A bound connection. Dropping it ends the connection's driver task.
pub struct Connection {
    pub ldap: Ldap,
    pub url: String,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Connection {
    /// Says goodbye to the server; errors do not matter any more at that point.
    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// Connects, sets up TLS and binds.
pub async fn connect(config: &AdConfig, password: &Secret) -> Result<Connection, AdError> {
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(config.connect_timeout())
        .set_starttls(config.starttls);
    settings = settings.set_config(tls_config(config)?);

    let url = config.url.clone();
    let (driver, ldap) = LdapConnAsync::with_settings(settings, &url)
        .await
        .map_err(|error| classify_connect_error(&url, error))?;
    let driver = tokio::spawn(async move {
        if let Err(error) = driver.drive().await {
            tracing::debug!(%error, "LDAP connection closed with an error.");
        }
    });
    let mut connection = Connection { ldap, url, driver };

    let result = connection
        .ldap
        .with_timeout(config.operation_timeout())
        .simple_bind(&config.bind_dn, password.expose())
        .await
        .map_err(|error| classify_connect_error(&config.url, error))?;
    if result.rc != 0 {
        return Err(AdError::Bind {
            bind_dn: config.bind_dn.clone(),
            detail: describe_rc(result.rc, &result.text),
        });
    }

    tracing::debug!(url = %config.url, bind_dn = %config.bind_dn, "Bound to the controller.");
    Ok(connection)
}

/// The rustls configuration: the CA file's certificates as the only roots, the system store
/// without one, or no verification at all when the config insists.
fn tls_config(config: &AdConfig) -> Result<Arc<ClientConfig>, AdError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| AdError::Config(format!("TLS setup: {error}")))?;

    if config.insecure_skip_verify {
        tracing::warn!(
            url = %config.url,
            "TLS certificate verification is off (ad.insecure_skip_verify): anyone on the path \
             can read the bind password."
        );
        let verifier = Arc::new(AcceptAnyCertificate { provider });
        let tls = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        return Ok(Arc::new(tls.with_no_client_auth()));
    }

    let roots = match &config.ca_file {
        Some(path) => roots_from_file(path)?,
        None => system_roots(),
    };
    Ok(Arc::new(
        builder.with_root_certificates(roots).with_no_client_auth(),
    ))
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, AdError> {
    let problem = |problem: String| AdError::CaFile {
        path: path.to_owned(),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|error| problem(format!("cannot read: {error}")))?;

    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&bytes) {
        let certificate =
            certificate.map_err(|error| problem(format!("is not valid PEM: {error}")))?;
        roots
            .add(certificate)
            .map_err(|error| problem(format!("holds a certificate rustls refuses: {error}")))?;
    }
    if roots.is_empty() {
        return Err(problem("holds no PEM certificate".into()));
    }
    Ok(roots)
}

/// The usual Debian and Red Hat bundle locations; an empty store makes every certificate fail
/// with "unknown issuer", which the error message then explains.
fn system_roots() -> RootCertStore {
    const BUNDLES: [&str; 2] = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ];

    let mut roots = RootCertStore::empty();
    for bundle in BUNDLES {
        if let Ok(bytes) = std::fs::read(bundle) {
            let certificates = CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok);
            roots.add_parsable_certificates(certificates);
            break;
        }
    }
    roots
}

/// Sorts a connection failure into a certificate problem (no retry helps) or a network one.
fn classify_connect_error(url: &str, error: LdapError) -> AdError {
    if let LdapError::Io { source } = &error
        && let Some(tls) = source
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return AdError::Tls {
            url: url.to_owned(),
            detail: tls.to_string(),
        };
    }
    match error {
        LdapError::LdapResult { result } => AdError::Tls {
            url: url.to_owned(),
            detail: format!("StartTLS refused: {}", describe_rc(result.rc, &result.text)),
        },
        LdapError::UrlParsing { .. } | LdapError::UnknownScheme(_) | LdapError::DNSName { .. } => {
            AdError::Config(format!("ad.url {url:?}: {error}"))
        }
        other => AdError::Connect {
            url: url.to_owned(),
            detail: other.to_string(),
        },
    }
}

/// An LDAP result code with its name, and the server's text when it has one.
pub fn describe_rc(rc: u32, text: &str) -> String {
    let name = match rc {
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        87 => "filterError",
        _ => "result",
    };
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if text.is_empty() {
        format!("{name} (rc={rc})")
    } else {
        format!("{name} (rc={rc}): {text}")
    }
}

/// The `insecure_skip_verify` verifier: it accepts any certificate but still checks that the
/// handshake was signed by the key of the certificate shown.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, certificate, signature, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, certificate, signature, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let secret = Secret("Passw0rd!".into());
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&secret)), "Some([redacted])");
    }

    #[test]
    fn result_codes_are_named() {
        assert_eq!(
            describe_rc(49, "80090308: LdapErr\0"),
            "invalidCredentials (rc=49): 80090308: LdapErr"
        );
        assert_eq!(describe_rc(32, ""), "noSuchObject (rc=32)");
    }

    #[test]
    fn ca_file_problems_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let error = roots_from_file(&path).unwrap_err().to_string();
        assert!(
            error.contains("ca.pem") && error.contains("no PEM certificate"),
            "{error}"
        );

        let missing = dir.path().join("missing.pem");
        let error = roots_from_file(&missing).unwrap_err().to_string();
        assert!(error.contains("missing.pem: cannot read"), "{error}");
    }
}
