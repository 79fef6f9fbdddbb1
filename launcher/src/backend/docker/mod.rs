//! Docker Engine backend (bollard).
