//! microvit from Java and Kotlin: the native half of `dev.microvit.Model`
//! (`bindings/java/java/`), built as `libmicrovit_jni.so`.
//!
//! Every native method is a thin call of the C ABI (`microvit-ffi`, used as a
//! Rust library): the same argument checks, the same status codes and
//! messages, the same per-thread cached workspace as a C caller gets. The
//! glue adds only what Java needs:
//!
//! - **No panic crosses into the JVM.** Every export runs its body in
//!   [`entry`], inside `catch_unwind`; a panic becomes `MICROVIT_STATUS_PANIC`
//!   (the C ABI catches its own).
//! - **Errors.** A failed call returns a sentinel (0, -1, false or null) and
//!   records its status; the Java side then calls `nLastStatus` and
//!   `nLastMessage` on the same thread and throws `MicrovitException`. The
//!   message is the C ABI's per-thread message, or the glue's own when the
//!   glue refused the arguments (a null array, a negative offset, an offset
//!   and length outside the array). Messages travel as UTF-8 `byte[]`, not
//!   through `NewStringUTF` (whose "modified UTF-8" is not UTF-8).
//! - **Arrays.** Inputs and outputs are the Java arrays themselves, pinned
//!   with `GetPrimitiveArrayCritical` for the C call (see `jvm`), or the
//!   memory of a direct `ByteBuffer`; every offset and length is checked
//!   against the array or buffer here, and every length against the model by
//!   the C ABI.
//!
//! The Java declarations of these functions are in `Model.java` (`native`
//! methods, all `private static`); the signatures must match them by hand,
//! parameter for parameter. The library also exports the C ABI's
//! `microvit_*` functions (it contains the C library), so an app's own C or
//! C++ JNI code can call them from the same `.so`.

mod jvm;

use std::cell::{Cell, RefCell};
use std::ffi::{c_void, CStr, CString};
use std::mem::MaybeUninit;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use jni_sys::{jarray, jboolean, jbyteArray, jclass, jfloatArray, jint, jintArray, jlong, jlongArray, jobject, JavaVM};
use microvit::{
    Backend, BackendArg, Digit, Image, Model, PixelFormatArg, PolarityArg, Shape, Status,
    MICROVIT_ERROR_MESSAGE_CAPACITY,
};

use crate::jvm::{Access, Array, Critical, Env};

/// Why a call failed: a status, and the glue's own message when the glue
/// (not the C ABI, which keeps its message) refused the call.
pub struct Failure {
    status: Status,
    message: Option<String>,
}

pub type Res<T> = Result<T, Failure>;

impl Failure {
    fn glue(status: Status, message: String) -> Failure {
        Failure { status, message: Some(message) }
    }

    fn invalid(message: String) -> Failure {
        Failure::glue(Status::InvalidArgument, message)
    }

    fn record(self) {
        LAST_STATUS.with(|s| s.set(self.status as i32));
        LAST_MESSAGE.with(|m| *m.borrow_mut() = self.message);
    }
}

thread_local! {
    /// The status of this thread's last failed call.
    static LAST_STATUS: Cell<i32> = const { Cell::new(0) };
    /// Its message when the glue made it; `None`: the C ABI's message.
    static LAST_MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A C ABI status as a result; on failure the C ABI holds the message.
fn check(status: Status) -> Res<()> {
    match status {
        Status::Ok => Ok(()),
        status => Err(Failure { status, message: None }),
    }
}

/// Runs a native method's body: catches panics, records failures, and
/// returns `failed` for them.
fn entry<T>(mut env: Env, failed: T, body: impl FnOnce(&mut Env) -> Res<T>) -> T {
    match panic::catch_unwind(AssertUnwindSafe(|| body(&mut env))) {
        Ok(Ok(value)) => value,
        Ok(Err(failure)) => {
            failure.record();
            failed
        }
        Err(payload) => {
            let what = match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
                (Some(s), _) => s,
                (_, Some(s)) => s.as_str(),
                _ => "(no message)",
            };
            Failure::glue(Status::Panic, format!("internal error in the JNI glue (a Rust panic): {what}")).record();
            failed
        }
    }
}

/// A `long` handle from Java as the C ABI's model pointer (0 is NULL, which
/// the C ABI refuses with NULL_ARGUMENT).
fn model(handle: jlong) -> *const Model {
    handle as usize as *const Model
}

