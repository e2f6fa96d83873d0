//! Replies hyper writes on its own — a request it cannot parse (400), a URI too long
//! (414), headers too large (431) — before any handler runs. They would go out with an
//! empty body and none of PiSync's headers; this connection wrapper rewrites them into
//! the error shape with the security headers. Every reply PiSync itself makes carries
//! `x-request-id`, so a response head without it is hyper's.

use pisync_shared::http::{self, ApiError};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct ShapedErrors<S> {
    inner: S,
    /// Our replacement for hyper's reply, still to be written.
    pending: Vec<u8>,
    /// Bytes of hyper's buffer the pending replacement stands for.
    replaced: usize,
    /// After a replacement, hyper closes the connection: swallow what it still writes.
    closing: bool,
}

impl<S> ShapedErrors<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            replaced: 0,
            closing: false,
        }
    }
}

/// The statuses hyper answers with on its own, before any handler runs.
const HYPERS_OWN: [u16; 3] = [400, 414, 431];

/// The status of a response head hyper wrote itself, if `buf` is one.
fn hypers_own(buf: &[u8]) -> Option<u16> {
    let head = buf.strip_prefix(b"HTTP/1.1 ")?;
    let status: u16 = std::str::from_utf8(head.get(..3)?).ok()?.parse().ok()?;
    if !HYPERS_OWN.contains(&status) {
        return None;
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(buf.len());
    let headers = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    (!headers.contains("\r\nx-request-id:")).then_some(status)
}

/// Our reply for one of hyper's, as bytes on the wire.
fn replacement(status: u16) -> Vec<u8> {
    let err = ApiError::malformed_request(status);
    let request_id = http::generate_request_id();
    let response = http::error(&err, &request_id);
    let body: Vec<u8> = match response.body() {
        lambda_http::Body::Text(t) => t.clone().into_bytes(),
        lambda_http::Body::Binary(b) => b.clone(),
        _ => Vec::new(),
    };
    let reason = response.status().canonical_reason().unwrap_or("Error");
    let mut wire = format!("HTTP/1.1 {} {reason}\r\n", response.status().as_u16()).into_bytes();
    for (name, value) in response.headers() {
        wire.extend_from_slice(name.as_str().as_bytes());
        wire.extend_from_slice(b": ");
        wire.extend_from_slice(value.as_bytes());
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()).as_bytes());
    wire.extend_from_slice(&body);
    wire
}

impl<S: AsyncRead + Unpin> AsyncRead for ShapedErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ShapedErrors<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_empty() && !this.closing {
            match hypers_own(buf) {
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
                Some(status) => {
                    this.pending = replacement(status);
                    this.replaced = buf.len();
                }
            }
        }
        while !this.pending.is_empty() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &this.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            this.pending.drain(..n);
        }
        if !this.closing {
            this.closing = true;
            return Poll::Ready(Ok(this.replaced));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // One buffer per write, so a response head always arrives whole.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_replies_are_told_from_ours() {
        assert_eq!(
            hypers_own(b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"),
            Some(431)
        );
        assert_eq!(
            hypers_own(
                b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\nx-request-id: 1-2\r\n\r\n{}"
            ),
            None
        );
        assert_eq!(hypers_own(b"{\"body\": 1}"), None, "not a response head");
        assert_eq!(
            hypers_own(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n\r\n<!doctype html>"),
            None
        );
    }

    #[test]
    fn the_replacement_is_the_error_shape_with_the_headers() {
        let wire = String::from_utf8(replacement(414)).unwrap();
        assert!(wire.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{wire}");
        assert!(wire.contains("x-content-type-options: nosniff\r\n"));
        assert!(wire.contains("\"code\":\"uri_too_long\""), "{wire}");
        let (_, body) = wire.split_once("\r\n\r\n").unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["request_id"].is_string());
    }
}
