//! The few operations of the NATS client protocol the load generator needs to
//! drive nats-server over WebSocket (the benchmark peer of `just bench-bridge`).
//!
//! Over WebSocket the server sends `INFO {…}`, `MSG <subject> <sid> [reply] <n>\r\n<n bytes>\r\n`,
//! `PING`, `PONG`, `+OK` and `-ERR '…'` lines; several operations may share one
//! frame and one may be split across frames, so [`Reader`] keeps the unfinished
//! tail of a frame until the next one completes it.

/// `CONNECT` without `+OK` acknowledgements, then a `PING` whose `PONG` says the server took it.
pub const CONNECT: &[u8] =
    b"CONNECT {\"verbose\":false,\"pedantic\":false,\"lang\":\"rust\",\"version\":\"0\"}\r\nPING\r\n";
/// A round trip: the server answers `PONG` once it has processed everything sent before.
pub const PING: &[u8] = b"PING\r\n";
/// The answer to the server's keepalive `PING`.
pub const PONG: &[u8] = b"PONG\r\n";

/// Appends `SUB <subject> <sid>`.
pub fn subscribe(out: &mut Vec<u8>, subject: &str, sid: usize) {
    out.extend_from_slice(format!("SUB {subject} {sid}\r\n").as_bytes());
}

/// Appends `PUB <subject> <n>` and the payload.
pub fn publish(out: &mut Vec<u8>, subject: &str, payload: &[u8]) {
    out.extend_from_slice(format!("PUB {subject} {}\r\n", payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// One server operation.
pub enum Op<'a> {
    /// A delivered message.
    Msg {
        /// Its payload.
        payload: &'a [u8],
    },
    /// The server's keepalive; answer with [`PONG`].
    Ping,
    /// The answer to our [`PING`].
    Pong,
    /// `-ERR '…'`: the whole line.
    Err(&'a [u8]),
    /// `INFO`, `+OK` or anything else, ignored.
    Other,
}

/// Splits the server's byte stream into operations.
#[derive(Default)]
pub struct Reader {
    /// The start of an operation whose end has not arrived yet.
    pending: Vec<u8>,
}

impl Reader {
    /// Reads one WebSocket frame's data, calling `on_op` for every complete operation.
    pub fn feed(&mut self, data: &[u8], mut on_op: impl FnMut(Op<'_>)) {
        if self.pending.is_empty() {
            let used = parse(data, &mut on_op);
            self.pending.extend_from_slice(&data[used..]);
        } else {
            self.pending.extend_from_slice(data);
            let used = parse(&self.pending, &mut on_op);
            self.pending.drain(..used);
        }
    }
}

/// Calls `on_op` for each complete operation at the start of `input`; returns the bytes they took.
fn parse(input: &[u8], on_op: &mut impl FnMut(Op<'_>)) -> usize {
    let mut at = 0;
    while let Some(eol) = input[at..].windows(2).position(|w| w == b"\r\n") {
        let line = &input[at..at + eol];
        let body = at + eol + 2;
        if let Some(args) = line.strip_prefix(b"MSG ") {
            let Some(size) = args
                .rsplit(|&b| b == b' ')
                .next()
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse::<usize>().ok())
            else {
                on_op(Op::Err(line));
                at = body;
                continue;
            };
            if input.len() < body + size + 2 {
                break;
            }
            on_op(Op::Msg { payload: &input[body..body + size] });
            at = body + size + 2;
            continue;
        }
        on_op(match line {
            b"PING" => Op::Ping,
            b"PONG" => Op::Pong,
            _ if line.starts_with(b"-ERR") => Op::Err(line),
            _ => Op::Other,
        });
        at = body;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(frames: &[&[u8]]) -> Vec<String> {
        let mut reader = Reader::default();
        let mut seen = Vec::new();
        for frame in frames {
            reader.feed(frame, |op| {
                seen.push(match op {
                    Op::Msg { payload } => format!("msg {}", String::from_utf8_lossy(payload)),
                    Op::Ping => "ping".into(),
                    Op::Pong => "pong".into(),
                    Op::Err(line) => format!("err {}", String::from_utf8_lossy(line)),
                    Op::Other => "other".into(),
                })
            });
        }
        seen
    }

    #[test]
    fn operations_sharing_a_frame_and_split_across_frames() {
        let seen =
            ops(&[b"INFO {}\r\nMSG a.b 1 5\r\nhe", b"llo\r\nPI", b"NG\r\nMSG c 2 r 2\r\n\r\n\r\nPONG\r\n"]);
        assert_eq!(seen, ["other", "msg hello", "ping", "msg \r\n", "pong"]);
    }

    #[test]
    fn a_malformed_msg_line_is_reported_and_skipped() {
        assert_eq!(ops(&[b"MSG a 1 x\r\nPONG\r\n"]), ["err MSG a 1 x", "pong"]);
    }
}
