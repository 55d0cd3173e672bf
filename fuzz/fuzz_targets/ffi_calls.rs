//! Sequences of C ABI calls, through the Rust-callable `microvit` library of
//! the ffi crate, as a C or mobile app would make them: the input is a
//! little program (one opcode byte, then its operands) run against a set of
//! live models, workspaces and borrowed buffers.
//!
//! Every call honours the C contract (live handles, buffers as long as the
//! lengths that the library will actually read, no double free); everything
//! the contract lets a caller get wrong is fair game: NULLs, wrong lengths
//! and capacities, overlapping outputs, misaligned borrowed buffers, a
//! workspace passed as a model and back, workspaces of other shapes,
//! unknown enum values, hostile blobs.
//!
//! Checked on every call: no PANIC status ever; the status is OK exactly
//! when nothing was wrong with the call, and otherwise one that a defect of
//! the call explains; the last error message is empty exactly after OK;
//! failed calls leave outputs untouched; models load exactly when the
//! engine accepts the bytes; classify gives the engine's logits bit for bit.
//!
//! `FUZZ_TRACE=1 fuzz/target/*/release/ffi_calls INPUT` prints every call.

#![no_main]

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use libfuzzer_sys::fuzz_target;
use microvit::*;
use microvit_engine::{self as engine, format, LoadError};

const SHIPPED: [&[u8]; 5] = [
    include_bytes!("../../models/microvit-seed.mvit"),
    include_bytes!("../../models/microvit-seed.int8.mvit"),
    include_bytes!("../../models/microvit-seed.f16.mvit"),
    include_bytes!("../../models/microvit-4k.mvit"),
    include_bytes!("../../models/microvit-4k.int8.mvit"),
];
const SHIPPED_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/microvit-4k.f16.mvit");

/// Output buffers hold this many elements: more than any call that passes
/// its argument checks writes (at most 3 images × 64 classes).
const OUT_LEN: usize = 256;
/// What untouched output elements hold.
const SENTINEL: u32 = 0xDEAD_BEEF;

struct Program<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Program<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_le_bytes([self.byte()?, self.byte()?, self.byte()?, self.byte()?]))
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.data.len() - self.pos);
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        out
    }
}

/// A model loaded through the ABI, and the engine's own model of the same
/// bytes (the oracle).
struct Loaded {
    ptr: *mut Model,
    oracle: engine::Model<'static>,
}

/// What a workspace fits.
#[derive(Clone, Copy, PartialEq)]
struct Kind(engine::Shape, engine::Encoding);

impl Kind {
    fn of(m: &engine::Model<'_>) -> Kind {
        Kind(m.shape(), m.encoding())
    }
}

#[derive(Default)]
struct State {
    models: Vec<Loaded>,
    workspaces: Vec<(*mut Workspace, Kind)>,
    /// Buffers of borrowed models: dropped only after every model is freed.
    buffers: Vec<Vec<u64>>,
}

fn last_error() -> String {
    // SAFETY: a NULL buffer with length 0 asks for the length only.
    let len = unsafe { microvit_last_error_message(ptr::null_mut(), 0) };
    let mut buf = vec![0 as c_char; len + 1];
    // SAFETY: `buf` has `len + 1` writable bytes.
    let again = unsafe { microvit_last_error_message(buf.as_mut_ptr(), buf.len()) };
    assert_eq!(again, len);
    // SAFETY: NUL-terminated by the call.
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().expect("messages are UTF-8").to_owned();
    assert_eq!(text.len(), len);
    text
}

/// Checks a status against the statuses the call's defects explain (OK when
/// there are none) and the last error message against the status.
fn check(call: &str, status: Status, defects: &[Status]) {
    // FUZZ_TRACE=1 prints every call, to see what an input does.
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *TRACE.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some()) {
        eprintln!("{call}: {status:?} (defects {defects:?})");
    }
    assert_ne!(status, Status::Panic, "{call}: {}", last_error());
    if defects.is_empty() {
        assert_eq!(status, Status::Ok, "{call}: {}", last_error());
    } else {
        assert!(defects.contains(&status), "{call}: {status:?} is none of {defects:?}: {}", last_error());
    }
    let message = last_error();
    assert_eq!(message.is_empty(), status == Status::Ok, "{call} {status:?}: message {message:?}");
}