/// A non-negative Java `int` as a count or offset.
fn count(value: jint, what: &str) -> Res<usize> {
    usize::try_from(value).map_err(|_| Failure::invalid(format!("{what} is negative ({value})")))
}

/// `count` for the offset or length of an input.
fn part(value: jint, input: &str, part: &str) -> Res<usize> {
    usize::try_from(value).map_err(|_| Failure::invalid(format!("{input}: the {part} is negative ({value})")))
}

/// The largest input copied rather than pinned (`Input::copy_small`): a
/// 64 × 64 image, the shape family's largest.
const SMALL: usize = 4096;

/// The bytes a call reads: `len` bytes from `offset` in a `byte[]`, or in a
/// direct `ByteBuffer` when the array is null.
struct Input {
    source: Source,
    offset: usize,
    len: usize,
}

enum Source {
    Array(Array<u8>),
    Direct(*const u8),
}

impl Input {
    fn new(env: &mut Env, array: jbyteArray, direct: jobject, offset: jint, len: jint, what: &str) -> Res<Input> {
        let offset = part(offset, what, "offset")?;
        let len = part(len, what, "length")?;
        let (source, size) = if let Some(array) = env.array::<u8>(array) {
            let size = array.len();
            (Source::Array(array), size)
        } else if !direct.is_null() {
            let Some((address, capacity)) = env.direct_buffer(direct) else {
                return Err(Failure::invalid(format!("{what}: not a direct ByteBuffer")));
            };
            (Source::Direct(address), capacity)
        } else {
            return Err(Failure::glue(Status::NullArgument, format!("{what} is null")));
        };
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(Failure::invalid(format!(
                "{what}: offset {offset} and length {len} do not fit in its {size} bytes"
            )));
        }
        Ok(Input { source, offset, len })
    }

    /// Copies a small input out of its array into `buf` (true), before any
    /// array is pinned: a single image is at most 64 × 64 bytes, and copying
    /// it costs the same whatever the array, whereas a VM that copies for
    /// critical access (as `-Xcheck:jni` does) would copy all of a large
    /// array for one image in it (`ByteBuffer.wrap(all, i * 784, 784)`).
    /// `buf` is left uninitialized by the caller (zeroing 4 KiB on every call
    /// would cost more than the copy); only the bytes copied are read.
    fn copy_small(&self, env: &mut Env, buf: &mut [MaybeUninit<u8>; SMALL]) -> Res<bool> {
        match &self.source {
            Source::Array(array) if self.len <= SMALL => {
                env.read_bytes(array, self.offset, &mut buf[..self.len])?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The first byte to read (`buf` if `copy_small` filled it), and the
    /// guard that keeps it valid for a pinned array (a direct buffer's memory
    /// lives as long as the buffer object, which the call's arguments hold).
    fn pin<'e>(
        &self,
        env: &'e Env,
        copied: Option<&[MaybeUninit<u8>; SMALL]>,
    ) -> Res<(*const u8, Option<Critical<'e, u8>>)> {
        if let Some(buf) = copied {
            // Its first `self.len` bytes were written by `copy_small`.
            return Ok((buf.as_ptr().cast(), None));
        }
        match &self.source {
            Source::Array(array) => {
                let pinned = env.critical(array, Access::Read)?;
                // In bounds: offset + len <= the array's length (`new`).
                Ok((pinned.ptr().wrapping_add(self.offset), Some(pinned)))
            }
            Source::Direct(address) => Ok((address.wrapping_add(self.offset), None)),
        }
    }
}

/// An optional output array (null: not wanted).
fn output<T: jvm::Element>(env: &mut Env, array: jarray) -> Option<Array<T>> {
    env.array::<T>(array)
}

/// The pointer and capacity the C ABI gets for an optional output: NULL and
/// 0 when it is not wanted.
fn out_ptr<T: jvm::Element>(pinned: &Option<Critical<'_, T>>) -> (*mut T, usize) {
    match pinned {
        Some(c) => (c.mut_ptr(), c.len()),
        None => (ptr::null_mut(), 0),
    }
}

fn pin_out<'e, T: jvm::Element>(env: &'e Env, array: &Option<Array<T>>) -> Res<Option<Critical<'e, T>>> {
    array.as_ref().map(|a| env.critical(a, Access::Write)).transpose()
}

