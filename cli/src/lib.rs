//! The pieces of the `microvit` tool, as a library so tests can drive them.

pub mod eval;
pub mod image_input;
pub mod model_file;
pub mod progress;
