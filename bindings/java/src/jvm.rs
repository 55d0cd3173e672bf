//! The JNI calls the glue makes, each behind a safe method: every `unsafe`
//! JNI call of the crate is in this file.
//!
//! Java arrays are read and written in place through
//! `GetPrimitiveArrayCritical`: between getting and releasing such a pointer
//! no other JNI function may be called. The types enforce it: the JNI calls
//! take `&mut Env`, getting a critical pointer takes `&Env` and the
//! [`Critical`] guard borrows the `Env` until it is dropped (released), so
//! while any guard lives only other critical pointers can be taken. The
//! lengths are therefore read first, by [`Env::array`].
//!
//! The glue never makes a Rust reference into Java memory: it hands raw
//! pointers and lengths to the C ABI, which checks them (NULL, length,
//! overlap) like any C caller's, and writes its own results with
//! `ptr::write`. Two parameters given the same Java array therefore alias
//! only raw pointers, which the C ABI's overlap check rejects.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr;

use jni_sys::{jarray, jint, jobject, jsize, JNIEnv, JNINativeInterface_, JNI_ABORT};

use crate::{Failure, Res};

/// The `JNIEnv*` of the current native call.
///
/// Native methods take it as their first parameter, where the VM passes its
/// `JNIEnv*` (`repr(transparent)`: the same ABI as the pointer). The field is
/// private and nothing here makes an `Env`, so safe Rust cannot hold one
/// that is not the VM's, for this thread, valid for the running call; the
/// library's `JNI_OnLoad` asked the VM for JNI 1.6, so the function table
/// has every function used here (the VM refuses to load the library
/// otherwise).
#[repr(transparent)]
pub struct Env {
    raw: *mut JNIEnv,
}

/// The element type of a Java primitive array as the C ABI sees it.
pub trait Element: Copy {
    /// The Java type, for messages.
    const JAVA: &'static str;
}
impl Element for u8 {
    const JAVA: &'static str = "byte[]";
}
impl Element for u32 {
    const JAVA: &'static str = "int[]";
}
impl Element for f32 {
    const JAVA: &'static str = "float[]";
}
impl Element for i64 {
    const JAVA: &'static str = "long[]";
}

/// A non-null Java primitive array whose elements are `T` (the native
/// method's Java signature says which: `byte[]` is `Array<u8>`, `int[]`
/// `Array<u32>` (classes are below 2^31), `float[]` `Array<f32>`, `long[]`
/// `Array<i64>`), with its length.
pub struct Array<T> {
    raw: jarray,
    len: usize,
    _element: PhantomData<T>,
}

impl<T> Array<T> {
    pub fn len(&self) -> usize {
        self.len
    }
}

/// Whether a critical pointer is for reading (released without copying
/// back) or for writing (copied back if the VM made a copy).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// The elements of a Java array, pinned (or copied) by the VM until this is
/// dropped.
pub struct Critical<'e, T> {
    env: &'e Env,
    array: jarray,
    ptr: *mut T,
    len: usize,
    access: Access,
}

impl<T: Element> Critical<'_, T> {
    pub fn ptr(&self) -> *const T {
        self.ptr
    }

    pub fn mut_ptr(&self) -> *mut T {
        debug_assert!(self.access == Access::Write);
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Writes `values` at the start of the array, which must hold them (the
    /// glue's own results: shapes, digit boxes).
    pub fn write(&mut self, values: &[T]) {
        assert!(values.len() <= self.len && self.access == Access::Write);
        // SAFETY: `ptr` points to `len` elements of T, writable while the
        // guard lives, and `values` (Rust memory) cannot overlap them; no
        // reference into the Java array exists.
        unsafe { ptr::copy_nonoverlapping(values.as_ptr(), self.ptr, values.len()) };
    }
}

impl<T> Drop for Critical<'_, T> {
    fn drop(&mut self) {
        if self.array.is_null() {
            return; // an empty array, not pinned
        }
        let mode = match self.access {
            Access::Read => JNI_ABORT,
            Access::Write => 0,
        };
        // SAFETY: `ptr` came from GetPrimitiveArrayCritical on `array` (not
        // null: pinned) in this native call (`Env::critical`), is released
        // once, here, and the
        // `env` borrow kept every other JNI call out of the critical region.
        unsafe { (self.env.table().ReleasePrimitiveArrayCritical)(self.env.raw, self.array, self.ptr.cast(), mode) };
    }
}

impl Env {
    /// An `Env` for unit tests of code that makes no JNI call.
    ///
    /// # Safety
    /// Nothing may call a JNI function through it (its pointer is NULL).
    #[cfg(test)]
    pub unsafe fn detached() -> Env {
        Env { raw: ptr::null_mut() }
    }

    fn table(&self) -> &jni_sys::JNINativeInterface__1_6 {
        // SAFETY: `raw` is the VM's JNIEnv* for this thread and call (see
        // `Env`), which points to its function table; `JNI_OnLoad` asked for
        // JNI 1.6, so the table has the 1.6 functions.
        unsafe { &(**self.raw).v1_6 }
    }

