//! The C ABI of microvit: `libmicrovit.a` / `libmicrovit.so` and
//! `include/microvit.h` (generated from this crate by cbindgen; see
//! `ffi/cbindgen.toml` and `docs/C_API.md`).
//!
//! Every exported function runs its body inside [`status::guard`] (or
//! [`status::guard_value`]), so no panic crosses into C; checks every
//! pointer for NULL and every length against the model before making a
//! slice; and reports failures as a [`Status`] plus a per-thread message.
//! The doc comments on the exported items below are the C documentation:
//! cbindgen copies them into the header.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod args;
mod handles;
mod image;
pub mod status;

use std::ffi::CStr;
use std::os::raw::c_char;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicI32, Ordering};

use microvit_engine as engine;

use crate::args::{disjoint, input, output, span, Span};
use crate::status::{bail, fail, guard, guard_value, infer_status, load_status};

pub use crate::handles::{cached_workspace_shape, Model, Workspace};
pub use crate::image::{
    microvit_classify_image, microvit_preprocess, Digit, Image, PixelFormat, PixelFormatArg, Polarity, PolarityArg,
    MICROVIT_MAX_IMAGE_SIDE,
};
pub use crate::status::{Status, StatusArg, MICROVIT_ERROR_MESSAGE_CAPACITY};

/// Major version of the library this header belongs to. Compare with
/// microvit_version_number() to detect a header/library mismatch.
pub const MICROVIT_VERSION_MAJOR: u32 = 0;
/// Minor version of the library this header belongs to.
pub const MICROVIT_VERSION_MINOR: u32 = 1;
/// Patch version of the library this header belongs to.
pub const MICROVIT_VERSION_PATCH: u32 = 0;
/// MAJOR * 10000 + MINOR * 100 + PATCH, as microvit_version_number().
pub const MICROVIT_VERSION_NUMBER: u32 = 100;

/// The alignment, in bytes, that microvit_model_load_borrowed() needs. Every
/// malloc() and mmap() result has it.
pub const MICROVIT_BORROWED_ALIGN: usize = 4;

/// Files larger than this (256 MiB) are rejected by microvit_model_load_file()
/// without being read: no valid model comes near it.
pub const MICROVIT_MAX_FILE_SIZE: u64 = 256 << 20;

/// How a model's weights are stored (microvit_shape.dtype). Which of these
/// a library build can load depends on its engine version; a blob it cannot
/// run is rejected at load with UNSUPPORTED_MODEL or INVALID_MODEL.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// 32-bit floats, the reference encoding.
    F32 = 1,
    /// IEEE half precision weights, f32 compute.
    F16 = 2,
    /// int8 weights, integer fixed-point compute.
    Int8 = 3,
}

/// A `microvit_dtype` as received from C (any `int32_t`).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtypeArg(pub i32);

impl Dtype {
    fn name(self) -> &'static CStr {
        match self {
            Dtype::F32 => c"f32",
            Dtype::F16 => c"f16",
            Dtype::Int8 => c"int8",
        }
    }
}

impl From<engine::Encoding> for Dtype {
    fn from(e: engine::Encoding) -> Dtype {
        match e {
            engine::Encoding::F32 => Dtype::F32,
            engine::Encoding::F16 => Dtype::F16,
            engine::Encoding::Int8 => Dtype::Int8,
        }
    }
}

/// A compute backend: the kernels classify runs on.
///
/// AUTO picks the fastest one this CPU has (or the MICROVIT_BACKEND
/// environment variable's choice). Backends accelerate int8 and f16 models;
/// f32 models always run the scalar reference. The values are stable like
/// those of microvit_status.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The fastest backend available on this CPU (the default).
    Auto = 0,
    /// Portable scalar code: available everywhere, the reference.
    Scalar = 1,
    /// x86-64 AVX2 + FMA + F16C, detected at run time.
    Avx2 = 2,
    /// AArch64 Advanced SIMD (NEON), baseline on every aarch64 CPU.
    Neon = 3,
}

/// A `microvit_backend` as received from C (any `int32_t`).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendArg(pub i32);

impl From<Backend> for BackendArg {
    fn from(b: Backend) -> BackendArg {
        BackendArg(b as i32)
    }
}

