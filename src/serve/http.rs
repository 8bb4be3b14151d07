//! The HTTP/1.1 subset `ember serve` needs, on `std::net`: one thread per connection,
//! keep-alive, `Content-Length` request bodies (with `Expect: 100-continue`), JSON responses,
//! and replies written as they are generated (server-sent events in chunked encoding, each
//! piece flushed). Every limit is explicit: header bytes, header count, body size, idle time.
//!
//! Why not a crate: tiny_http 0.12 (the newest) hands connections to a task pool whose spawn
//! races with its idle count, so under concurrent keep-alive clients a connection can wait
//! for a thread forever (8 `openai` clients hung one run in three here); and it does not
//! expose the socket, so a client that left could only be noticed by writing to it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

/// Most bytes in a request line plus headers, and most headers.
const MAX_HEAD: u64 = 16 << 10;
const MAX_HEADERS: usize = 100;
/// How long a connection may stay silent while a request is awaited or read.
pub const IDLE: Duration = Duration::from_secs(30);

/// A request whose head was read; the body too, unless it was refused.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The path without its query.
    pub path: String,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was over the limit (it was read and dropped, or the connection will close).
    pub too_large: Option<u64>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The client closed the connection or went quiet between requests.
    Closed,
    /// A malformed request: answer with this status and message, then close.
    Bad(u16, String),
}

/// One client connection: reads its requests and writes their responses.
pub struct Conn {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
    /// Set by each request's head; `framing.close` ends the connection after the response.
    pub framing: Framing,
}

impl Conn {
    pub fn new(stream: TcpStream) -> io::Result<Conn> {
        stream.set_read_timeout(Some(IDLE))?;
        stream.set_write_timeout(Some(IDLE))?;
        // Small SSE chunks go out at once.
        stream.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            stream,
            framing: Framing {
                http11: true,
                close: false,
            },
        })
    }

    /// Reads the next request; a body over `max_body` bytes is skipped (up to 4x the limit;
    /// beyond that the connection closes after the answer) and flagged in `too_large`.
    pub fn read_request(&mut self, max_body: usize) -> Result<Request, ReadError> {
        let Conn {
            reader,
            stream,
            framing,
        } = self;
        read_request(reader, max_body, framing, || {
            let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        })
    }

    /// Whether the client has closed its side (or the connection broke). Data it sent
    /// meanwhile (a pipelined request) stays unread.
    pub fn client_gone(&mut self) -> bool {
        if !self.reader.buffer().is_empty() {
            return false;
        }
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut byte = [0u8; 1];
        let gone = match self.stream.peek(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        };
        let _ = self.stream.set_nonblocking(false);
        gone
    }

    fn status_line(&self, status: u16) -> String {
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            405 => "Method Not Allowed",
            411 => "Length Required",
            413 => "Content Too Large",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            505 => "HTTP Version Not Supported",
            _ => "",
        };
        let version = if self.framing.http11 {
            "HTTP/1.1"
        } else {
            "HTTP/1.0"
        };
        let connection = match (self.framing.close, self.framing.http11) {
            (true, _) => "Connection: close\r\n",
            (false, false) => "Connection: keep-alive\r\n",
            (false, true) => "",
        };
        format!("{version} {status} {reason}\r\n{connection}")
    }

    /// A whole JSON response.
    pub fn json(&mut self, status: u16, body: &Value) -> io::Result<()> {
        let body = body.to_string();
        let mut out = self.status_line(status);
        out.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ));
        out.push_str(&body);
        self.stream.write_all(out.as_bytes())?;
        self.stream.flush()
    }

    /// Starts a server-sent event stream: chunked on HTTP/1.1; on HTTP/1.0 the body ends when
    /// the connection closes.
    pub fn start_events(&mut self) -> io::Result<()> {
        if !self.framing.http11 {
            self.framing.close = true;
        }
        let mut out = self.status_line(200);
        out.push_str("Content-Type: text/event-stream\r\nCache-Control: no-cache\r\n");
        if self.framing.http11 {
            out.push_str("Transfer-Encoding: chunked\r\n");
        }
        out.push_str("\r\n");
        self.stream.write_all(out.as_bytes())?;
        self.stream.flush()
    }

    fn piece(&mut self, data: &[u8]) -> io::Result<()> {
        if self.framing.http11 {
            let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
            chunk.extend_from_slice(data);
            chunk.extend_from_slice(b"\r\n");
            self.stream.write_all(&chunk)?;
        } else {
            self.stream.write_all(data)?;
        }
        self.stream.flush()
    }

    /// One event: `data: JSON`.
    pub fn event(&mut self, v: &Value) -> io::Result<()> {
        self.piece(format!("data: {v}\n\n").as_bytes())
    }

    /// `data: [DONE]` and the end of the stream.
    pub fn done(&mut self) -> io::Result<()> {
        self.piece(b"data: [DONE]\n\n")?;
        if self.framing.http11 {
            self.stream.write_all(b"0\r\n\r\n")?;
        }
        self.stream.flush()
    }
}

