//! The small HTTP/1.1 server behind the monitor's `/metrics`, `/healthz` and `--control`
//! endpoints and the router's `/notify`: every request is bounded in size and in time, so
//! no client, slow or hostile, can hold an endpoint or grow the process's memory.
//!
//! A connection carries one request and is closed after its response. From being accepted
//! it has [`Limits::head_timeout`] to send its request line and headers (at most
//! [`Limits::head_bytes`]; later, it is closed unanswered) and [`Limits::body_timeout`] to
//! send its body (at most [`Limits::body_bytes`], announced by `Content-Length`; a larger
//! one is answered 413 unread, a late one 408); then [`Limits::write_timeout`] to take the
//! response. At most [`Limits::connections`] are served at once: more wait in the listen
//! backlog until one is done, which the timeouts bound. The server runs on a thread of its
//! own with its own runtime, and handlers run on that runtime's blocking threads, so
//! neither a slow client nor a slow handler delays another connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};

use crate::ServiceError;

/// What one request may take (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once.
    pub connections: usize,
    /// The request line and headers, bytes (larger: 431).
    pub head_bytes: usize,
    /// A request body, bytes (larger: 413).
    pub body_bytes: usize,
    /// From accepting a connection to its headers read.
    pub head_timeout: Duration,
    /// From accepting a connection to its body read.
    pub body_timeout: Duration,
    /// Writing the response.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 64,
            head_bytes: 16 << 10,
            body_bytes: 4 << 20,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// How long, and how much, the server goes on reading (and discarding) after answering
/// a request whose body it did not read, so that the client gets the answer rather than
/// a reset.
const LINGER: Duration = Duration::from_secs(2);

/// Headers parsed at most.
const MAX_HEADERS: usize = 64;

/// An address bound for serving, before anything is served on it.
pub struct Bound {
    listener: std::net::TcpListener,
    local: SocketAddr,
    addr: String,
}

impl Bound {
    /// The address bound (its port chosen by the system if `addr` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The `--listen` value it was bound from.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether only this machine can connect.
    pub fn is_loopback(&self) -> bool {
        self.local.ip().is_loopback()
    }
}

/// Binds `addr` (a `--listen` flag's value: `host:port`).
pub fn bind(addr: &str) -> Result<Bound, ServiceError> {
    let listen = |reason: String| ServiceError::Listen {
        addr: addr.to_string(),
        reason,
    };
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| listen(format!("cannot listen there: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| listen(format!("cannot read the address bound: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| listen(format!("cannot make the socket non-blocking: {e}")))?;
    Ok(Bound {
        listener,
        local,
        addr: addr.to_string(),
    })
}

/// A request read whole.
#[derive(Debug)]
pub struct Request {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The request target as sent: path and query, percent-encoded.
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The target's path, without its query (still percent-encoded).
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The values of the headers named `name` (any case).
    pub fn header<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// An answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Self {
        Response {
            status,
            content_type,
            body: body.into(),
        }
    }

    /// A plain-text answer (a message, one line ending in a newline).
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status, "text/plain; charset=utf-8", body)
    }
}

/// What answers a request.
pub type Handler = Arc<dyn Fn(Request) -> Response + Send + Sync>;

/// Serves `handler` on `bound` from a thread named `name`; returns the address served.
pub fn serve(
    bound: Bound,
    name: &str,
    limits: Limits,
    handler: Handler,
) -> Result<SocketAddr, ServiceError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        // Handlers are short; a few at once keep a slow one from delaying the others.
        .max_blocking_threads(4)
        .thread_name(format!("{name}-handler"))
        .build()
        .map_err(|e| ServiceError::system("start the HTTP server's runtime", e))?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(bound.listener)
            .map_err(|e| ServiceError::system("serve HTTP on the socket", e))?
    };
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || runtime.block_on(accept(listener, limits, handler)))
        .map_err(|e| ServiceError::system("start the HTTP server's thread", e))?;
    Ok(bound.local)
}

