//! What the network probes share: [`NetOptions`], the TLS trust (built once per CA file), name
//! resolution and connection helpers, and a small HTTP/1.1 `GET` client on hyper's connection
//! API that times each phase on its own: DNS, TCP connect, TLS handshake, time to first byte
//! (request sent to response head) and total (body read).
//!
//! One connection per request (`Connection: close`), no pool, no proxy, no decompression: a
//! probe measures what a fresh client sees. TLS sessions are not resumed either, so the `tls`
//! phase is always a full handshake.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, AUTHORIZATION, CONNECTION, HOST, HeaderValue, LOCATION, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use ops_core::config::ProbesConfig;
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::{Host, Url};

/// Redirects followed at most (`follow-redirects = true`).
pub(crate) const MAX_REDIRECTS: u32 = 5;

/// Bytes read from a body at most; beyond, reading stops (a health check is not a download).
const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

/// How network probes run: the time limit of one probe and the roots TLS trusts.
///
/// Cheap to build and to clone: the TLS client configuration behind it is built once per
/// process (the bundled Mozilla roots) or once per CA file (rebuilt when the file changes),
/// so hundreds of concurrent probes share it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOptions {
    /// The whole probe's time limit: resolve, connect, handshake, response and body.
    pub timeout: Duration,
    /// PEM file of CA certificates HTTPS trusts instead of the bundled Mozilla roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for NetOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(10), ca_file: None }
    }
}

impl NetOptions {
    /// The Mozilla roots and a time limit.
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        Self { timeout, ca_file: None }
    }

    /// Trust the CA certificates of a PEM file instead of the Mozilla roots.
    #[must_use]
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// `probes.timeout-secs` and `probes.tls.ca-file`.
    #[must_use]
    pub fn from_config(probes: &ProbesConfig) -> Self {
        Self { timeout: Duration::from_secs(probes.timeout_secs), ca_file: probes.tls.ca_file.clone() }
    }
}

// ---------------------------------------------------------------------------------------------
// TLS trust

static MOZILLA: LazyLock<Arc<ClientConfig>> =
    LazyLock::new(|| Arc::new(client_config(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })));

/// A CA file's client configuration, and the file's modification time and length when read.
struct CachedTrust {
    stamp: (Option<SystemTime>, u64),
    config: Arc<ClientConfig>,
}

static CA_FILES: LazyLock<Mutex<HashMap<PathBuf, CachedTrust>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn client_config(roots: RootCertStore) -> ClientConfig {
    let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls' default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = Resumption::disabled();
    config
}

/// The TLS client configuration trusting `ca_file`, or the Mozilla roots. Built once and shared;
/// a CA file is read again only when its modification time or length changed.
pub(crate) fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let Some(path) = ca_file else {
        return Ok(Arc::clone(&MOZILLA));
    };
    let unreadable = |e: std::io::Error| format!("cannot read CA file {}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    let stamp = (meta.modified().ok(), meta.len());
    let mut cache = CA_FILES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(cached) = cache.get(path)
        && cached.stamp == stamp
    {
        return Ok(Arc::clone(&cached.config));
    }
    let pem = std::fs::read(path).map_err(unreadable)?;
    let invalid = |reason: String| format!("CA file {}: {reason}", path.display());
    let mut roots = RootCertStore::empty();
    for (i, der) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let der = der.map_err(|e| invalid(format!("certificate {}: {e}", i + 1)))?;
        roots.add(der).map_err(|e| invalid(format!("certificate {}: {e}", i + 1)))?;
    }
    if roots.is_empty() {
        return Err(invalid("no certificate in the file".to_owned()));
    }
    let config = Arc::new(client_config(roots));
    cache.insert(path.to_owned(), CachedTrust { stamp, config: Arc::clone(&config) });
    Ok(config)
}

// ---------------------------------------------------------------------------------------------
// Resolving and connecting

/// Resolves `host` (a name, or an IP address without brackets) with the system resolver; an IP
/// address is used as is.
pub(crate) async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((host, port)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    Ok(addrs)
}