    /// `array` as an [`Array`] with its length; `None` when it is null.
    ///
    /// The caller states the element type: `array` is a Java array of the
    /// primitive type `T` stands for (the native method's signature).
    pub fn array<T: Element>(&mut self, array: jarray) -> Option<Array<T>> {
        if array.is_null() {
            return None;
        }
        // SAFETY: a valid env (`Env`); `array` is a non-null local
        // reference to a Java array, passed to this native call.
        let len = unsafe { (self.table().GetArrayLength)(self.raw, array) };
        Some(Array { raw: array, len: usize::try_from(len).unwrap_or(0), _element: PhantomData })
    }

    /// The elements of `array`, in place where the VM allows (a copy
    /// otherwise). Only other critical pointers may be taken while the
    /// guard lives.
    pub fn critical<'e, T: Element>(&'e self, array: &Array<T>, access: Access) -> Res<Critical<'e, T>> {
        if array.len == 0 {
            // Nothing to pin (and a VM may answer NULL for it): a dangling,
            // aligned pointer to no elements, never released.
            let ptr = ptr::NonNull::<T>::dangling().as_ptr();
            return Ok(Critical { env: self, array: ptr::null_mut(), ptr, len: 0, access });
        }
        // SAFETY: a valid env; `array` is a non-null reference to a Java
        // array of T (`Env::array`); the returned guard releases the pointer.
        let ptr: *mut c_void =
            unsafe { (self.table().GetPrimitiveArrayCritical)(self.raw, array.raw, ptr::null_mut()) };
        if ptr.is_null() {
            // The VM could not pin or copy it (out of memory).
            return Err(Failure::glue(
                microvit::Status::Panic,
                format!("the JVM could not give access to a {} of {} elements", T::JAVA, array.len),
            ));
        }
        Ok(Critical { env: self, array: array.raw, ptr: ptr.cast(), len: array.len, access })
    }

    /// Copies `out.len()` bytes from `offset` of `array` into `out`, which
    /// they initialize.
    pub fn read_bytes(&mut self, array: &Array<u8>, offset: usize, out: &mut [MaybeUninit<u8>]) -> Res<()> {
        let end = offset.checked_add(out.len());
        let (Ok(start), Ok(len), Some(true)) =
            (jsize::try_from(offset), jsize::try_from(out.len()), end.map(|e| e <= array.len))
        else {
            return Err(Failure::invalid(format!(
                "bytes {offset}..+{} are outside a byte[] of {}",
                out.len(),
                array.len
            )));
        };
        // SAFETY: a valid env; `array` is a non-null reference to a byte[]
        // (`Env::array`), the region is inside it (checked, so no exception),
        // and `out` has `len` writable bytes (jbyte is i8, the size of u8),
        // which the VM writes.
        unsafe { (self.table().GetByteArrayRegion)(self.raw, array.raw, start, len, out.as_mut_ptr().cast()) };
        Ok(())
    }

    /// The address and capacity of a direct `ByteBuffer`; `None` when
    /// `buffer` is not one (a heap buffer, or a VM without direct access).
    pub fn direct_buffer(&mut self, buffer: jobject) -> Option<(*mut u8, usize)> {
        // SAFETY: a valid env; `buffer` is a non-null local reference to a
        // java.nio.ByteBuffer (the native method's signature; the caller
        // checked null).
        let address = unsafe { (self.table().GetDirectBufferAddress)(self.raw, buffer) };
        // SAFETY: as above.
        let capacity = unsafe { (self.table().GetDirectBufferCapacity)(self.raw, buffer) };
        if address.is_null() || capacity < 0 {
            return None;
        }
        Some((address.cast(), usize::try_from(capacity).ok()?))
    }

    /// A new Java `byte[]` holding `bytes`; null, with an OutOfMemoryError
    /// pending in Java, when the VM cannot make it.
    pub fn byte_array(&mut self, bytes: &[u8]) -> jarray {
        let Ok(len) = jsize::try_from(bytes.len()) else { return ptr::null_mut() };
        // SAFETY: a valid env; a non-negative length.
        let array = unsafe { (self.table().NewByteArray)(self.raw, len) };
        if !array.is_null() {
            // SAFETY: `array` is a new byte[] of `len` elements and `bytes`
            // holds `len` readable bytes (jbyte is i8, the same size as u8).
            unsafe { (self.table().SetByteArrayRegion)(self.raw, array, 0, len, bytes.as_ptr().cast()) };
        }
        array
    }
}

/// The JNI version the glue needs, for `JNI_OnLoad`: 1.6 (Java 6, every
/// Android version).
pub const VERSION: jint = jni_sys::JNI_VERSION_1_6;

// Spell the table type out once, so a jni-sys that renames it fails here.
const _: Option<&JNINativeInterface_> = None;