async fn accept(listener: tokio::net::TcpListener, limits: Limits, handler: Handler) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.connections.max(1)));
    loop {
        // Never closed: the semaphore lives as long as this loop.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                let handler = handler.clone();
                tokio::spawn(async move {
                    exchange(stream, &limits, handler).await;
                    drop(slot);
                });
            }
            Err(e) => {
                // Out of file descriptors, say: try again shortly rather than spin.
                tracing::warn!(error = %e, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Why a request gets no handler: an answer to send, or nothing (the connection is
/// closed).
enum Refused {
    Answer(Response),
    Close,
}

/// One connection: read a request, answer it, close.
async fn exchange(mut stream: TcpStream, limits: &Limits, handler: Handler) {
    let accepted = Instant::now();
    let (response, head_only) = match read_request(&mut stream, limits, accepted).await {
        Ok(request) => {
            let head_only = request.method == "HEAD";
            let answered = tokio::task::spawn_blocking(move || handler(request)).await;
            let response = answered.unwrap_or_else(|_| {
                Response::text(500, "internal error while answering; see the log\n")
            });
            (response, head_only)
        }
        Err(Refused::Answer(response)) => (response, false),
        Err(Refused::Close) => return,
    };
    let message = encode(&response, head_only);
    if timeout(limits.write_timeout, stream.write_all(&message))
        .await
        .is_ok_and(|written| written.is_ok())
    {
        linger(&mut stream, limits).await;
    }
}

/// After answering: stop writing, and read what the client still sends until it closes
/// (at most [`LINGER`] and a body's worth), so that closing does not reset the connection
/// under a response it has not read yet.
async fn linger(stream: &mut TcpStream, limits: &Limits) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let until = Instant::now() + LINGER;
    let mut left = limits.body_bytes + limits.head_bytes;
    let mut buf = [0u8; 8192];
    while left > 0 {
        match timeout_at(until, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}

async fn read_request(
    stream: &mut TcpStream,
    limits: &Limits,
    accepted: Instant,
) -> Result<Request, Refused> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_deadline = accepted + limits.head_timeout;
    let (head_len, method, target, headers) = loop {
        if let Some(head) = parse_head(&buf)? {
            break head;
        }
        if buf.len() > limits.head_bytes {
            return Err(head_too_large(limits));
        }
        match timeout_at(head_deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            // Closed, failed or too slow before a whole head: nothing to answer.
            _ => return Err(Refused::Close),
        }
    };
    if head_len > limits.head_bytes {
        return Err(head_too_large(limits));
    }
    let length = body_length(&headers, limits)?;
    let mut body = buf.split_off(head_len);
    body.truncate(length);
    if body.len() < length
        && headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("expect") && v.eq_ignore_ascii_case(b"100-continue")
        })
    {
        let sent = timeout(
            limits.write_timeout,
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n"),
        )
        .await;
        if !sent.is_ok_and(|s| s.is_ok()) {
            return Err(Refused::Close);
        }
    }
    let body_deadline = accepted + limits.body_timeout;
    while body.len() < length {
        let want = (length - body.len()).min(chunk.len());
        match timeout_at(body_deadline, stream.read(&mut chunk[..want])).await {
            Ok(Ok(n)) if n > 0 => body.extend_from_slice(&chunk[..n]),
            Ok(_) => return Err(Refused::Close),
            Err(_) => {
                return Err(Refused::Answer(Response::text(
                    408,
                    format!(
                        "request body not received within {} s\n",
                        limits.body_timeout.as_secs_f64()
                    ),
                )))
            }
        }
    }
    Ok(Request {
        method,
        target,
        headers,
        body,
    })
}

fn head_too_large(limits: &Limits) -> Refused {
    Refused::Answer(Response::text(
        431,
        format!(
            "request headers larger than the {} bytes accepted\n",
            limits.head_bytes
        ),
    ))
}

type Head = (usize, String, String, Vec<(String, Vec<u8>)>);

/// The request line and headers at the start of `buf`, once they are all there.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Refused> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refused::Answer(Response::text(
                431,
                format!("more than {MAX_HEADERS} request headers\n"),
            )))
        }
        Err(e) => {
            return Err(Refused::Answer(Response::text(
                400,
                format!("not an HTTP/1 request: {e}\n"),
            )))
        }
    };
    let method = request.method.unwrap_or_default().to_string();
    let target = request.path.unwrap_or_default().to_string();
    let headers = request
        .headers
        .iter()
        .map(|h| (h.name.to_string(), h.value.to_vec()))
        .collect();
    Ok(Some((len, method, target, headers)))
}