/// Connects to the first address that accepts, in order; the error of the last one otherwise.
pub(crate) async fn connect_any(addrs: &[SocketAddr]) -> Result<TcpStream, String> {
    let mut last = String::from("no address to connect to");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = format!("connection refused by {addr}");
            }
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// `host:port` (`[v6]:port`) split into the host without brackets and the port.
pub(crate) fn split_host_port(address: &str) -> Result<(String, u16), String> {
    let invalid = || format!("{address:?} is not host:port");
    let (host, port) = address.trim().rsplit_once(':').ok_or_else(invalid)?;
    let port: u16 = port.parse().map_err(|_| invalid())?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() || port == 0 {
        return Err(invalid());
    }
    Ok((host.to_owned(), port))
}

/// A duration in milliseconds, to the microsecond.
pub(crate) fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1_000.0
}

/// An error and its sources, each once: `connection error: Connection reset by peer`.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

// ---------------------------------------------------------------------------------------------
// HTTP GET

/// Where a request was when it stopped (for the timeout message).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Stage {
    #[default]
    Resolve,
    Connect,
    Handshake,
    Response,
    Body,
}

/// What one `GET` measured, filled in as it goes, so a timed-out request still tells how far it
/// got. The phases are those of the last hop when redirects were followed.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    pub(crate) stage: Stage,
    /// `host` of the current hop.
    pub(crate) host: String,
    /// `host:port` of the current hop.
    pub(crate) authority: String,
    pub(crate) dns: Option<Duration>,
    pub(crate) connect: Option<Duration>,
    pub(crate) tls: Option<Duration>,
    pub(crate) ttfb: Option<Duration>,
    /// Response head to the end of the body (what was read of it).
    pub(crate) transfer: Option<Duration>,
    /// Request start to body read, redirects included.
    pub(crate) total: Option<Duration>,
    /// Redirects followed.
    pub(crate) redirects: u32,
    /// Time spent in the hops before the last.
    pub(crate) redirect_time: Duration,
    /// The redacted URL of the last hop, when redirects were followed.
    pub(crate) final_url: Option<String>,
}

impl Trace {
    /// `waiting for the response head from 127.0.0.1:8080`.
    pub(crate) fn doing(&self) -> String {
        match self.stage {
            Stage::Resolve => format!("resolving {}", self.host),
            Stage::Connect => format!("connecting to {}", self.authority),
            Stage::Handshake => format!("in the TLS handshake with {}", self.authority),
            Stage::Response => format!("waiting for the response head from {}", self.authority),
            Stage::Body => format!("reading the body from {}", self.authority),
        }
    }

    fn next_hop(&mut self, started: Instant) {
        self.redirects += 1;
        self.redirect_time = started.elapsed();
        self.dns = None;
        self.connect = None;
        self.tls = None;
        self.ttfb = None;
    }
}

/// A response: status, `Location`, and the first bytes of the body.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    /// `Location`, made absolute against the request URL and redacted.
    pub(crate) location: Option<String>,
    /// The body's first bytes (up to the `keep` of the request).
    pub(crate) body: Vec<u8>,
    /// Body bytes read.
    pub(crate) body_bytes: u64,
    /// Redirects followed before this response.
    pub(crate) redirects: u32,
}

/// Why a `GET` got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The request could not be made: bad URL, unreadable CA file. Nothing was learned about
    /// the target.
    Unusable(String),
    /// Resolving, connecting, the handshake or the exchange failed.
    Unreachable(String),
    /// No response within the time limit.
    TimedOut(String),
}

/// One `GET` of `url`, following up to [`MAX_REDIRECTS`] redirects when `follow`, keeping the
/// first `keep` bytes of the body, within `limit`. Never fails for a status: any response is
/// `Ok`. Messages carry host and port, never the URL's credentials.
pub(crate) async fn get(
    url: &str,
    follow: bool,
    keep: usize,
    limit: Duration,
    options: &NetOptions,
) -> (Trace, Result<Response, Failure>) {
    get_with(url, &[], follow, keep, limit, options).await
}

