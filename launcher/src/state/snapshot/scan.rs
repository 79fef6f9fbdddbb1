//! A tar stream checked header by header as it passes, so a snapshot is refused the moment an entry
//! announces more than the limit allows, before its data is read, and the refusal can name it.
//!
//! The scanner reads the engine's archives (Go's `archive/tar`: ustar headers, PAX records for long
//! names and large sizes) without buffering data: it keeps one header block and at most one
//! [`MAX_META`]-byte extension record. It refuses what the engine never writes and what another
//! reader could expand or read differently: GNU sparse entries (type `S` or PAX `GNU.sparse.*`,
//! which a reader expands to their full size), data behind a header-only type (links, devices,
//! folders), bad checksums and oversized extension records.

/// Size of a tar block.
const BLOCK: usize = 512;
/// Largest PAX or GNU long-name record accepted: the engine writes them for long paths (a few KiB)
/// and `security.capability`; nothing legitimate comes near.
pub const MAX_META: u64 = 1 << 20;
/// How many of the largest entries a refusal names.
pub const LARGEST: usize = 5;
/// Longest path shown to the operator (paths come from the agent).
const SHOWN_PATH_CHARS: usize = 160;

/// One entry of an archive, as shown to the operator: its path escaped and shortened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub size: u64,
}

/// Why a stream was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    /// The stream went past its budget; `culprit` is the entry whose header announced it.
    OverBudget { culprit: Option<Entry> },
    /// A GNU sparse entry: its data would expand beyond what was streamed.
    Sparse { path: String },
    /// Not an archive the engine writes.
    Malformed(String),
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::OverBudget { culprit: Some(e) } => {
                write!(f, "{} announces {} bytes, past the limit", e.path, e.size)
            }
            ScanError::OverBudget { culprit: None } => f.write_str("the archive passes the limit"),
            ScanError::Sparse { path } => write!(
                f,
                "{path} is a GNU sparse entry, which would expand beyond the archive's size"
            ),
            ScanError::Malformed(detail) => f.write_str(detail),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meta {
    Pax,
    PaxGlobal,
    LongName,
    LongLink,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Collecting a header block.
    Header { filled: usize },
    /// Skipping an entry's data and padding.
    Data { left: u64 },
    /// Collecting an extension record, then skipping its padding.
    Meta { kind: Meta, left: u64, pad: u64 },
    /// Two zero blocks seen: the archive ended.
    End,
}

/// Follows one archive's headers; see the module docs.
#[derive(Debug)]
pub struct Scanner {
    state: State,
    block: Box<[u8; BLOCK]>,
    meta: Vec<u8>,
    /// Bytes seen so far.
    pos: u64,
    /// Bytes the archive may take in all.
    budget: u64,
    /// Put before each entry's path when shown (`/home/` for the engine's `agent/…`).
    prefix: String,
    pending_path: Option<Vec<u8>>,
    pending_size: Option<u64>,
    zero_blocks: u8,
    largest: Vec<Entry>,
}

impl Scanner {
    /// A scanner for an archive that may take `budget` bytes; entries are shown as `prefix` +
    /// their path.
    pub fn new(budget: u64, prefix: &str) -> Self {
        Self {
            state: State::Header { filled: 0 },
            block: Box::new([0; BLOCK]),
            meta: Vec::new(),
            pos: 0,
            budget,
            prefix: prefix.to_owned(),
            pending_path: None,
            pending_size: None,
            zero_blocks: 0,
            largest: Vec::new(),
        }
    }

    /// Bytes seen so far.
    pub fn seen(&self) -> u64 {
        self.pos
    }

    /// The largest entries seen so far, largest first.
    pub fn largest(&self) -> &[Entry] {
        &self.largest
    }

    /// Whether the archive's end (two zero blocks) was seen.
    pub fn ended(&self) -> bool {
        matches!(self.state, State::End)
    }

