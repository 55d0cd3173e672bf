//! microvit from Python: a pyo3 extension module over the Rust engine and
//! converter.
//!
//! Images come in as numpy `uint8` arrays and are read in place when they
//! are C-contiguous (else copied); logits go out as `float32` arrays, new
//! ones or the caller's (`out=`). Batch calls, `bench` and `convert` run with
//! the GIL released, under rust-numpy's checked borrows; one-image calls
//! hold the GIL throughout and read (and write `out=`) without them, for
//! speed: [`Unchecked`] says why that is sound. Every failure is a
//! `microvit.Error` (a `ValueError`) carrying the engine's own message; an
//! image with no digit in it is `microvit.NoDigitError`, a subclass.

use std::borrow::Cow;
use std::fmt::Display;
use std::ops::{Deref, DerefMut};
use std::os::raw::c_int;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, TryLockError};
use std::time::Instant;

use microvit_converter::{ConvertOptions, Encoding};
use microvit_engine::preprocess::{PixelFormat, Polarity, SourceImage};
use microvit_engine::{argmax, Backend, InferError, Model as Engine, Workspace};
use numpy::ndarray::Array2;
use numpy::npyffi::{self, NPY_TYPES};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict};

create_exception!(
    microvit,
    Error,
    PyValueError,
    "A microvit failure: a bad blob, image, array, backend or conversion. The message is the engine's."
);
create_exception!(
    microvit,
    NoDigitError,
    Error,
    "classify_image found no digit in the image (blank, noise, ink everywhere, a speck): a result, not a guess."
);

fn error(e: impl Display) -> PyErr {
    Error::new_err(e.to_string())
}

fn infer_error(e: InferError) -> PyErr {
    match e {
        InferError::NoDigit(why) => NoDigitError::new_err(why.describe()),
        e => error(e),
    }
}

/// A numpy array of `uint8`, checked the cheap way: a type check and the
/// dtype's number, no dtype object made and no borrow registered.
fn u8_array<'a, 'py>(obj: &'a Bound<'py, PyAny>, what: &str) -> PyResult<&'a Bound<'py, PyUntypedArray>> {
    let Ok(array) = obj.cast::<PyUntypedArray>() else {
        return Err(error(format!("{what} must be a numpy uint8 array, not {}", obj.get_type().name()?)));
    };
    let dtype = array.dtype();
    if dtype.num() != NPY_TYPES::NPY_UBYTE as c_int {
        return Err(error(format!(
            "{what} must be a numpy uint8 array, this one has dtype {dtype} (convert with .astype(np.uint8))"
        )));
    }
    Ok(array)
}

/// A `uint8` numpy array's pixels under a rust-numpy borrow (checked: it
/// may be held with the GIL released), in place when C-contiguous, else
/// copied; with its shape.
struct Pixels<'py> {
    // Keeps the numpy borrow (and the array) alive while `data` is in use.
    array: numpy::PyReadonlyArrayDyn<'py, u8>,
    shape: Vec<usize>,
}

impl<'py> Pixels<'py> {
    fn of(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Pixels<'py>> {
        u8_array(obj, what)?;
        let array = obj.cast::<PyArrayDyn<u8>>().map_err(|e| error(format!("{what}: {e}")))?;
        let array = array.try_readonly().map_err(|e| error(format!("{what}: {e}")))?;
        let shape = array.shape().to_vec();
        Ok(Pixels { array, shape })
    }

    /// The pixels, row-major: borrowed from numpy when it is C-contiguous.
    fn data(&self) -> Cow<'_, [u8]> {
        // as_slice also accepts Fortran order, whose bytes are column-major.
        match self.array.as_slice() {
            Ok(slice) if self.array.is_c_contiguous() => Cow::Borrowed(slice),
            _ => Cow::Owned(self.array.as_array().iter().copied().collect()),
        }
    }
}

/// How many calls of this module hold a rust-numpy borrow with the GIL
/// released (batches, `bench`): while one does, one-image calls take the
/// checked borrows too, so they still see the conflict (an `out=` array of a
/// running batch handed to `classify` as an image, say) and raise it.
static DETACHED_BORROWS: AtomicUsize = AtomicUsize::new(0);

/// Counts a call in [`DETACHED_BORROWS`] from before it releases the GIL
/// until after it has taken it back and dropped its borrows.
struct Detached;