/// Declares the JNI version the glue uses; without it the VM assumes 1.1.
#[no_mangle]
pub extern "system" fn JNI_OnLoad(_vm: *mut JavaVM, _reserved: *mut c_void) -> jint {
    jvm::VERSION
}

/// `static native long nLoad(byte[] blob)`: the model handle, 0 on failure.
#[no_mangle]
pub extern "system" fn Java_dev_microvit_Model_nLoad(env: Env, _: jclass, blob: jbyteArray) -> jlong {
    entry(env, 0, |env| {
        let Some(array) = env.array::<u8>(blob) else {
            return Err(Failure::glue(Status::NullArgument, "the model bytes are null".into()));
        };
        let pinned = env.critical(&array, Access::Read)?;
        let mut out: *mut Model = ptr::null_mut();
        // SAFETY: the pinned array has `len` readable bytes; `out` is
        // writable. The C ABI copies the bytes.
        check(unsafe { microvit::microvit_model_load(pinned.ptr(), pinned.len(), &mut out) })?;
        Ok(out as usize as jlong)
    })
}

/// `static native long nLoadFile(byte[] pathUtf8)`: the path's UTF-8 bytes
/// (no NUL), as Java's `String.getBytes(UTF_8)` makes them.
#[no_mangle]
pub extern "system" fn Java_dev_microvit_Model_nLoadFile(env: Env, _: jclass, path: jbyteArray) -> jlong {
    entry(env, 0, |env| {
        let Some(array) = env.array::<u8>(path) else {
            return Err(Failure::glue(Status::NullArgument, "the path is null".into()));
        };
        let bytes = {
            let pinned = env.critical(&array, Access::Read)?;
            let mut bytes = vec![0u8; pinned.len()];
            // SAFETY: the pinned array holds `len` bytes; `bytes` is
            // Rust memory of the same length.
            unsafe { ptr::copy_nonoverlapping(pinned.ptr(), bytes.as_mut_ptr(), bytes.len()) };
            bytes
        };
        let Ok(path) = CString::new(bytes) else {
            return Err(Failure::invalid("the path contains a NUL character".into()));
        };
        let mut out: *mut Model = ptr::null_mut();
        // SAFETY: `path` is NUL-terminated; `out` is writable.
        check(unsafe { microvit::microvit_model_load_file(path.as_ptr(), &mut out) })?;
        Ok(out as usize as jlong)
    })
}

/// `static native void nFree(long handle)`: the Java object calls it once,
/// from `close()`, with no call in flight (its lock).
#[no_mangle]
pub extern "system" fn Java_dev_microvit_Model_nFree(env: Env, _: jclass, handle: jlong) {
    entry(env, (), |_| {
        // SAFETY: `handle` is 0 or a model from nLoad/nLoadFile, freed
        // only here, once: Model.close() clears it under the write lock,
        // which waits for the calls using it.
        unsafe { microvit::microvit_model_free(model(handle).cast_mut()) };
        Ok(())
    })
}

/// `static native boolean nDescribe(long handle, long[] out)`: image side,
/// patch side, pixels, classes, tokens, dim, heads, encoding, parameters,
/// backend.
#[no_mangle]
pub extern "system" fn Java_dev_microvit_Model_nDescribe(
    env: Env,
    _: jclass,
    handle: jlong,
    out: jlongArray,
) -> jboolean {
    entry(env, false, |env| {
        let mut shape = MaybeUninit::<Shape>::uninit();
        // SAFETY: `handle` is a live model (the Java object's read lock);
        // `shape` is writable.
        check(unsafe { microvit::microvit_model_shape(model(handle), shape.as_mut_ptr()) })?;
        // SAFETY: filled in by the call, which succeeded.
        let shape = unsafe { shape.assume_init() };
        let mut backend = Backend::Auto;
        // SAFETY: as above; `backend` is writable.
        check(unsafe { microvit::microvit_model_backend(model(handle), &mut backend) })?;
        let values = [
            i64::from(shape.image_side),
            i64::from(shape.patch_side),
            i64::from(shape.pixels),
            i64::from(shape.classes),
            i64::from(shape.tokens),
            i64::from(shape.dim),
            i64::from(shape.heads),
            shape.encoding as i64,
            i64::try_from(shape.parameter_count).unwrap_or(i64::MAX),
            backend as i64,
        ];
        let Some(out) = output::<i64>(env, out) else {
            return Err(Failure::glue(Status::NullArgument, "the shape array is null".into()));
        };
        if out.len() < values.len() {
            return Err(Failure::glue(Status::BufferTooSmall, format!("the shape array needs {}", values.len())));
        }
        env.critical(&out, Access::Write)?.write(&values);
        Ok(true)
    })
}

