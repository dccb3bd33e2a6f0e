//! The crate's single error type.

/// Everything that can go wrong while building documentation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocsError {
    /// An input file (evidence, manufacturer answers) is not what it claims to be; `what`
    /// names the file kind and `message` says where and why.
    #[error("invalid {what}: {message}")]
    Invalid { what: &'static str, message: String },
    /// Rendering failed (e.g. a value that cannot be encoded in the output format).
    #[error("rendering {format}: {message}")]
    Render {
        format: &'static str,
        message: String,
    },
}