/// The status the ABI gives for a blob the engine rejects.
fn load_status(e: &LoadError) -> Status {
    match e {
        LoadError::UnsupportedVersion { .. } | LoadError::UnknownEncoding { .. } => Status::UnsupportedModel,
        LoadError::MisalignedBuffer { .. } => Status::MisalignedBuffer,
        _ => Status::InvalidModel,
    }
}

/// The bytes of a blob to load: shipped, fuzzed, or a shipped one edited.
fn blob_source(p: &mut Program<'_>) -> Option<Vec<u8>> {
    let choice = p.byte()?;
    let mut blob = match choice % 4 {
        0 | 1 => SHIPPED[usize::from(choice / 4) % SHIPPED.len()].to_vec(),
        2 => {
            let n = usize::from(p.u16()?);
            p.bytes(n).to_vec()
        }
        _ => {
            let mut blob = SHIPPED[usize::from(choice / 4) % SHIPPED.len()].to_vec();
            let at = usize::from(p.u16()?) % blob.len();
            blob[at] = p.byte()?;
            blob
        }
    };
    if choice & 0x80 != 0 && blob.len() >= format::HEADER_LEN {
        // A hostile file rather than a corrupted one: consistent length and checksum.
        let len = blob.len() as u32;
        blob[8..12].copy_from_slice(&len.to_le_bytes());
        format::restamp_checksum(&mut blob);
    }
    Some(blob)
}

/// A model argument: NULL, a live model, or a workspace in its place.
enum ModelArg {
    Null,
    Live(usize),
    WrongType(*mut Workspace),
}

fn model_arg(p: &mut Program<'_>, s: &State) -> Option<ModelArg> {
    let b = p.byte()?;
    Some(match b % 8 {
        0 => ModelArg::Null,
        1 if !s.workspaces.is_empty() => ModelArg::WrongType(s.workspaces[usize::from(b / 8) % s.workspaces.len()].0),
        _ if !s.models.is_empty() => ModelArg::Live(usize::from(b / 8) % s.models.len()),
        _ => ModelArg::Null,
    })
}

impl ModelArg {
    fn ptr(&self, s: &State) -> *const Model {
        match *self {
            ModelArg::Null => ptr::null(),
            ModelArg::Live(i) => s.models[i].ptr,
            ModelArg::WrongType(w) => w.cast::<Model>(),
        }
    }

    fn defect(&self) -> Option<Status> {
        match self {
            ModelArg::Null => Some(Status::NullArgument),
            ModelArg::Live(_) => None,
            ModelArg::WrongType(_) => Some(Status::InvalidArgument),
        }
    }
}

/// Keeps the model's result of a load, checking it against the engine's.
fn finish_load(
    s: &mut State,
    call: &str,
    status: Status,
    out: *mut Model,
    want: Result<engine::Model<'static>, Status>,
) {
    match want {
        Ok(oracle) => {
            check(call, status, &[]);
            assert!(!out.is_null());
            let mut shape = std::mem::MaybeUninit::<Shape>::uninit();
            // SAFETY: a live model and a writable shape.
            check("microvit_model_shape", unsafe { microvit_model_shape(out, shape.as_mut_ptr()) }, &[]);
            // SAFETY: written on OK.
            let shape = unsafe { shape.assume_init() };
            let s2 = oracle.shape();
            assert_eq!(
                (shape.image_side, shape.classes, shape.pixels as usize),
                (s2.image_side, s2.classes, s2.pixels())
            );
            assert_eq!(shape.encoding as i32, oracle.encoding() as i32);
            // The oracle runs on the model's backend (f16 kernels round differently).
            let mut backend = Backend::Auto;
            // SAFETY: a live model and a writable backend.
            check("microvit_model_backend", unsafe { microvit_model_backend(out, &mut backend) }, &[]);
            let mut oracle = oracle;
            let engine_backend = match backend {
                Backend::Scalar => engine::Backend::Scalar,
                Backend::Avx2 => engine::Backend::Avx2,
                Backend::Neon => engine::Backend::Neon,
                Backend::Avx512Vnni => engine::Backend::Avx512Vnni,
                Backend::AvxVnni => engine::Backend::AvxVnni,
                Backend::Dotprod => engine::Backend::Dotprod,
                Backend::Auto => panic!("a loaded model runs on a resolved backend, not AUTO"),
            };
            oracle.set_backend(engine_backend).expect("the library runs on an available backend");
            s.models.push(Loaded { ptr: out, oracle });
        }
        Err(expected) => {
            check(call, status, &[expected]);
            assert!(out.is_null(), "{call}: a failed load leaves NULL");
        }
    }
}