    /// Check the next bytes of the archive.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), ScanError> {
        while !data.is_empty() {
            let n = match self.state {
                State::Header { filled } => {
                    let n = (BLOCK - filled).min(data.len());
                    self.block[filled..filled + n].copy_from_slice(&data[..n]);
                    self.pos += n as u64;
                    if filled + n == BLOCK {
                        self.header()?;
                    } else {
                        self.state = State::Header { filled: filled + n };
                    }
                    n
                }
                State::Data { left } => {
                    let n = take(left, data.len());
                    self.pos += n as u64;
                    self.state = match left - n as u64 {
                        0 => State::Header { filled: 0 },
                        left => State::Data { left },
                    };
                    n
                }
                State::Meta { kind, left, pad } => {
                    let n;
                    if left > 0 {
                        n = take(left, data.len());
                        self.meta.extend_from_slice(&data[..n]);
                        self.state = State::Meta {
                            kind,
                            left: left - n as u64,
                            pad,
                        };
                    } else {
                        n = take(pad, data.len());
                        self.state = State::Meta {
                            kind,
                            left,
                            pad: pad - n as u64,
                        };
                    }
                    self.pos += n as u64;
                    if let State::Meta {
                        left: 0, pad: 0, ..
                    } = self.state
                    {
                        self.meta_done(kind)?;
                    }
                    n
                }
                // Go's writer ends with two zero blocks; anything after them is never read.
                State::End => {
                    self.pos += data.len() as u64;
                    data.len()
                }
            };
            data = &data[n..];
            if self.pos > self.budget {
                return Err(ScanError::OverBudget { culprit: None });
            }
        }
        Ok(())
    }

    fn header(&mut self) -> Result<(), ScanError> {
        let block = &*self.block;
        if block.iter().all(|&b| b == 0) {
            self.zero_blocks += 1;
            self.state = if self.zero_blocks == 2 {
                State::End
            } else {
                State::Header { filled: 0 }
            };
            return Ok(());
        }
        if self.zero_blocks > 0 {
            return Err(ScanError::Malformed(
                "a header follows a lone zero block".to_owned(),
            ));
        }
        check_sum(block)?;
        let kind = block[156];
        let header_size = octal_or_binary(&block[124..136])?;
        let meta = match kind {
            b'x' => Some(Meta::Pax),
            b'g' => Some(Meta::PaxGlobal),
            b'L' => Some(Meta::LongName),
            b'K' => Some(Meta::LongLink),
            _ => None,
        };
        if let Some(meta) = meta {
            if header_size > MAX_META {
                return Err(ScanError::Malformed(format!(
                    "an extension record of {header_size} bytes (at most {MAX_META})"
                )));
            }
            self.meta.clear();
            self.state = State::Meta {
                kind: meta,
                left: header_size,
                pad: padding(header_size),
            };
            return self.maybe_empty_meta(meta);
        }
        let path = self
            .pending_path
            .take()
            .unwrap_or_else(|| header_path(block));
        let shown = format!("{}{}", self.prefix, show_path(&path));
        if kind == b'S' {
            return Err(ScanError::Sparse { path: shown });
        }
        let size = self.pending_size.take().unwrap_or(header_size);
        // Links, devices, folders and FIFOs have no data; a reader may skip or read what follows.
        if matches!(kind, b'1'..=b'6') && size != 0 {
            return Err(ScanError::Malformed(format!(
                "{shown} has no data by its type but announces {size} bytes"
            )));
        }
        let data = size
            .checked_add(padding(size))
            .ok_or_else(|| ScanError::Malformed(format!("{shown}: size overflow")))?;
        self.note(Entry {
            path: shown.clone(),
            size,
        });
        if self.pos.saturating_add(data) > self.budget {
            return Err(ScanError::OverBudget {
                culprit: Some(Entry { path: shown, size }),
            });
        }
        self.state = if data == 0 {
            State::Header { filled: 0 }
        } else {
            State::Data { left: data }
        };
        Ok(())
    }

    /// An extension record of size 0 is done at once.
    fn maybe_empty_meta(&mut self, kind: Meta) -> Result<(), ScanError> {
        if let State::Meta {
            left: 0, pad: 0, ..
        } = self.state
        {
            self.meta_done(kind)?;
        }
        Ok(())
    }

    fn meta_done(&mut self, kind: Meta) -> Result<(), ScanError> {
        self.state = State::Header { filled: 0 };
        let meta = std::mem::take(&mut self.meta);
        match kind {
            Meta::Pax => {
                for (key, value) in pax_records(&meta)? {
                    match key {
                        b"path" => self.pending_path = Some(value.to_vec()),
                        b"size" => {
                            let size = std::str::from_utf8(value)
                                .ok()
                                .and_then(|s| s.parse().ok())
                                .ok_or_else(|| {
                                    ScanError::Malformed("a PAX size that is no number".to_owned())
                                })?;
                            self.pending_size = Some(size);
                        }
                        k if k.starts_with(b"GNU.sparse.") => {
                            let path = self.pending_path.clone().unwrap_or_default();
                            return Err(ScanError::Sparse {
                                path: format!("{}{}", self.prefix, show_path(&path)),
                            });
                        }
                        _ => {}
                    }
                }
            }
            Meta::PaxGlobal => {
                if pax_records(&meta)?
                    .iter()
                    .any(|(k, _)| k.starts_with(b"GNU.sparse."))
                {
                    return Err(ScanError::Sparse {
                        path: "(a global record)".to_owned(),
                    });
                }
            }
            Meta::LongName => {
                let end = meta.iter().position(|&b| b == 0).unwrap_or(meta.len());
                self.pending_path = Some(meta[..end].to_vec());
            }
            Meta::LongLink => {}
        }
        Ok(())
    }

    fn note(&mut self, entry: Entry) {
        if entry.size == 0 {
            return;
        }
        if self.largest.len() == LARGEST
            && self.largest.last().is_some_and(|l| l.size >= entry.size)
        {
            return;
        }
        let at = self.largest.partition_point(|e| e.size >= entry.size);
        self.largest.insert(at, entry);
        self.largest.truncate(LARGEST);
    }
}