/// `static native int nClassify(long handle, byte[] pixels, ByteBuffer
/// direct, int offset, int length, float[] logits, float[] probs)`: the
/// class, -1 on failure. `logits` and `probs` may be null.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // The Java signature's.
pub extern "system" fn Java_dev_microvit_Model_nClassify(
    env: Env,
    _: jclass,
    handle: jlong,
    pixels: jbyteArray,
    direct: jobject,
    offset: jint,
    length: jint,
    logits: jfloatArray,
    probs: jfloatArray,
) -> jint {
    entry(env, -1, |env| {
        // SAFETY: `handle` is a live model (the Java object's read lock);
        // `data` has `len` readable bytes, each output its capacity in
        // writable floats (pinned arrays) or is NULL; NULL workspace: this
        // thread's cached one.
        one_image(
            env,
            pixels,
            direct,
            offset,
            length,
            logits,
            probs,
            |data, len, class, (l, l_cap), (p, p_cap)| unsafe {
                microvit::microvit_classify(model(handle), ptr::null_mut(), data, len, class, l, l_cap, p, p_cap)
            },
        )
    })
}

/// `static native int nAttention(long handle, byte[] pixels, ByteBuffer
/// direct, int offset, int length, float[] logits, float[] attention)`: the
/// class, -1 on failure; `attention` gets heads × tokens floats.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // The Java signature's.
pub extern "system" fn Java_dev_microvit_Model_nAttention(
    env: Env,
    _: jclass,
    handle: jlong,
    pixels: jbyteArray,
    direct: jobject,
    offset: jint,
    length: jint,
    logits: jfloatArray,
    attention: jfloatArray,
) -> jint {
    entry(env, -1, |env| {
        // SAFETY: as in nClassify; the attention output is NULL
        // (NULL_ARGUMENT) or has its capacity in writable floats.
        one_image(
            env,
            pixels,
            direct,
            offset,
            length,
            logits,
            attention,
            |data, len, class, (l, l_cap), (a, a_cap)| unsafe {
                microvit::microvit_classify_attention(
                    model(handle),
                    ptr::null_mut(),
                    data,
                    len,
                    class,
                    l,
                    l_cap,
                    a,
                    a_cap,
                )
            },
        )
    })
}

/// What nClassify and nAttention share: the image (an array or a direct
/// buffer; small ones copied, others pinned) and two optional float arrays
/// pinned for writing, handed to `call` as pointers and capacities while
/// pinned; the class it writes, or the failure its status names.
#[allow(clippy::too_many_arguments)] // The Java signatures'.
fn one_image(
    env: &mut Env,
    pixels: jbyteArray,
    direct: jobject,
    offset: jint,
    length: jint,
    first: jfloatArray,
    second: jfloatArray,
    call: impl FnOnce(*const u8, usize, &mut u32, (*mut f32, usize), (*mut f32, usize)) -> microvit::Status,
) -> Res<jint> {
    let input = Input::new(env, pixels, direct, offset, length, "pixels")?;
    let (first, second) = (output::<f32>(env, first), output::<f32>(env, second));
    let mut small = [MaybeUninit::<u8>::uninit(); SMALL];
    let copied = input.copy_small(env, &mut small)?;
    let env: &Env = env;
    let (data, _pinned) = input.pin(env, copied.then_some(&small))?;
    let (first, second) = (pin_out(env, &first)?, pin_out(env, &second)?);
    let mut class = 0u32;
    check(call(data, input.len, &mut class, out_ptr(&first), out_ptr(&second)))?;
    Ok(class as jint)
}

