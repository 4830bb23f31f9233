//! TLS through rustls (on ring: no OpenSSL, nothing to install), as libpq's `sslmode`,
//! `sslrootcert`, `sslcert` and `sslkey` say; and the handshake's failures in words.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::conn::{SslMode, TlsParams};

/// How far one connection attempt got, for the message when it times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Connecting over TCP, or waiting for the server's first answer.
    Connecting = 0,
    /// The TLS handshake.
    Handshake = 1,
    /// Start-up and authentication, after the handshake.
    Startup = 2,
}

impl Phase {
    fn from_u8(n: u8) -> Phase {
        match n {
            1 => Phase::Handshake,
            2 => Phase::Startup,
            _ => Phase::Connecting,
        }
    }
}

/// Where a connection attempt is, shared by the attempt and whoever reports its timeout.
#[derive(Debug, Default)]
pub(crate) struct Progress(AtomicU8);

impl Progress {
    pub(crate) fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> Phase {
        Phase::from_u8(self.0.load(Ordering::Relaxed))
    }
}

/// The TLS connector for one connection string: what tokio-postgres calls to start TLS,
/// with the checks the `sslmode` asks for.
#[derive(Clone)]
pub(crate) struct Tls {
    connector: MakeRustlsConnect,
    mode: SslMode,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("mode", &self.mode).finish()
    }
}

impl Tls {
    /// The connector for `params`, reading the certificate files they name (so a missing
    /// or unreadable one fails the open, before any connection is tried).
    pub(crate) fn new(params: &TlsParams) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match (params.mode, &params.root_cert) {
            (SslMode::Disable, _) | (SslMode::Prefer | SslMode::Require, None) => {
                Arc::new(NoCheck(provider.clone()))
            }
            // As libpq: `require` (or `prefer`) with a root certificate checks the CA.
            (SslMode::Prefer | SslMode::Require | SslMode::VerifyCa, root) => {
                Arc::new(AnyName(webpki(roots(root.as_deref())?, &provider)?))
            }
            (SslMode::VerifyFull, root) => webpki(roots(root.as_deref())?, &provider)?,
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&params.client_cert, &params.client_key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "sslcert")?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("cannot read the client key sslkey=`{key}`: {e}"))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    format!("cannot use the client certificate sslcert=`{cert}`: {e}")
                })?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Tls {
            connector: MakeRustlsConnect::new(config),
            mode: params.mode,
        })
    }

    /// This connector, reporting how far a connection attempt got into `progress`.
    pub(crate) fn tracked(&self, progress: Arc<Progress>) -> Tracked {
        Tracked {
            connector: self.connector.clone(),
            progress,
        }
    }
}

/// The trusted CA certificates: the file `sslrootcert` names, or the platform's own
/// (`sslrootcert=system`, or none given).
fn roots(root_cert: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match root_cert {
        Some(path) if path != "system" => {
            let (added, _) = roots.add_parsable_certificates(read_certs(path, "sslrootcert")?);
            if added == 0 {
                return Err(format!(
                    "sslrootcert=`{path}` holds no usable CA certificate (expected PEM: \
                     -----BEGIN CERTIFICATE-----)"
                ));
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
                return Err(format!(
                    "no trusted CA certificates found on this system{}: give the CA that \
                     signed the server's certificate with sslrootcert=/path/to/ca.pem (or \
                     install the system's CA bundle, Debian's `ca-certificates`)",
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", why.join("; "))
                    }
                ));
            }
        }
    }
    Ok(roots)
}