/// [`get`] with extra request headers, sent as sensitive values (hyper never prints them) and
/// only to the URL's own origin: a redirect elsewhere drops them, as it drops credentials.
pub(crate) async fn get_with(
    url: &str,
    headers: &[(&str, &str)],
    follow: bool,
    keep: usize,
    limit: Duration,
    options: &NetOptions,
) -> (Trace, Result<Response, Failure>) {
    let mut trace = Trace::default();
    let url = match parse_url(url) {
        Ok(url) => url,
        Err(reason) => return (trace, Err(Failure::Unusable(reason))),
    };
    let started = Instant::now();
    let result = match tokio::time::timeout(limit, get_following(url, headers, follow, keep, options, &mut trace)).await
    {
        Ok(result) => result,
        Err(_) => {
            Err(Failure::TimedOut(format!("no response within {:.1} s ({})", limit.as_secs_f64(), trace.doing())))
        }
    };
    let result = result.map(|response| Response { redirects: trace.redirects, ..response });
    if result.is_ok() {
        trace.total = Some(started.elapsed());
    }
    (trace, result)
}

/// `GET` of a document an API must answer with `200 OK` (redirects followed, `keep` bytes at
/// most, within `options.timeout`): the body, or why there is none.
pub(crate) async fn get_document(url: &str, keep: usize, options: &NetOptions) -> (Trace, Result<Vec<u8>, String>) {
    let (trace, result) = get(url, true, keep, options.timeout, options).await;
    let result = match result {
        Ok(r) if r.status != StatusCode::OK => Err(format!(
            "answered HTTP {} {} from {}",
            r.status.as_u16(),
            r.status.canonical_reason().unwrap_or_default(),
            trace.authority
        )),
        Ok(r) if r.body_bytes > r.body.len() as u64 => {
            Err(format!("the answer is larger than the {} KiB read", keep / 1024))
        }
        Ok(r) => Ok(r.body),
        Err(Failure::Unusable(m) | Failure::Unreachable(m) | Failure::TimedOut(m)) => Err(m),
    };
    (trace, result)
}

/// An `http` or `https` URL with a host; the reason names no part of the URL.
pub(crate) fn parse_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("invalid URL: {e}"))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(format!("unsupported URL scheme {other:?}: use http or https")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("invalid URL: no host".to_owned());
    }
    Ok(url)
}

async fn get_following(
    mut url: Url,
    headers: &[(&str, &str)],
    follow: bool,
    keep: usize,
    options: &NetOptions,
    trace: &mut Trace,
) -> Result<Response, Failure> {
    let started = Instant::now();
    let origin = url.origin();
    loop {
        let extra = if url.origin() == origin { headers } else { &[] };
        let response = get_once(&url, extra, keep, options, trace).await?;
        if !(follow && response.status.is_redirection() && trace.redirects < MAX_REDIRECTS) {
            return Ok(response.into());
        }
        let Some(next) = next_hop(&url, response.location_raw.as_deref()) else {
            return Ok(response.into());
        };
        trace.next_hop(started);
        trace.final_url = Some(ops_core::secret::redact_url(next.as_str()));
        url = next;
    }
}

/// Where a redirect leads: `Location` resolved against `from`, an `http(s)` URL, without the
/// credentials of `from` when it leaves its origin.
fn next_hop(from: &Url, location: Option<&str>) -> Option<Url> {
    let mut next = from.join(location?).ok()?;
    if !matches!(next.scheme(), "http" | "https") || next.host_str().is_none() {
        return None;
    }
    if next.origin() != from.origin() {
        let _ = next.set_username("");
        let _ = next.set_password(None);
    }
    Some(next)
}

/// A response before redirect handling: with the raw `Location`.
struct RawResponse {
    status: StatusCode,
    location_raw: Option<String>,
    location: Option<String>,
    body: Vec<u8>,
    body_bytes: u64,
}