/// How much of `left` bytes a piece of `available` bytes covers.
fn take(left: u64, available: usize) -> usize {
    usize::try_from(left).map_or(available, |l| l.min(available))
}

/// Bytes after `size` up to the next block boundary.
fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// The header's checksum, as POSIX (unsigned) or old writers (signed) compute it.
fn check_sum(block: &[u8; BLOCK]) -> Result<(), ScanError> {
    let field = &block[148..156];
    let want = octal_or_binary(field)?;
    let spaces = 8 * u64::from(b' ');
    let unsigned: u64 = block
        .iter()
        .enumerate()
        .filter(|(i, _)| !(148..156).contains(i))
        .map(|(_, &b)| u64::from(b))
        .sum::<u64>()
        + spaces;
    let signed: i64 = block
        .iter()
        .enumerate()
        .filter(|(i, _)| !(148..156).contains(i))
        .map(|(_, &b)| i64::from(b as i8))
        .sum::<i64>()
        + 8 * 32;
    if want == unsigned || i64::try_from(want).is_ok_and(|w| w == signed) {
        Ok(())
    } else {
        Err(ScanError::Malformed(
            "a header whose checksum does not match".to_owned(),
        ))
    }
}

/// A numeric field: octal digits (NUL or space terminated), or base-256 when the first byte's top
/// bit is set (GNU, for sizes of 8 GiB and more).
fn octal_or_binary(field: &[u8]) -> Result<u64, ScanError> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            n = n
                .checked_mul(256)
                .and_then(|n| n.checked_add(u64::from(b)))
                .ok_or_else(|| ScanError::Malformed("a number too large".to_owned()))?;
        }
        return Ok(n);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    std::str::from_utf8(&text)
        .ok()
        .and_then(|t| u64::from_str_radix(t, 8).ok())
        .ok_or_else(|| ScanError::Malformed("a header number that is not octal".to_owned()))
}