fn load(p: &mut Program<'_>, s: &mut State) -> Option<()> {
    let blob = blob_source(p)?;
    let mut out: *mut Model = ptr::dangling_mut();
    let null_data = p.byte()? == 0;
    let data = if null_data { ptr::null() } else { blob.as_ptr() };
    // SAFETY: `data` is NULL or holds `blob.len()` bytes; `out` is writable.
    let status = unsafe { microvit_model_load(data, blob.len(), &mut out) };
    let want = if null_data {
        Err(Status::NullArgument)
    } else {
        engine::Model::from_bytes(&blob).map_err(|e| load_status(&e))
    };
    finish_load(s, "microvit_model_load", status, out, want);
    // NULL out-pointer: refused, nothing leaks.
    // SAFETY: as above.
    let status = unsafe { microvit_model_load(blob.as_ptr(), blob.len(), ptr::null_mut()) };
    check("microvit_model_load(out NULL)", status, &[Status::NullArgument]);
    Some(())
}

fn load_borrowed(p: &mut Program<'_>, s: &mut State) -> Option<()> {
    let blob = blob_source(p)?;
    let misalign = usize::from(p.byte()? % 8);
    let mut buffer = vec![0u64; (blob.len() + misalign).div_ceil(8) + 1];
    // SAFETY: the u64 buffer has at least `misalign + blob.len()` bytes.
    let bytes: &'static [u8] = unsafe {
        let base = buffer.as_mut_ptr().cast::<u8>().add(misalign);
        ptr::copy_nonoverlapping(blob.as_ptr(), base, blob.len());
        std::slice::from_raw_parts(base, blob.len())
    };
    let mut out: *mut Model = ptr::dangling_mut();
    // SAFETY: `bytes` stays alive (in `s.buffers`) until every model is freed.
    let status = unsafe { microvit_model_load_borrowed(bytes.as_ptr(), bytes.len(), &mut out) };
    // The engine's verdict on the same, possibly misaligned, bytes.
    let want = engine::Model::from_bytes_borrowed(bytes).map(|_| ()).map_err(|e| load_status(&e));
    let want = want.map(|()| engine::Model::from_bytes(bytes).expect("a borrowed load's bytes load copied"));
    finish_load(s, "microvit_model_load_borrowed", status, out, want);
    s.buffers.push(buffer);
    Some(())
}

fn load_file(p: &mut Program<'_>, s: &mut State) -> Option<()> {
    let (path, want): (&str, Result<(), Status>) = match p.byte()? % 4 {
        0 => (SHIPPED_PATH, Ok(())),
        1 => ("/", Err(Status::IoError)),
        2 => ("/nonexistent/microvit/model.mvit", Err(Status::IoError)),
        _ => ("", Err(Status::IoError)),
    };
    let c = CString::new(path).unwrap();
    let mut out: *mut Model = ptr::dangling_mut();
    // SAFETY: a NUL-terminated path and a writable out-pointer.
    let status = unsafe { microvit_model_load_file(c.as_ptr(), &mut out) };
    let want = want.map(|()| engine::Model::from_bytes(&std::fs::read(path).unwrap()).unwrap());
    finish_load(s, "microvit_model_load_file", status, out, want);
    // SAFETY: NULL path is refused.
    let status = unsafe { microvit_model_load_file(ptr::null(), &mut out) };
    check("microvit_model_load_file(NULL)", status, &[Status::NullArgument]);
    assert!(out.is_null());
    Some(())
}

