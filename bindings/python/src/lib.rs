//! microvit from Python: a pyo3 extension module over the Rust engine and
//! converter.
//!
//! Images come in as numpy `uint8` arrays and are read in place when they
//! are C-contiguous (a `PyReadonlyArray` borrow, no copy); logits go out as
//! `float32` arrays. Batch calls, `bench` and `convert` run with the GIL
//! released. Every failure is a `microvit.Error` (a `ValueError`) carrying
//! the engine's own message; an image with no digit in it is
//! `microvit.NoDigitError`, a subclass.

use std::borrow::Cow;
use std::fmt::Display;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, TryLockError};
use std::time::Instant;

use microvit_converter::{ConvertOptions, Encoding};
use microvit_engine::preprocess::{PixelFormat, Polarity, SourceImage};
use microvit_engine::{argmax, Backend, InferError, Model as Engine, Workspace};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
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

/// A `uint8` numpy array's pixels, in place when C-contiguous, else copied;
/// with its shape.
struct Pixels<'py> {
    // Keeps the numpy borrow (and the array) alive while `data` is in use.
    array: numpy::PyReadonlyArrayDyn<'py, u8>,
    shape: Vec<usize>,
}

impl<'py> Pixels<'py> {
    fn of(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Pixels<'py>> {
        if let Ok(array) = obj.cast::<PyArrayDyn<u8>>() {
            let array = array.try_readonly().map_err(|e| error(format!("{what}: {e}")))?;
            let shape = array.shape().to_vec();
            return Ok(Pixels { array, shape });
        }
        if let Ok(array) = obj.cast::<PyUntypedArray>() {
            return Err(error(format!(
                "{what} must be a numpy uint8 array, this one has dtype {} (convert with .astype(np.uint8))",
                array.dtype()
            )));
        }
        Err(error(format!("{what} must be a numpy uint8 array, not {}", obj.get_type().name()?)))
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
    /// The workspace calls use; one that finds it busy (another thread's
    /// batch, GIL released) makes its own rather than wait.
    ws: Mutex<Workspace>,
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
            Ok(ws) => Scratch::Shared(ws),
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

    fn single<'py>(&self, py: Python<'py>, image: &[u8]) -> PyResult<(usize, Bound<'py, PyArray1<f32>>)> {
        let engine = self.engine();
        let mut ws = self.workspace(&engine);
        let logits = engine.infer(image, &mut ws).map_err(infer_error)?;
        Ok((argmax(logits), PyArray1::from_slice(py, logits)))
    }

    /// Runs a batch with the GIL released: the classes and `[N, classes]` logits.
    fn batch<'py>(&self, py: Python<'py>, images: &[u8], n: usize) -> PyResult<BatchOut<'py>> {
        let classes = self.classes;
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

/// A workspace for one call: the model's, or one of the call's own.
enum Scratch<'a> {
    Shared(MutexGuard<'a, Workspace>),
    Own(Box<Workspace>),
}

impl Deref for Scratch<'_> {
    type Target = Workspace;
    fn deref(&self) -> &Workspace {
        match self {
            Scratch::Shared(ws) => ws,
            Scratch::Own(ws) => ws,
        }
    }
}

impl DerefMut for Scratch<'_> {
    fn deref_mut(&mut self) -> &mut Workspace {
        match self {
            Scratch::Shared(ws) => ws,
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
            ws: Mutex::new(engine.workspace()),
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
    /// float32 [N, classes])`, run with the GIL released.
    fn classify<'py>(&self, py: Python<'py>, images: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let pixels = Pixels::of(images, "images")?;
        if pixels.shape.len() == 3 || (pixels.shape.len() == 2 && pixels.shape != [self.side, self.side]) {
            let n = self.batch_count(&pixels.shape)?;
            return self.batch(py, &pixels.data(), n)?.into_pyobject(py).map(Bound::into_any);
        }
        self.check_single(&pixels.shape)?;
        self.single(py, &pixels.data())?.into_pyobject(py).map(Bound::into_any)
    }

    /// One image (`uint8 [28, 28]` or `[784]`) → its class alone: the
    /// cheapest call, no logits array made.
    fn predict(&self, image: &Bound<'_, PyAny>) -> PyResult<usize> {
        let pixels = Pixels::of(image, "image")?;
        self.check_single(&pixels.shape)?;
        let engine = self.engine();
        let mut ws = self.workspace(&engine);
        engine.infer(&pixels.data(), &mut ws).map(argmax).map_err(infer_error)
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
        let pixels = Pixels::of(image, "image")?;
        self.check_single(&pixels.shape)?;
        let engine = self.engine();
        let shape = engine.shape();
        let (heads, tokens) = (shape.heads as usize, shape.tokens() as usize);
        let mut attention = vec![0f32; heads * tokens];
        let mut ws = self.workspace(&engine);
        let logits = engine.infer_with_attention(&pixels.data(), &mut ws, &mut attention).map_err(infer_error)?;
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
