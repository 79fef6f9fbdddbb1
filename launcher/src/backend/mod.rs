//! Where a plan becomes running containers. One trait, one implementation (Docker) today.

pub mod docker;