/// `static native boolean nClassifyBatch(long handle, int count, byte[]
/// pixels, ByteBuffer direct, int offset, int length, int[] classes,
/// float[] logits, float[] probs)`: false on failure. Outputs may be null.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // The Java signature's.
pub extern "system" fn Java_dev_microvit_Model_nClassifyBatch(
    env: Env,
    _: jclass,
    handle: jlong,
    images: jint,
    pixels: jbyteArray,
    direct: jobject,
    offset: jint,
    length: jint,
    classes: jintArray,
    logits: jfloatArray,
    probs: jfloatArray,
) -> jboolean {
    entry(env, false, |env| {
        let images = count(images, "the image count")?;
        let input = Input::new(env, pixels, direct, offset, length, "pixels")?;
        let classes = output::<u32>(env, classes);
        let (logits, probs) = (output::<f32>(env, logits), output::<f32>(env, probs));
        let mut small = [MaybeUninit::<u8>::uninit(); SMALL];
        let copied = input.copy_small(env, &mut small)?;
        let env: &Env = env;
        let (data, _pinned) = input.pin(env, copied.then_some(&small))?;
        let classes = pin_out(env, &classes)?;
        let (logits, probs) = (pin_out(env, &logits)?, pin_out(env, &probs)?);
        let ((c, c_cap), (l, l_cap), (p, p_cap)) = (out_ptr(&classes), out_ptr(&logits), out_ptr(&probs));
        // SAFETY: as in nClassify; `c` is NULL or has `c_cap` writable
        // u32 (a Java int[]: same size and alignment).
        check(unsafe {
            microvit::microvit_classify_batch(
                model(handle),
                ptr::null_mut(),
                images,
                data,
                input.len,
                c,
                c_cap,
                l,
                l_cap,
                p,
                p_cap,
            )
        })?;
        Ok(true)
    })
}

/// `static native int nClassifyImage(long handle, byte[] pixels, ByteBuffer
/// direct, int offset, int length, int width, int height, int stride, int
/// format, int polarity, float[] logits, byte[] input, int[] digit)`: the
/// class, -1 on failure (NO_DIGIT included). `digit` (6 ints: polarity, x,
/// y, width, height, contrast), `logits` and `input` may be null.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // The Java signature's.
pub extern "system" fn Java_dev_microvit_Model_nClassifyImage(
    env: Env,
    _: jclass,
    handle: jlong,
    pixels: jbyteArray,
    direct: jobject,
    offset: jint,
    length: jint,
    width: jint,
    height: jint,
    stride: jint,
    format: jint,
    polarity: jint,
    logits: jfloatArray,
    input_out: jbyteArray,
    digit_out: jintArray,
) -> jint {
    entry(env, -1, |env| {
        let (width, height) = (count(width, "the width")?, count(height, "the height")?);
        let stride = count(stride, "the stride")?;
        let input = Input::new(env, pixels, direct, offset, length, "pixels")?;
        let logits = output::<f32>(env, logits);
        let input_out = output::<u8>(env, input_out);
        let digit_out = output::<u32>(env, digit_out);
        if digit_out.as_ref().is_some_and(|d| d.len() < 6) {
            return Err(Failure::glue(Status::BufferTooSmall, "the digit array needs 6 ints".into()));
        }
        let mut small = [MaybeUninit::<u8>::uninit(); SMALL];
        let copied = input.copy_small(env, &mut small)?;
        let env: &Env = env;
        let (data, _pinned) = input.pin(env, copied.then_some(&small))?;
        let (logits, input_out) = (pin_out(env, &logits)?, pin_out(env, &input_out)?);
        let ((l, l_cap), (i, i_cap)) = (out_ptr(&logits), out_ptr(&input_out));
        let image = Image {
            pixels: data,
            len: input.len,
            // Above u32::MAX is above the C ABI's 8192 limit too.
            width: u32::try_from(width).unwrap_or(u32::MAX),
            height: u32::try_from(height).unwrap_or(u32::MAX),
            stride,
            format: PixelFormatArg(format),
        };
        let mut class = 0u32;
        let mut digit = MaybeUninit::<Digit>::uninit();
        // SAFETY: `image` describes `input.len` readable bytes; outputs
        // as in nClassify, `i` NULL or `i_cap` writable bytes, `digit`
        // writable; the C ABI checks the enums' values.
        check(unsafe {
            microvit::microvit_classify_image(
                model(handle),
                ptr::null_mut(),
                &image,
                PolarityArg(polarity),
                &mut class,
                l,
                l_cap,
                ptr::null_mut(),
                0,
                i,
                i_cap,
                digit.as_mut_ptr(),
            )
        })?;
        // SAFETY: written by the call, which succeeded.
        let digit = unsafe { digit.assume_init() };
        if let Some(out) = &digit_out {
            let values = [digit.polarity as u32, digit.x, digit.y, digit.width, digit.height, digit.contrast];
            env.critical(out, Access::Write)?.write(&values);
        }
        Ok(class as jint)
    })
}