fn free_model(p: &mut Program<'_>, s: &mut State) -> Option<()> {
    let b = p.byte()?;
    if s.models.is_empty() || b == 0 {
        // SAFETY: NULL is allowed.
        unsafe { microvit_model_free(ptr::null_mut()) };
        return Some(());
    }
    if b % 5 == 1 && !s.workspaces.is_empty() {
        // A workspace passed to microvit_model_free is left alone: it stays
        // live and in use (AddressSanitizer would see it freed).
        let (w, _) = s.workspaces[usize::from(b) % s.workspaces.len()];
        // SAFETY: a live microvit object; the tag is checked before anything.
        unsafe { microvit_model_free(w.cast()) };
        return Some(());
    }
    let m = s.models.swap_remove(usize::from(b) % s.models.len());
    // SAFETY: a live model, freed once.
    unsafe { microvit_model_free(m.ptr) };
    Some(())
}

fn create_workspace(p: &mut Program<'_>, s: &mut State) -> Option<()> {
    let arg = model_arg(p, s)?;
    let null_out = p.byte()? % 8 == 0;
    let mut out: *mut Workspace = ptr::dangling_mut();
    let out_ptr = if null_out { ptr::null_mut() } else { &mut out as *mut _ };
    // SAFETY: a live model, NULL or a workspace (detected); `out_ptr` NULL or writable.
    let status = unsafe { microvit_workspace_create(arg.ptr(s), out_ptr) };
    let mut defects: Vec<Status> = arg.defect().into_iter().collect();
    if null_out {
        defects.push(Status::NullArgument);
    }
    check("microvit_workspace_create", status, &defects);
    if status == Status::Ok {
        let ModelArg::Live(i) = arg else { unreachable!() };
        s.workspaces.push((out, Kind::of(&s.models[i].oracle)));
    } else if !null_out {
        assert!(out.is_null());
    }
    Some(())
}

fn free_workspace(p: &mut Program<'_>, s: &mut State) -> Option<()> {
    let b = p.byte()?;
    if s.workspaces.is_empty() || b == 0 {
        // SAFETY: NULL is allowed.
        unsafe { microvit_workspace_free(ptr::null_mut()) };
        return Some(());
    }
    if b % 5 == 1 && !s.models.is_empty() {
        // A model passed to microvit_workspace_free is left alone.
        let m = s.models[usize::from(b) % s.models.len()].ptr;
        // SAFETY: a live microvit object; the tag is checked before anything.
        unsafe { microvit_workspace_free(m.cast()) };
        return Some(());
    }
    let (w, _) = s.workspaces.swap_remove(usize::from(b) % s.workspaces.len());
    // SAFETY: a live workspace, freed once.
    unsafe { microvit_workspace_free(w) };
    Some(())
}

fn query(p: &mut Program<'_>, s: &State) -> Option<()> {
    let arg = model_arg(p, s)?;
    let null_out = p.byte()? % 4 == 0;
    let mut shape = std::mem::MaybeUninit::<Shape>::uninit();
    let out = if null_out { ptr::null_mut() } else { shape.as_mut_ptr() };
    let mut defects: Vec<Status> = arg.defect().into_iter().collect();
    if null_out {
        defects.push(Status::NullArgument);
    }
    // SAFETY: model as in `model_arg`; `out` NULL or writable.
    check("microvit_model_shape", unsafe { microvit_model_shape(arg.ptr(s), out) }, &defects);
    let mut backend = Backend::Auto;
    let out = if null_out { ptr::null_mut() } else { &mut backend as *mut Backend };
    // SAFETY: as above.
    let status = unsafe { microvit_model_backend(arg.ptr(s), out) };
    check("microvit_model_backend", status, &defects);
    if status == Status::Ok {
        assert_ne!(backend, Backend::Auto);
    }
    Some(())
}

