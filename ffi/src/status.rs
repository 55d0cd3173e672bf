//! Status codes, the per-thread last error message, and the guard every
//! exported function runs its body in.

use alloc::string::String;
use core::cell::RefCell;
use core::ffi::{c_char, c_int, CStr};
use core::fmt::{self, Write as _};
#[cfg(feature = "std")]
use std::panic::{self, AssertUnwindSafe};

use microvit_engine::{InferError, LoadError};

/// What a call did. Every function that can fail returns one of these.
///
/// The numeric values are part of the ABI: they are stable, never
/// renumbered or reused, and new codes are only ever appended. Treat any
/// value you do not know as a failure.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// A pointer argument that must not be NULL was NULL.
    NullArgument = 1,
    /// An argument has an unusable value: a pixel count that is not
    /// side x side, a length that overflows, an unknown enum value,
    /// overlapping buffers, a pointer to an object of the wrong type.
    InvalidArgument = 2,
    /// An output buffer is shorter than the result it must hold.
    BufferTooSmall = 3,
    /// A file could not be opened or read.
    IoError = 4,
    /// The bytes are not a valid microvit model: truncated, corrupted
    /// (checksum), or internally inconsistent.
    InvalidModel = 5,
    /// A model from a newer converter: a format version or weight encoding
    /// this library does not know. Update the library.
    UnsupportedModel = 6,
    /// microvit_model_load_borrowed() was given a buffer that is not
    /// MICROVIT_BORROWED_ALIGN-byte aligned. Use microvit_model_load().
    MisalignedBuffer = 7,
    /// The requested backend is not built into this library or not
    /// supported by this CPU; the previous backend stays in use.
    BackendUnavailable = 8,
    /// The workspace was made for a model of another shape or encoding.
    WorkspaceMismatch = 9,
    /// An internal error (a Rust panic) was caught at the boundary. Please
    /// report it with the last error message. Output buffers may have been
    /// partly written; the model and workspace are still usable.
    /// Only a library built with Rust's std returns it (`cargo build`, and
    /// Rust programs); the installed C library (ffi/install.sh,
    /// ffi/mobile.sh) prints the internal error to stderr and aborts.
    Panic = 10,
    /// The image holds no digit to classify: it is blank, only noise, ink
    /// everywhere, or a speck (the last error message says which). A
    /// result, not a fault: show "no digit" to the user.
    NoDigit = 11,
}

const ALL_STATUSES: [Status; 12] = [
    Status::Ok,
    Status::NullArgument,
    Status::InvalidArgument,
    Status::BufferTooSmall,
    Status::IoError,
    Status::InvalidModel,
    Status::UnsupportedModel,
    Status::MisalignedBuffer,
    Status::BackendUnavailable,
    Status::WorkspaceMismatch,
    Status::Panic,
    Status::NoDigit,
];

impl Status {
    /// Every status, in code order.
    pub fn all() -> [Status; 12] {
        ALL_STATUSES
    }

    /// A short constant description (a C string literal).
    pub fn description(self) -> &'static CStr {
        match self {
            Status::Ok => c"ok",
            Status::NullArgument => c"a required pointer argument is NULL",
            Status::InvalidArgument => c"invalid argument",
            Status::BufferTooSmall => c"output buffer too small",
            Status::IoError => c"file could not be read",
            Status::InvalidModel => c"not a valid microvit model",
            Status::UnsupportedModel => c"model format or encoding not supported by this library version",
            Status::MisalignedBuffer => c"zero-copy load needs a 4-byte aligned buffer",
            Status::BackendUnavailable => c"backend not available",
            Status::WorkspaceMismatch => c"workspace was made for a model of another shape or encoding",
            Status::Panic => c"internal error (caught panic)",
            Status::NoDigit => c"no digit found in the image",
        }
    }

    pub fn from_code(code: i32) -> Option<Status> {
        ALL_STATUSES.iter().copied().find(|s| *s as i32 == code)
    }
}

/// A `microvit_status` as received from C: any `int32_t`, so an out-of-range
/// value is not undefined behaviour on the Rust side. Appears in the header
/// as `microvit_status`.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusArg(pub i32);

impl From<Status> for StatusArg {
    fn from(s: Status) -> StatusArg {
        StatusArg(s as i32)
    }
}

/// The status a rejected blob maps to.
pub(crate) fn load_status(e: &LoadError) -> Status {
    match e {
        // A blob from a newer converter. (Only variants every engine version
        // has are named here; the rest are invalid blobs.)
        LoadError::UnsupportedVersion { .. }
        | LoadError::UnknownEncoding { .. }
        | LoadError::EncodingNotBuilt { .. } => Status::UnsupportedModel,
        LoadError::MisalignedBuffer { .. } => Status::MisalignedBuffer,
        _ => Status::InvalidModel,
    }
}

/// The status a failed inference maps to.
pub(crate) fn infer_status(e: &InferError) -> Status {
    match e {
        InferError::WorkspaceMismatch => Status::WorkspaceMismatch,
        _ => Status::InvalidArgument,
    }
}

/// A buffer of this many bytes always holds the whole last error message
/// and its NUL: messages are cut to at most 1023 bytes (at a UTF-8
/// character boundary).
pub const MICROVIT_ERROR_MESSAGE_CAPACITY: usize = 1024;

/// Bytes of message kept per thread.
const MESSAGE_CAPACITY: usize = MICROVIT_ERROR_MESSAGE_CAPACITY - 1;

/// The last error message of one thread: a fixed buffer, so recording an
/// error never allocates and the thread-local needs no destructor.
struct Message {
    len: usize,
    bytes: [u8; MESSAGE_CAPACITY],
}