impl Detached {
    /// Made while holding the GIL, before `py.detach`.
    fn start(_py: Python<'_>) -> Detached {
        DETACHED_BORROWS.fetch_add(1, Ordering::AcqRel);
        Detached
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        DETACHED_BORROWS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Access to numpy memory without rust-numpy's borrow tracking, which costs
/// a lookup in a process-wide table keyed by the array's base to take a
/// borrow and another to release it: with the dtype equivalence test and the
/// shape copied to a `Vec`, about 0.15 µs of a one-image call, half of what
/// the binding added to the engine (bench_overhead.py, `predict` before and
/// after).
///
/// Why it is sound to read an array's buffer (or write an `out=` array's)
/// directly, given a `Python<'py>` token:
/// - There is a GIL: the module is built for the stable ABI (abi3), which
///   free-threaded CPython does not load, and pyo3 refuses subinterpreters.
/// - The GIL is held from the checks to the last access and never released
///   in between, and no Python code runs meanwhile (the engine is plain
///   Rust: no callbacks, no reference dropped, no allocation through
///   Python). So nothing that needs the GIL can touch the buffer while we
///   do: no Python code (no `a[...] = x`, no `a.resize()` moving the
///   buffer), no numpy function in its GIL-holding part, no other extension
///   holding the GIL. This is how numpy's own C functions access arrays.
/// - The array object is kept alive by the caller's reference for the whole
///   call, and it keeps its buffer (or the base that owns it) alive.
/// - What could run at the same time is only code that touches the buffer
///   with the GIL released. Of this module's own calls, those hold checked
///   rust-numpy borrows and are counted in [`DETACHED_BORROWS`]; while the
///   count is non-zero this type is not handed out and the checked borrow
///   runs instead (and raises on a conflict). Any other such code (numpy's
///   inner loops with the GIL released, another extension) must own the
///   array for that time already: Python code and numpy itself could read
///   or write it just as we do, without any check. This is rust-numpy's own
///   rule: unchecked code is the responsibility of its author, and its
///   checks guard safe Rust against other checked Rust only.
/// - The pointer is valid for the length: the array is checked to be
///   C-contiguous with the expected shape and dtype (so the bytes are
///   exactly `len` elements, row-major; `u8` needs no alignment and `f32`
///   arrays numpy allocates or views are checked aligned), and non-empty, so
///   the data pointer is not dangling.
/// - No two slices made here overlap in time: an input slice ends before
///   an `out=` slice is made, so even an `out=` that is a view of the input
///   is never both read and written through live references.
#[derive(Clone, Copy)]
struct Unchecked<'py>(Python<'py>);

#[allow(unsafe_code)]
impl<'py> Unchecked<'py> {
    /// None while a call of this module holds a borrow with the GIL released.
    fn get(py: Python<'py>) -> Option<Unchecked<'py>> {
        (DETACHED_BORROWS.load(Ordering::Acquire) == 0).then_some(Unchecked(py))
    }

    /// Runs `run` on a C-contiguous `uint8` array's `len` pixels in place.
    /// `run` must not release the GIL or run Python code (it gets no token).
    fn read<R>(self, array: &Bound<'py, PyUntypedArray>, len: usize, run: impl FnOnce(&[u8]) -> R) -> R {
        debug_assert!(array.is_c_contiguous() && array.len() == len && len > 0);
        // SAFETY: a uint8 ndarray (the caller checked the type and the
        // dtype's number, as rust-numpy's own cast does with an equivalence
        // test that for uint8 means the same), so the typed view is the
        // same object.
        let typed = unsafe { array.cast_unchecked::<PyArrayDyn<u8>>() };
        // SAFETY: C-contiguous with `len` u8 elements (checked by the
        // caller), so `data` points to `len` readable bytes; no write can
        // happen while the slice lives, as this type's documentation argues
        // (GIL held, no Python code run, no detached borrow of this module).
        let pixels = unsafe { std::slice::from_raw_parts(typed.data().cast_const(), len) };
        run(pixels)
    }

    /// Copies `values` into a C-contiguous, aligned, writeable `float32`
    /// array of exactly `values.len()` elements (the caller checked).
    fn write(self, array: &Bound<'py, PyUntypedArray>, values: &[f32]) {
        debug_assert!(array.is_c_contiguous() && array.len() == values.len() && !values.is_empty());
        // SAFETY: a float32 ndarray (type and dtype number checked by the
        // caller), so the typed view is the same object.
        let typed = unsafe { array.cast_unchecked::<PyArrayDyn<f32>>() };
        // SAFETY: C-contiguous, aligned and writeable with values.len()
        // f32 elements (checked by the caller): `data` points to that many
        // writable floats; nothing else reads or writes them while the
        // slice lives (this type's documentation), and no input slice is
        // alive any more.
        let out = unsafe { std::slice::from_raw_parts_mut(typed.data(), values.len()) };
        out.copy_from_slice(values);
    }

    /// A new float32 `[values.len()]` array holding `values`, or one of
    /// `spares` refilled when nothing but `spares` refers to it any more: no
    /// array made and freed per call (numpy's allocation and freeing of the
    /// object, its dimensions and its data were ~0.15 µs, most of what a
    /// logits array added to a call). Nobody can tell: the array is
    /// unreachable until we return it, and it is reused only with the shape,
    /// dtype and flags of a new one.
    fn logits_array(self, spares: &mut Spares, values: &[f32]) -> Bound<'py, PyAny> {
        let py = self.0;
        for spare in spares.iter().flatten() {
            let array = spare.bind(py);
            if self.unshared_float32(array, values.len()) {
                self.write(array, values);
                return array.clone().into_any();
            }
        }
        let array = PyArray1::from_slice(py, values).into_any();
        spares.rotate_right(1);
        spares[0] = Some(array.cast::<PyUntypedArray>().expect("a new ndarray").clone().unbind());
        array
    }