impl Backend {
    fn from_code(code: i32) -> Option<Backend> {
        [Backend::Auto, Backend::Scalar, Backend::Avx2, Backend::Neon].into_iter().find(|b| *b as i32 == code)
    }

    fn name(self) -> &'static CStr {
        match self {
            Backend::Auto => c"auto",
            Backend::Scalar => c"scalar",
            Backend::Avx2 => c"avx2",
            Backend::Neon => c"neon",
        }
    }

    /// The engine's backend, or `None` for AUTO.
    fn to_engine(self) -> Option<engine::Backend> {
        match self {
            Backend::Auto => None,
            Backend::Scalar => Some(engine::Backend::Scalar),
            Backend::Avx2 => Some(engine::Backend::Avx2),
            Backend::Neon => Some(engine::Backend::Neon),
        }
    }

    fn from_engine(b: engine::Backend) -> Backend {
        match b {
            engine::Backend::Scalar => Backend::Scalar,
            engine::Backend::Avx2 => Backend::Avx2,
            engine::Backend::Neon => Backend::Neon,
        }
    }

    /// Whether this backend can run on this CPU.
    fn available(self) -> bool {
        self.to_engine().is_none_or(engine::Backend::is_available)
    }

    /// The backend AUTO stands for on this machine.
    fn resolve(self) -> Backend {
        match self.to_engine() {
            Some(_) => self,
            None => Backend::from_engine(engine::Backend::default_for_process().unwrap_or(engine::Backend::detect())),
        }
    }

    /// The backend requested for models loaded now (maybe AUTO).
    fn setting() -> Backend {
        Backend::from_code(BACKEND.load(Ordering::Relaxed)).unwrap_or(Backend::Auto)
    }
}

/// Puts a freshly loaded model on the requested backend and hands it to C.
fn publish(mut model: engine::Model<'static>) -> Result<*mut Model, Status> {
    if let Some(b) = Backend::setting().to_engine() {
        model.set_backend(b).map_err(|e| fail(Status::BackendUnavailable, format_args!("{e}")))?;
    }
    let backend = Backend::from_engine(model.backend());
    Ok(handles::into_raw_model(model, backend))
}

/// The backend requested with microvit_set_backend(), process-wide: what
/// models loaded from then on run on.
static BACKEND: AtomicI32 = AtomicI32::new(Backend::Auto as i32);

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
    pub dtype: Dtype,
    /// Parameters of the trained network.
    pub parameter_count: u64,
}

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

// ---------------------------------------------------------------------------
// Version and errors

/// The library version as a static NUL-terminated string, e.g. "0.1.0".
/// Never NULL; do not free.
#[no_mangle]
pub extern "C" fn microvit_version() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

/// The library version as MAJOR * 10000 + MINOR * 100 + PATCH (100 for
/// 0.1.0). Compare with MICROVIT_VERSION_NUMBER from the header you compiled
/// against.
#[no_mangle]
pub extern "C" fn microvit_version_number() -> u32 {
    MICROVIT_VERSION_NUMBER
}

/// A static, human-readable description of a status code ("unknown status"
/// for a value this version does not define). Never NULL; do not free.
#[no_mangle]
pub extern "C" fn microvit_status_str(status: StatusArg) -> *const c_char {
    guard_value(c"unknown status".as_ptr(), || status::status_str(status.0))
}

/// Copies the calling thread's last error message into buf.
///
/// Every function that returns a microvit_status records a detail message
/// for this thread: what failed and why on error, the empty string on
/// success. Other threads' calls never change it.
///
/// At most len - 1 bytes are copied, cut at a UTF-8 character boundary, and
/// buf is always NUL-terminated when len > 0. buf may be NULL when len is 0,
/// to ask for the length only. Returns the full length of the message in
/// bytes, without the NUL: if it is >= len the copy was truncated.
/// Messages are at most 1023 bytes: a buffer of
/// MICROVIT_ERROR_MESSAGE_CAPACITY bytes never truncates.
///
/// # Safety
/// buf is NULL or points to at least len writable bytes.
#[no_mangle]
pub unsafe extern "C" fn microvit_last_error_message(buf: *mut c_char, len: usize) -> usize {
    guard_value(0, || status::copy_message(buf, len))
}