fn read_certs(path: &str, param: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot read {param}=`{path}`: {e}");
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(&e))?;
    if certs.is_empty() {
        return Err(fail(
            &"no PEM certificate in it (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

fn webpki(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("cannot set up certificate checks: {e}"))
}

/// `sslmode=require` (and `prefer`) without a root certificate: the connection is
/// encrypted, and the handshake's signatures are checked, but not who signed the
/// server's certificate — as libpq does.
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
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
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the full check but the host name (webpki checks the chain before
/// the name, so a name mismatch means the chain was good).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The connector of one connection attempt, which marks when the TLS handshake starts
/// and ends.
#[derive(Clone)]
pub(crate) struct Tracked {
    connector: MakeRustlsConnect,
    progress: Arc<Progress>,
}

impl<S> MakeTlsConnect<S> for Tracked
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = TrackedConnect<<MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect>;
    type Error = <MakeRustlsConnect as MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, hostname: &str) -> Result<Self::TlsConnect, Self::Error> {
        Ok(TrackedConnect {
            inner: <MakeRustlsConnect as MakeTlsConnect<S>>::make_tls_connect(
                &mut self.connector,
                hostname,
            )?,
            progress: self.progress.clone(),
        })
    }
}

/// One TLS handshake, marked in the attempt's [`Progress`].
pub(crate) struct TrackedConnect<T> {
    inner: T,
    progress: Arc<Progress>,
}

impl<S, T> TlsConnect<S> for TrackedConnect<T>
where
    T: TlsConnect<S>,
    T::Future: Send + 'static,
{
    type Stream = T::Stream;
    type Error = T::Error;
    type Future = Pin<Box<dyn Future<Output = Result<T::Stream, T::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        self.progress.set(Phase::Handshake);
        let progress = self.progress;
        let handshake = self.inner.connect(stream);
        Box::pin(async move {
            let stream = handshake.await?;
            progress.set(Phase::Startup);
            Ok(stream)
        })
    }
}

/// What went wrong in a TLS handshake, in words, when `e` (or what caused it) is a TLS
/// failure: `host` is the host name connected to, `mode` the `sslmode`.
pub(crate) fn explain(e: &(dyn StdError + 'static), host: &str, mode: SslMode) -> Option<String> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(explain_rustls(tls, host, mode));
        }
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(tls) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(explain_rustls(tls, host, mode));
        }
        if e.to_string().contains("server does not support TLS") {
            return Some(format!(
                "the server does not accept TLS connections (its `ssl` setting is off), but \
                 sslmode={} asks for TLS: turn `ssl` on in the server, or, on a network you \
                 trust, use sslmode=prefer or disable",
                mode.name()
            ));
        }
        next = e.source();
    }
    None
}

fn explain_rustls(e: &rustls::Error, host: &str, mode: SslMode) -> String {
    let what = match e {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the server's certificate is not valid for the host name `{host}` \
             (sslmode=verify-full checks that it names the host connected to): connect by \
             a name the certificate lists, or use sslmode=verify-ca to check only who signed it"
        ),
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "the server's certificate is not signed by a CA this client trusts \
             (sslmode={} checks it): give the CA that signed it with \
             sslrootcert=/path/to/ca.pem",
            mode.name()
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the server's certificate has expired: the server needs a new one".to_owned(),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        ) => {
            "the server's certificate is not valid yet (is this machine's clock right?)".to_owned()
        }
        rustls::Error::InvalidCertificate(other) => {
            format!("the server's certificate was refused: {other:?}")
        }
        rustls::Error::AlertReceived(alert) => format!(
            "the server ended the TLS handshake ({alert:?}); if it asks for a client \
             certificate (sslcert, sslkey), check that it trusts the one given"
        ),
        other => other.to_string(),
    };
    format!("TLS handshake failed: {what}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn params(mode: SslMode, root: Option<&str>) -> TlsParams {
        TlsParams {
            mode,
            root_cert: root.map(str::to_owned),
            client_cert: None,
            client_key: None,
        }
    }

    #[test]
    fn missing_files_fail_before_connecting() {
        let e = Tls::new(&params(SslMode::VerifyFull, Some("/nonexistent/ca.pem"))).unwrap_err();
        assert!(e.contains("sslrootcert=`/nonexistent/ca.pem`"), "{e}");
        let mut p = params(SslMode::Require, None);
        p.client_cert = Some("/nonexistent/client.pem".into());
        p.client_key = Some("/nonexistent/client.key".into());
        let e = Tls::new(&p).unwrap_err();
        assert!(e.contains("sslcert=`/nonexistent/client.pem`"), "{e}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("enduro-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e = Tls::new(&params(SslMode::VerifyCa, Some(path.to_str().unwrap()))).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn modes_without_checks_need_no_files() {
        for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Require] {
            Tls::new(&params(mode, None)).unwrap();
        }
    }

    #[test]
    fn handshake_failures_say_what_to_do() {
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        let wrapped = io::Error::new(io::ErrorKind::InvalidData, name);
        let said = explain(&wrapped, "db.example", SslMode::VerifyFull).unwrap();
        assert!(
            said.contains("not valid for the host name `db.example`"),
            "{said}"
        );
        let issuer = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let said = explain(&issuer, "db", SslMode::VerifyCa).unwrap();
        assert!(said.contains("sslrootcert"), "{said}");
        assert!(explain(&io::Error::other("plain"), "db", SslMode::Require).is_none());
    }
}
