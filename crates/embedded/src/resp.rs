//! The wire format (RESP2): requests in, replies out.
//!
//! Clients send every command as an array of bulk strings (the redis crate
//! and `redis-cli` both do), so that is the only request form parsed.

/// A reply to one command.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Reply>),
    NilArray,
}

impl Reply {
    pub(crate) fn ok() -> Self {
        Self::Status("OK".into())
    }

    pub(crate) fn bulk(text: impl AsRef<[u8]>) -> Self {
        Self::Bulk(text.as_ref().to_vec())
    }

    pub(crate) fn error(message: impl Into<String>) -> Self {
        Self::Error(message.into())
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Status(s) => line(out, b'+', s.as_bytes()),
            Self::Error(s) => line(out, b'-', s.as_bytes()),
            Self::Int(n) => line(out, b':', n.to_string().as_bytes()),
            Self::Bulk(bytes) => {
                line(out, b'$', bytes.len().to_string().as_bytes());
                out.extend_from_slice(bytes);
                out.extend_from_slice(b"\r\n");
            }
            Self::Nil => out.extend_from_slice(b"$-1\r\n"),
            Self::NilArray => out.extend_from_slice(b"*-1\r\n"),
            Self::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for item in items {
                    item.encode(out);
                }
            }
        }
    }
}

fn line(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(kind);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("protocol error: {0}")]
pub(crate) struct ProtocolError(&'static str);

/// A command's parts (name first) and how many bytes of input it took.
pub(crate) type Parsed = (Vec<Vec<u8>>, usize);

/// Reads one whole command at the front of `buf`, or `Ok(None)` when more
/// bytes are needed.
pub(crate) fn parse_command(buf: &[u8]) -> Result<Option<Parsed>, ProtocolError> {
    let Some((count, mut at)) = header(buf, 0, b'*')? else { return Ok(None) };
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        let Some((len, start)) = header(buf, at, b'$')? else { return Ok(None) };
        let end = start + len;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(ProtocolError("bulk string not terminated by CRLF"));
        }
        args.push(buf[start..end].to_vec());
        at = end + 2;
    }
    Ok(Some((args, at)))
}

/// Reads `<kind><number>\r\n` at `at`: the number and where the next
/// part starts.
fn header(buf: &[u8], at: usize, kind: u8) -> Result<Option<(usize, usize)>, ProtocolError> {
    let Some(&first) = buf.get(at) else { return Ok(None) };
    if first != kind {
        return Err(if kind == b'*' {
            ProtocolError("expected an array of bulk strings (inline commands are not supported)")
        } else {
            ProtocolError("expected a bulk string")
        });
    }
    let Some(end) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() - at > 32 { Err(ProtocolError("length line too long")) } else { Ok(None) };
    };
    let text = std::str::from_utf8(&buf[at + 1..at + end]).map_err(|_| ProtocolError("invalid length"))?;
    let n = text.parse::<usize>().map_err(|_| ProtocolError("invalid length"))?;
    if n > 512 * 1024 * 1024 {
        return Err(ProtocolError("length over 512 MiB"));
    }
    Ok(Some((n, at + end + 2)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_taken_whole_or_not_at_all() {
        let wire = b"*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n*1\r\n$4\r\nTIME\r\n";
        assert_eq!(parse_command(&wire[..10]).unwrap(), None);
        let (first, used) = parse_command(wire).unwrap().unwrap();
        assert_eq!(first, vec![b"PING".to_vec(), b"hi".to_vec()]);
        let (second, rest) = parse_command(&wire[used..]).unwrap().unwrap();
        assert_eq!(second, vec![b"TIME".to_vec()]);
        assert_eq!(used + rest, wire.len());
    }

    #[test]
    fn inline_commands_are_refused() {
        assert!(parse_command(b"PING\r\n").is_err());
    }

    #[test]
    fn replies_encode_as_resp2() {
        let mut out = Vec::new();
        Reply::Array(vec![Reply::Int(3), Reply::bulk("a"), Reply::Nil, Reply::ok()]).encode(&mut out);
        assert_eq!(out, b"*4\r\n:3\r\n$1\r\na\r\n$-1\r\n+OK\r\n");
    }
}
