//! The C ABI of microvit: `libmicrovit.a` / `libmicrovit.so` and
//! `include/microvit.h` (generated from this crate by cbindgen; see
//! `ffi/cbindgen.toml` and `docs/C_API.md`).
//!
//! One file per C object or concern: [`model`], [`workspace`], [`classify`]
//! (28 × 28 inputs), [`image`] (photos and drawings), [`backend`],
//! [`enums`], [`version`] (and errors), with [`status`] (the status codes,
//! the per-thread message and the panic boundary), `args` (C pointers and
//! lengths into Rust references) and `handles` (the objects behind the
//! opaque pointers). Every exported function runs its body inside
//! [`status::guard`] (or [`status::guard_value`]), so no panic crosses into
//! C; checks every pointer for NULL and every length against the model
//! before making a slice; and reports failures as a [`Status`] plus a
//! per-thread message. The doc comments on the exported items are the C
//! documentation: cbindgen copies them into the header.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

// The C library without std (ffi/install.sh, ffi/mobile.sh) is for Unix:
// Linux, Android and Apple platforms.
#[cfg(all(not(feature = "std"), not(unix)))]
compile_error!("microvit-ffi without its `std` feature needs a Unix C library; build it with `std` elsewhere");

mod args;
mod handles;
#[cfg(unix)]
mod os;
pub mod status;

pub mod backend;
pub mod classify;
pub mod enums;
pub mod image;
pub mod model;
pub mod version;
pub mod workspace;

use core::ptr;

use crate::args::span;

pub use crate::backend::*;
pub use crate::classify::*;
pub use crate::enums::*;
pub use crate::handles::{cached_workspace_shape, Model, Workspace};
pub use crate::image::*;
pub use crate::model::*;
pub use crate::status::{Status, StatusArg, MICROVIT_ERROR_MESSAGE_CAPACITY};
pub use crate::version::*;
pub use crate::workspace::*;

/// Major version of the library this header belongs to. Compare with
/// microvit_version_number() to detect a header/library mismatch.
pub const MICROVIT_VERSION_MAJOR: u32 = 0;
/// Minor version of the library this header belongs to.
pub const MICROVIT_VERSION_MINOR: u32 = 2;
/// Patch version of the library this header belongs to.
pub const MICROVIT_VERSION_PATCH: u32 = 0;
/// MAJOR * 10000 + MINOR * 100 + PATCH, as microvit_version_number().
pub const MICROVIT_VERSION_NUMBER: u32 = 200;

/// The alignment, in bytes, that microvit_model_load_borrowed() needs. Every
/// malloc() and mmap() result has it.
pub const MICROVIT_BORROWED_ALIGN: usize = 4;

/// Files larger than this (256 MiB) are rejected by microvit_model_load_file()
/// without being read: no valid model comes near it.
pub const MICROVIT_MAX_FILE_SIZE: u64 = 256 << 20;

/// Null-checks an out-pointer and stores NULL through it, so every failure
/// leaves `*out == NULL`.
///
/// # Safety
/// `out` is NULL or points to writable storage for one pointer.
unsafe fn reset_out<T>(name: &'static str, out: *mut *mut T) -> Result<(), Status> {
    span(name, out.cast_const(), 1)?;
    // SAFETY: non-NULL and aligned (checked); writable by the contract.
    unsafe { out.write(ptr::null_mut()) };
    Ok(())
}

/// Stores a freshly made object through an out-pointer checked by
/// [`reset_out`].
///
/// # Safety
/// `reset_out(_, out)` succeeded.
unsafe fn set_out<T>(out: *mut *mut T, value: *mut T) {
    // SAFETY: checked by `reset_out`.
    unsafe { out.write(value) };
}
