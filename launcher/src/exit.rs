//! Exit codes, mapped in one place: 0 success, 2 a failure the operator fixes (arguments, a
//! manifest, config.toml, the machine's set-up), 1 the engine's failure or the launcher's own.

use std::process::ExitCode;

/// What kind of failure ended the run; decides the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad arguments, an invalid manifest or config.toml, a refusal the user can fix by changing
    /// the input.
    Usage,
    /// The operator's machine or settings: a binary not found, an unusable `upstream_ca`, a runtime
    /// the engine lacks, an image that cannot be had, a disk bound the driver cannot give, a bottle
    /// already running, a snapshot past the operator's limit.
    Environment,
    /// The container engine failed (unreachable, a build, a sidecar that did not come up).
    Engine,
    /// Anything else: the file system, a queue file that cannot be read, a bug.
    Internal,
}

impl Kind {
    pub fn code(self) -> u8 {
        match self {
            Kind::Usage | Kind::Environment => 2,
            Kind::Engine | Kind::Internal => 1,
        }
    }
}

impl From<Kind> for ExitCode {
    fn from(k: Kind) -> Self {
        ExitCode::from(k.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_documented_table() {
        assert_eq!(Kind::Usage.code(), 2);
        assert_eq!(Kind::Environment.code(), 2);
        assert_eq!(Kind::Engine.code(), 1);
        assert_eq!(Kind::Internal.code(), 1);
    }
}