/// A length near `exact`: exact, one less or more, zero, or absurd.
fn length(b: u8, exact: usize) -> usize {
    match b % 8 {
        0..=3 => exact,
        4 => exact.wrapping_sub(1),
        5 => exact.wrapping_add(1),
        6 => 0,
        _ => [usize::MAX, isize::MAX as usize + 1, usize::MAX / 3][usize::from(b / 8) % 3],
    }
}

/// A capacity for an output of `needed` elements (the buffer really holds
/// OUT_LEN, which is at least `needed` whenever the capacity check passes).
fn capacity(b: u8, needed: usize) -> usize {
    match b % 8 {
        0..=4 => needed,
        5 => needed.saturating_sub(1),
        6 => OUT_LEN,
        _ => usize::MAX,
    }
}

fn classify(p: &mut Program<'_>, s: &State, batch: bool) -> Option<()> {
    let arg = model_arg(p, s)?;
    let (per_image, classes) = match arg {
        ModelArg::Live(i) => (s.models[i].oracle.shape().pixels(), s.models[i].oracle.shape().classes as usize),
        _ => (784, 10),
    };
    let ws_choice = p.byte()?;
    let (ws, ws_defect): (*mut Workspace, Option<Status>) = match ws_choice % 8 {
        0..=2 => (ptr::null_mut(), None),
        3 if !s.models.is_empty() => {
            (s.models[usize::from(ws_choice / 8) % s.models.len()].ptr.cast(), Some(Status::InvalidArgument))
        }
        _ if !s.workspaces.is_empty() => {
            let (w, kind) = s.workspaces[usize::from(ws_choice / 8) % s.workspaces.len()];
            let fits = match arg {
                ModelArg::Live(i) => Kind::of(&s.models[i].oracle) == kind,
                _ => true,
            };
            (w, (!fits).then_some(Status::WorkspaceMismatch))
        }
        _ => (ptr::null_mut(), None),
    };
    let count =
        if batch { [0, 1, 2, 3, 1, 2, usize::MAX, usize::MAX / 784 + 1][usize::from(p.byte()? % 8)] } else { 1 };
    let exact = count.checked_mul(per_image);
    let mut pixel_count = length(p.byte()?, exact.unwrap_or(usize::MAX));
    // Only lengths the library rejects, or that fit the bytes passed.
    const MAX_REAL: usize = 4 * 64 * 64 + 1;
    if exact == Some(pixel_count) && pixel_count > MAX_REAL && pixel_count <= isize::MAX as usize {
        pixel_count -= 1;
    }
    let null_pixels = p.byte()? % 16 == 0;
    // The pixels: real bytes for every length the library might read.
    let fill = p.byte()?;
    let real_len = if pixel_count <= MAX_REAL { pixel_count } else { 16 };
    let pixels: Vec<u8> = (0..real_len).map(|i| fill.wrapping_add((i * 31 % 251) as u8)).collect();
    let pixels_ptr = if null_pixels { ptr::null() } else { pixels.as_ptr() };
    let pixels_ok = !null_pixels && exact == Some(pixel_count) && pixel_count <= isize::MAX as usize;
    assert!(!pixels_ok || real_len == pixel_count, "the library may read every pixel");

    // Outputs: each absent, or present with a capacity; logits and probs
    // may share one buffer (overlap).
    let outs = p.byte()?;
    let (want_class, want_logits, want_probs, alias) = (outs & 1 != 0, outs & 2 != 0, outs & 4 != 0, outs & 8 != 0);
    let needed = count.min(OUT_LEN);
    let scores = count.saturating_mul(classes);
    let class_cap = capacity(p.byte()?, if batch { needed } else { 1 });
    let logits_cap = capacity(p.byte()?, scores.min(OUT_LEN));
    let probs_cap = capacity(p.byte()?, scores.min(OUT_LEN));
    let mut out_class = vec![SENTINEL; OUT_LEN];
    let mut out_logits = vec![f32::from_bits(SENTINEL); OUT_LEN];
    let mut out_probs = vec![f32::from_bits(SENTINEL); OUT_LEN];
    let class_ptr = if want_class { out_class.as_mut_ptr() } else { ptr::null_mut() };
    let logits_ptr = if want_logits { out_logits.as_mut_ptr() } else { ptr::null_mut() };
    let probs_ptr = match (want_probs, alias && want_logits) {
        (false, _) => ptr::null_mut(),
        (true, true) => logits_ptr,
        (true, false) => out_probs.as_mut_ptr(),
    };

    let mut defects: Vec<Status> = arg.defect().into_iter().collect();
    if null_pixels {
        defects.push(Status::NullArgument);
    } else if !pixels_ok {
        defects.push(Status::InvalidArgument);
    }
    // microvit_classify has no class capacity: its one class always fits.
    if batch && want_class && class_cap < count {
        defects.push(Status::BufferTooSmall);
    }
    if (want_logits && logits_cap < scores) || (want_probs && probs_cap < scores) {
        defects.push(Status::BufferTooSmall);
    }
    if want_probs && alias && want_logits && scores > 0 {
        defects.push(Status::InvalidArgument);
    }
    defects.extend(ws_defect);
    if count.checked_mul(classes).is_none() {
        defects.push(Status::InvalidArgument);
    }
    if batch && count == 0 && pixel_count == 0 {
        // An empty batch: no buffer, workspace or output is looked at, only
        // the model (the documented contract of classify_batch).
        defects = arg.defect().into_iter().collect();
    }

    // SAFETY: every pointer is NULL or a live object of the ABI (or a model
    // in a workspace's place, which the library detects), and every buffer
    // holds at least the elements the library writes or reads once its
    // argument checks pass (see `capacity`, `length` and the assert above).
    let status = unsafe {
        if batch {
            microvit_classify_batch(
                arg.ptr(s),
                ws,
                count,
                pixels_ptr,
                pixel_count,
                class_ptr,
                class_cap,
                logits_ptr,
                logits_cap,
                probs_ptr,
                probs_cap,
            )
        } else {
            microvit_classify(
                arg.ptr(s),
                ws,
                pixels_ptr,
                pixel_count,
                class_ptr,
                logits_ptr,
                logits_cap,
                probs_ptr,
                probs_cap,
            )
        }
    };
    let call = if batch { "microvit_classify_batch" } else { "microvit_classify" };
    check(call, status, &defects);

    let untouched = |written: usize| {
        assert!(out_class[written.min(OUT_LEN)..].iter().all(|&v| v == SENTINEL), "{call}: classes past the end");
        let rest = |v: &[f32]| v[written.min(OUT_LEN)..].iter().all(|x| x.to_bits() == SENTINEL);
        assert!(rest(&out_logits) && rest(&out_probs), "{call}: outputs written past the end or on failure");
    };
    if status != Status::Ok {
        untouched(0);
        return Some(());
    }
    let ModelArg::Live(i) = arg else { unreachable!("OK needs a live model") };
    let oracle = &s.models[i].oracle;
    let mut ws = oracle.workspace();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (n, image) in pixels.chunks_exact(per_image).enumerate() {
        let logits = oracle.infer(image, &mut ws).unwrap();
        let row = n * classes..(n + 1) * classes;
        if want_class {
            assert_eq!(out_class[n] as usize, engine::argmax(logits), "{call}: class of image {n}");
        }
        if want_logits {
            assert_eq!(bits(&out_logits[row.clone()]), bits(logits), "{call}: logits of image {n}");
        }
        if want_probs {
            let mut probs = vec![0f32; classes];
            engine::softmax(logits, &mut probs);
            assert_eq!(bits(&out_probs[row]), bits(&probs), "{call}: probabilities of image {n}");
        }
    }
    assert!(out_class[count..].iter().all(|&v| v == SENTINEL), "{call}: classes past the end");
    untouched(scores);
    Some(())
}

