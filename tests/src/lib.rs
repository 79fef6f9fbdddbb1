//! Helpers for the end-to-end tests against a real Docker engine.