    /// Whether `array`, one of the spares, is referred to by nothing else
    /// (no reference, no weak reference, no view, no buffer export: those
    /// hold a reference) and is still a plain, writeable, aligned,
    /// C-contiguous float32 array of `len` elements in native byte order,
    /// owning its data (the caller may have changed its shape, dtype or
    /// flags in place before letting go of it).
    fn unshared_float32(self, array: &Bound<'py, PyUntypedArray>, len: usize) -> bool {
        let ptr = array.as_array_ptr();
        // SAFETY: `array` is a live object (the spare holds a reference)
        // and the GIL is held, so its reference count and its ndarray
        // fields can be read and nothing changes them meanwhile.
        let (refs, exact, fields) = unsafe {
            (
                pyo3::ffi::Py_REFCNT(array.as_ptr()),
                npyffi::PyArray_CheckExact(self.0, array.as_ptr()) != 0,
                &*npyffi::_PyArray_GET_ITEM_DATA(ptr),
            )
        };
        let need = npyffi::NPY_ARRAY_C_CONTIGUOUS
            | npyffi::NPY_ARRAY_ALIGNED
            | npyffi::NPY_ARRAY_WRITEABLE
            | npyffi::NPY_ARRAY_OWNDATA;
        let dtype = array.dtype();
        refs == 1
            && exact
            && fields.weakreflist.is_null()
            && fields.base.is_null()
            && fields.flags & need == need
            && array.shape() == [len]
            && array.strides() == [std::mem::size_of::<f32>() as isize]
            && dtype.num() == NPY_TYPES::NPY_FLOAT as c_int
            && dtype.is_native_byteorder() != Some(false)
    }
}

/// The numpy array flags of `array`.
#[allow(unsafe_code)]
fn flags(array: &Bound<'_, PyUntypedArray>) -> c_int {
    // SAFETY: `array` is a live ndarray (type-checked when it was cast) and
    // the GIL is held: its struct's fields can be read.
    unsafe { (*npyffi::_PyArray_GET_ITEM_DATA(array.as_array_ptr())).flags }
}

/// Bytes given as `bytes`, `bytearray` or a path (`str` or `os.PathLike`).
fn bytes_or_file<'a>(obj: &'a Bound<'_, PyAny>, what: &str) -> PyResult<(Cow<'a, [u8]>, Option<PathBuf>)> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok((Cow::Borrowed(b.as_bytes()), None));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok((Cow::Owned(b.to_vec()), None));
    }
    if let Ok(path) = obj.extract::<PathBuf>() {
        let bytes = std::fs::read(&path).map_err(|e| error(format!("{}: {e}", path.display())))?;
        return Ok((Cow::Owned(bytes), Some(path)));
    }
    Err(error(format!("{what} must be bytes, bytearray or a path, not {}", obj.get_type().name()?)))
}

