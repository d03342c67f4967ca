//! Wire error codes and close codes: the one Rust module that gives the
//! proto's `ErrorCode` and `CloseCode` their retry semantics.

use crate::proto::{CloseCode, Error, ErrorCode};

impl ErrorCode {
    /// Whether a command failing with this code may succeed when retried
    /// unchanged (after backoff). Mirrors the proto's documentation.
    pub fn is_temporary(self) -> bool {
        matches!(
            self,
            ErrorCode::Unspecified
                | ErrorCode::Internal
                | ErrorCode::RateLimited
                | ErrorCode::Unavailable
                | ErrorCode::OutcomeUnknown
        )
    }
}

impl Error {
    /// An error with `temporary` set from the code.
    pub fn from_code(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code as i32,
            message: message.into(),
            temporary: code.is_temporary(),
            retry_after_ms: 0,
        }
    }
}

impl CloseCode {
    /// The numeric WebSocket close code.
    pub fn code(self) -> u16 {
        // Every value in the proto is a valid close code below 5000.
        self as i32 as u16
    }

    /// Whether a client should reconnect (with backoff) after this close.
    /// Application codes 4000-4499 reconnect and 4500-4999 do not; standard
    /// codes follow the proto's documentation.
    pub fn should_reconnect(self) -> bool {
        should_reconnect(self.code())
    }
}

/// Whether a client should reconnect after a close with `code`, for any code
/// (including ones this build does not know).
pub fn should_reconnect(code: u16) -> bool {
    matches!(code, 1001 | 1002 | 1005 | 1006 | 1011..=1014 | 4000..=4499)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_code_ranges() {
        assert!(CloseCode::SlowConsumer.should_reconnect());
        assert!(CloseCode::GoingAway.should_reconnect());
        assert!(!CloseCode::Kicked.should_reconnect());
        assert!(!CloseCode::PolicyViolation.should_reconnect());
        assert!(!CloseCode::MessageTooBig.should_reconnect());
        assert!(should_reconnect(4499));
        assert!(!should_reconnect(4500));
        assert_eq!(CloseCode::SlowConsumer.code(), 4000);
    }

    #[test]
    fn temporary_matches_docs() {
        assert!(Error::from_code(ErrorCode::Unavailable, "x").temporary);
        assert!(Error::from_code(ErrorCode::OutcomeUnknown, "x").temporary);
        assert!(!Error::from_code(ErrorCode::NotJoined, "x").temporary);
    }
}