// ---------------------------------------------------------------------------
// Models

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
        let path = c_path(path)?;
        let blob = read_file(path)?;
        let model = engine::Model::from_bytes(&blob)
            .map_err(|e| fail(load_status(&e), format_args!("{}: {e}", path.display())))?;
        let model = publish(model)?;
        // SAFETY: checked by `reset_out`.
        unsafe { set_out(out_model, model) };
        Ok(())
    })
}

#[cfg(unix)]
fn c_path(path: &CStr) -> Result<&Path, Status> {
    use std::os::unix::ffi::OsStrExt;
    Ok(Path::new(std::ffi::OsStr::from_bytes(path.to_bytes())))
}

#[cfg(not(unix))]
fn c_path(path: &CStr) -> Result<&Path, Status> {
    match path.to_str() {
        Ok(s) => Ok(Path::new(s)),
        Err(e) => bail!(Status::InvalidArgument, "path is not UTF-8: {e}"),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, Status> {
    use std::io::Read;
    let io = |e: std::io::Error| fail(Status::IoError, format_args!("cannot read {}: {e}", path.display()));
    // Before opening: opening a FIFO with no writer blocks for ever, and a
    // device such as /dev/zero never ends.
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        let what = if meta.is_dir() { "a directory" } else { "not a regular file (a FIFO, socket or device)" };
        bail!(Status::IoError, "cannot read {}: {what}", path.display());
    }
    if meta.len() > MICROVIT_MAX_FILE_SIZE {
        bail!(
            Status::InvalidModel,
            "{}: larger than {} bytes, not a microvit model",
            path.display(),
            MICROVIT_MAX_FILE_SIZE
        );
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let mut blob = Vec::new();
    // `take` rather than the file's reported size: a pipe or a device has
    // none.
    file.take(MICROVIT_MAX_FILE_SIZE + 1).read_to_end(&mut blob).map_err(io)?;
    if blob.len() as u64 > MICROVIT_MAX_FILE_SIZE {
        bail!(
            Status::InvalidModel,
            "{}: larger than {} bytes, not a microvit model",
            path.display(),
            MICROVIT_MAX_FILE_SIZE
        );
    }
    Ok(blob)
}

/// Frees a model. NULL is allowed and does nothing. No other thread may be
/// using the model. Workspaces made from it stay valid (they belong to the
/// model's shape and dtype, not to the model).
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
            dtype: model.encoding().into(),
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

// ---------------------------------------------------------------------------
// Workspaces and inference

/// Makes a workspace: the scratch memory of inferences with models of this
/// model's shape and dtype (a few KiB for the seed model), allocated once
/// here so that classify calls given it never allocate.
///
/// A workspace is used by one thread at a time (make one per thread); it
/// fits every model of the same shape and dtype, and may outlive the model
/// it was made from. Free it with microvit_workspace_free().
///
/// # Safety
/// model is NULL or a live model; out_workspace points to writable storage
/// for one pointer.
#[no_mangle]
pub unsafe extern "C" fn microvit_workspace_create(model: *const Model, out_workspace: *mut *mut Workspace) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        unsafe { reset_out("out_workspace", out_workspace) }?;
        // SAFETY: forwarded from the caller.
        let model = &unsafe { handles::model("model", model) }?.inner;
        // SAFETY: checked by `reset_out`.
        unsafe { set_out(out_workspace, handles::new_raw_workspace(model)) };
        Ok(())
    })
}

/// Frees a workspace. NULL is allowed and does nothing.
///
/// # Safety
/// workspace is NULL or from microvit_workspace_create(), not freed before,
/// and not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn microvit_workspace_free(workspace: *mut Workspace) {
    // SAFETY: forwarded from the caller.
    guard_value((), || unsafe { handles::free_workspace(workspace) })
}

