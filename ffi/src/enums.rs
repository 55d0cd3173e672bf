//! The C enums that are not statuses: `microvit_encoding` and
//! `microvit_backend`, each with its `*Arg` twin that receives any `int32_t`
//! from C (an out-of-range value is an error, never undefined behaviour).

use core::ffi::CStr;
use core::sync::atomic::Ordering;

use microvit_engine as engine;

use crate::backend::{env_backend, BACKEND};

/// How a model's weights are stored (microvit_shape.encoding): the
/// engine's, converter's and CLI's `Encoding`. Which of these
/// a library build can load depends on its engine version; a blob it cannot
/// run is rejected at load with UNSUPPORTED_MODEL or INVALID_MODEL.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// 32-bit floats, the reference encoding.
    F32 = 1,
    /// IEEE half precision weights, f32 compute.
    F16 = 2,
    /// int8 weights, integer fixed-point compute.
    Int8 = 3,
}

/// A `microvit_encoding` as received from C (any `int32_t`).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodingArg(pub i32);

impl Encoding {
    pub(crate) fn name(self) -> &'static CStr {
        match self {
            Encoding::F32 => c"f32",
            Encoding::F16 => c"f16",
            Encoding::Int8 => c"int8",
        }
    }
}

impl From<engine::Encoding> for Encoding {
    fn from(e: engine::Encoding) -> Encoding {
        match e {
            engine::Encoding::F32 => Encoding::F32,
            engine::Encoding::F16 => Encoding::F16,
            engine::Encoding::Int8 => Encoding::Int8,
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
    /// x86-64 AVX2 + FMA + F16C + BMI1, detected at run time.
    Avx2 = 2,
    /// AArch64 Advanced SIMD (NEON), baseline on every aarch64 CPU.
    Neon = 3,
    /// x86-64 AVX-512 with VNNI (BW, CD, DQ, VL, VBMI too), detected at run
    /// time: int8 models only (f16 runs on AVX2 under AUTO).
    Avx512Vnni = 4,
    /// x86-64 AVX-VNNI (256-bit, with AVX2), detected at run time: int8
    /// models only.
    AvxVnni = 5,
    /// AArch64 Advanced SIMD with the Armv8.2 dot product (udot), detected
    /// at run time: int8 models only (f16 runs on NEON under AUTO).
    Dotprod = 6,
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
    pub(crate) fn from_code(code: i32) -> Option<Backend> {
        [
            Backend::Auto,
            Backend::Scalar,
            Backend::Avx2,
            Backend::Neon,
            Backend::Avx512Vnni,
            Backend::AvxVnni,
            Backend::Dotprod,
        ]
        .into_iter()
        .find(|b| *b as i32 == code)
    }

    pub(crate) fn name(self) -> &'static CStr {
        match self {
            Backend::Auto => c"auto",
            Backend::Scalar => c"scalar",
            Backend::Avx2 => c"avx2",
            Backend::Neon => c"neon",
            Backend::Avx512Vnni => c"avx512vnni",
            Backend::AvxVnni => c"avxvnni",
            Backend::Dotprod => c"dotprod",
        }
    }

    /// The engine's backend, or `None` for AUTO.
    pub(crate) fn to_engine(self) -> Option<engine::Backend> {
        match self {
            Backend::Auto => None,
            Backend::Scalar => Some(engine::Backend::Scalar),
            Backend::Avx2 => Some(engine::Backend::Avx2),
            Backend::Neon => Some(engine::Backend::Neon),
            Backend::Avx512Vnni => Some(engine::Backend::Avx512Vnni),
            Backend::AvxVnni => Some(engine::Backend::AvxVnni),
            Backend::Dotprod => Some(engine::Backend::Dotprod),
        }
    }

    pub(crate) fn from_engine(b: engine::Backend) -> Backend {
        match b {
            engine::Backend::Scalar => Backend::Scalar,
            engine::Backend::Avx2 => Backend::Avx2,
            engine::Backend::Neon => Backend::Neon,
            engine::Backend::Avx512Vnni => Backend::Avx512Vnni,
            engine::Backend::AvxVnni => Backend::AvxVnni,
            engine::Backend::Dotprod => Backend::Dotprod,
        }
    }

    /// Whether this backend can run on this CPU.
    pub(crate) fn available(self) -> bool {
        self.to_engine().is_none_or(engine::Backend::is_available)
    }

    /// The backend AUTO stands for on this machine: `MICROVIT_BACKEND`'s
    /// choice if it names a usable one, else the fastest.
    pub(crate) fn resolve(self) -> Backend {
        match self.to_engine() {
            Some(_) => self,
            None => Backend::from_engine(env_backend().ok().flatten().unwrap_or(engine::Backend::detect())),
        }
    }

    /// The backend requested for models loaded now (maybe AUTO).
    pub(crate) fn setting() -> Backend {
        Backend::from_code(BACKEND.load(Ordering::Relaxed)).unwrap_or(Backend::Auto)
    }
}