/// `static native long nTimeNative(long handle, byte[] images, int count,
/// boolean batch)`: the nanoseconds `microvit_classify` takes on each of the
/// `count` images (one call each, the class only, this thread's cached
/// workspace: what `Model.classify(byte[])` calls), or one
/// `microvit_classify_batch` on them all; -1 on failure. The engine's own
/// time for the binding's overhead measurement (`Overhead.java`).
#[no_mangle]
pub extern "system" fn Java_dev_microvit_Model_nTimeNative(
    env: Env,
    _: jclass,
    handle: jlong,
    images: jbyteArray,
    count: jint,
    batch: jboolean,
) -> jlong {
    entry(env, -1, |env| {
        let n = crate::count(count, "the image count")?;
        let Some(array) = env.array::<u8>(images) else {
            return Err(Failure::glue(Status::NullArgument, "the images are null".into()));
        };
        if n == 0 || array.len() % n != 0 {
            return Err(Failure::invalid(format!("{} bytes are not {n} images", array.len())));
        }
        let per_image = array.len() / n;
        let mut classes = vec![0u32; n];
        let env: &Env = env;
        let pinned = env.critical(&array, Access::Read)?;
        let start = std::time::Instant::now();
        if batch {
            // SAFETY: a live model (the read lock); `pinned` has its
            // length in readable bytes, `classes` `n` writable u32.
            check(unsafe {
                microvit::microvit_classify_batch(
                    model(handle),
                    ptr::null_mut(),
                    n,
                    pinned.ptr(),
                    pinned.len(),
                    classes.as_mut_ptr(),
                    n,
                    ptr::null_mut(),
                    0,
                    ptr::null_mut(),
                    0,
                )
            })?;
        } else {
            for (i, class) in classes.iter_mut().enumerate() {
                // SAFETY: image i's `per_image` bytes are inside the
                // pinned array; `class` is writable.
                check(unsafe {
                    microvit::microvit_classify(
                        model(handle),
                        ptr::null_mut(),
                        pinned.ptr().wrapping_add(i * per_image),
                        per_image,
                        class,
                        ptr::null_mut(),
                        0,
                        ptr::null_mut(),
                        0,
                    )
                })?;
            }
        }
        let elapsed = start.elapsed();
        std::hint::black_box(&classes);
        Ok(i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
    })
}

/// `static native boolean nSetBackend(int backend)`: false on failure.
#[no_mangle]
pub extern "system" fn Java_dev_microvit_Model_nSetBackend(env: Env, _: jclass, backend: jint) -> jboolean {
    entry(env, false, |_| check(microvit::microvit_set_backend(BackendArg(backend))).map(|()| true))
}

/// `static native int nGetBackend()`.
#[no_mangle]
pub extern "system" fn Java_dev_microvit_Model_nGetBackend(env: Env, _: jclass) -> jint {
    entry(env, -1, |_| Ok(microvit::microvit_get_backend() as jint))
}

/// `static native boolean nBackendAvailable(int backend)`.
#[no_mangle]
pub extern "system" fn Java_dev_microvit_Model_nBackendAvailable(env: Env, _: jclass, backend: jint) -> jboolean {
    entry(env, false, |_| Ok(microvit::microvit_backend_available(BackendArg(backend))))
}

/// A static C string of the C ABI as a Java `byte[]` (UTF-8).
///
/// # Safety
/// `s` is a NUL-terminated string that outlives the call: what the C ABI's
/// name and version functions return (static, never NULL).
unsafe fn c_string(env: &mut Env, s: *const std::ffi::c_char) -> jbyteArray {
    // SAFETY: by this function's contract.
    let s = unsafe { CStr::from_ptr(s) };
    env.byte_array(s.to_bytes())
}

/// `static native byte[] nBackendName(int backend)`.
#[no_mangle]
pub extern "system" fn Java_dev_microvit_Model_nBackendName(env: Env, _: jclass, backend: jint) -> jbyteArray {
    entry(env, ptr::null_mut(), |env| {
        // SAFETY: a static name, never NULL.
        Ok(unsafe { c_string(env, microvit::microvit_backend_name(BackendArg(backend))) })
    })
}

/// `static native byte[] nVersion()`.
#[no_mangle]
pub extern "system" fn Java_dev_microvit_Model_nVersion(env: Env, _: jclass) -> jbyteArray {
    entry(env, ptr::null_mut(), |env| {
        // SAFETY: a static string, never NULL.
        Ok(unsafe { c_string(env, microvit::microvit_version()) })
    })
}

/// `static native int nVersionNumber()`.
#[no_mangle]
pub extern "system" fn Java_dev_microvit_Model_nVersionNumber(env: Env, _: jclass) -> jint {
    entry(env, -1, |_| Ok(microvit::microvit_version_number() as jint))
}

/// `static native int nLastStatus()`: the status of this thread's last
/// failed call.
#[no_mangle]
pub extern "system" fn Java_dev_microvit_Model_nLastStatus(env: Env, _: jclass) -> jint {
    entry(env, Status::Panic as jint, |_| Ok(LAST_STATUS.with(Cell::get)))
}

/// `static native byte[] nLastMessage()`: the message of this thread's last
/// failed call, UTF-8: the glue's if the glue refused it, else the C ABI's.
#[no_mangle]
pub extern "system" fn Java_dev_microvit_Model_nLastMessage(env: Env, _: jclass) -> jbyteArray {
    entry(env, ptr::null_mut(), |env| {
        if let Some(message) = LAST_MESSAGE.with(|m| m.borrow_mut().take()) {
            return Ok(env.byte_array(message.as_bytes()));
        }
        let mut buf = [0u8; MICROVIT_ERROR_MESSAGE_CAPACITY];
        // SAFETY: `buf` has `buf.len()` writable bytes.
        let len = unsafe { microvit::microvit_last_error_message(buf.as_mut_ptr().cast(), buf.len()) };
        Ok(env.byte_array(&buf[..len.min(buf.len() - 1)]))
    })
}

/// `static native void nReleaseThreadCache()`.
#[no_mangle]
pub extern "system" fn Java_dev_microvit_Model_nReleaseThreadCache(env: Env, _: jclass) {
    entry(env, (), |_| {
        microvit::microvit_thread_cache_release();
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last() -> (i32, Option<String>) {
        (LAST_STATUS.with(Cell::get), LAST_MESSAGE.with(|m| m.borrow_mut().take()))
    }

    fn env() -> Env {
        // SAFETY: the bodies below make no JNI call.
        unsafe { Env::detached() }
    }

    #[test]
    fn a_panic_becomes_the_panic_status_with_its_message() {
        let got = entry(env(), -1, |_| -> Res<jint> { panic!("boom {}", 42) });
        assert_eq!(got, -1);
        let (status, message) = last();
        assert_eq!(status, Status::Panic as i32);
        assert!(message.unwrap().contains("boom 42"));
        // A &str payload too.
        assert!(!entry(env(), false, |_| -> Res<jboolean> { std::panic::panic_any("static") }));
        assert!(last().1.unwrap().contains("static"));
    }

    #[test]
    fn glue_failures_keep_their_message_and_c_failures_defer_to_the_c_abi() {
        assert_eq!(entry(env(), 0, |_| -> Res<jlong> { Err(Failure::invalid("bad offset".into())) }), 0);
        assert_eq!(last(), (Status::InvalidArgument as i32, Some("bad offset".into())));
        // A C ABI failure leaves the message to microvit_last_error_message.
        let failed = entry(env(), -1, |_| {
            // SAFETY: NULL data with length 0 and a writable out-pointer.
            check(unsafe { microvit::microvit_model_load(ptr::null(), 0, &mut ptr::null_mut()) })?;
            Ok(0)
        });
        assert_eq!(failed, -1);
        assert_eq!(last(), (Status::NullArgument as i32, None));
        assert_eq!(entry(env(), 7, |_| Ok(3)), 3);
    }

    #[test]
    fn negative_counts_are_refused() {
        assert_eq!(count(5, "n").ok(), Some(5));
        let e = part(-1, "pixels", "offset").err().unwrap();
        assert_eq!(e.status, Status::InvalidArgument);
        assert_eq!(e.message.as_deref(), Some("pixels: the offset is negative (-1)"));
    }
}