impl Message {
    fn as_str(&self) -> &str {
        // Only `write_str` fills the buffer, and it copies whole characters.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for Message {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = MESSAGE_CAPACITY - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(()) // Truncate silently rather than abort the formatting.
    }
}

const EMPTY: Message = Message { len: 0, bytes: [0; MESSAGE_CAPACITY] };

#[cfg(feature = "std")]
thread_local! {
    static LAST_ERROR: RefCell<Message> = const { RefCell::new(EMPTY) };
}

/// Without std, a pthread key's value: made (1 KiB) on the thread's first
/// failure, freed when the thread exits.
#[cfg(not(feature = "std"))]
static LAST_ERROR: crate::os::PerThread<RefCell<Message>> = crate::os::PerThread::new(|| RefCell::new(EMPTY));

/// Replaces this thread's last error message.
pub(crate) fn set_message(args: fmt::Arguments<'_>) {
    let _ = LAST_ERROR.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.len = 0;
            let _ = m.write_fmt(args);
        }
    });
}

fn clear_message() {
    let clear = |m: &RefCell<Message>| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.len = 0;
        }
    };
    #[cfg(feature = "std")]
    let _ = LAST_ERROR.try_with(clear);
    // A thread that never failed has nothing to clear (and allocates
    // nothing here).
    #[cfg(not(feature = "std"))]
    let _ = LAST_ERROR.with_existing(clear);
}

/// Records `args` as this thread's last error and returns `status`, for
/// `return Err(fail(...))`.
pub(crate) fn fail(status: Status, args: fmt::Arguments<'_>) -> Status {
    set_message(args);
    status
}

/// `Err(fail(status, format_args!(...)))` and return.
macro_rules! bail {
    ($status:expr, $($arg:tt)+) => {
        return Err($crate::status::fail($status, format_args!($($arg)+)))
    };
}
pub(crate) use bail;

/// Copies this thread's last error message into `buf` (see the header).
pub(crate) fn copy_message(buf: *mut c_char, len: usize) -> usize {
    let copy = |m: &RefCell<Message>| {
        let Ok(m) = m.try_borrow() else { return 0 };
        copy_text(m.as_str(), buf, len)
    };
    #[cfg(feature = "std")]
    let copied = LAST_ERROR.try_with(copy).ok();
    #[cfg(not(feature = "std"))]
    let copied = LAST_ERROR.with_existing(copy);
    // No message (a thread that never failed): the empty string.
    copied.unwrap_or_else(|| copy_text("", buf, len))
}

fn copy_text(text: &str, buf: *mut c_char, len: usize) -> usize {
    if !buf.is_null() && len > 0 {
        let mut n = text.len().min(len - 1);
        while !text.is_char_boundary(n) {
            n -= 1;
        }
        // SAFETY: the caller promises `buf` has room for `len` bytes; we
        // write `n + 1 <= len` of them, from our own buffer, which cannot
        // overlap a caller's buffer.
        unsafe {
            core::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
            *buf.add(n) = 0;
        }
    }
    text.len()
}

/// Describes a panic payload (a `&str` or a `String` for `panic!`).
#[cfg(feature = "std")]
fn describe_panic(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

#[cfg(feature = "std")]
fn record_panic(payload: Box<dyn std::any::Any + Send>) {
    set_message(format_args!(
        "internal error: Rust panic caught at the C boundary: {}; please report this",
        describe_panic(&*payload)
    ));
    // Dropping the payload runs foreign code in theory; keep even that from
    // unwinding into C.
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

/// Runs the body of an exported function that returns a status: a panic is
/// caught and becomes [`Status::Panic`], `Ok` clears the thread's last error
/// message, and an error leaves the message its `fail` recorded.
///
/// `AssertUnwindSafe` holds: a panic can only leave scratch memory (a
/// workspace, output buffers) half-written, and both are documented as
/// overwritten by the next call; models are immutable.
#[cfg(feature = "std")]
pub fn guard(body: impl FnOnce() -> Result<(), Status>) -> Status {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            clear_message();
            Status::Ok
        }
        Ok(Err(status)) => status,
        Err(payload) => {
            record_panic(payload);
            Status::Panic
        }
    }
}

/// [`guard`] for exported functions that return a value rather than a
/// status: a panic yields `fallback` (and sets the last error message).
#[cfg(feature = "std")]
pub fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(payload) => {
            record_panic(payload);
            fallback
        }
    }
}

/// Without std there is no unwinding to catch: a panic aborts in the panic
/// handler (`os.rs`), so the body's result is the call's. `Ok` clears the
/// thread's last error message, an error leaves the message its `fail`
/// recorded.
#[cfg(not(feature = "std"))]
pub fn guard(body: impl FnOnce() -> Result<(), Status>) -> Status {
    match body() {
        Ok(()) => {
            clear_message();
            Status::Ok
        }
        Err(status) => status,
    }
}

/// [`guard`] for exported functions that return a value; without std, the
/// body's value.
#[cfg(not(feature = "std"))]
pub fn guard_value<T>(_fallback: T, body: impl FnOnce() -> T) -> T {
    body()
}

/// Reads the calling thread's last error message (for the Rust tests).
pub fn last_error_message() -> String {
    LAST_ERROR.with(|m| String::from(m.borrow().as_str()))
}

pub(crate) fn status_str(code: c_int) -> *const c_char {
    match Status::from_code(code) {
        Some(s) => s.description().as_ptr(),
        None => c"unknown status".as_ptr(),
    }
}