/// The path a ustar header holds: its prefix field (POSIX ustar only) and its name.
fn header_path(block: &[u8; BLOCK]) -> Vec<u8> {
    let cut = |f: &[u8]| f[..f.iter().position(|&b| b == 0).unwrap_or(f.len())].to_vec();
    let name = cut(&block[0..100]);
    if &block[257..263] == b"ustar\0" {
        let prefix = cut(&block[345..500]);
        if !prefix.is_empty() {
            let mut p = prefix;
            p.push(b'/');
            p.extend_from_slice(&name);
            return p;
        }
    }
    name
}

/// One PAX record: key and value.
type Record<'a> = (&'a [u8], &'a [u8]);

/// PAX records: `<length> <key>=<value>\n`, each length counting the whole record.
fn pax_records(mut data: &[u8]) -> Result<Vec<Record<'_>>, ScanError> {
    let bad = || ScanError::Malformed("a PAX record that cannot be read".to_owned());
    let mut out = Vec::new();
    while !data.is_empty() {
        let space = data.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad());
        }
        let record = &data[space + 1..len - 1];
        let eq = record.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        out.push((&record[..eq], &record[eq + 1..]));
        data = &data[len..];
    }
    Ok(out)
}

/// A path from the agent as the operator may see it: at most `SHOWN_PATH_CHARS` characters,
/// escaped on one line (`claude_bottle_protocol::escape_line`: controls, bidi and invisible
/// characters).
pub fn show_path(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut cut: String = text.chars().take(SHOWN_PATH_CHARS).collect();
    let longer = cut.len() < text.len();
    cut = claude_bottle_protocol::escape_line(&cut).into_owned();
    if longer {
        cut.push('…');
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, size: usize) {
        let mut h = tar::Header::new_ustar();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let data = std::io::Read::take(std::io::repeat(0), size as u64);
        b.append_data(&mut h, path, data).expect("append");
    }

    /// A header block alone: `path` of `kind`, announcing `size` bytes that do not follow.
    fn lone_header(path: &str, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).expect("path");
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_cksum();
        h
    }

    /// Feed `data` in pieces of `step` bytes.
    fn scan(data: &[u8], budget: u64, step: usize) -> (Scanner, Result<(), ScanError>) {
        let mut s = Scanner::new(budget, "/");
        for piece in data.chunks(step) {
            if let Err(e) = s.feed(piece) {
                return (s, Err(e));
            }
        }
        (s, Ok(()))
    }

    #[test]
    fn an_archive_within_its_budget_passes_and_ends() {
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, "workspace/a", 10);
        file(&mut b, &format!("workspace/{}/long", "d".repeat(120)), 700);
        file(&mut b, "workspace/b", 3000);
        let tar = b.into_inner().expect("tar");
        for step in [1, 7, 512, 4096, tar.len()] {
            let (s, r) = scan(&tar, tar.len() as u64, step);
            assert_eq!(r, Ok(()), "step {step}");
            assert!(s.ended(), "step {step}");
            assert_eq!(s.seen(), tar.len() as u64);
            let largest: Vec<(&str, u64)> = s
                .largest()
                .iter()
                .map(|e| (e.path.as_str(), e.size))
                .collect();
            let long = format!("/workspace/{}/long", "d".repeat(120));
            assert_eq!(
                largest,
                [
                    ("/workspace/b", 3000),
                    (long.as_str(), 700),
                    ("/workspace/a", 10)
                ]
            );
        }
    }

    #[test]
    fn an_entry_announcing_more_than_the_budget_is_refused_at_its_header() {
        // A 64 GiB file as the engine writes it (PAX size record), and nothing of its data.
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, "workspace/small", 100);
        b.append_pax_extensions([("size", &b"68719476736"[..])])
            .expect("pax");
        let mut h = tar::Header::new_ustar();
        h.set_path("workspace/z").expect("path");
        h.set_size(0);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, std::io::empty()).expect("header");
        let tar = b.into_inner().expect("tar");
        let (s, r) = scan(&tar, 1 << 20, 512);
        assert_eq!(
            r,
            Err(ScanError::OverBudget {
                culprit: Some(Entry {
                    path: "/workspace/z".into(),
                    size: 64 << 30
                })
            })
        );
        assert_eq!(s.largest()[0].path, "/workspace/z");
    }

    #[test]
    fn a_stream_past_its_budget_is_refused_even_between_headers() {
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..20 {
            file(&mut b, &format!("w/{i}"), 1000);
        }
        let tar = b.into_inner().expect("tar");
        let (s, r) = scan(&tar, 5000, 100);
        assert!(matches!(r, Err(ScanError::OverBudget { .. })), "{r:?}");
        assert!(s.seen() <= 5000 + 100);
    }

    #[test]
    fn a_binary_size_is_read() {
        let mut h = tar::Header::new_gnu();
        h.set_path("w/huge").expect("path");
        h.set_mode(0o644);
        // 2^40 bytes: only base-256 holds it in a GNU header.
        h.set_size(1 << 40);
        h.set_cksum();
        assert_eq!(h.as_bytes()[124] & 0x80, 0x80, "base-256 size");
        let (_, r) = scan(h.as_bytes(), 8 << 30, 512);
        assert_eq!(
            r,
            Err(ScanError::OverBudget {
                culprit: Some(Entry {
                    path: "/w/huge".into(),
                    size: 1 << 40
                })
            })
        );
    }

    #[test]
    fn sparse_entries_and_oversized_records_are_refused() {
        let h = lone_header("w/sparse", tar::EntryType::GNUSparse, 0);
        let (_, r) = scan(h.as_bytes(), 1 << 30, 512);
        assert!(matches!(r, Err(ScanError::Sparse { .. })), "{r:?}");

        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("GNU.sparse.major", &b"1"[..])])
            .expect("pax");
        file(&mut b, "w/pax-sparse", 10);
        let (_, r) = scan(&b.into_inner().expect("tar"), 1 << 30, 512);
        assert!(matches!(r, Err(ScanError::Sparse { .. })), "{r:?}");

        let h = lone_header("././@PaxHeader", tar::EntryType::XHeader, MAX_META + 1);
        let (_, r) = scan(h.as_bytes(), 1 << 30, 512);
        assert!(matches!(r, Err(ScanError::Malformed(_))), "{r:?}");
    }

    #[test]
    fn data_behind_a_header_only_type_and_bad_checksums_are_refused() {
        let h = lone_header("w/link", tar::EntryType::Symlink, 4096);
        let (_, r) = scan(h.as_bytes(), 1 << 30, 512);
        assert!(matches!(r, Err(ScanError::Malformed(_))), "{r:?}");

        let h = lone_header("w/file", tar::EntryType::Regular, 1);
        let mut bytes = h.as_bytes().to_vec();
        bytes[0] ^= 1;
        let (_, r) = scan(&bytes, 1 << 30, 512);
        assert!(matches!(r, Err(ScanError::Malformed(_))), "{r:?}");
    }

    #[test]
    fn paths_from_the_agent_are_escaped_and_bounded() {
        assert_eq!(show_path(b"a\x1b[2Jb\n"), "a\\x1b[2Jb\\n");
        assert_eq!(show_path("x\u{202e}y".as_bytes()), "x\\u{202e}y");
        assert_eq!(show_path(b"\xff"), "\u{fffd}");
        let long = show_path("é".repeat(500).as_bytes());
        assert_eq!(long.chars().count(), SHOWN_PATH_CHARS + 1);
    }
}
