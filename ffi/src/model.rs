//! The `microvit_model` object: loading (copying, borrowed, from a file),
//! freeing, and what a model is (`microvit_shape`, its backend).

use alloc::vec::Vec;
use core::ffi::{c_char, CStr};
use core::fmt::Display;
#[cfg(feature = "std")]
use std::path::Path;

use microvit_engine as engine;

use crate::args::{input, span};
use crate::backend::publish;
use crate::enums::{Backend, Encoding};
use crate::handles::{self, Model};
use crate::status::{bail, fail, guard, guard_value, load_status, Status};
use crate::{reset_out, set_out, MICROVIT_MAX_FILE_SIZE};

/// What a loaded model is: its shape, filled in by microvit_model_shape().
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Images are image_side x image_side pixels (28 for MNIST).
    pub image_side: u32,
    /// Patches are patch_side x patch_side pixels.
    pub patch_side: u32,
    /// image_side * image_side: the pixel count one image must have.
    pub pixels: u32,
    /// Number of classes: logits and probabilities per image.
    pub classes: u32,
    /// Tokens: one per patch plus the class token.
    pub tokens: u32,
    /// Embedding dimension.
    pub dim: u32,
    /// Attention heads.
    pub heads: u32,
    /// How the weights are stored.
    pub encoding: Encoding,
    /// Parameters of the trained network.
    pub parameter_count: u64,
}

/// Loads a model from a memory buffer, copying it: the buffer can be freed
/// as soon as this returns.
///
/// On success stores the new model in *out_model (free it with
/// microvit_model_free()); on failure stores NULL there (if out_model is not
/// NULL) and returns NULL_ARGUMENT, INVALID_ARGUMENT, INVALID_MODEL or
/// UNSUPPORTED_MODEL.
///
/// # Safety
/// data points to len readable bytes; out_model points to writable storage
/// for one pointer.
#[no_mangle]
pub unsafe extern "C" fn microvit_model_load(data: *const u8, len: usize, out_model: *mut *mut Model) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        unsafe { reset_out("out_model", out_model) }?;
        span("data", data, len)?;
        // SAFETY: checked by `span`; readable by the caller's contract.
        let blob = unsafe { input(data, len) };
        let model = engine::Model::from_bytes(blob).map_err(|e| fail(load_status(&e), format_args!("{e}")))?;
        let model = publish(model)?;
        // SAFETY: checked by `reset_out`.
        unsafe { set_out(out_model, model) };
        Ok(())
    })
}

/// Loads a model from a caller-owned buffer without copying it (zero-copy,
/// for a mmapped file or a model in flash or in the app's read-only data).
///
/// The buffer must be MICROVIT_BORROWED_ALIGN-byte aligned (else
/// MISALIGNED_BUFFER), and it must stay valid and unmodified until
/// microvit_model_free() has returned for this model: the model reads its
/// weights from it on every classify call.
///
/// Statuses as microvit_model_load(), plus MISALIGNED_BUFFER.
///
/// # Safety
/// data points to len readable bytes that outlive the model, as above;
/// out_model points to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn microvit_model_load_borrowed(
    data: *const u8,
    len: usize,
    out_model: *mut *mut Model,
) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        unsafe { reset_out("out_model", out_model) }?;
        span("data", data, len)?;
        // SAFETY: checked by `span`; readable and alive until the model is
        // freed by the caller's contract, which is what `'static` stands
        // for in `Model::inner`.
        let blob: &'static [u8] = unsafe { input(data, len) };
        let model = engine::Model::from_bytes_borrowed(blob).map_err(|e| fail(load_status(&e), format_args!("{e}")))?;
        let model = publish(model)?;
        // SAFETY: checked by `reset_out`.
        unsafe { set_out(out_model, model) };
        Ok(())
    })
}

/// Loads a model from a file (read into memory, then as
/// microvit_model_load()). path is NUL-terminated, in the platform's file
/// name encoding (UTF-8 outside Unix).
///
/// Statuses as microvit_model_load(), plus IO_ERROR when the file cannot be
/// opened or read and INVALID_MODEL when it is larger than
/// MICROVIT_MAX_FILE_SIZE.
///
/// # Safety
/// path is a NUL-terminated string; out_model points to writable storage for
/// one pointer.
#[no_mangle]
pub unsafe extern "C" fn microvit_model_load_file(path: *const c_char, out_model: *mut *mut Model) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        unsafe { reset_out("out_model", out_model) }?;
        if path.is_null() {
            bail!(Status::NullArgument, "path is NULL");
        }
        // SAFETY: non-NULL; NUL-terminated by the caller's contract.
        let path = unsafe { CStr::from_ptr(path) };
        let (blob, shown) = read_model_file(path)?;
        let model =
            engine::Model::from_bytes(&blob).map_err(|e| fail(load_status(&e), format_args!("{shown}: {e}")))?;
        let model = publish(model)?;
        // SAFETY: checked by `reset_out`.
        unsafe { set_out(out_model, model) };
        Ok(())
    })
}

/// A model file's bytes, and its name as messages show it.
#[cfg(feature = "std")]
fn read_model_file(path: &CStr) -> Result<(Vec<u8>, impl Display + '_), Status> {
    let path = c_path(path)?;
    Ok((read_file(path)?, path.display()))
}