fn classify_attention(p: &mut Program<'_>, s: &State) -> Option<()> {
    let arg = model_arg(p, s)?;
    let (per_image, classes, rows) = match arg {
        ModelArg::Live(i) => {
            let shape = s.models[i].oracle.shape();
            (shape.pixels(), shape.classes as usize, shape.heads as usize * shape.tokens() as usize)
        }
        _ => (784, 10, 34),
    };
    let ws_choice = p.byte()?;
    let (ws, ws_defect): (*mut Workspace, Option<Status>) = match ws_choice % 4 {
        0 | 1 => (ptr::null_mut(), None),
        _ if !s.workspaces.is_empty() => {
            let (w, kind) = s.workspaces[usize::from(ws_choice / 4) % s.workspaces.len()];
            let fits = match arg {
                ModelArg::Live(i) => Kind::of(&s.models[i].oracle) == kind,
                _ => true,
            };
            (w, (!fits).then_some(Status::WorkspaceMismatch))
        }
        _ => (ptr::null_mut(), None),
    };
    let pixel_count = length(p.byte()?, per_image);
    let real_len = if pixel_count <= 4 * 64 * 64 + 1 { pixel_count } else { 16 };
    let fill = p.byte()?;
    let pixels: Vec<u8> = (0..real_len).map(|i| fill.wrapping_add((i * 17 % 253) as u8)).collect();
    let outs = p.byte()?;
    let (want_class, want_logits, null_attention) = (outs & 1 != 0, outs & 2 != 0, outs & 4 != 0);
    let logits_cap = capacity(p.byte()?, classes);
    let attention_cap = capacity(p.byte()?, rows);
    let mut out_class = [SENTINEL; 2];
    let mut out_logits = vec![f32::from_bits(SENTINEL); OUT_LEN];
    // Room for what a passing capacity check lets the library write.
    let mut out_attention = vec![f32::from_bits(SENTINEL); rows.max(OUT_LEN) + 8];

    let mut defects: Vec<Status> = arg.defect().into_iter().collect();
    if null_attention {
        defects.push(Status::NullArgument);
    }
    if pixel_count != per_image {
        defects.push(Status::InvalidArgument);
    }
    if (want_logits && logits_cap < classes) || (!null_attention && attention_cap < rows) {
        defects.push(Status::BufferTooSmall);
    }
    defects.extend(ws_defect);
    let class_ptr = if want_class { out_class.as_mut_ptr() } else { ptr::null_mut() };
    let logits_ptr = if want_logits { out_logits.as_mut_ptr() } else { ptr::null_mut() };
    let attention_ptr = if null_attention { ptr::null_mut() } else { out_attention.as_mut_ptr() };
    assert!(pixel_count != per_image || real_len == per_image);
    // SAFETY: as in `classify`: live handles (or a detected wrong type),
    // buffers at least as long as what passes the argument checks.
    let status = unsafe {
        microvit_classify_attention(
            arg.ptr(s),
            ws,
            pixels.as_ptr(),
            pixel_count,
            class_ptr,
            logits_ptr,
            logits_cap,
            attention_ptr,
            attention_cap,
        )
    };
    check("microvit_classify_attention", status, &defects);
    let sentinel = |v: &[f32]| v.iter().all(|x| x.to_bits() == SENTINEL);
    if status != Status::Ok {
        assert!(out_class.iter().all(|&c| c == SENTINEL) && sentinel(&out_logits) && sentinel(&out_attention));
        return Some(());
    }
    let ModelArg::Live(i) = arg else { unreachable!("OK needs a live model") };
    let oracle = &s.models[i].oracle;
    let mut ws = oracle.workspace();
    let mut attention = vec![0f32; rows];
    let logits = oracle.infer_with_attention(&pixels, &mut ws, &mut attention).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&out_attention[..rows]), bits(&attention), "attention");
    assert!(sentinel(&out_attention[rows..]), "attention written past its end");
    if want_logits {
        assert_eq!(bits(&out_logits[..classes]), bits(logits), "logits");
    }
    assert!(sentinel(&out_logits[if want_logits { classes } else { 0 }..]));
    if want_class {
        assert_eq!(out_class[0] as usize, engine::argmax(logits));
    }
    assert_eq!(out_class[1], SENTINEL);
    Some(())
}

