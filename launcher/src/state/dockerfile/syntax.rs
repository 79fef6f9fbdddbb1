//! How Docker's Dockerfile parser splits a text into instructions (parser directives, comments,
//! blank lines, line continuations) and how one line's words and flags separate: the launcher's
//! one reader of Dockerfile texts. Appending approved lines, the last `USER`, the label line after
//! the last `FROM` and the `ARG`s of a bottle's Dockerfile all go through [`parse`].
//!
//! The scanner is the protocol's ([`claude_bottle_protocol::dockerfile`]), re-exported here:
//! supervise reads the bottle's current Dockerfile with it when a capability is filed, so both
//! read a Dockerfile alike.

pub use claude_bottle_protocol::dockerfile::{
    DEFAULT_ESCAPE, Instruction, continues, ends_in_continuation, escape_token, instructions,
    lines, parse, split_flags, words,
};
