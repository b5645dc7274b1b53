//! Errors: [`HostError`] for a failed host call, [`Error`] for a failed `run`.

use crate::bindings::trustgraph::bootstrap::types::HostError as WitHostError;
use std::fmt;

/// Why a call to the host (`config`, `flow`) failed. Each variant carries the host's
/// explanation.
///
/// `Denied` and `InvalidRequest` fail the same way on every retry; `Timeout` and
/// `ServiceError` may succeed on a later wake (see [`HostError::is_transient`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// The operator's grants do not allow this call. Nothing was read or written.
    Denied(String),
    /// The thing named does not exist.
    NotFound(String),
    /// The service did not answer in time; the call may or may not have taken effect.
    Timeout(String),
    /// The service answered with an error, or could not be reached.
    ServiceError(String),
    /// The request was malformed or exceeds a limit set by the operator.
    InvalidRequest(String),
}

impl HostError {
    /// The host's explanation, without the kind of error.
    pub fn message(&self) -> &str {
        match self {
            HostError::Denied(message)
            | HostError::NotFound(message)
            | HostError::Timeout(message)
            | HostError::ServiceError(message)
            | HostError::InvalidRequest(message) => message,
        }
    }

    /// Whether the same call may succeed later (a timeout or a service error), as opposed to
    /// a refusal that will recur on every retry.
    pub fn is_transient(&self) -> bool {
        matches!(self, HostError::Timeout(_) | HostError::ServiceError(_))
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            HostError::Denied(_) => "denied",
            HostError::NotFound(_) => "not found",
            HostError::Timeout(_) => "timed out",
            HostError::ServiceError(_) => "service error",
            HostError::InvalidRequest(_) => "invalid request",
        };
        write!(f, "{kind}: {}", self.message())
    }
}

impl std::error::Error for HostError {}

impl From<WitHostError> for HostError {
    fn from(error: WitHostError) -> Self {
        match error {
            WitHostError::Denied(message) => HostError::Denied(message),
            WitHostError::NotFound(message) => HostError::NotFound(message),
            WitHostError::Timeout(message) => HostError::Timeout(message),
            WitHostError::ServiceError(message) => HostError::ServiceError(message),
            WitHostError::InvalidRequest(message) => HostError::InvalidRequest(message),
        }
    }
}

/// Why `run` failed: a message for the runtime's log.
///
/// Any `std::error::Error` converts into it, so `?` works on [`HostError`], [`ParamsError`],
/// `serde_json` and `std::io` errors; build one from anything else with [`Error::msg`] or
/// [`bail!`]. Like `anyhow::Error` it deliberately does not implement `std::error::Error`
/// itself, which is what lets that blanket conversion exist.
///
/// [`ParamsError`]: crate::ParamsError
/// [`bail!`]: crate::bail
pub struct Error {
    message: String,
}

impl Error {
    /// An error with `message`.
    pub fn msg(message: impl fmt::Display) -> Self {
        Error { message: message.to_string() }
    }

    /// This error with `context` in front, as `context: message`.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error { message: format!("{context}: {}", self.message) }
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(error: E) -> Self {
        // Spell out the causes too: the log line is all the operator gets.
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !message.contains(&cause_text) {
                message = format!("{message}: {cause_text}");
            }
            source = cause.source();
        }
        Error { message }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.message, f)
    }
}

/// Adds context to the error of a `Result`, as `context: error`.
pub trait Context<T> {
    /// Converts the error into an [`Error`] prefixed with `context`.
    fn context(self, context: impl fmt::Display) -> Result<T, Error>;
}

impl<T, E: Into<Error>> Context<T> for Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T, Error> {
        self.map_err(|error| error.into().context(context))
    }
}

/// Returns early from `run` with an [`Error`] built like `format!`.
///
/// ```
/// # fn check(count: usize) -> Result<(), bootstrap_guest::Error> {
/// if count == 0 {
///     bootstrap_guest::bail!("nothing to seed in {}", "seed.json");
/// }
/// # Ok(()) }
/// # assert_eq!(check(0).unwrap_err().to_string(), "nothing to seed in seed.json");
/// ```
#[macro_export]
macro_rules! bail {
    ($($arg:tt)+) => {
        return ::core::result::Result::Err($crate::Error::msg(::std::format!($($arg)+)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_errors_convert_from_the_bindings_and_keep_their_kind() {
        let cases = [
            (WitHostError::Denied("m".into()), HostError::Denied("m".into()), "denied: m"),
            (WitHostError::NotFound("m".into()), HostError::NotFound("m".into()), "not found: m"),
            (WitHostError::Timeout("m".into()), HostError::Timeout("m".into()), "timed out: m"),
            (WitHostError::ServiceError("m".into()), HostError::ServiceError("m".into()), "service error: m"),
            (WitHostError::InvalidRequest("m".into()), HostError::InvalidRequest("m".into()), "invalid request: m"),
        ];
        for (wit, expected, text) in cases {
            let converted = HostError::from(wit);
            assert_eq!(converted, expected);
            assert_eq!(converted.to_string(), text);
            assert_eq!(converted.message(), "m");
        }
    }

    #[test]
    fn only_timeouts_and_service_errors_are_transient() {
        assert!(HostError::Timeout("t".into()).is_transient());
        assert!(HostError::ServiceError("s".into()).is_transient());
        assert!(!HostError::Denied("d".into()).is_transient());
        assert!(!HostError::NotFound("n".into()).is_transient());
        assert!(!HostError::InvalidRequest("i".into()).is_transient());
    }

    fn fails_with_host_error() -> Result<(), Error> {
        Err(HostError::Denied("workspace __system__ is reserved".into()))?;
        Ok(())
    }

    #[test]
    fn question_mark_converts_host_io_and_serde_errors() {
        assert_eq!(fails_with_host_error().unwrap_err().to_string(), "denied: workspace __system__ is reserved");

        let io = || -> Result<String, Error> { Ok(std::fs::read_to_string("/no/such/file")?) };
        assert!(io().unwrap_err().to_string().contains("No such file"));

        let serde = || -> Result<serde_json::Value, Error> { Ok(serde_json::from_str("{")?) };
        assert!(serde().unwrap_err().to_string().contains("EOF"));
    }

    #[test]
    fn context_and_bail_build_messages() {
        let failed: Result<(), HostError> = Err(HostError::Timeout("config-svc".into()));
        assert_eq!(failed.context("listing keys").unwrap_err().to_string(), "listing keys: timed out: config-svc");

        let bails = |n: u32| -> Result<(), Error> { crate::bail!("bad count {n}") };
        assert_eq!(bails(3).unwrap_err().to_string(), "bad count 3");
        assert_eq!(format!("{:?}", Error::msg("x")), "\"x\"");
    }
}