/// How a connection goes on: the protocol of its last request and whether it closes after
/// the response. A request's head sets both.
#[derive(Clone, Copy, Debug)]
pub struct Framing {
    pub http11: bool,
    pub close: bool,
}

/// Reads one request from `reader` (the parser behind [`Conn::read_request`], on any byte
/// source so that it can be fuzzed: fuzz/fuzz_targets/serve_request.rs). `send_continue`
/// answers `Expect: 100-continue` before the body is read.
pub fn read_request<R: BufRead>(
    reader: &mut R,
    max_body: usize,
    framing: &mut Framing,
    mut send_continue: impl FnMut(),
) -> Result<Request, ReadError> {
    let mut head = (&mut *reader).take(MAX_HEAD);
    let mut line = String::new();
    // Blank lines before a request are allowed (RFC 9112 2.2).
    loop {
        line.clear();
        match head.read_line(&mut line) {
            Ok(0) | Err(_) => return Err(ReadError::Closed),
            Ok(_) if line.trim().is_empty() => continue,
            Ok(_) => break,
        }
    }
    let bad = |m: &str| ReadError::Bad(400, m.to_string());
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("a malformed request line"));
    };
    framing.http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => {
            return Err(ReadError::Bad(
                505,
                format!("{version} is not supported: HTTP/1.1 or 1.0"),
            ))
        }
    };
    let method = method.to_string();
    let path = target.split('?').next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        match head.read_line(&mut h) {
            Ok(0) => return Err(bad("the request head is too large or cut short")),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(bad("the request head is not UTF-8"))
            }
            Err(_) => return Err(ReadError::Closed),
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let Some((k, v)) = h.split_once(':') else {
            return Err(bad("a malformed header line"));
        };
        if headers.len() == MAX_HEADERS {
            return Err(ReadError::Bad(431, "too many headers".into()));
        }
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut rq = Request {
        method,
        path,
        headers,
        body: Vec::new(),
        too_large: None,
    };
    let connection = rq.header("Connection").unwrap_or("").to_ascii_lowercase();
    framing.close = if framing.http11 {
        connection.contains("close")
    } else {
        !connection.contains("keep-alive")
    };
    if rq.header("Transfer-Encoding").is_some() {
        framing.close = true;
        return Err(ReadError::Bad(
            411,
            "chunked request bodies are not supported: send Content-Length".into(),
        ));
    }
    let length: u64 = match rq.header("Content-Length") {
        None => 0,
        Some(v) => v
            .parse()
            .map_err(|_| bad("Content-Length is not a number"))?,
    };
    let expects = rq
        .header("Expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if length > max_body as u64 {
        rq.too_large = Some(length);
        if expects {
            // The client waits for a go-ahead that will not come: it sends no body.
            framing.close = true;
        } else if length <= 4 * max_body as u64 {
            // Read and drop it, so that the answer is not lost to a reset connection.
            let skipped = io::copy(&mut (&mut *reader).take(length), &mut io::sink());
            if skipped.map_or(true, |n| n < length) {
                return Err(ReadError::Closed);
            }
        } else {
            framing.close = true;
        }
        return Ok(rq);
    }
    if expects && length > 0 {
        send_continue();
    }
    rq.body = vec![0; length as usize];
    reader
        .read_exact(&mut rq.body)
        .map_err(|_| ReadError::Closed)?;
    Ok(rq)
}

/// Whether `rq` carries `Authorization: Bearer KEY` (compared in constant time).
pub fn authorized(rq: &Request, key: &str) -> bool {
    let Some(given) = rq.header("Authorization") else {
        return false;
    };
    let Some(token) = given
        .strip_prefix("Bearer ")
        .or_else(|| given.strip_prefix("bearer "))
    else {
        return false;
    };
    let (a, b) = (token.trim().as_bytes(), key.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