/// A Micro-ViT blob loaded into the Rust engine. Share it between threads
/// freely; batch calls release the GIL.
#[pyclass(module = "microvit", name = "Model", frozen)]
struct Model {
    engine: RwLock<Engine<'static>>,
    /// The workspace calls use, and the logits arrays one-image `classify`
    /// may return again; a call that finds it busy (another thread's batch,
    /// GIL released) makes its own workspace rather than wait.
    ws: Mutex<Reused>,
    side: usize,
    pixels: usize,
    classes: usize,
}

fn lock<T>(r: Result<T, PoisonError<T>>) -> T {
    // A panic inside the engine is a bug; the data it guards (a workspace,
    // overwritten by every inference) stays usable.
    r.unwrap_or_else(PoisonError::into_inner)
}

impl Model {
    fn engine(&self) -> std::sync::RwLockReadGuard<'_, Engine<'static>> {
        lock(self.engine.read())
    }

    /// The model's own workspace, or a new one while another thread (in a
    /// batch, GIL released) uses it: never waits while holding the GIL.
    fn workspace(&self, engine: &Engine<'static>) -> Scratch<'_> {
        match self.ws.try_lock() {
            Ok(reused) => Scratch::Shared(reused),
            Err(TryLockError::Poisoned(e)) => Scratch::Shared(e.into_inner()),
            Err(TryLockError::WouldBlock) => Scratch::Own(Box::new(engine.workspace())),
        }
    }

    /// Checks a batch's shape: `[N, side, side]` or `[N, side²]`.
    fn batch_count(&self, shape: &[usize]) -> PyResult<usize> {
        let s = self.side;
        match shape {
            [n, h, w] if *h == s && *w == s => Ok(*n),
            [n, p] if *p == self.pixels => Ok(*n),
            _ => Err(error(format!("a batch must have shape [N, {s}, {s}] or [N, {}], not {shape:?}", self.pixels))),
        }
    }

    /// Checks one image's shape: `[side, side]` or `[side²]`.
    fn check_single(&self, shape: &[usize]) -> PyResult<()> {
        let s = self.side;
        match shape {
            [h, w] if *h == s && *w == s => Ok(()),
            [p] if *p == self.pixels => Ok(()),
            _ => Err(error(format!("an image must have shape [{s}, {s}] or [{}], not {shape:?}", self.pixels))),
        }
    }

    /// Checks one image (`uint8 [side, side]` or `[side²]`, any layout) and
    /// runs `run` on its pixels, row-major: read in place under the GIL when
    /// C-contiguous (see [`Unchecked`]), else through a checked borrow and a
    /// copy. `run` must not release the GIL or run Python code.
    fn with_image<'py, R>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
        what: &str,
        run: impl FnOnce(&[u8]) -> R,
    ) -> PyResult<R> {
        let array = u8_array(image, what)?;
        self.check_single(array.shape())?;
        match Unchecked::get(py) {
            Some(unchecked) if array.is_c_contiguous() => Ok(unchecked.read(array, self.pixels, run)),
            _ => Ok(run(&Pixels::of(image, what)?.data())),
        }
    }

    /// Writes one image's logits into `out`, a C-contiguous, writeable
    /// float32 array of shape `[classes]`.
    fn write_out(&self, py: Python<'_>, out: &Bound<'_, PyAny>, logits: &[f32]) -> PyResult<()> {
        let wrong =
            || error(format!("out must be a C-contiguous, writeable float32 array of shape [{}]", self.classes));
        let array = out.cast::<PyUntypedArray>().map_err(|_| wrong())?;
        let dtype = array.dtype();
        let need = npyffi::NPY_ARRAY_C_CONTIGUOUS | npyffi::NPY_ARRAY_ALIGNED | npyffi::NPY_ARRAY_WRITEABLE;
        if dtype.num() != NPY_TYPES::NPY_FLOAT as c_int
            || dtype.is_native_byteorder() == Some(false)
            || array.shape() != [logits.len()]
            || flags(array) & need != need
        {
            return Err(wrong());
        }
        if logits.is_empty() {
            return Ok(());
        }
        match Unchecked::get(py) {
            Some(unchecked) => unchecked.write(array, logits),
            None => {
                let typed = out.cast::<PyArray1<f32>>().map_err(|_| wrong())?;
                let mut borrowed = typed.try_readwrite().map_err(|e| error(format!("out: {e}")))?;
                borrowed.as_slice_mut().map_err(|_| wrong())?.copy_from_slice(logits);
            }
        }
        Ok(())
    }

