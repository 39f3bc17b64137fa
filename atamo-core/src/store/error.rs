//! Why a store operation failed.

use std::error::Error;
use std::sync::Arc;

/// The error a [`StoreError`] wraps: the database's, its client's or the system's. Shared, so
/// that a store error stays `Clone` (group commit answers every caller of a failed
/// transaction with the same error).
pub type ErrorSource = Arc<dyn Error + Send + Sync>;

/// Why a store operation failed.
///
/// The message says what the store was doing; the error that made it fail, when there is one,
/// is the [`source`](Error::source). Two errors are equal when they are of the same kind with
/// the same message and sources that read the same.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be reached or refused the operation; trying again may work.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The error behind it.
        #[source]
        source: Option<ErrorSource>,
    },
    /// The stored data is not what this version understands.
    #[error("store data is corrupt or from an unknown version: {message}")]
    Corrupt {
        /// What is wrong.
        message: String,
        /// The error behind it.
        #[source]
        source: Option<ErrorSource>,
    },
    /// The caller asked for something invalid (a bad cursor, for example).
    #[error("invalid store request: {message}")]
    Invalid {
        /// What is invalid.
        message: String,
        /// The error behind it.
        #[source]
        source: Option<ErrorSource>,
    },
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// [`StoreError::Unavailable`] without a source.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// [`StoreError::Corrupt`] without a source.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::Corrupt {
            message: message.into(),
            source: None,
        }
    }

    /// [`StoreError::Invalid`] without a source.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source` (a [`Closed`](Self::Closed) store has none).
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        match &mut self {
            Self::Unavailable { source: s, .. }
            | Self::Corrupt { source: s, .. }
            | Self::Invalid { source: s, .. } => *s = Some(Arc::from(source.into())),
            Self::Closed => {}
        }
        self
    }

    /// What failed, without the kind's prefix and without the source.
    pub fn message(&self) -> &str {
        match self {
            Self::Unavailable { message, .. }
            | Self::Corrupt { message, .. }
            | Self::Invalid { message, .. } => message,
            Self::Closed => "the store is closed",
        }
    }

    /// The message followed by every source's, separated by `: ` (without the kind's prefix):
    /// the whole reason, for a report that shows one line.
    pub fn detail(&self) -> String {
        let mut out = self.message().to_owned();
        let mut next = self.source();
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        out
    }

    /// The error and every source behind it, as one line (`store unavailable: <message>:
    /// <source>: ...`): what a log line shows.
    pub fn chain(&self) -> Chain<'_> {
        Chain(self)
    }

    fn parts(&self) -> (u8, &str, Option<&ErrorSource>) {
        match self {
            Self::Unavailable { message, source } => (0, message, source.as_ref()),
            Self::Corrupt { message, source } => (1, message, source.as_ref()),
            Self::Invalid { message, source } => (2, message, source.as_ref()),
            Self::Closed => (3, "", None),
        }
    }
}

impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        let (kind, message, source) = self.parts();
        let (other_kind, other_message, other_source) = other.parts();
        let same_source = match (source, other_source) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a.to_string() == b.to_string(),
            _ => false,
        };
        kind == other_kind && message == other_message && same_source
    }
}

impl Eq for StoreError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_chained_and_shown_in_the_detail() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = StoreError::unavailable("cannot create /x").with_source(io);
        assert_eq!(e.to_string(), "store unavailable: cannot create /x");
        assert_eq!(
            e.source().map(ToString::to_string).as_deref(),
            Some("no such file")
        );
        assert_eq!(e.detail(), "cannot create /x: no such file");
        assert_eq!(e.clone(), e);
        assert_ne!(e, StoreError::unavailable("cannot create /x"));
        assert_ne!(
            e,
            StoreError::corrupt("cannot create /x").with_source("no such file")
        );
        assert_eq!(
            StoreError::Closed.with_source("ignored"),
            StoreError::Closed
        );
        assert_eq!(StoreError::invalid("bad").detail(), "bad");
    }
}

/// A [`StoreError`] with its sources, displayed on one line; see [`StoreError::chain`].
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(&'a StoreError);

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}