/// The body's length from `Content-Length` (none: no body); refused if it cannot be known
/// beforehand or is larger than the limit.
fn body_length(headers: &[(String, Vec<u8>)], limits: &Limits) -> Result<usize, Refused> {
    let refuse = |status, message: String| Err(Refused::Answer(Response::text(status, message)));
    if headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
    {
        return refuse(
            411,
            "send the request body with a Content-Length (no Transfer-Encoding)\n".into(),
        );
    }
    let mut length: Option<u64> = None;
    for (_, value) in headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        let parsed = std::str::from_utf8(value)
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok());
        match (parsed, length) {
            (Some(n), None) => length = Some(n),
            (Some(n), Some(m)) if n == m => {}
            _ => return refuse(400, "invalid Content-Length\n".into()),
        }
    }
    let length = length.unwrap_or(0);
    match usize::try_from(length) {
        Ok(n) if n <= limits.body_bytes => Ok(n),
        _ => refuse(
            413,
            format!(
                "request body of {length} bytes is larger than the {} bytes accepted\n",
                limits.body_bytes
            ),
        ),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn encode(response: &Response, head_only: bool) -> Vec<u8> {
    let mut message = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    )
    .into_bytes();
    if !head_only {
        message.extend_from_slice(response.body.as_bytes());
    }
    message
}

