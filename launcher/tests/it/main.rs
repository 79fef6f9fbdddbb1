//! Integration tests of the launcher crate (one test binary; modules by concern).

mod cli;
mod dockerfile_syntax;
mod doctor;
mod image_build;
mod json;
mod manifest;
mod preflight;
mod queue;
mod rules;