fn misc(p: &mut Program<'_>) -> Option<()> {
    let code = p.i32()?;
    let cstr = |ptr: *const c_char| {
        assert!(!ptr.is_null());
        // SAFETY: the library returns static NUL-terminated strings.
        unsafe { CStr::from_ptr(ptr) }.to_str().expect("UTF-8").to_owned()
    };
    // The backend codes: 0 auto, 1 scalar, then the ISAs (2 avx2, 3 neon,
    // 4 avx512vnni, 5 avxvnni, 6 dotprod), available or not depending on the CPU.
    const LAST_BACKEND: i32 = 6;
    match p.byte()? % 8 {
        0 => {
            let available = microvit_backend_available(BackendArg(code));
            assert!(!available || (0..=LAST_BACKEND).contains(&code));
            let status = microvit_set_backend(BackendArg(code));
            let defects: &[Status] = match code {
                0..=LAST_BACKEND if available => &[],
                0..=LAST_BACKEND => &[Status::BackendUnavailable],
                _ => &[Status::InvalidArgument],
            };
            check("microvit_set_backend", status, defects);
            let now = microvit_get_backend();
            assert_ne!(now, Backend::Auto);
            assert!(microvit_backend_available(now.into()));
        }
        1 => {
            let name = cstr(microvit_backend_name(BackendArg(code)));
            assert_eq!(name == "unknown", !(0..=LAST_BACKEND).contains(&code));
            let available = microvit_backend_available(BackendArg(code));
            assert_eq!(available, (0..=1).contains(&code) || available && (2..=LAST_BACKEND).contains(&code));
        }
        2 => {
            let name = cstr(microvit_encoding_name(EncodingArg(code)));
            assert_eq!(name == "unknown", !(1..=3).contains(&code));
        }
        3 => {
            let text = cstr(microvit_status_str(StatusArg(code)));
            // Every status the library defines (NO_DIGIT, 11, came after
            // this target first counted them), and no other, has a name.
            let known = Status::all().iter().any(|s| *s as i32 == code);
            assert_eq!(text == "unknown status", !known, "status {code}: {text}");
        }
        4 => {
            // The message copy, at every buffer length.
            let full = last_error();
            let len = usize::from(p.byte()?);
            let mut buf = vec![0x55 as c_char; len.max(1)];
            let ptr = if len == 0 && code & 1 == 0 { ptr::null_mut() } else { buf.as_mut_ptr() };
            // SAFETY: `ptr` is NULL or has `len` (at least) writable bytes.
            let n = unsafe { microvit_last_error_message(ptr, len) };
            assert_eq!(n, full.len());
            if len > 0 {
                // SAFETY: NUL-terminated within `len` bytes.
                let copy = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().expect("cut at a char boundary");
                assert!(full.starts_with(copy) && copy.len() < len);
            }
        }
        5 => microvit_thread_cache_release(),
        6 => {
            assert_eq!(microvit_version_number(), MICROVIT_VERSION_NUMBER);
            assert!(!cstr(microvit_version()).is_empty());
        }
        _ => {
            // Every status has a description.
            for status in Status::all() {
                assert!(!cstr(microvit_status_str(status.into())).is_empty());
            }
        }
    }
    Some(())
}

fn step(p: &mut Program<'_>, s: &mut State) -> Option<()> {
    match p.byte()? % 13 {
        0 | 1 => load(p, s),
        2 => load_borrowed(p, s),
        3 => load_file(p, s),
        4 => free_model(p, s),
        5 => create_workspace(p, s),
        6 => free_workspace(p, s),
        7 => query(p, s),
        8 | 9 => classify(p, s, false),
        10 => classify(p, s, true),
        11 => misc(p),
        _ => classify_attention(p, s),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut p = Program { data, pos: 0 };
    let mut s = State::default();
    // At most 64 calls per input, so one input stays fast.
    for _ in 0..64 {
        if step(&mut p, &mut s).is_none() {
            break;
        }
    }
    for (w, _) in s.workspaces.drain(..) {
        // SAFETY: live workspaces, freed once.
        unsafe { microvit_workspace_free(w) };
    }
    for m in s.models.drain(..) {
        // SAFETY: live models, freed once, before their buffers go.
        unsafe { microvit_model_free(m.ptr) };
    }
    drop(s.buffers);
    // Each run starts from the default backend.
    let _ = microvit_set_backend(BackendArg(0));
    microvit_thread_cache_release();
});