/// Classifies one image.
///
/// pixels: pixel_count u8 gray values, row-major, 0 = background as in
/// MNIST; pixel_count must equal shape.pixels (image_side squared), else
/// INVALID_ARGUMENT.
///
/// workspace: a workspace from microvit_workspace_create() for a model of
/// this shape and dtype (WORKSPACE_MISMATCH otherwise), or NULL to use this
/// thread's cached workspace, which is allocated on the thread's first NULL
/// call, reused after, replaced when a model of another shape or dtype
/// comes, and freed when the thread exits or calls
/// microvit_thread_cache_release().
/// With a workspace, this function never allocates.
///
/// Outputs, each optional (NULL = not wanted; its capacity is then ignored):
/// - out_class: the index of the largest logit (the first one on ties);
/// - out_logits: shape.classes logits; logits_capacity is the number of
///   floats out_logits has room for and must be >= shape.classes, else
///   BUFFER_TOO_SMALL;
/// - out_probs: shape.classes softmax probabilities, likewise with
///   probs_capacity.
///
/// No output may overlap pixels or another output (INVALID_ARGUMENT).
/// Outputs are written only on success (and may be partly written on
/// PANIC).
///
/// # Safety
/// Every non-NULL pointer points to the number of elements its length
/// argument says; model is a live model; workspace is NULL or a live
/// workspace not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn microvit_classify(
    model: *const Model,
    workspace: *mut Workspace,
    pixels: *const u8,
    pixel_count: usize,
    out_class: *mut u32,
    out_logits: *mut f32,
    logits_capacity: usize,
    out_probs: *mut f32,
    probs_capacity: usize,
) -> Status {
    guard(|| {
        let outputs = Outputs {
            classes: (out_class, 1),
            logits: (out_logits, logits_capacity),
            probs: (out_probs, probs_capacity),
            names: ["out_class", "out_logits", "out_probs"],
        };
        // SAFETY: forwarded from the caller.
        unsafe { classify_images(model, workspace, 1, pixels, pixel_count, outputs) }
    })
}

/// Classifies image_count images stored back to back: pixels holds
/// pixel_count = image_count * shape.pixels bytes (INVALID_ARGUMENT
/// otherwise, also when the product overflows).
///
/// Classifies one image like microvit_classify() and also writes what the
/// attention saw: the CLS token's attention for each head, shape.heads rows
/// of shape.tokens floats (token 0 is the CLS token itself, then the patches
/// row-major over the patch grid; each row sums to 1), as the model's own
/// path computed it (int8 models: its Q.14 fixed-point probabilities).
/// Opt-in, so plain classify does not pay for it.
///
/// out_attention is required: attention_capacity must be >=
/// shape.heads * shape.tokens, else BUFFER_TOO_SMALL. out_class and
/// out_logits are optional as in microvit_classify(). Statuses, workspace
/// and overlap rules as microvit_classify(); with a workspace this function
/// never allocates.
///
/// # Safety
/// As microvit_classify(); out_attention points to attention_capacity
/// writable floats.
#[no_mangle]
pub unsafe extern "C" fn microvit_classify_attention(
    model: *const Model,
    workspace: *mut Workspace,
    pixels: *const u8,
    pixel_count: usize,
    out_class: *mut u32,
    out_logits: *mut f32,
    logits_capacity: usize,
    out_attention: *mut f32,
    attention_capacity: usize,
) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let model = &unsafe { handles::model("model", model) }?.inner;
        let shape = model.shape();
        let (per_image, classes) = (shape.pixels(), shape.classes as usize);
        let rows = shape.heads as usize * shape.tokens() as usize;
        if pixels.is_null() {
            bail!(Status::NullArgument, "pixels is NULL");
        }
        if out_attention.is_null() {
            bail!(Status::NullArgument, "out_attention is NULL");
        }
        if pixel_count != per_image {
            let side = shape.image_side;
            bail!(
                Status::InvalidArgument,
                "pixel_count is {pixel_count}, 1 image(s) of {side}x{side} pixels need {per_image}"
            );
        }
        let spans = [
            Some(span("pixels", pixels, per_image)?),
            output_span("out_class", (out_class, 1), 1)?,
            output_span("out_logits", (out_logits, logits_capacity), classes)?,
            output_span("out_attention", (out_attention, attention_capacity), rows)?,
        ];
        disjoint(&spans)?;
        if !workspace.is_null() {
            // SAFETY: forwarded from the caller.
            unsafe { handles::checked_workspace(model, workspace) }?;
        }
        // SAFETY: checked by `span` and `disjoint` above; the sizes are the
        // caller's by contract.
        let image = unsafe { input(pixels, per_image) };
        // SAFETY: see above.
        let attention = unsafe { output(out_attention, rows) };
        // SAFETY: see above.
        let class_out = (!out_class.is_null()).then(|| unsafe { output(out_class, 1) });
        // SAFETY: see above.
        let logits_out = (!out_logits.is_null()).then(|| unsafe { output(out_logits, classes) });
        // SAFETY: forwarded from the caller.
        unsafe {
            handles::with_workspace(model, workspace, |ws| {
                let logits = model
                    .infer_with_attention(image, ws, attention)
                    .map_err(|e| fail(infer_status(&e), format_args!("{e}")))?;
                if let Some(c) = class_out {
                    c[0] = engine::argmax(logits) as u32;
                }
                if let Some(l) = logits_out {
                    l.copy_from_slice(logits);
                }
                Ok(())
            })
        }
    })
}

