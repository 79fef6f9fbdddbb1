//! git's pkt-line framing (`Documentation/gitprotocol-common.txt`): four hex digits giving the
//! length of the packet including themselves, then the payload; `0000` is a flush packet.

use std::io::{self, Read, Write};

/// The largest packet git writes or reads (`LARGE_PACKET_MAX`).
pub const MAX_PACKET: usize = 65520;

/// One packet read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// A payload, its one trailing line feed removed.
    Data(Vec<u8>),
    /// `0000`.
    Flush,
}

/// Reads one packet; `None` at a clean end of input (before any byte of a packet).
pub fn read(input: &mut impl Read) -> io::Result<Option<Packet>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = input.read(&mut len[got..])?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(invalid("the input ends inside a packet length"));
        }
        got += n;
    }
    let text = std::str::from_utf8(&len).map_err(|_| invalid("a packet length is not hex"))?;
    let size =
        usize::from_str_radix(text, 16).map_err(|_| invalid("a packet length is not hex"))?;
    match size {
        0 => return Ok(Some(Packet::Flush)),
        1..=4 => return Err(invalid("a packet length below 4 other than a flush")),
        s if s > MAX_PACKET => return Err(invalid("a packet longer than git allows")),
        _ => {}
    }
    let mut payload = vec![0u8; size - 4];
    input.read_exact(&mut payload)?;
    if payload.last() == Some(&b'\n') {
        payload.pop();
    }
    Ok(Some(Packet::Data(payload)))
}

/// Writes `payload` and a line feed as one packet; a payload too long for a packet is cut
/// (only messages of the gate's own are written, so cutting loses words, not protocol).
pub fn write_line(output: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let payload = &payload[..payload.len().min(MAX_PACKET - 5)];
    write!(output, "{:04x}", payload.len() + 5)?;
    output.write_all(payload)?;
    output.write_all(b"\n")
}

/// Writes a flush packet.
pub fn flush(output: &mut impl Write) -> io::Result<()> {
    output.write_all(b"0000")?;
    output.flush()
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_flushes_round_trip() {
        let mut out = Vec::new();
        write_line(&mut out, b"version=1\0atomic").expect("write");
        flush(&mut out).expect("flush");
        assert_eq!(out, b"0015version=1\0atomic\n0000");
        let mut input = io::Cursor::new(out);
        assert_eq!(
            read(&mut input).expect("read"),
            Some(Packet::Data(b"version=1\0atomic".to_vec()))
        );
        assert_eq!(read(&mut input).expect("read"), Some(Packet::Flush));
        assert_eq!(read(&mut input).expect("read"), None);
    }

    #[test]
    fn malformed_input_is_an_error() {
        for bad in [&b"00"[..], b"zzzz", b"0003", b"fff1", b"0009ab"] {
            assert!(read(&mut io::Cursor::new(bad)).is_err(), "{bad:?}");
        }
    }
}
