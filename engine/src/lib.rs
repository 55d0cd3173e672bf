//! microvit's engine: loads a Micro-ViT blob and runs it.
//!
//! ```no_run
//! let blob = std::fs::read("models/microvit-seed.mvit").unwrap();
//! let model = microvit_engine::Model::from_bytes(&blob).unwrap();
//! let mut ws = model.workspace(); // once per thread; inference never allocates
//! let digit = [0u8; 28 * 28];
//! let logits = model.infer(&digit, &mut ws).unwrap();
//! println!("class {}", microvit_engine::argmax(logits));
//! ```
//!
//! - [`format`]: the blob layout, shared with the converter.
//! - [`model`]: loading and validation, owned or zero-copy.
//! - `reference`: the plain scalar f32 forward pass, the oracle.
//! - [`int8`]: the integer-only fixed-point forward pass (bit-exact everywhere).
//! - `f16`: the folded forward pass over half-precision weights.
//! - [`preprocess`]: any photo or drawing of a digit into the model's input,
//!   MNIST style (docs/PREPROCESSING.md).
//!
//! Features: `std` (default) adds `std::error::Error` and everything
//! `hosted` has; `hosted` (implied by `std`; the C library takes it without
//! std) run-time CPU detection and the SIMD backends; `alloc` (implied by
//! both) owned
//! models and [`Workspace::new`]; `float` (default) the f32 and f16
//! encodings, which an int8-only firmware leaves out (~13 KB of code on a
//! Cortex-M4). With none of them the crate is `no_std` and
//! allocates nothing, for microcontrollers: a model borrowed from flash
//! ([`Model::from_bytes_borrowed`]) runs in a [`WorkspaceIn`] made in caller
//! memory ([`Model::workspace_in`]); see examples/cortex-m.

#![cfg_attr(not(feature = "std"), no_std)]

// `macro_use`: `vec!` in every module, as std has it (the SIMD kernels use
// it; targets without them do not).
#[cfg(feature = "alloc")]
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(unused_imports))]
#[macro_use]
extern crate alloc;
// The SIMD kernels (`hosted`) name `std::arch`, `std::array`, `std::mem`…,
// all of which are core's: without std, `std::` is core, so they build
// unchanged for the C library. New code writes `core::`.
#[cfg(not(feature = "std"))]
extern crate core as std;

#[cfg(target_endian = "big")]
compile_error!("microvit blobs are little-endian and are used in place; big-endian hosts are not supported");

// First: its `require!` macro is used by the kernels in the modules below.
#[macro_use]
mod simd;
pub mod backend;
mod crc32c;
pub mod error;
#[cfg(test)]
mod errors_documented;
// Without the `float` feature a model never runs the f32 or f16 pass
// (format::parse refuses those blobs); the modules stay for the workspace
// types, and their unreachable passes are dropped at link time.
#[cfg_attr(not(feature = "float"), allow(dead_code))]
mod f16;
pub mod format;
mod ids;
pub mod int8;
mod math;
mod memory;
pub mod model;
pub use microvit_preprocess as preprocess;
#[cfg_attr(not(feature = "float"), allow(dead_code))]
mod reference;
pub mod shape;
#[cfg(feature = "test-fixtures")]
pub mod synthetic;
mod workspace;

pub use backend::{Backend, BackendError};
pub use crc32c::crc32c;
pub use error::{InferError, LoadError};
pub use format::{Encoding, ModelConfig};
pub use model::{argmax, softmax, ImageInference, Model, BORROWED_ALIGN};
pub use shape::Shape;
pub use workspace::{Workspace, WorkspaceIn};