/// The same without std (the C library): `crate::os::read_file`, with the
/// messages of the std version below.
#[cfg(not(feature = "std"))]
fn read_model_file(path: &CStr) -> Result<(Vec<u8>, impl Display + '_), Status> {
    use crate::os::{read_file, Lossy, ReadError};
    let shown = Lossy(path.to_bytes());
    match read_file(path, MICROVIT_MAX_FILE_SIZE) {
        Ok(blob) => Ok((blob, shown)),
        Err(ReadError::Os(e)) => bail!(Status::IoError, "cannot read {shown}: {e}"),
        Err(ReadError::NotAFile(what)) => bail!(Status::IoError, "cannot read {shown}: {what}"),
        Err(ReadError::TooLarge(size)) => bail!(
            Status::InvalidModel,
            "{shown}: {size} bytes, larger than {MICROVIT_MAX_FILE_SIZE} bytes: not a microvit model"
        ),
        Err(ReadError::Grew) => {
            bail!(Status::InvalidModel, "{shown}: grew past {MICROVIT_MAX_FILE_SIZE} bytes while read")
        }
    }
}

#[cfg(all(feature = "std", unix))]
fn c_path(path: &CStr) -> Result<&Path, Status> {
    use std::os::unix::ffi::OsStrExt;
    Ok(Path::new(std::ffi::OsStr::from_bytes(path.to_bytes())))
}

#[cfg(all(feature = "std", not(unix)))]
fn c_path(path: &CStr) -> Result<&Path, Status> {
    match path.to_str() {
        Ok(s) => Ok(Path::new(s)),
        Err(e) => bail!(Status::InvalidArgument, "path is not UTF-8: {e}"),
    }
}

/// Reads a model file: its size and kind checked first (a FIFO with no
/// writer would block the open; a 10 GiB file is refused unread), then read
/// once into a buffer of exactly that size.
#[cfg(feature = "std")]
fn read_file(path: &Path) -> Result<Vec<u8>, Status> {
    use std::io::Read;
    let io = |e: std::io::Error| fail(Status::IoError, format_args!("cannot read {}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        let what = if meta.is_dir() { "a directory" } else { "not a regular file (a FIFO, socket or device)" };
        bail!(Status::IoError, "cannot read {}: {what}", path.display());
    }
    if meta.len() > MICROVIT_MAX_FILE_SIZE {
        bail!(
            Status::InvalidModel,
            "{}: {} bytes, larger than {} bytes: not a microvit model",
            path.display(),
            meta.len(),
            MICROVIT_MAX_FILE_SIZE
        );
    }
    let mut blob = Vec::with_capacity(meta.len() as usize);
    // `take`: a file that grows while it is read stops at the limit.
    let file = std::fs::File::open(path).map_err(io)?;
    file.take(MICROVIT_MAX_FILE_SIZE + 1).read_to_end(&mut blob).map_err(io)?;
    if blob.len() as u64 > MICROVIT_MAX_FILE_SIZE {
        bail!(Status::InvalidModel, "{}: grew past {} bytes while read", path.display(), MICROVIT_MAX_FILE_SIZE);
    }
    Ok(blob)
}

/// Frees a model. NULL is allowed and does nothing. No other thread may be
/// using the model. Workspaces made from it stay valid (they belong to the
/// model's shape and encoding, not to the model).
///
/// # Safety
/// model is NULL or a model from a microvit_model_load* function, not freed
/// before.
#[no_mangle]
pub unsafe extern "C" fn microvit_model_free(model: *mut Model) {
    // SAFETY: forwarded from the caller.
    guard_value((), || unsafe { handles::free_model(model) })
}

/// Describes a model: fills *out_shape. Returns NULL_ARGUMENT if either
/// pointer is NULL.
///
/// # Safety
/// model is NULL or a live model; out_shape is NULL or points to a writable
/// microvit_shape.
#[no_mangle]
pub unsafe extern "C" fn microvit_model_shape(model: *const Model, out_shape: *mut Shape) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let model = &unsafe { handles::model("model", model) }?.inner;
        span("out_shape", out_shape.cast_const(), 1)?;
        let s = model.shape();
        let shape = Shape {
            image_side: s.image_side,
            patch_side: s.patch_side,
            pixels: s.pixels() as u32,
            classes: s.classes,
            tokens: s.tokens(),
            dim: s.dim,
            heads: s.heads,
            encoding: model.encoding().into(),
            parameter_count: s.parameter_count() as u64,
        };
        // SAFETY: non-NULL and aligned (checked), writable by the contract.
        unsafe { out_shape.write(shape) };
        Ok(())
    })
}

/// The backend this model's classify calls run on (never AUTO), chosen when
/// it was loaded. Returns NULL_ARGUMENT if either pointer is NULL.
///
/// # Safety
/// model is NULL or a live model; out_backend is NULL or points to a
/// writable microvit_backend.
#[no_mangle]
pub unsafe extern "C" fn microvit_model_backend(model: *const Model, out_backend: *mut Backend) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let backend = unsafe { handles::model("model", model) }?.backend;
        span("out_backend", out_backend.cast_const(), 1)?;
        // SAFETY: non-NULL and aligned (checked), writable by the contract.
        unsafe { out_backend.write(backend) };
        Ok(())
    })
}
