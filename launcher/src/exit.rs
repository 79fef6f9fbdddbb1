//! Exit codes, mapped in one place: 0 success, 2 usage or manifest error, 1 any other failure.

use std::process::ExitCode;

/// What kind of failure ended the run; decides the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Bad arguments, an invalid manifest, or a refusal the user can fix by changing the input.
    Usage,
    /// Anything else: the engine, the file system, a build.
    Other,
}

impl Failure {
    pub fn code(self) -> u8 {
        match self {
            Failure::Usage => 2,
            Failure::Other => 1,
        }
    }
}

impl From<Failure> for ExitCode {
    fn from(f: Failure) -> Self {
        ExitCode::from(f.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_documented_table() {
        assert_eq!(Failure::Usage.code(), 2);
        assert_eq!(Failure::Other.code(), 1);
    }
}
