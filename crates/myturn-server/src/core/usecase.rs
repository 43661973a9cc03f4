//! [`UseCase`]: what every use case of the pairing service is, a struct
//! of its inputs with one `apply`. The list of them is `command`.

use super::context::Ctx;
use super::error::CoreError;

/// One use case of the pairing service.
pub trait UseCase: Sized {
    /// What it answers.
    type Output;
    /// Runs it: checks, changes the state, writes its effects.
    fn apply(self, cx: &mut Ctx<'_>) -> Result<Self::Output, CoreError>;
}
