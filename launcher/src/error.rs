//! One error for the launcher: what went wrong, what kind of failure it is (which decides the exit
//! code, [`Kind::code`]) and how to fix it, the hint, as a field of its own: never parsed back
//! out of a message.
//!
//! Each module keeps its own error enum, typed to what it does; [`Diagnose`] is how one says its
//! kind and hint, and any of them becomes an [`Error`] with `?`.

pub use crate::exit::Kind;

/// What an error of the launcher says about itself beyond its message.
pub trait Diagnose: std::error::Error {
    fn kind(&self) -> Kind;

    /// How to fix it, when there is something to say; not part of the message.
    fn hint(&self) -> Option<String> {
        None
    }
}

/// An error that ends a verb.
#[derive(Debug)]
pub struct Error {
    kind: Kind,
    message: String,
    hint: Option<String>,
    /// The message renders itself (manifest diagnostics with their source lines): no `error:`.
    rendered: bool,
}

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
            rendered: false,
        }
    }

    /// A mistake in the input, and how to fix it.
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message).with_hint(hint)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// As the operator reads it: `error: …` and the hint on its own line.
    pub fn report(&self) -> String {
        if self.rendered {
            return self.message.clone();
        }
        match &self.hint {
            Some(h) => format!("error: {}\n  hint: {h}", self.message),
            None => format!("error: {}", self.message),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

impl<E: Diagnose> From<E> for Error {
    fn from(e: E) -> Self {
        Self {
            kind: e.kind(),
            message: e.to_string(),
            hint: e.hint(),
            rendered: false,
        }
    }
}

impl From<crate::manifest::ManifestError> for Error {
    fn from(e: crate::manifest::ManifestError) -> Self {
        Self {
            kind: Kind::Usage,
            message: e.to_string(),
            hint: None,
            rendered: true,
        }
    }
}

impl Diagnose for std::io::Error {
    fn kind(&self) -> Kind {
        Kind::Internal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("bottle app is already running (launcher pid 7)")]
    struct Running;

    impl Diagnose for Running {
        fn kind(&self) -> Kind {
            Kind::Environment
        }
        fn hint(&self) -> Option<String> {
            Some("stop it with `claude-bottle stop app`".into())
        }
    }

    #[test]
    fn the_kind_and_the_hint_travel_as_fields() {
        let e = Error::from(Running);
        assert_eq!(e.kind().code(), 2);
        assert_eq!(
            e.message(),
            "bottle app is already running (launcher pid 7)"
        );
        assert_eq!(e.hint(), Some("stop it with `claude-bottle stop app`"));
        assert_eq!(
            e.report(),
            "error: bottle app is already running (launcher pid 7)\n  hint: stop it with `claude-bottle stop app`"
        );
    }
}