    /// Runs a batch with the GIL released: the classes and `[N, classes]` logits.
    fn batch<'py>(&self, py: Python<'py>, images: &[u8], n: usize) -> PyResult<BatchOut<'py>> {
        let classes = self.classes;
        let _detached = Detached::start(py);
        let logits = py.detach(|| -> Result<Vec<f32>, InferError> {
            let engine = self.engine();
            let mut ws = self.workspace(&engine);
            let mut logits = vec![0f32; n * classes];
            engine.infer_batch(images, &mut ws, &mut logits)?;
            Ok(logits)
        });
        let logits = logits.map_err(infer_error)?;
        let argmaxes: Vec<i64> = logits.chunks_exact(classes.max(1)).map(|l| argmax(l) as i64).collect();
        let logits = Array2::from_shape_vec((n, classes), logits).map_err(error)?;
        Ok((argmaxes.into_pyarray(py), logits.into_pyarray(py)))
    }
}

/// What calls reuse from one to the next: the model's workspace, and the
/// logits arrays one-image `classify` returned, for when the caller has let
/// go of them ([`Unchecked::logits_array`]).
struct Reused {
    ws: Workspace,
    spares: Spares,
}

/// The last two logits arrays `classify(image)` made or reused, newest
/// first: two, so that `cls, logits = m.classify(image)` in a loop, which
/// still holds the previous result during the call, reuses every other one.
type Spares = [Option<Py<PyUntypedArray>>; 2];

/// A workspace for one call: the model's, or one of the call's own.
enum Scratch<'a> {
    Shared(MutexGuard<'a, Reused>),
    Own(Box<Workspace>),
}

impl Scratch<'_> {
    /// The workspace and, when it is the model's, the spare logits arrays.
    fn parts(&mut self) -> (&mut Workspace, Option<&mut Spares>) {
        match self {
            Scratch::Shared(reused) => {
                let Reused { ws, spares } = &mut **reused;
                (ws, Some(spares))
            }
            Scratch::Own(ws) => (ws, None),
        }
    }
}

impl Deref for Scratch<'_> {
    type Target = Workspace;
    fn deref(&self) -> &Workspace {
        match self {
            Scratch::Shared(reused) => &reused.ws,
            Scratch::Own(ws) => ws,
        }
    }
}

impl DerefMut for Scratch<'_> {
    fn deref_mut(&mut self) -> &mut Workspace {
        match self {
            Scratch::Shared(reused) => &mut reused.ws,
            Scratch::Own(ws) => ws,
        }
    }
}

type BatchOut<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray2<f32>>);

fn parse_encoding(name: &str) -> PyResult<Encoding> {
    Encoding::ALL
        .into_iter()
        .find(|e| e.name() == name.trim().to_ascii_lowercase())
        .ok_or_else(|| error(format!("unknown encoding {name:?}; expected one of int8, f16, f32")))
}

fn parse_polarity(name: &str) -> PyResult<Polarity> {
    [Polarity::Auto, Polarity::DarkOnLight, Polarity::LightOnDark]
        .into_iter()
        .find(|p| p.name() == name.trim().to_ascii_lowercase())
        .ok_or_else(|| error(format!("unknown polarity {name:?}; expected auto, dark-on-light or light-on-dark")))
}

#[pymethods]
impl Model {
    /// Loads a blob (`.mvit`) from bytes, a bytearray or a path.
    #[new]
    fn new(path_or_bytes: &Bound<'_, PyAny>) -> PyResult<Model> {
        let (blob, path) = bytes_or_file(path_or_bytes, "a model")?;
        let engine = Engine::from_bytes(&blob).map_err(|e| match path {
            Some(path) => error(format!("{}: {e}", path.display())),
            None => error(e),
        })?;
        let shape = engine.shape();
        Ok(Model {
            ws: Mutex::new(Reused { ws: engine.workspace(), spares: [None, None] }),
            side: shape.image_side as usize,
            pixels: shape.pixels(),
            classes: shape.classes as usize,
            engine: RwLock::new(engine),
        })
    }

