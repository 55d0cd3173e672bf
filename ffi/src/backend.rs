//! Backends, process-wide: microvit_set_backend() and friends, the
//! `MICROVIT_BACKEND` environment variable, and putting a freshly loaded
//! model on the chosen backend.

use core::ffi::c_char;
use core::sync::atomic::{AtomicI32, Ordering};

use microvit_engine as engine;

use crate::enums::{Backend, BackendArg, Encoding, EncodingArg};
use crate::handles::{self, Model};
use crate::status::{bail, fail, guard, guard_value, Status};

/// The `MICROVIT_BACKEND` environment variable, read once: `None` when
/// unset (or `auto`), an error when it names an unknown backend or one this
/// CPU lacks.
pub(crate) fn env_backend() -> Result<Option<engine::Backend>, engine::BackendError> {
    static CHOSEN: RaceOnce<Result<Option<engine::Backend>, engine::BackendError>> = RaceOnce::new();
    CHOSEN.get_or_init(read_env).clone()
}

/// What a `MICROVIT_BACKEND` value asks for.
fn parse_env(value: Option<&str>) -> Result<Option<engine::Backend>, engine::BackendError> {
    match value {
        Some(name) if !(name.trim().is_empty() || name.trim().eq_ignore_ascii_case("auto")) => {
            engine::Backend::parse(name).and_then(engine::Backend::checked).map(Some)
        }
        _ => Ok(None),
    }
}

/// `MICROVIT_BACKEND` (unset or not UTF-8: no choice).
#[cfg(feature = "std")]
fn read_env() -> Result<Option<engine::Backend>, engine::BackendError> {
    parse_env(std::env::var("MICROVIT_BACKEND").ok().as_deref())
}

#[cfg(not(feature = "std"))]
fn read_env() -> Result<Option<engine::Backend>, engine::BackendError> {
    parse_env(crate::os::env_var(c"MICROVIT_BACKEND"))
}

#[cfg(feature = "std")]
type RaceOnce<T> = std::sync::OnceLock<T>;
#[cfg(not(feature = "std"))]
use crate::os::RaceOnce;

/// Puts a freshly loaded model on the requested backend (microvit_set_backend(),
/// else `MICROVIT_BACKEND`, else the fastest for its encoding) and hands it to C.
pub(crate) fn publish(mut model: engine::Model<'static>) -> Result<*mut Model, Status> {
    let requested = match Backend::setting().to_engine() {
        Some(b) => Some(b),
        None => env_backend().map_err(|e| fail(Status::BackendUnavailable, format_args!("MICROVIT_BACKEND: {e}")))?,
    };
    if let Some(b) = requested {
        model.set_backend(b).map_err(|e| fail(Status::BackendUnavailable, format_args!("{e}")))?;
    }
    let backend = Backend::from_engine(model.backend());
    Ok(handles::into_raw_model(model, backend))
}

/// The backend requested with microvit_set_backend(), process-wide: what
/// models loaded from then on run on.
pub(crate) static BACKEND: AtomicI32 = AtomicI32::new(Backend::Auto as i32);

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

/// An encoding's static name ("f32", "f16", "int8"), or "unknown". Never
/// NULL; do not free.
#[no_mangle]
pub extern "C" fn microvit_encoding_name(encoding: EncodingArg) -> *const c_char {
    guard_value(c"unknown".as_ptr(), || {
        let found = [Encoding::F32, Encoding::F16, Encoding::Int8].into_iter().find(|e| *e as i32 == encoding.0);
        found.map_or(c"unknown", Encoding::name).as_ptr()
    })
}

/// Deprecated since 0.2: microvit_encoding_name() under its 0.1 name.
#[no_mangle]
pub extern "C" fn microvit_dtype_name(encoding: EncodingArg) -> *const c_char {
    microvit_encoding_name(encoding)
}
