//! Turning C pointers and lengths into Rust references, with every check
//! that can be made before trusting them.

use core::mem::{align_of, size_of};

use crate::status::{bail, Status};

/// The bytes a caller's buffer occupies, for the overlap check.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    name: &'static str,
    start: usize,
    end: usize,
}

/// Checks that `len` elements of `T` at `ptr` could be a Rust slice: `ptr`
/// is not NULL and is aligned for `T`, and the bytes neither exceed
/// `isize::MAX` nor wrap around the address space.
pub(crate) fn span<T>(name: &'static str, ptr: *const T, len: usize) -> Result<Span, Status> {
    if ptr.is_null() {
        bail!(Status::NullArgument, "{name} is NULL");
    }
    let start = ptr as usize;
    if !start.is_multiple_of(align_of::<T>()) {
        bail!(Status::InvalidArgument, "{name} ({start:#x}) is not aligned to {} bytes", align_of::<T>());
    }
    let end = len
        .checked_mul(size_of::<T>())
        .filter(|&bytes| bytes <= isize::MAX as usize)
        .and_then(|bytes| start.checked_add(bytes));
    match end {
        Some(end) => Ok(Span { name, start, end }),
        None => bail!(Status::InvalidArgument, "{name}: a length of {len} elements cannot be a buffer in memory"),
    }
}

/// Fails unless no two of `spans` share a byte (an output aliasing an input,
/// or two outputs aliasing each other, is a caller bug that Rust's
/// references must not see).
/// `None` stands for an output that was not asked for.
pub(crate) fn disjoint(spans: &[Option<Span>]) -> Result<(), Status> {
    for (i, a) in spans.iter().enumerate().filter_map(|(i, a)| Some((i, a.as_ref()?))) {
        for b in spans[i + 1..].iter().flatten() {
            if a.start < b.end && b.start < a.end {
                bail!(Status::InvalidArgument, "{} and {} overlap", a.name, b.name);
            }
        }
    }
    Ok(())
}

/// A shared slice over a checked span.
///
/// # Safety
/// `span(_, ptr, len)` succeeded, and the caller's buffer really holds `len`
/// initialised `T`s that nobody writes for `'a`.
pub(crate) unsafe fn input<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    // SAFETY: non-NULL, aligned and in-bounds by `span`; valid and not
    // mutated for `'a` by the caller's contract.
    unsafe { core::slice::from_raw_parts(ptr, len) }
}

/// A mutable slice over a checked span, zero-filled first: the caller's
/// output buffer need not be initialised, and a slice of `f32` or `u32` may
/// only be made over initialised memory.
///
/// # Safety
/// `span(_, ptr, len)` succeeded, `disjoint` cleared it against every other
/// buffer of the call, and the caller's buffer really has room for `len`
/// `T`s that nobody else accesses for `'a`. `T` is valid when all-zero.
pub(crate) unsafe fn output<'a, T: Zeroable>(ptr: *mut T, len: usize) -> &'a mut [T] {
    // SAFETY: non-NULL, aligned and in-bounds by `span`, writable and
    // exclusive by `disjoint` and the caller's contract.
    unsafe { ptr.write_bytes(0, len) };
    // SAFETY: as above, and now initialised with a valid value of `T`.
    unsafe { core::slice::from_raw_parts_mut(ptr, len) }
}

/// Types whose all-zero bit pattern is a valid value.
pub(crate) trait Zeroable: Copy {}
impl Zeroable for f32 {}
impl Zeroable for u32 {}
impl Zeroable for u8 {}
// All-zero is a valid `Digit`: polarity 0 is AUTO, the rest integers.
impl Zeroable for crate::Digit {}
