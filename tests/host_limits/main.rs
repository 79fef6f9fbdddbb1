//! End-to-end tests that change what the whole host's uid 1000 may do (its inotify instances), in a
//! test binary of their own: cargo runs test binaries one after another, so these never overlap the
//! other end-to-end tests (which run two at a time), and [`ONE_AT_A_TIME`] keeps them from
//! overlapping each other.

mod limits;

/// Held by every test here for its whole run.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