impl From<RawResponse> for Response {
    fn from(r: RawResponse) -> Self {
        Self { status: r.status, location: r.location, body: r.body, body_bytes: r.body_bytes, redirects: 0 }
    }
}

async fn get_once(
    url: &Url,
    headers: &[(&str, &str)],
    keep: usize,
    options: &NetOptions,
    trace: &mut Trace,
) -> Result<RawResponse, Failure> {
    let tls = match url.scheme() {
        "https" => Some(tls_config(options.ca_file.as_deref()).map_err(Failure::Unusable)?),
        _ => None,
    };
    let host = url.host().ok_or_else(|| Failure::Unusable("invalid URL: no host".to_owned()))?;
    let port = url.port_or_known_default().ok_or_else(|| Failure::Unusable("invalid URL: no port".to_owned()))?;
    let host_str = url.host_str().unwrap_or_default();
    trace.host = host_str.to_owned();
    trace.authority = format!("{host_str}:{port}");

    trace.stage = Stage::Resolve;
    let t = Instant::now();
    let addrs = match &host {
        Host::Ipv4(ip) => vec![SocketAddr::new((*ip).into(), port)],
        Host::Ipv6(ip) => vec![SocketAddr::new((*ip).into(), port)],
        Host::Domain(name) => resolve(name, port).await.map_err(Failure::Unreachable)?,
    };
    trace.dns = Some(t.elapsed());

    trace.stage = Stage::Connect;
    let t = Instant::now();
    let tcp = connect_any(&addrs).await.map_err(Failure::Unreachable)?;
    trace.connect = Some(t.elapsed());

    let request = build_request(url, headers)?;
    let mut response = match tls {
        None => exchange(tcp, request, keep, trace).await?,
        Some(config) => {
            trace.stage = Stage::Handshake;
            let name = match host {
                Host::Ipv4(ip) => ServerName::IpAddress(IpAddr::V4(ip).into()),
                Host::Ipv6(ip) => ServerName::IpAddress(IpAddr::V6(ip).into()),
                Host::Domain(name) => ServerName::try_from(name.to_owned())
                    .map_err(|e| Failure::Unusable(format!("invalid TLS server name {name:?}: {e}")))?,
            };
            let t = Instant::now();
            let stream = TlsConnector::from(config).connect(name, tcp).await.map_err(|e| {
                Failure::Unreachable(format!("TLS handshake with {} failed: {}", trace.authority, error_chain(&e)))
            })?;
            trace.tls = Some(t.elapsed());
            exchange(stream, request, keep, trace).await?
        }
    };
    response.location = response
        .location_raw
        .as_deref()
        .and_then(|l| url.join(l).ok())
        .map(|u| ops_core::secret::redact_url(u.as_str()));
    Ok(response)
}

