//! TLS for the listeners (rustls, `ring` provider): the certificate and key loaded once at
//! startup, and the server side of the handshake.
//!
//! Protocol-free: the AMQP and HTTP listeners accept a TCP connection, hand it to
//! [`Tls::accept`] and serve the stream it returns exactly like a plain one. The handshake is
//! bounded by a timeout because it runs while the connection already holds a slot (AMQP's
//! `max_connections`): a client that opens a socket and never finishes the handshake must
//! not keep that slot.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, crypto::ring, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Default of [`Tls::handshake_timeout`].
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the certificate or key cannot be used. Each message names the file and the setting to
/// change, since it is shown at startup to whoever configured the broker.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "cannot read the TLS {what} {path}: {cause}; set {key} ({flag}, {env}) to a \
         readable PEM file"
    )]
    Read {
        what: &'static str,
        key: &'static str,
        flag: &'static str,
        env: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "no certificate found in {path}: tls_cert must be a PEM file with one or more \
         \"-----BEGIN CERTIFICATE-----\" blocks, the server's certificate first"
    )]
    NoCertificate { path: PathBuf },
    #[error(
        "no private key found in {path}: tls_key must be a PEM file with an unencrypted \
         PKCS#8 (\"BEGIN PRIVATE KEY\"), PKCS#1 (\"BEGIN RSA PRIVATE KEY\") or SEC1 \
         (\"BEGIN EC PRIVATE KEY\") key"
    )]
    NoPrivateKey { path: PathBuf },
    #[error("{path} is not valid PEM: {cause}")]
    Pem {
        path: PathBuf,
        cause: rustls_pki_types::pem::Error,
    },
    #[error(
        "the private key in {key} does not match the certificate in {cert}: give the key the \
         certificate was issued for (tls_key) or the certificate of this key (tls_cert)"
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("the certificate {cert} and key {key} cannot be used for TLS: {cause}")]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        cause: rustls::Error,
    },
}

/// The broker's TLS identity, ready to accept connections. Cheap to clone: listeners share
/// one.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Load the certificate chain (`cert`, PEM, server certificate first) and its private key
    /// (`key`, PEM), and check that they belong together.
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let cert_pem = read(
            cert,
            "certificate",
            ["tls_cert", "--tls-cert", "SWITCHYARD_TLS_CERT"],
        )?;
        let key_pem = read(
            key,
            "private key",
            ["tls_key", "--tls-key", "SWITCHYARD_TLS_KEY"],
        )?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|cause| TlsError::Pem {
                path: cert.to_owned(),
                cause,
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: cert.to_owned(),
            });
        }
        let private_key = match PrivateKeyDer::from_pem_slice(&key_pem) {
            Ok(k) => k,
            Err(rustls_pki_types::pem::Error::NoItemsFound) => {
                return Err(TlsError::NoPrivateKey {
                    path: key.to_owned(),
                })
            }
            Err(cause) => {
                return Err(TlsError::Pem {
                    path: key.to_owned(),
                    cause,
                })
            }
        };
        let unusable = |cause: rustls::Error| match cause {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            },
            cause => TlsError::Unusable {
                cert: cert.to_owned(),
                key: key.to_owned(),
                cause,
            },
        };
        // An explicit provider: the process-wide default would depend on which rustls
        // features other crates in the build happen to enable.
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(unusable)?
            .with_no_client_auth()
            .with_single_cert(chain, private_key)
            .map_err(unusable)?;
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            handshake_timeout: HANDSHAKE_TIMEOUT,
        })
    }

    /// How long a client may take to finish the handshake (default [`HANDSHAKE_TIMEOUT`]).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Tls {
        self.handshake_timeout = timeout;
        self
    }

    /// Run the server side of the handshake on an accepted socket. `None` when it failed or
    /// timed out (a plain-TCP client on the TLS port, an untrusted certificate, a stalled
    /// client): logged, never an error of the listener, which goes on accepting.
    pub async fn accept(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<TlsStream<TcpStream>> {
        let _ = stream.set_nodelay(true);
        match tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(stream)).await {
            Ok(Ok(tls)) => Some(tls),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, timeout = ?self.handshake_timeout, "TLS handshake timed out");
                None
            }
        }
    }
}

/// Read a PEM file; `names`: the setting's key, flag and variable, for the error.
fn read(path: &Path, what: &'static str, names: [&'static str; 3]) -> Result<Vec<u8>, TlsError> {
    let [key, flag, env] = names;
    std::fs::read(path).map_err(|cause| TlsError::Read {
        what,
        key,
        flag,
        env,
        path: path.to_owned(),
        cause,
    })
}
