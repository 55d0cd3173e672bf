//! The pieces of the `microvit` tool, as a library so tests can drive them.

pub mod bench;
pub mod draw;
pub mod eval;
pub mod eval_images;
pub mod explain;
pub mod image_input;
pub mod model_file;
pub mod progress;
pub mod report;
