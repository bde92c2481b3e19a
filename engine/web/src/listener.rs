//! The TCP listener the server runs on: plain TCP, except that hyper's own error answers
//! become problem+json like every other error.
//!
//! hyper answers a request it cannot parse by itself, before any route or middleware runs:
//! `414` for a URI over 64 KiB, `431` for headers over its buffer, `400` for a broken request
//! line or header. Those answers have no body and no content type. No hook of hyper's or
//! axum's reaches them, so each connection's writes are watched instead: an answer head with
//! a 4xx status and no `content-type` can only be one of hyper's (every answer of ours
//! carries a content type), and it is replaced by the same status with a problem+json body.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::error::{ApiError, ErrorCode};

/// A [`TcpListener`] whose connections are [`ProblemIo`]s.
pub struct ProblemListener(pub TcpListener);

/// The TCP peer's address, as handlers see it (`ConnectInfo<PeerAddress>`).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddress(pub SocketAddr);

impl Listener for ProblemListener {
    type Io = ProblemIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (ProblemIo, SocketAddr) {
        let (stream, address) = Listener::accept(&mut self.0).await;
        (
            ProblemIo {
                stream,
                replacement: None,
            },
            address,
        )
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, ProblemListener>> for PeerAddress {
    fn connect_info(stream: IncomingStream<'_, ProblemListener>) -> PeerAddress {
        PeerAddress(*stream.remote_addr())
    }
}

/// A connection that replaces hyper's bare error answers (see the module docs).
pub struct ProblemIo {
    stream: TcpStream,
    /// The answer being written in place of one of hyper's: its bytes, how many are written,
    /// and how many bytes of hyper's answer it stands for.
    replacement: Option<(Vec<u8>, usize, usize)>,
}

impl ProblemIo {
    /// Writes the pending replacement; ready with the length of the answer it replaced.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((bytes, written, _)) = &mut self.replacement {
            if *written == bytes.len() {
                break;
            }
            let wrote = ready!(Pin::new(&mut self.stream).poll_write(cx, &bytes[*written..]))?;
            if wrote == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += wrote;
        }
        let replaced = self
            .replacement
            .as_ref()
            .map_or(0, |(_, _, replaced)| *replaced);
        Poll::Ready(Ok(replaced))
    }
}

/// The problem+json answer that replaces `head`, when `head` is one of hyper's bare error
/// answers.
fn replacement_for(head: &[u8]) -> Option<Vec<u8>> {
    let status_line = head.strip_prefix(b"HTTP/1.1 4")?;
    let end = head.windows(4).position(|window| window == b"\r\n\r\n")?;
    let headers = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
    if headers.contains("\r\ncontent-type:") {
        return None;
    }
    let status: u16 = std::str::from_utf8(status_line.get(..2)?)
        .ok()?
        .parse::<u16>()
        .ok()?
        + 400;
    let error = match status {
        414 => ApiError::new(
            ErrorCode::UriTooLong,
            "the URI is longer than the server reads (64 KiB); send a long filter as JSON to POST /records/{object}/query",
        ),
        431 => ApiError::new(
            ErrorCode::HeadersTooLarge,
            "the request headers are larger than the server reads",
        ),
        _ => ApiError::new(
            ErrorCode::MalformedRequest,
            "the request line or a header cannot be read",
        ),
    };
    let (_, status_code, _) = error.code().row();
    let body = error.body_text();
    let reason = status_code.canonical_reason().unwrap_or("Client Error");
    let mut answer = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status_code.as_u16(),
        crate::error::PROBLEM_JSON,
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body.as_bytes());
    Some(answer)
}

impl AsyncRead for ProblemIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ProblemIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.replacement.is_none()
            && let Some(answer) = replacement_for(buf)
        {
            self.replacement = Some((answer, 0, buf.len()));
        }
        if self.replacement.is_some() {
            return self.poll_replacement(cx);
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.replacement.is_none()
            && let Some(first) = bufs.first()
            && let Some(answer) = replacement_for(first)
        {
            let replaced = bufs.iter().map(|buf| buf.len()).sum();
            self.replacement = Some((answer, 0, replaced));
        }
        if self.replacement.is_some() {
            return self.poll_replacement(cx);
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_4xx_heads_are_replaced() {
        let bare = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let answer = String::from_utf8(replacement_for(bare).unwrap()).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 414 URI Too Long\r\n"),
            "{answer}"
        );
        assert!(answer.contains("content-type: application/problem+json"));
        assert!(answer.contains("\"type\":\"uri_too_long\""), "{answer}");
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\n\r\n{}";
        assert!(replacement_for(ours).is_none());
        assert!(replacement_for(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replacement_for(b"{\"data\": \"HTTP/1.1 400\"}").is_none());
    }
}
