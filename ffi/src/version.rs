//! Version and errors: microvit_version(), microvit_status_str(),
//! microvit_last_error_message().

use core::ffi::c_char;

use crate::status::{self, guard_value, StatusArg};
use crate::MICROVIT_VERSION_NUMBER;

/// The library version as a static NUL-terminated string, e.g. "0.2.0".
/// Never NULL; do not free.
#[no_mangle]
pub extern "C" fn microvit_version() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

/// The library version as MAJOR * 10000 + MINOR * 100 + PATCH (200 for
/// 0.2.0). Compare with MICROVIT_VERSION_NUMBER from the header you compiled
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