/// The same as calling microvit_classify() on each image in turn, with the
/// results stored row by row:
/// - out_classes: image_count class indices (classes_capacity >= image_count);
/// - out_logits: image_count * shape.classes floats, image i's logits at
///   out_logits[i * shape.classes] (logits_capacity >= that);
/// - out_probs: likewise for probabilities.
///
/// Each output is optional; workspace and the allocation guarantee are as
/// for microvit_classify(). image_count may be 0 (nothing is written).
///
/// # Safety
/// As microvit_classify().
#[no_mangle]
pub unsafe extern "C" fn microvit_classify_batch(
    model: *const Model,
    workspace: *mut Workspace,
    image_count: usize,
    pixels: *const u8,
    pixel_count: usize,
    out_classes: *mut u32,
    classes_capacity: usize,
    out_logits: *mut f32,
    logits_capacity: usize,
    out_probs: *mut f32,
    probs_capacity: usize,
) -> Status {
    guard(|| {
        let outputs = Outputs {
            classes: (out_classes, classes_capacity),
            logits: (out_logits, logits_capacity),
            probs: (out_probs, probs_capacity),
            names: ["out_classes", "out_logits", "out_probs"],
        };
        // SAFETY: forwarded from the caller.
        unsafe { classify_images(model, workspace, image_count, pixels, pixel_count, outputs) }
    })
}

