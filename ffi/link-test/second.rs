//! A second, independent Rust static library for `.ci/ffi.sh`'s link test:
//! it uses the standard library's allocator and formatting, as any Rust
//! library a C or mobile app also links does.

use std::ffi::c_char;

/// Writes `[0, 1, 4, …]` (the first `n` squares) into `out` as a C string
/// and returns its length (without the NUL).
///
/// # Safety
/// `out` is NULL or has `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn second_squares(n: u32, out: *mut c_char, len: usize) -> usize {
    let text = format!("{:?}", (0..n).map(|i| i * i).collect::<Vec<_>>());
    if !out.is_null() && len > 0 {
        let k = text.len().min(len - 1);
        // SAFETY: the caller gives `len` writable bytes; k + 1 <= len.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr().cast(), out, k);
            *out.add(k) = 0;
        }
    }
    text.len()
}
