//! Fuzzes the parsing of everything supervise reads from outside: queue files and wire lines.
//!
//! Run with `cargo +nightly fuzz run proposal_parse` from the repository root.
//! Invariants: parsing never panics, and whatever parses re-serializes to something that
//! parses back to the same value.

#![no_main]

use claude_bottle_protocol::wire::RequestMsg;
use claude_bottle_protocol::{Applied, Decision, Proposal, Versioned, from_json, to_json};
use libfuzzer_sys::fuzz_target;

fn round_trip<T: Versioned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(value) = from_json::<T>(data) {
        let again: T = from_json(&to_json(&value)).expect("a parsed value re-parses");
        assert_eq!(again, value);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Proposal>(data);
    round_trip::<Decision>(data);
    round_trip::<Applied>(data);
    round_trip::<RequestMsg>(data);
});