/// The optional outputs of a classify call: pointer and capacity in
/// elements, and the argument names for error messages.
struct Outputs {
    classes: (*mut u32, usize),
    logits: (*mut f32, usize),
    probs: (*mut f32, usize),
    names: [&'static str; 3],
}

/// Checks the capacity of an optional output and returns its span.
pub(crate) fn output_span<T>(
    name: &'static str,
    (ptr, capacity): (*mut T, usize),
    needed: usize,
) -> Result<Option<Span>, Status> {
    if ptr.is_null() {
        return Ok(None);
    }
    if capacity < needed {
        bail!(Status::BufferTooSmall, "{name} has room for {capacity} values, {needed} are needed");
    }
    span(name, ptr.cast_const(), needed).map(Some)
}

/// The body of both classify functions.
///
/// # Safety
/// As microvit_classify().
unsafe fn classify_images(
    model: *const Model,
    ws: *mut Workspace,
    count: usize,
    pixels: *const u8,
    pixel_count: usize,
    out: Outputs,
) -> Result<(), Status> {
    // SAFETY: forwarded from the caller.
    let model = &unsafe { handles::model("model", model) }?.inner;
    let shape = model.shape();
    let (per_image, classes) = (shape.pixels(), shape.classes as usize);
    if pixels.is_null() {
        bail!(Status::NullArgument, "pixels is NULL");
    }
    let side = shape.image_side;
    let Some(total) = count.checked_mul(per_image) else {
        bail!(Status::InvalidArgument, "image_count {count} times {side}x{side} pixels overflows");
    };
    if pixel_count != total {
        bail!(
            Status::InvalidArgument,
            "pixel_count is {pixel_count}, {count} image(s) of {side}x{side} pixels need {total}"
        );
    }
    let Some(scores) = count.checked_mul(classes) else {
        bail!(Status::InvalidArgument, "image_count {count} times {classes} classes overflows");
    };
    let [class_name, logits_name, probs_name] = out.names;
    let spans = [
        Some(span("pixels", pixels, total)?),
        output_span(class_name, out.classes, count)?,
        output_span(logits_name, out.logits, scores)?,
        output_span(probs_name, out.probs, scores)?,
    ];
    disjoint(&spans)?;
    if !ws.is_null() {
        // Checked before any output is written, so that a failure leaves the
        // outputs untouched.
        // SAFETY: forwarded from the caller.
        unsafe { handles::checked_workspace(model, ws) }?;
    }

    // SAFETY: checked by `span` and `disjoint` above (here and for the three
    // outputs below); the sizes are the caller's by contract.
    let images = unsafe { input(pixels, total) };
    // SAFETY: see above.
    let mut class_out = (!out.classes.0.is_null()).then(|| unsafe { output(out.classes.0, count) });
    // SAFETY: see above.
    let mut logits_out = (!out.logits.0.is_null()).then(|| unsafe { output(out.logits.0, scores) });
    // SAFETY: see above.
    let mut probs_out = (!out.probs.0.is_null()).then(|| unsafe { output(out.probs.0, scores) });

    // SAFETY: forwarded from the caller.
    unsafe {
        handles::with_workspace(model, ws, |ws| {
            for (i, image) in images.chunks_exact(per_image).enumerate() {
                let logits = model.infer(image, ws).map_err(|e| fail(infer_status(&e), format_args!("{e}")))?;
                if let Some(c) = class_out.as_deref_mut() {
                    c[i] = engine::argmax(logits) as u32;
                }
                if let Some(l) = logits_out.as_deref_mut() {
                    l[i * classes..][..classes].copy_from_slice(logits);
                }
                if let Some(p) = probs_out.as_deref_mut() {
                    engine::softmax(logits, &mut p[i * classes..][..classes]);
                }
            }
            Ok(())
        })
    }
}

/// Frees the calling thread's cached workspace (the one classify uses when
/// given a NULL workspace), if it has one. Call it before a thread that
/// used NULL workspaces returns to a pool for good; thread exit frees it
/// anyway. The next NULL-workspace call in the thread allocates a new one.
#[no_mangle]
pub extern "C" fn microvit_thread_cache_release() {
    guard_value((), handles::release_cache)
}

// ---------------------------------------------------------------------------
// Backends

/// Chooses the backend of the models loaded after this call, process-wide
/// (an atomic setting). A loaded model is immutable and keeps the backend it
/// was loaded with: see microvit_model_backend(). AUTO, the default, picks
/// the fastest backend available.
///
/// Returns BACKEND_UNAVAILABLE, keeping the current setting, for a backend
/// that microvit_backend_available() reports unavailable, and
/// INVALID_ARGUMENT for a value that is not a microvit_backend.
#[no_mangle]
pub extern "C" fn microvit_set_backend(backend: BackendArg) -> Status {
    guard(|| {
        let Some(b) = Backend::from_code(backend.0) else {
            bail!(Status::InvalidArgument, "{} is not a microvit_backend value", backend.0);
        };
        if !b.available() {
            bail!(
                Status::BackendUnavailable,
                "the {} backend is not available on this CPU",
                b.name().to_str().unwrap_or("?")
            );
        }
        BACKEND.store(b as i32, Ordering::Relaxed);
        Ok(())
    })
}

/// The backend a model loaded now would run on: the one set with
/// microvit_set_backend(), with AUTO resolved (so never AUTO). f32 models
/// run the scalar reference whatever this says.
#[no_mangle]
pub extern "C" fn microvit_get_backend() -> Backend {
    guard_value(Backend::Scalar, || Backend::setting().resolve())
}

/// Whether a backend can be used in this process: built into the library
/// and supported by the CPU. AUTO and SCALAR always are; false for a value
/// that is not a microvit_backend.
#[no_mangle]
pub extern "C" fn microvit_backend_available(backend: BackendArg) -> bool {
    guard_value(false, || Backend::from_code(backend.0).is_some_and(Backend::available))
}

/// A backend's static name ("auto", "scalar", "avx2", "neon"), or
/// "unknown". Never NULL; do not free.
#[no_mangle]
pub extern "C" fn microvit_backend_name(backend: BackendArg) -> *const c_char {
    guard_value(c"unknown".as_ptr(), || Backend::from_code(backend.0).map_or(c"unknown", Backend::name).as_ptr())
}

/// A dtype's static name ("f32", "f16", "int8"), or "unknown". Never NULL;
/// do not free.
#[no_mangle]
pub extern "C" fn microvit_dtype_name(dtype: DtypeArg) -> *const c_char {
    guard_value(c"unknown".as_ptr(), || {
        let dtype = [Dtype::F32, Dtype::F16, Dtype::Int8].into_iter().find(|d| *d as i32 == dtype.0);
        dtype.map_or(c"unknown", Dtype::name).as_ptr()
    })
}
