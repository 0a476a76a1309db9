use std::path::Path;
use crate::error::{Error, Result};
pub fn main(_root: &Path, _rest: &[String]) -> Result<i32> {
    Err(Error::msg("exec: not yet"))
}
