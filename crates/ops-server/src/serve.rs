//! The listener: HTTP/1.1 (over TLS when a certificate is configured) with a cap on
//! connections, a deadline for each request's headers that also closes kept-alive
//! connections left idle, and a graceful stop that lets in-flight requests finish.
//!
//! A slow client cannot hold the server: headers dripped a byte at a time are cut off at the
//! header deadline, an idle socket is closed at the same deadline, a request that takes too
//! long (body included) is answered 503 by the router's own timeout, and past
//! `max-connections` new connections wait in the kernel's backlog instead of taking memory.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use ops_core::config::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::state::AppState;

/// Default cap on connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default deadline for a request's headers, and for an idle kept-alive connection.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stop waits for in-flight requests.
const DRAIN: Duration = Duration::from_secs(30);
/// How long a write to a client may make no progress: a client that stops reading (a tiny
/// receive window, many pipelined requests) loses its connection instead of holding it.
const WRITE_STALL: Duration = Duration::from_secs(30);

/// A socket whose writes fail once they have made no progress for [`WRITE_STALL`].
struct WriteDeadline<T> {
    inner: T,
    stall: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteDeadline<T> {
    fn new(inner: T) -> Self {
        Self { inner, stall: None }
    }

    /// Clears the deadline on progress; arms it and checks it while a write waits.
    fn check<R>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        r: std::task::Poll<std::io::Result<R>>,
    ) -> std::task::Poll<std::io::Result<R>> {
        use std::task::Poll;
        if r.is_ready() {
            self.stall = None;
            return r;
        }
        let stall = self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL)));
        if stall.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client stopped reading")));
        }
        Poll::Pending
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, r)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, r)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, r)
    }
}

/// How the listener serves.
#[derive(Clone)]
pub struct ServeOptions {
    /// Connections served at once.
    pub max_connections: usize,
    /// Deadline for headers and for idle connections.
    pub header_timeout: Duration,
    /// TLS, when configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("max_connections", &self.max_connections)
            .field("header_timeout", &self.header_timeout)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { max_connections: DEFAULT_MAX_CONNECTIONS, header_timeout: DEFAULT_HEADER_TIMEOUT, tls: None }
    }
}

impl ServeOptions {
    /// From `[server]`, reading the certificate and key when configured.
    ///
    /// # Errors
    /// A certificate or key that cannot be read or used, named by path.
    pub fn from_config(cfg: &ServerConfig) -> anyhow::Result<Self> {
        let tls = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
            _ => None,
        };
        Ok(Self {
            max_connections: cfg.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS).max(1),
            header_timeout: cfg.header_timeout_secs.map_or(DEFAULT_HEADER_TIMEOUT, Duration::from_secs),
            tls,
        })
    }
}

fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| anyhow::anyhow!("server.tls-cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("server.tls-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("server.tls-cert {}: no certificate in the file", cert.display());
    }
    // The message never shows key material: only the path and what is wrong.
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("server.tls-key {}: no usable private key ({e})", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("server.tls-cert and server.tls-key do not make a certificate: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Refuses to send API keys in clear text beyond this host: a non-loopback address needs
/// TLS, or `insecure` (a TLS-terminating proxy in front), which is logged as a warning.
///
/// # Errors
/// The refusal, saying what to set.
pub fn check_listen(addr: SocketAddr, tls: bool, insecure: bool) -> anyhow::Result<()> {
    if tls || addr.ip().is_loopback() {
        return Ok(());
    }
    if insecure {
        tracing::warn!(
            %addr,
            "listening without TLS on a non-loopback address (--insecure-listen): API keys cross the network in \
             clear text unless a TLS proxy is in front"
        );
        return Ok(());
    }
    anyhow::bail!(
        "refusing to listen on {addr} without TLS: API keys would cross the network in clear text; set \
         server.tls-cert and server.tls-key, listen on 127.0.0.1 behind a TLS proxy, or pass --insecure-listen"
    )
}

/// Serves `state` on `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish (up to 30 s) and returns.
///
/// # Errors
/// Never after binding: a failed accept is logged and retried.
pub async fn serve_on(
    listener: TcpListener,
    state: Arc<AppState>,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let router = crate::routes::app(state);
    let permits = Arc::new(Semaphore::new(opts.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        // A permit first: past the cap, connections wait in the backlog.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let stream = WriteDeadline::new(stream);
        // The client's address, for the public routes' per-client rate limit.
        let router = router.clone().layer(axum::Extension(Peer(peer.ip())));
        let opts = opts.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = TowerToHyperService::new(router);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(opts.header_timeout).keep_alive(true);
            let result = match &opts.tls {
                Some(acceptor) => {
                    // The handshake has the header deadline too.
                    let tls = match tokio::time::timeout(opts.header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "tls handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls), svc);
                    drive(conn, &mut stop).await
                }
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    drive(conn, &mut stop).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a permit: all of them back means all connections are done.
    let all = u32::try_from(opts.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN, permits.acquire_many(all)).await.is_err() {
        tracing::warn!("connections still open after {} s; stopping anyway", DRAIN.as_secs());
    }
    Ok(())
}

/// The address a request came from (the socket's peer: a proxy's, behind one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::IpAddr);

/// Serves one connection; on the stop signal, finishes the request in flight and closes.
async fn drive<I, S>(
    conn: hyper::server::conn::http1::Connection<I, S>,
    stop: &mut watch::Receiver<bool>,
) -> hyper::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r,
        () = async { drop(stop.wait_for(|s| *s).await) } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}
