//! SIP over a byte stream (TLS, RFC 3261 §18.3): cutting the stream into
//! messages by `Content-Length`, and the RFC 5626 §4.4.1 keep-alives that
//! share it (a client's ping is CRLFCRLF, the server's pong one CRLF).
//!
//! Sans-IO: [`Framer::push`] the bytes read, then take [`Frame`]s with
//! [`Framer::next_frame`] until it says `None` (need more bytes). An error means
//! the stream cannot be trusted any more (no `Content-Length`, a message
//! over the size limit): close the connection.

/// What the stream carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One whole SIP message, head and body.
    Message(Vec<u8>),
    /// CRLFCRLF: the client asks "still there?"; answer with [`PONG`].
    Ping,
    /// CRLF: the server's answer to a ping.
    Pong,
}

/// The keep-alive a client sends.
pub const PING: &[u8] = b"\r\n\r\n";
/// The answer a server sends.
pub const PONG: &[u8] = b"\r\n";

/// Which side of the connection reads: a server expects pings (CRLFCRLF),
/// a client pongs (CRLF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The accepting side (the PBX): answers pings.
    Server,
    /// The connecting side (the agent): answers pongs' absence by reconnecting.
    Client,
}

/// Why the stream is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("SIP message over a stream without Content-Length")]
    /// A message without `Content-Length` (mandatory on streams).
    NoContentLength,
    #[error("SIP message larger than {0} bytes")]
    /// A message over the size limit.
    TooLarge(usize),
}

/// Reassembles messages from a stream.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    max: usize,
    side: Side,
}

impl Framer {
    /// A framer refusing messages over `max` bytes.
    pub fn new(side: Side, max: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            max,
            side,
        }
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        // Keep-alives sit between messages.
        if self.buf.starts_with(b"\r\n") {
            match self.side {
                Side::Client => {
                    self.buf.drain(..2);
                    return Ok(Some(Frame::Pong));
                }
                Side::Server if self.buf.starts_with(PING) => {
                    self.buf.drain(..4);
                    return Ok(Some(Frame::Ping));
                }
                Side::Server if self.buf.len() < 4 && b"\r\n\r\n".starts_with(&self.buf) => {
                    return Ok(None); // the rest of a ping may follow
                }
                // A lone CRLF before a message: tolerated, skipped.
                Side::Server => {
                    self.buf.drain(..2);
                    return self.next_frame();
                }
            }
        }
        let Some(head_end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            if self.buf.len() > self.max {
                return Err(FrameError::TooLarge(self.max));
            }
            return Ok(None);
        };
        let head = &self.buf[..head_end];
        let len = content_length(head).ok_or(FrameError::NoContentLength)?;
        let total = head_end + 4 + len;
        if total > self.max {
            return Err(FrameError::TooLarge(self.max));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let msg: Vec<u8> = self.buf.drain(..total).collect();
        Ok(Some(Frame::Message(msg)))
    }
}

/// The `Content-Length` (or compact `l`) of a message head.
fn content_length(head: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l"))
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn messages_are_cut_by_content_length_however_the_bytes_arrive() {
        let mut two = MSG.to_vec();
        two.extend_from_slice(b"SIP/2.0 200 OK\r\nl: 0\r\n\r\n");
        for chunk in [1, 3, 7, two.len()] {
            let mut f = Framer::new(Side::Server, 65_535);
            let mut got = Vec::new();
            for piece in two.chunks(chunk) {
                f.push(piece);
                while let Some(fr) = f.next_frame().unwrap() {
                    got.push(fr);
                }
            }
            assert_eq!(
                got,
                vec![
                    Frame::Message(MSG.to_vec()),
                    Frame::Message(b"SIP/2.0 200 OK\r\nl: 0\r\n\r\n".to_vec())
                ],
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn pings_and_pongs_between_messages() {
        let mut s = Framer::new(Side::Server, 65_535);
        s.push(b"\r\n");
        assert_eq!(s.next_frame(), Ok(None));
        s.push(b"\r\n");
        assert_eq!(s.next_frame(), Ok(Some(Frame::Ping)));
        s.push(PING);
        s.push(MSG);
        assert_eq!(s.next_frame(), Ok(Some(Frame::Ping)));
        assert_eq!(s.next_frame(), Ok(Some(Frame::Message(MSG.to_vec()))));
        let mut c = Framer::new(Side::Client, 65_535);
        c.push(PONG);
        c.push(MSG);
        assert_eq!(c.next_frame(), Ok(Some(Frame::Pong)));
        assert_eq!(c.next_frame(), Ok(Some(Frame::Message(MSG.to_vec()))));
        assert_eq!(c.next_frame(), Ok(None));
    }

    #[test]
    fn a_stream_that_cannot_be_framed_is_refused() {
        let mut f = Framer::new(Side::Server, 100);
        f.push(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FrameError::NoContentLength));
        let mut f = Framer::new(Side::Server, 100);
        f.push(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 500\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FrameError::TooLarge(100)));
        let mut f = Framer::new(Side::Server, 100);
        f.push(&[b'x'; 101]);
        assert_eq!(f.next_frame(), Err(FrameError::TooLarge(100)));
        // Garbage in the length is no length.
        let mut f = Framer::new(Side::Server, 100);
        f.push(b"X\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FrameError::NoContentLength));
    }
}
