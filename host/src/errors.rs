//! Core errors become Rhai runtime errors carrying the whole cause chain; Rhai adds the script
//! position of the call.

use rhai::{EvalAltResult, Position};

/// Boxed Rhai error, as native functions return it.
pub type RhaiError = Box<EvalAltResult>;

/// Result of a native function.
pub type RhaiResult<T> = Result<T, RhaiError>;

/// Formats an error with its causes: `outer: caused by: inner …`.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut s = err.to_string();
    let mut src = err.source();
    while let Some(e) = src {
        let t = e.to_string();
        if !s.contains(&t) {
            s.push_str(&format!("\n  caused by: {t}"));
        }
        src = e.source();
    }
    s
}

/// A Rhai runtime error from a core error.
pub fn core_err(err: yunmin_core::Error) -> RhaiError {
    Box::new(EvalAltResult::ErrorRuntime(
        chain(&err).into(),
        Position::NONE,
    ))
}

/// A Rhai runtime error from a message.
pub fn msg_err(msg: impl Into<String>) -> RhaiError {
    Box::new(EvalAltResult::ErrorRuntime(
        msg.into().into(),
        Position::NONE,
    ))
}

/// `?`-friendly conversion of core results.
pub trait IntoRhai<T> {
    /// Maps the error to a Rhai error with its cause chain.
    fn rhai(self) -> RhaiResult<T>;
}

impl<T> IntoRhai<T> for yunmin_core::Result<T> {
    fn rhai(self) -> RhaiResult<T> {
        self.map_err(core_err)
    }
}