fn build_request(url: &Url, headers: &[(&str, &str)]) -> Result<Request<Empty<Bytes>>, Failure> {
    let mut target = url.path().to_owned();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let mut request = Request::get(target)
        .header(HOST, host)
        .header(USER_AGENT, concat!("ops-probes/", env!("CARGO_PKG_VERSION")))
        .header(ACCEPT, "*/*")
        .header(CONNECTION, "close")
        .body(Empty::new())
        .map_err(|e| Failure::Unusable(format!("cannot build the request: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        let credentials =
            format!("{}:{}", percent_decode(url.username()), percent_decode(url.password().unwrap_or_default()));
        let mut value = HeaderValue::try_from(format!("Basic {}", base64(credentials.as_bytes())))
            .map_err(|_| Failure::Unusable("invalid credentials in the URL".to_owned()))?;
        value.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    for (name, value) in headers {
        // The configuration checked both when it loaded; the messages name the header only.
        let name = hyper::header::HeaderName::try_from(*name)
            .map_err(|_| Failure::Unusable(format!("invalid header name {name:?}")))?;
        let mut value = HeaderValue::try_from(*value)
            .map_err(|_| Failure::Unusable(format!("the value of header {name} is not a valid header value")))?;
        value.set_sensitive(true);
        request.headers_mut().insert(name, value);
    }
    Ok(request)
}

async fn exchange<S>(
    stream: S,
    request: Request<Empty<Bytes>>,
    keep: usize,
    trace: &mut Trace,
) -> Result<RawResponse, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    trace.stage = Stage::Response;
    let no_response = |e: hyper::Error, authority: &str| {
        Failure::Unreachable(format!("no response from {authority}: {}", error_chain(&e)))
    };
    let t = Instant::now();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| no_response(e, &trace.authority))?;
    // The connection task ends with the request, done or dropped (timed out).
    let _driver = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender.send_request(request).await.map_err(|e| no_response(e, &trace.authority))?;
    trace.ttfb = Some(t.elapsed());

    trace.stage = Stage::Body;
    let body_started = Instant::now();
    let (parts, mut body) = response.into_parts();
    let mut kept = Vec::new();
    let mut read: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Failure::Unreachable(format!("reading the body from {} failed: {}", trace.authority, error_chain(&e)))
        })?;
        if let Ok(data) = frame.into_data() {
            read += data.len() as u64;
            let room = keep.saturating_sub(kept.len()).min(data.len());
            kept.extend_from_slice(&data[..room]);
            if read >= DRAIN_LIMIT {
                break;
            }
        }
    }
    trace.transfer = Some(body_started.elapsed());
    let location_raw = parts.headers.get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    Ok(RawResponse { status: parts.status, location_raw, location: None, body: kept, body_bytes: read })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn base64(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(chunk[0]) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let sextet = |shift: u32| char::from(TABLE[((n >> shift) & 63) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

/// The first `max_chars` characters of a body on one line: control characters and runs of
/// white space become one space, and `…` marks a cut.
pub(crate) fn snippet(body: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(max_chars.saturating_mul(4))]);
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in text.trim().chars() {
        let blank = c.is_whitespace() || c.is_control();
        if blank && space {
            continue;
        }
        space = blank;
        if count == max_chars {
            out.push('…');
            break;
        }
        out.push(if blank { ' ' } else { c });
        count += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"Aladdin:open sesame"), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }

    #[test]
    fn percent_decoding_of_user_info() {
        assert_eq!(percent_decode("p%40ss%3Aw%2"), "p@ss:w%2");
        assert_eq!(percent_decode("plain"), "plain");
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("db:5432").unwrap(), ("db".to_owned(), 5432));
        assert_eq!(split_host_port("[::1]:80").unwrap(), ("::1".to_owned(), 80));
        assert!(split_host_port("db").is_err());
        assert!(split_host_port(":80").is_err());
        assert!(split_host_port("db:http").is_err());
    }

    #[test]
    fn snippet_is_one_short_line() {
        assert_eq!(snippet(b"  {\"status\":\n\t\"ok\"}\n", 300), "{\"status\": \"ok\"}");
        assert_eq!(snippet("é".repeat(400).as_bytes(), 300).chars().count(), 301);
        assert_eq!(snippet(b"", 300), "");
    }

    #[test]
    fn redirect_to_another_origin_drops_credentials() {
        let from = Url::parse("https://u:p@a.example/x").unwrap();
        let same = next_hop(&from, Some("/y")).unwrap();
        assert_eq!(same.as_str(), "https://u:p@a.example/y");
        let other = next_hop(&from, Some("https://b.example/z")).unwrap();
        assert_eq!(other.as_str(), "https://b.example/z");
        assert!(next_hop(&from, Some("ftp://c.example/")).is_none());
        assert!(next_hop(&from, None).is_none());
    }

    #[test]
    fn urls_other_than_http_are_unusable() {
        assert!(parse_url("ftp://x/").unwrap_err().contains("ftp"));
        assert!(parse_url("not a url").is_err());
        assert!(parse_url("https://example.com/health").is_ok());
    }

    #[test]
    fn unreadable_ca_file_is_named_and_a_good_one_is_cached() {
        let err = tls_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        let a = tls_config(None).unwrap();
        let b = tls_config(None).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