/// `text` with its `%XX` escapes decoded; `None` if an escape is malformed.
pub fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// `text` as one path segment: every byte but the unreserved ones (RFC 3986) escaped.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A server answering `GET /ok` with `ok` and echoing a `PUT`'s body; counts the
    /// requests its handler saw.
    fn server(limits: Limits) -> (SocketAddr, Arc<AtomicUsize>) {
        let handled = Arc::new(AtomicUsize::new(0));
        let count = handled.clone();
        let handler: Handler = Arc::new(move |request: Request| {
            count.fetch_add(1, Ordering::SeqCst);
            match request.method.as_str() {
                "PUT" => Response::text(200, String::from_utf8_lossy(&request.body)),
                _ => Response::text(200, "ok"),
            }
        });
        let bound = bind("127.0.0.1:0").expect("bind");
        let addr = serve(bound, "test-http", limits, handler).expect("serve");
        (addr, handled)
    }

    fn short(seconds: u64) -> Limits {
        Limits {
            head_timeout: Duration::from_secs(seconds),
            body_timeout: Duration::from_secs(seconds),
            write_timeout: Duration::from_secs(seconds),
            ..Limits::default()
        }
    }

    /// Sends `request` on a new connection and reads the answer to its end.
    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut c = TcpStream::connect(addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        c.write_all(request).expect("send");
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        answer
    }

    fn status(answer: &str) -> Option<u16> {
        answer.split(' ').nth(1)?.parse().ok()
    }

    /// A connection that sent `part` and then nothing.
    fn stalled(addr: SocketAddr, part: &[u8]) -> TcpStream {
        let mut c = TcpStream::connect(addr).expect("connect");
        c.write_all(part).expect("send");
        c
    }

    /// Reads what a stalled connection is eventually answered, until the server closes it.
    fn answer_of(mut c: TcpStream) -> String {
        c.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        answer
    }

    const GET_OK: &[u8] = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn a_stalled_body_delays_no_other_request_and_is_answered_408() {
        let limits = short(3);
        let (addr, _) = server(limits);
        let started = std::time::Instant::now();
        let slow = stalled(
            addr,
            b"PUT /streams HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
        );
        // Answered while the slow body is still awaited: the slow connection has nothing
        // to read yet.
        let answer = exchange(addr, GET_OK);
        assert_eq!(status(&answer), Some(200), "{answer}");
        slow.set_nonblocking(true).expect("nonblocking");
        let mut byte = [0u8; 1];
        let pending = (&slow).read(&mut byte);
        assert!(
            matches!(&pending, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the slow request was answered before its body: {pending:?}"
        );
        slow.set_nonblocking(false).expect("blocking");
        let late = answer_of(slow);
        assert_eq!(status(&late), Some(408), "{late}");
        assert!(late.contains("Connection: close"), "{late}");
        assert!(started.elapsed() >= limits.body_timeout);
    }

    #[test]
    fn fifty_stalled_connections_do_not_stop_other_requests_and_are_closed() {
        let limits = short(4);
        let (addr, handled) = server(limits);
        let heads: Vec<TcpStream> = (0..25)
            .map(|_| stalled(addr, b"GET /ok HTTP/1.1\r\nHost:"))
            .collect();
        let bodies: Vec<TcpStream> = (0..25)
            .map(|_| stalled(addr, b"PUT /x HTTP/1.1\r\nContent-Length: 100\r\n\r\nsome"))
            .collect();
        for _ in 0..3 {
            let answer = exchange(addr, GET_OK);
            assert_eq!(status(&answer), Some(200), "{answer}");
        }
        assert_eq!(handled.load(Ordering::SeqCst), 3);
        // A stalled head is closed unanswered; a stalled body is answered 408.
        for c in heads {
            assert_eq!(answer_of(c), "");
        }
        for c in bodies {
            let answer = answer_of(c);
            assert_eq!(status(&answer), Some(408), "{answer}");
        }
        assert_eq!(handled.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn connections_beyond_the_limit_wait_until_the_stalled_ones_time_out() {
        let limits = Limits {
            connections: 4,
            ..short(2)
        };
        let (addr, _) = server(limits);
        let started = std::time::Instant::now();
        let held: Vec<TcpStream> = (0..4).map(|_| stalled(addr, b"GET /ok")).collect();
        // Accepted by the system, served once a slot is free: only when the stalled
        // connections' time is up.
        let answer = exchange(addr, GET_OK);
        assert_eq!(status(&answer), Some(200), "{answer}");
        assert!(
            started.elapsed() >= limits.head_timeout,
            "served beyond the limit of {} connections",
            limits.connections
        );
        drop(held);
    }

    #[test]
    fn an_oversized_body_is_answered_413_unread() {
        let limits = Limits {
            body_bytes: 1000,
            ..short(10)
        };
        let (addr, handled) = server(limits);
        let declared = exchange(
            addr,
            b"PUT /x HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
        );
        assert_eq!(status(&declared), Some(413), "{declared}");
        assert!(
            declared.ends_with(
                "request body of 99999999999 bytes is larger than the 1000 bytes accepted\n"
            ),
            "{declared}"
        );
        // The body sent whole, beyond what the server reads: the answer still arrives.
        let mut c = TcpStream::connect(addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let body = vec![b'x'; 200_000];
        c.write_all(
            format!("PUT /x HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
        )
        .expect("head");
        let mut writer = c.try_clone().expect("clone");
        let sender = std::thread::spawn(move || writer.write_all(&body).is_ok());
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        let _ = sender.join();
        assert_eq!(status(&answer), Some(413), "{answer}");
        // Within the limit: read and handled.
        let fits = exchange(addr, b"PUT /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(status(&fits), Some(200), "{fits}");
        assert!(fits.ends_with("\r\n\r\nhello"), "{fits}");
        assert_eq!(handled.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn malformed_and_unbounded_requests_are_refused() {
        let limits = Limits {
            head_bytes: 2048,
            ..short(10)
        };
        let (addr, handled) = server(limits);
        let long_header = format!("GET /ok HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(4000));
        for (request, expected) in [
            (
                &b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"[..],
                411,
            ),
            (b"PUT /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (
                b"PUT /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                400,
            ),
            (b"\x00\x01 nonsense\r\n\r\n", 400),
            (long_header.as_bytes(), 431),
        ] {
            let answer = exchange(addr, request);
            assert_eq!(
                status(&answer),
                Some(expected),
                "{}: {answer}",
                String::from_utf8_lossy(request)
            );
        }
        assert_eq!(handled.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn percent_escapes_round_trip_and_bad_ones_are_refused() {
        for id in ["news", "news 1", "a/b", "..", "é%", "\0"] {
            let encoded = percent_encode(id);
            assert!(
                encoded
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
                "{encoded}"
            );
            assert_eq!(percent_decode(&encoded).as_deref(), Some(id.as_bytes()));
        }
        assert_eq!(percent_encode("a/b c"), "a%2Fb%20c");
        assert_eq!(percent_decode("%2e%2E%2f").as_deref(), Some(&b"../"[..]));
        for bad in ["%", "%2", "%zz", "%+1"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }
}
