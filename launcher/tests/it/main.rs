//! Integration tests of the launcher crate (one test binary; modules by concern).

mod cli;
mod manifest;
mod preflight;
