//! TLS for the RTMPS and HTTPS/WSS listeners (rustls with the aws-lc-rs provider).
//!
//! The certificate chain and key come from the PEM files named by `[tls]`. One [`CertStore`]
//! holds the current pair and serves it to every handshake through rustls'
//! `ResolvesServerCert`, so a reload is one pointer swap: connections already established
//! keep their session keys and are not touched, and the next handshake gets the new
//! certificate. A watcher task polls the files' modification time and length every
//! `tls.reload_check_ms`; a file that does not load (half written, key not matching) is logged
//! and the old certificate stays in use.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::{Control, ControlError};
use config::TlsConfig;

/// Largest PEM file read (certificate chain or key): a real chain is a few KiB, so anything
/// bigger is a wrong path (a log file, a disk image) that must not be read into memory.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// ALPN protocols offered on the HTTPS listener, preferred first.
pub const HTTPS_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Which TLS listener a handshake happened on (the `listener` label of
/// `sluice_tls_handshake_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// RTMP over TLS.
    Rtmps,
    /// HTTP/1.1 and HTTP/2 over TLS (HTTP-FLV, WebSocket-FLV, HLS, API, console).
    Https,
}

impl Listener {
    fn as_str(self) -> &'static str {
        match self {
            Listener::Rtmps => "rtmps",
            Listener::Https => "https",
        }
    }
}

/// TLS counters (atomics, read by tests and by the metrics endpoint).
#[derive(Debug, Default)]
pub struct TlsStats {
    /// Failed or timed-out TLS handshakes on the RTMPS listener.
    pub rtmps_handshake_errors: AtomicU64,
    /// Failed or timed-out TLS handshakes on the HTTPS listener.
    pub https_handshake_errors: AtomicU64,
    /// Certificate reloads that took effect.
    pub reloads: AtomicU64,
    /// Changed certificate files that did not load (the old certificate stayed in use).
    pub reload_errors: AtomicU64,
}

impl TlsStats {
    fn handshake_errors(&self, l: Listener) -> &AtomicU64 {
        match l {
            Listener::Rtmps => &self.rtmps_handshake_errors,
            Listener::Https => &self.https_handshake_errors,
        }
    }
}

/// Identity of the two files on disk: what the watcher compares between polls.
type Fingerprint = [(Option<SystemTime>, u64); 2];

/// The certificate every new handshake gets; swapped whole on reload.
pub struct CertStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// What one poll of the files found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The files did not change.
    Unchanged,
    /// The files changed and the new pair is in use.
    Reloaded,
    /// The files changed but did not load; the old pair stays.
    Failed,
}

impl CertStore {
    /// Loads the pair; an error names the file at fault.
    pub fn load(
        cert_file: &Path,
        key_file: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, ControlError> {
        let key = load_pair(cert_file, key_file, &provider)?;
        Ok(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            provider,
            current: RwLock::new(Arc::new(key)),
        })
    }

    /// The pair in use now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        // A poisoned lock still holds a complete Arc (the writer only assigns it).
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn fingerprint(&self) -> Fingerprint {
        let stat = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| (m.modified().ok(), m.len()))
                .unwrap_or((None, 0))
        };
        [stat(&self.cert_file), stat(&self.key_file)]
    }

    /// Reloads when the files changed since `last` (which is updated, so a bad file is
    /// reported once, not at every poll).
    pub fn check(&self, last: &mut Fingerprint, stats: &TlsStats) -> ReloadOutcome {
        let now = self.fingerprint();
        if now == *last {
            return ReloadOutcome::Unchanged;
        }
        *last = now;
        match load_pair(&self.cert_file, &self.key_file, &self.provider) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
                stats.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(cert = %self.cert_file.display(), "tls certificate reloaded");
                ReloadOutcome::Reloaded
            }
            Err(e) => {
                stats.reload_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!("tls certificate not reloaded, the previous one stays: {e}");
                ReloadOutcome::Failed
            }
        }
    }
}

