//! The agent's resource limits as the operator writes them: one byte-size parser and one minimum
//! per limit, for `config.toml`'s `[agent]` table and a bottle's `limits:` alike, so that a value
//! one file accepts the other accepts too.

/// The least memory the agent may be given: the engine refuses less than 6 MiB, and anything near
/// it cannot run node anyway.
pub const MIN_AGENT_MEMORY: u64 = 64 << 20;

/// The fewest processes the agent may be given: the shim, a shell and the agent's own workers.
pub const MIN_AGENT_PIDS: i64 = 16;

/// The suffixes [`parse_bytes`] reads, as the operator is told them.
pub const SUFFIXES: &str = "k, m, g or t (powers of 1024; a trailing b or ib is allowed)";

/// Why a size or a count is not accepted; [`LimitError::hint`] says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("unknown unit {unit:?} in {text:?}")]
    UnknownUnit { text: String, unit: char },
    #[error("{text:?} is not a size")]
    NotASize { text: String },
    #[error("{text:?} is too large")]
    TooLarge { text: String },
    /// `value` as written: a size quoted, a count bare.
    #[error("{value} is too small {purpose} (minimum {minimum})")]
    TooSmall {
        value: String,
        purpose: &'static str,
        minimum: &'static str,
    },
}

impl LimitError {
    /// How to write the value instead.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::UnknownUnit { .. } | Self::NotASize { .. } => {
                "write bytes, or a number with k, m, g or t (e.g. \"512m\", \"4g\")"
            }
            Self::TooLarge { .. } => "write a smaller size",
            Self::TooSmall { .. } => "write at least the minimum",
        }
    }
}

/// A byte size as `docker run -m` reads it: a whole number, then optionally one of the
/// [`SUFFIXES`] (case-insensitive): `1073741824`, `512m`, `4g`, `4GB`, `8GiB`, `1t`.
pub fn parse_bytes(text: &str) -> Result<u64, LimitError> {
    let t = text.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], Some(c)),
        _ => (t, None),
    };
    let shift = match unit {
        None => 0,
        Some('k') => 10,
        Some('m') => 20,
        Some('g') => 30,
        Some('t') => 40,
        Some(unit) => {
            return Err(LimitError::UnknownUnit {
                text: text.to_owned(),
                unit,
            });
        }
    };
    let digits = digits.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LimitError::NotASize {
            text: text.to_owned(),
        });
    }
    let too_large = || LimitError::TooLarge {
        text: text.to_owned(),
    };
    let n: u64 = digits.parse().map_err(|_| too_large())?;
    n.checked_mul(1u64 << shift).ok_or_else(too_large)
}

/// The agent's memory limit: a size of at least [`MIN_AGENT_MEMORY`].
pub fn agent_memory(text: &str) -> Result<u64, LimitError> {
    let bytes = parse_bytes(text)?;
    if bytes < MIN_AGENT_MEMORY {
        return Err(LimitError::TooSmall {
            value: format!("{text:?}"),
            purpose: "to run the agent",
            minimum: "64m",
        });
    }
    Ok(bytes)
}

/// The agent's process limit: at least [`MIN_AGENT_PIDS`].
pub fn agent_pids(pids: i64) -> Result<i64, LimitError> {
    if pids < MIN_AGENT_PIDS {
        return Err(LimitError::TooSmall {
            value: pids.to_string(),
            purpose: "to start the agent",
            minimum: "16",
        });
    }
    Ok(pids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker_run_m() {
        for (text, bytes) in [
            ("1073741824", 1 << 30),
            ("512m", 512 << 20),
            ("4g", 4 << 30),
            ("4G", 4 << 30),
            ("4GB", 4 << 30),
            ("8GiB", 8 << 30),
            ("2MiB", 2 << 20),
            ("1024k", 1 << 20),
            ("1t", 1 << 40),
            (" 16 g ", 16 << 30),
            ("100b", 100),
        ] {
            assert_eq!(parse_bytes(text), Ok(bytes), "{text:?}");
        }
    }

    #[test]
    fn what_is_not_a_size_says_why() {
        for (text, want) in [
            ("4x", "unknown unit 'x'"),
            ("1p", "unknown unit 'p'"),
            ("m", "is not a size"),
            ("", "is not a size"),
            ("-1g", "is not a size"),
            ("+1g", "is not a size"),
            ("1.5g", "is not a size"),
            ("lots", "unknown unit 's'"),
            ("99999999999999t", "too large"),
            ("99999999999999999999", "too large"),
        ] {
            let e = parse_bytes(text).expect_err(text);
            assert!(e.to_string().contains(want), "{text:?}: {e}");
            assert!(!e.hint().is_empty());
        }
    }

    #[test]
    fn the_agents_minimums_hold_for_every_spelling() {
        assert_eq!(agent_memory("64m"), Ok(MIN_AGENT_MEMORY));
        assert_eq!(agent_memory("1t"), Ok(1 << 40));
        let e = agent_memory("63m").expect_err("too small");
        assert_eq!(
            e.to_string(),
            "\"63m\" is too small to run the agent (minimum 64m)"
        );
        assert!(agent_memory("65536k").is_ok());
        assert_eq!(agent_pids(16), Ok(16));
        assert!(agent_pids(15).is_err());
        assert!(agent_pids(-1).is_err());
    }
}