    /// `Model.load(path_or_bytes)`: the same as `Model(path_or_bytes)`.
    #[staticmethod]
    fn load(path_or_bytes: &Bound<'_, PyAny>) -> PyResult<Model> {
        Model::new(path_or_bytes)
    }

    /// "int8", "f16" or "f32".
    #[getter]
    fn encoding(&self) -> &'static str {
        self.engine().encoding().name()
    }

    /// The input side in pixels (28).
    #[getter]
    fn side(&self) -> usize {
        self.side
    }

    /// The input shape, `(side, side)`.
    #[getter]
    fn shape(&self) -> (usize, usize) {
        (self.side, self.side)
    }

    /// Pixels per image (784).
    #[getter]
    fn pixels(&self) -> usize {
        self.pixels
    }

    #[getter]
    fn classes(&self) -> usize {
        self.classes
    }

    #[getter]
    fn heads(&self) -> u32 {
        self.engine().shape().heads
    }

    /// Tokens per image: the CLS token and the patches.
    #[getter]
    fn tokens(&self) -> u32 {
        self.engine().shape().tokens()
    }

    #[getter]
    fn parameters(&self) -> usize {
        self.engine().shape().parameter_count()
    }

    /// The blob's size in bytes.
    #[getter]
    fn blob_size(&self) -> usize {
        self.engine().blob().len()
    }

    /// The kernels inference runs on: "scalar", "avx2", "avxvnni",
    /// "avx512vnni", "neon" or "dotprod".
    #[getter]
    fn backend(&self) -> &'static str {
        self.engine().backend().name()
    }

    /// Pins a backend by name ("auto" is the fastest this CPU has for the
    /// model's encoding). An encoding the backend has no kernel for runs
    /// scalar. Raises `microvit.Error` for an unknown or unavailable one.
    fn set_backend(&self, name: &str) -> PyResult<()> {
        let mut engine = lock(self.engine.write());
        if matches!(name.trim().to_ascii_lowercase().as_str(), "" | "auto") {
            engine.use_fastest_backend();
            return Ok(());
        }
        let backend = Backend::parse(name).map_err(error)?;
        engine.set_backend(backend).map_err(error)
    }

    /// One image (`uint8 [28, 28]` or `[784]`) → `(class, logits)`; a batch
    /// (`uint8 [N, 28, 28]` or `[N, 784]`) → `(classes int64 [N], logits
    /// float32 [N, classes])`, run with the GIL released. `out`, a
    /// C-contiguous float32 array of the logits' shape, receives them (and
    /// is returned): no array made per call.
    #[pyo3(signature = (images, out = None))]
    fn classify<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let shape = u8_array(images, "images")?.shape();
        if shape.len() == 3 || (shape.len() == 2 && shape != [self.side, self.side]) {
            return self.classify_batch(py, images, out)?.into_pyobject(py).map(Bound::into_any);
        }
        let engine = self.engine();
        let mut scratch = self.workspace(&engine);
        let ((ws, spares), engine) = (scratch.parts(), &*engine);
        let logits = self.with_image(py, images, "images", move |pixels| engine.infer(pixels, ws))?;
        let logits = logits.map_err(infer_error)?;
        let class = argmax(logits);
        match out {
            None => {
                let array = match (Unchecked::get(py), spares) {
                    (Some(unchecked), Some(spares)) => unchecked.logits_array(spares, logits),
                    _ => PyArray1::from_slice(py, logits).into_any(),
                };
                (class, array).into_pyobject(py).map(Bound::into_any)
            }
            Some(out) => {
                self.write_out(py, out, logits)?;
                (class, out).into_pyobject(py).map(Bound::into_any)
            }
        }
    }

    /// One image (`uint8 [28, 28]` or `[784]`) → its class alone: the
    /// cheapest call, no logits array made.
    fn predict(&self, py: Python<'_>, image: &Bound<'_, PyAny>) -> PyResult<usize> {
        let engine = self.engine();
        let mut ws = self.workspace(&engine);
        let (engine, ws) = (&*engine, &mut *ws);
        self.with_image(py, image, "image", move |pixels| engine.infer(pixels, ws).map(argmax))?.map_err(infer_error)
    }

    /// A batch (`uint8 [N, 28, 28]` or `[N, 784]`, N ≥ 0) → `(classes,
    /// logits)`, with the GIL released. `out`, a C-contiguous float32
    /// `[N, classes]` array, receives the logits (and is returned): no
    /// allocation for them, for callers that run batch after batch.
    #[pyo3(signature = (images, out = None))]
    fn classify_batch<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<BatchOut<'py>> {
        let pixels = Pixels::of(images, "images")?;
        let n = self.batch_count(&pixels.shape)?;
        let Some(out) = out else { return self.batch(py, &pixels.data(), n) };
        let _detached = Detached::start(py);
        let classes = self.classes;
        let wrong = || error(format!("out must be a C-contiguous float32 array of shape [{n}, {classes}]"));
        let array = out.cast::<PyArray2<f32>>().map_err(|_| wrong())?.clone();
        let argmaxes: Vec<i64> = {
            let mut logits = array.try_readwrite().map_err(|e| error(format!("out: {e}")))?;
            if logits.shape() != [n, classes] || !logits.is_c_contiguous() {
                return Err(wrong());
            }
            let logits = logits.as_slice_mut().map_err(|_| wrong())?;
            let data = pixels.data();
            py.detach(|| {
                let engine = self.engine();
                let mut ws = self.workspace(&engine);
                engine.infer_batch(&data, &mut ws, logits)
            })
            .map_err(infer_error)?;
            logits.chunks_exact(classes.max(1)).map(|l| argmax(l) as i64).collect()
        };
        Ok((argmaxes.into_pyarray(py), array))
    }

    /// One image → `(class, logits, attention)`: the CLS token's attention,
    /// float32 `[heads, tokens]` (token 0 is CLS, then the patches
    /// row-major; each row sums to 1).
    #[allow(clippy::type_complexity)]
    fn attention<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
    ) -> PyResult<(usize, Bound<'py, PyArray1<f32>>, Bound<'py, PyArray2<f32>>)> {
        let engine = self.engine();
        let shape = engine.shape();
        let (heads, tokens) = (shape.heads as usize, shape.tokens() as usize);
        let mut attention = vec![0f32; heads * tokens];
        let mut ws = self.workspace(&engine);
        let (engine, ws, rows) = (&*engine, &mut *ws, &mut attention);
        let logits =
            self.with_image(py, image, "image", move |pixels| engine.infer_with_attention(pixels, ws, rows))?;
        let logits = logits.map_err(infer_error)?;
        let attention = Array2::from_shape_vec((heads, tokens), attention).map_err(error)?;
        Ok((argmax(logits), PyArray1::from_slice(py, logits), attention.into_pyarray(py)))
    }

    /// A photo or drawing of a digit, any size: `uint8 [H, W]` (gray),
    /// `[H, W, 3]` (RGB) or `[H, W, 4]` (RGBA; `bgra=True` for BGRA),
    /// prepared MNIST-style by the engine (docs/PREPROCESSING.md) and
    /// classified. Returns a dict: class, logits, input (`uint8 [28, 28]`,
    /// what the model saw), box (x, y, width, height in image pixels),
    /// polarity, contrast. Raises `microvit.NoDigitError` when the image
    /// holds no digit.
    #[pyo3(signature = (image, polarity = "auto", bgra = false))]
    fn classify_image<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
        polarity: &str,
        bgra: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let polarity = parse_polarity(polarity)?;
        let pixels = Pixels::of(image, "image")?;
        let (height, width, format) = match pixels.shape[..] {
            [h, w] | [h, w, 1] => (h, w, PixelFormat::Gray8),
            [h, w, 3] => (h, w, PixelFormat::Rgb8),
            [h, w, 4] => (h, w, if bgra { PixelFormat::Bgra8 } else { PixelFormat::Rgba8 }),
            _ => {
                return Err(error(format!(
                    "an image must have shape [H, W] or [H, W, C] with C = 1, 3 or 4, not {:?}",
                    pixels.shape
                )))
            }
        };
        let data = pixels.data();
        let source = SourceImage::packed(&data, format, width, height).map_err(error)?;
        let engine = self.engine();
        let mut ws = self.workspace(&engine);
        let result = engine.infer_image(&source, polarity, &mut ws).map_err(infer_error)?;
        let out = PyDict::new(py);
        out.set_item("class", argmax(result.logits))?;
        out.set_item("logits", PyArray1::from_slice(py, result.logits))?;
        let input = Array2::from_shape_vec((self.side, self.side), result.input.to_vec()).map_err(error)?;
        out.set_item("input", input.into_pyarray(py))?;
        let d = result.digit;
        out.set_item("box", (d.x, d.y, d.width, d.height))?;
        out.set_item("polarity", d.polarity.name())?;
        out.set_item("contrast", d.contrast)?;
        Ok(out)
    }

    /// Times inference inside Rust, GIL released: `rounds` passes over
    /// `images` (`uint8 [N, 28, 28]` or `[N, 784]`), one `infer` call per
    /// digit (or one `infer_batch` per pass with `batch=True`). Returns a
    /// dict: median_us and min_us per digit over the rounds, rounds,
    /// digits, backend.
    #[pyo3(signature = (images, rounds = 11, batch = false))]
    fn bench<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        rounds: usize,
        batch: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let pixels = Pixels::of(images, "images")?;
        let n = self.batch_count(&pixels.shape)?;
        if n == 0 || rounds == 0 {
            return Err(error("bench needs at least one digit and one round"));
        }
        let data = pixels.data();
        let (classes, pixels_per) = (self.classes, self.pixels);
        let _detached = Detached::start(py);
        let per_digit = py.detach(|| -> Result<Vec<f64>, InferError> {
            let engine = self.engine();
            let mut ws = self.workspace(&engine);
            let mut logits = vec![0f32; n * classes];
            let mut times = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                let start = Instant::now();
                if batch {
                    engine.infer_batch(&data, &mut ws, &mut logits)?;
                    std::hint::black_box(&logits);
                } else {
                    for image in data.chunks_exact(pixels_per) {
                        std::hint::black_box(engine.infer(std::hint::black_box(image), &mut ws)?);
                    }
                }
                times.push(start.elapsed().as_secs_f64() * 1e6 / n as f64);
            }
            Ok(times)
        });
        let mut per_digit = per_digit.map_err(infer_error)?;
        per_digit.sort_by(f64::total_cmp);
        let out = PyDict::new(py);
        out.set_item("median_us", per_digit[per_digit.len() / 2])?;
        out.set_item("min_us", per_digit[0])?;
        out.set_item("rounds", rounds)?;
        out.set_item("digits", n)?;
        out.set_item("backend", self.backend())?;
        Ok(out)
    }

    /// The blob's bytes.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.engine().blob())
    }

    fn __repr__(&self) -> String {
        let engine = self.engine();
        format!(
            "microvit.Model({}, {} parameters, {} bytes, backend {})",
            engine.encoding(),
            engine.shape().parameter_count(),
            engine.blob().len(),
            engine.backend()
        )
    }
}