/// Reads a PEM file of at most [`MAX_PEM_BYTES`].
fn read_pem(path: &Path) -> Result<Vec<u8>, ControlError> {
    let err = |reason: String| ControlError::Tls {
        file: path.to_owned(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(err(format!("larger than {MAX_PEM_BYTES} bytes")));
    }
    Ok(bytes)
}

/// Loads and checks a certificate chain and its private key.
fn load_pair(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, ControlError> {
    let cert_err = |reason: String| ControlError::Tls {
        file: cert_file.to_owned(),
        reason,
    };
    let pem = read_pem(cert_file)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(cert_err("no CERTIFICATE block".to_owned()));
    }
    let pem = read_pem(key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| ControlError::Tls {
        file: key_file.to_owned(),
        reason: format!("no usable PEM private key: {e}"),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| ControlError::Tls {
        file: key_file.to_owned(),
        reason: format!("key does not fit {}: {e}", cert_file.display()),
    })
}

/// TLS state of a running server: the certificate store, one acceptor per listener and the
/// counters.
pub struct TlsService {
    /// The certificate in use, reloaded when its files change.
    pub store: Arc<CertStore>,
    /// The RTMPS acceptor (no ALPN).
    pub rtmps: TlsAcceptor,
    /// The HTTPS acceptor (ALPN h2 and http/1.1).
    pub https: TlsAcceptor,
    /// Handshake errors and reloads.
    pub stats: TlsStats,
    /// Where the HTTPS listener is bound (the port of redirects).
    pub https_addr: SocketAddr,
    /// Where the RTMPS listener is bound.
    pub rtmps_addr: SocketAddr,
}

impl TlsService {
    /// Loads the certificate (an error names the file) and builds both acceptors. The
    /// listeners are bound by the caller, which passes their addresses.
    pub fn new(
        cfg: &TlsConfig,
        rtmps_addr: SocketAddr,
        https_addr: SocketAddr,
    ) -> Result<Self, ControlError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let store = Arc::new(CertStore::load(
            &cfg.cert_file,
            &cfg.key_file,
            provider.clone(),
        )?);
        let server_config = |alpn: &[&[u8]]| -> Result<TlsAcceptor, ControlError> {
            let mut c = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| ControlError::Config(format!("tls: {e}")))?
                .with_no_client_auth()
                .with_cert_resolver(store.clone());
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(TlsAcceptor::from(Arc::new(c)))
        };
        Ok(Self {
            rtmps: server_config(&[])?,
            https: server_config(&HTTPS_ALPN)?,
            store,
            stats: TlsStats::default(),
            https_addr,
            rtmps_addr,
        })
    }
}

/// Polls the certificate files every `every_ms` (0: never) until shutdown, reloading them
/// when they change.
pub async fn watch(tls: Arc<TlsService>, every_ms: u64, shutdown: CancellationToken) {
    if every_ms == 0 {
        return;
    }
    let mut last = tls.store.fingerprint();
    let mut tick = tokio::time::interval(Duration::from_millis(every_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let t = tls.clone();
        // File reads and key parsing are blocking work; keep them off the runtime threads.
        let done = tokio::task::spawn_blocking(move || {
            t.store.check(&mut last, &t.stats);
            last
        })
        .await;
        match done {
            Ok(l) => last = l,
            Err(e) => tracing::error!("tls reload check failed: {e}"),
        }
    }
}

/// Runs the TLS handshake of a new connection, bounded by `limits.handshake_timeout_ms` and
/// by shutdown. A failure is counted and logged at debug (scanners and plain-text clients
/// hit TLS ports all day) and gives `None`.
pub async fn handshake(
    ctl: &Control,
    tls: &TlsService,
    acceptor: &TlsAcceptor,
    sock: TcpStream,
    peer: SocketAddr,
    listener: Listener,
) -> Option<TlsStream<TcpStream>> {
    let limit = Duration::from_millis(ctl.config.limits.handshake_timeout_ms);
    let result = tokio::select! {
        _ = ctl.shutdown.cancelled() => return None,
        r = tokio::time::timeout(limit, acceptor.accept(sock)) => r,
    };
    let why = match result {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!(
            "not finished within {} ms (limits.handshake_timeout_ms)",
            limit.as_millis()
        ),
    };
    tls.stats
        .handshake_errors(listener)
        .fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%peer, listener = listener.as_str(), "tls handshake failed: {why}");
    None
}

