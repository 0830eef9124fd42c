//! TLS material: a self-signed certificate generated on first start (kept in
//! `<data dir>/tls/`, the key readable by its owner only), or PEM files from
//! the configuration. Clients pin the self-signed certificate by its SHA-256
//! fingerprint, which `serve` prints.

use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// TLS material could not be prepared.
#[derive(Debug, Error)]
pub enum TlsError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate could not be generated or parsed.
    #[error("certificate: {0}")]
    Certificate(String),
}

/// Where the certificate and key are, and the certificate's fingerprint.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// PEM certificate chain.
    pub cert_path: PathBuf,
    /// PEM private key.
    pub key_path: PathBuf,
    /// Lowercase hex SHA-256 of the leaf certificate (DER).
    pub fingerprint: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Loads the self-signed certificate in `data_dir/tls`, generating it on
/// first use for `localhost`, `127.0.0.1` and `::1`.
pub fn ensure_self_signed(data_dir: &Path) -> Result<TlsMaterial, TlsError> {
    let dir = data_dir.join("tls");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if !cert_path.exists() || !key_path.exists() {
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        let generated = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        // One without the other (a crash between the two writes) cannot
        // serve: both are made anew.
        for path in [&key_path, &cert_path] {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(path)(e)),
                _ => {}
            }
        }
        let key = zeroize::Zeroizing::new(generated.key_pair.serialize_pem());
        crate::keyfile::write_new(&key_path, key.as_bytes()).map_err(io(&key_path))?;
        crate::keyfile::write_new(&cert_path, generated.cert.pem().as_bytes())
            .map_err(io(&cert_path))?;
    }
    from_files(cert_path, key_path)
}

/// Uses configured PEM files.
pub fn from_files(cert_path: PathBuf, key_path: PathBuf) -> Result<TlsMaterial, TlsError> {
    let leaf = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| TlsError::Certificate(format!("{}: {e}", cert_path.display())))?
        .next()
        .ok_or_else(|| TlsError::Certificate(format!("{}: no certificate", cert_path.display())))?
        .map_err(|e| TlsError::Certificate(format!("{}: {e}", cert_path.display())))?;
    Ok(TlsMaterial {
        fingerprint: hex::encode(Sha256::digest(leaf.as_ref())),
        cert_path,
        key_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure_self_signed(dir.path()).unwrap();
        let second = ensure_self_signed(dir.path()).unwrap();
        assert_eq!(first.fingerprint, second.fingerprint);
        assert_eq!(first.fingerprint.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&first.key_path)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