/// Converts a PyTorch Micro-ViT state_dict (safetensors bytes or path) into
/// blob bytes. `encoding`: "int8" (needs `calibration`, digits as `uint8
/// [N, 28, 28]`, `[N, 784]` or raw bytes), "f16" or "f32". `heads`
/// overrides the safetensors metadata.
#[pyfunction]
#[pyo3(signature = (safetensors, encoding = "int8", calibration = None, heads = None))]
fn convert<'py>(
    py: Python<'py>,
    safetensors: &Bound<'py, PyAny>,
    encoding: &str,
    calibration: Option<&Bound<'py, PyAny>>,
    heads: Option<u32>,
) -> PyResult<Bound<'py, PyBytes>> {
    let encoding = parse_encoding(encoding)?;
    let (st, _) = bytes_or_file(safetensors, "safetensors")?;
    let calibration = match calibration {
        None => None,
        Some(c) if c.cast::<PyBytes>().is_ok() || c.cast::<PyByteArray>().is_ok() => {
            Some(bytes_or_file(c, "calibration")?.0.into_owned())
        }
        Some(c) => Some(Pixels::of(c, "calibration")?.data().into_owned()),
    };
    let options = ConvertOptions { encoding, heads, calibration, ..ConvertOptions::default() };
    let converted = py.detach(|| microvit_converter::convert(&st, &options)).map_err(error)?;
    Ok(PyBytes::new(py, &converted.blob))
}

/// The backends this CPU can run, scalar first.
#[pyfunction]
fn available_backends() -> Vec<&'static str> {
    Backend::available().into_iter().map(Backend::name).collect()
}

#[pymodule]
fn microvit(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("Error", m.py().get_type::<Error>())?;
    m.add("NoDigitError", m.py().get_type::<NoDigitError>())?;
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add_function(wrap_pyfunction!(available_backends, m)?)?;
    Ok(())
}