impl crate::StatusSource for TlsService {
    /// The TLS series.
    fn metrics(&self) {
        tls_metrics(self);
    }
}

/// Registers the TLS series on the scrape's recorder.
fn tls_metrics(tls: &TlsService) {
    metrics::describe_counter!(
        "sluice_tls_handshake_errors_total",
        "TLS handshakes that failed or timed out, by listener (rtmps, https)."
    );
    metrics::describe_counter!(
        "sluice_tls_reloads_total",
        "Certificate reloads, by result (ok: in use; error: the previous certificate stayed)."
    );
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    for l in [Listener::Rtmps, Listener::Https] {
        metrics::counter!("sluice_tls_handshake_errors_total", "listener" => l.as_str())
            .absolute(load(tls.stats.handshake_errors(l)));
    }
    metrics::counter!("sluice_tls_reloads_total", "result" => "ok")
        .absolute(load(&tls.stats.reloads));
    metrics::counter!("sluice_tls_reloads_total", "result" => "error")
        .absolute(load(&tls.stats.reload_errors));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sluice-tls-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    /// Writes a self-signed pair for `cn` and returns (cert path, key path, cert DER).
    fn write_pair(d: &Path, cn: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("p");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).expect("cert");
        let (c, k) = (d.join("cert.pem"), d.join("key.pem"));
        std::fs::write(&c, cert.pem()).expect("write cert");
        std::fs::write(&k, key.serialize_pem()).expect("write key");
        (c, k, cert.der().to_vec())
    }

    fn end_entity(store: &CertStore) -> Vec<u8> {
        store.current().cert[0].to_vec()
    }

    #[test]
    fn loads_a_pair_and_reloads_when_the_files_change() {
        let d = dir("reload");
        let (c, k, der1) = write_pair(&d, "first");
        let store = CertStore::load(&c, &k, provider()).expect("loads");
        assert_eq!(end_entity(&store), der1);
        let stats = TlsStats::default();
        let mut last = store.fingerprint();
        assert_eq!(store.check(&mut last, &stats), ReloadOutcome::Unchanged);

        let (_, _, der2) = write_pair(&d, "second");
        assert_eq!(store.check(&mut last, &stats), ReloadOutcome::Reloaded);
        assert_eq!(end_entity(&store), der2);
        assert_eq!(stats.reloads.load(Ordering::Relaxed), 1);

        // A broken file keeps the pair in use, is counted once, and is not retried until
        // the files change again.
        std::fs::write(&c, b"-----BEGIN CERTIFICATE-----\nnot base64\n").expect("write");
        assert_eq!(store.check(&mut last, &stats), ReloadOutcome::Failed);
        assert_eq!(store.check(&mut last, &stats), ReloadOutcome::Unchanged);
        assert_eq!(end_entity(&store), der2);
        assert_eq!(stats.reload_errors.load(Ordering::Relaxed), 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn errors_name_the_file_at_fault() {
        let d = dir("errors");
        let (c, k, _) = write_pair(&d, "a");
        let missing = d.join("missing.pem");
        let err = CertStore::load(&missing, &k, provider())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.pem"), "{err}");

        let garbage = d.join("garbage.pem");
        std::fs::write(&garbage, b"hello, not a certificate").expect("write");
        let err = CertStore::load(&garbage, &k, provider())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("garbage.pem") && err.contains("CERTIFICATE"),
            "{err}"
        );
        let err = CertStore::load(&c, &garbage, provider())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("garbage.pem") && err.contains("private key"),
            "{err}"
        );

        // A key of another pair does not fit the certificate.
        let other = dir("errors-other");
        let (_, k2, _) = write_pair(&other, "b");
        let err = CertStore::load(&c, &k2, provider())
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not fit"), "{err}");

        let big = d.join("big.pem");
        std::fs::write(&big, vec![b'a'; MAX_PEM_BYTES as usize + 1]).expect("write");
        let err = CertStore::load(&big, &k, provider())
            .unwrap_err()
            .to_string();
        assert!(err.contains("big.pem") && err.contains("larger"), "{err}");
        let _ = std::fs::remove_dir_all(&d);
        let _ = std::fs::remove_dir_all(&other);
    }
}
