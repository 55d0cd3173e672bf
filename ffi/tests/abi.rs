//! The C ABI called as C calls it: every exported function with NULL
//! pointers and garbage lengths gets its documented status back; results
//! equal the engine's; the batch call equals per-image calls; panics are
//! caught.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use microvit::status::{guard, guard_value, last_error_message};
use microvit::*;
use microvit_engine::format::restamp_checksum;
use microvit_engine::synthetic::{random_f32_blob, random_image};
use microvit_engine::Shape as EngineShape;

const SEED_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/microvit-seed.mvit");
const INT8_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/microvit-seed.int8.mvit");
const HEADER: &str = include_str!("../../include/microvit.h");

/// A non-NULL pointer that is never a valid object, to see out-pointers
/// reset to NULL on failure.
fn sentinel<T>() -> *mut T {
    ptr::NonNull::<T>::dangling().as_ptr()
}

/// The shipped model the tests run: the f32 seed, or under miri its int8
/// twin (same shape, same C calls). Miri interprets every float operation
/// in software, so one f32 inference takes minutes there; the int8 pass is
/// integer arithmetic.
fn seed_blob() -> Vec<u8> {
    let path = if cfg!(miri) { INT8_MODEL } else { SEED_MODEL };
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn last_error() -> String {
    // SAFETY: NULL with length 0 asks for the length only.
    let n = unsafe { microvit_last_error_message(ptr::null_mut(), 0) };
    let mut buf = vec![0 as c_char; n + 1];
    // SAFETY: buf has n + 1 bytes.
    let m = unsafe { microvit_last_error_message(buf.as_mut_ptr(), buf.len()) };
    assert_eq!(m, n);
    // SAFETY: NUL-terminated by contract.
    let s = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().expect("UTF-8").to_owned();
    assert_eq!(s, last_error_message());
    s
}

/// Asserts `status` and that the last error message mentions `needle`.
#[track_caller]
fn expect(status: Status, expected: Status, needle: &str) {
    assert_eq!(status, expected, "last error: {}", last_error_message());
    let msg = last_error();
    if expected == Status::Ok {
        assert_eq!(msg, "", "success must clear the last error");
    } else {
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    }
}

struct Loaded(*mut Model);

impl Drop for Loaded {
    fn drop(&mut self) {
        // SAFETY: a live model owned by this guard.
        unsafe { microvit_model_free(self.0) };
    }
}

fn load(blob: &[u8]) -> Loaded {
    let mut m = ptr::null_mut();
    // SAFETY: valid buffer and out-pointer.
    expect(unsafe { microvit_model_load(blob.as_ptr(), blob.len(), &mut m) }, Status::Ok, "");
    assert!(!m.is_null());
    Loaded(m)
}

struct Ws(*mut Workspace);

impl Drop for Ws {
    fn drop(&mut self) {
        // SAFETY: a live workspace owned by this guard.
        unsafe { microvit_workspace_free(self.0) };
    }
}

fn workspace(model: &Loaded) -> Ws {
    let mut w = ptr::null_mut();
    // SAFETY: live model, valid out-pointer.
    expect(unsafe { microvit_workspace_create(model.0, &mut w) }, Status::Ok, "");
    Ws(w)
}

fn shape(model: &Loaded) -> microvit::Shape {
    let mut s = std::mem::MaybeUninit::uninit();
    // SAFETY: live model, writable shape.
    expect(unsafe { microvit_model_shape(model.0, s.as_mut_ptr()) }, Status::Ok, "");
    // SAFETY: filled on success.
    unsafe { s.assume_init() }
}

/// What one classify call returns.
#[derive(Debug, PartialEq)]
struct Result1 {
    class: u32,
    logits: Vec<f32>,
    probs: Vec<f32>,
}

fn classify(model: &Loaded, ws: *mut Workspace, image: &[u8]) -> Result1 {
    let mut r = Result1 { class: u32::MAX, logits: vec![f32::NAN; 10], probs: vec![f32::NAN; 10] };
    // SAFETY: every buffer has the length passed with it.
    let status = unsafe {
        microvit_classify(
            model.0,
            ws,
            image.as_ptr(),
            image.len(),
            &mut r.class,
            r.logits.as_mut_ptr(),
            r.logits.len(),
            r.probs.as_mut_ptr(),
            r.probs.len(),
        )
    };
    expect(status, Status::Ok, "");
    r
}

/// The bytes of a u32 buffer (4-byte aligned).
fn bytes_of_words(words: &mut [u32]) -> &mut [u8] {
    // SAFETY: u8 has no alignment or validity requirement; the length is
    // the same memory's.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 4) }
}

fn mnist_like_images(n: u64) -> Vec<Vec<u8>> {
    (0..n).map(|seed| random_image(&EngineShape::SEED, seed)).collect()
}

#[test]
fn every_exported_function_is_tested_here() {
    let source = [include_str!("abi.rs"), include_str!("image.rs")].concat();
    let mut names: Vec<&str> = HEADER
        .lines()
        .filter_map(|l| l.split_once(" microvit_").or_else(|| l.split_once("*microvit_")))
        .filter_map(|(_, rest)| rest.split_once('('))
        .map(|(name, _)| name)
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 20, "found only {names:?} in the header");
    for name in names {
        let call = format!("microvit_{name}(");
        assert!(source.contains(&call), "{call} is not exercised by tests/abi.rs or tests/image.rs");
    }
}

#[test]
fn version_is_the_crate_version() {
    // SAFETY: a static string.
    let v = unsafe { CStr::from_ptr(microvit_version()) }.to_str().unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    let part = |s: &str| s.parse::<u32>().unwrap();
    assert_eq!(MICROVIT_VERSION_MAJOR, part(env!("CARGO_PKG_VERSION_MAJOR")), "update the constants in lib.rs");
    assert_eq!(MICROVIT_VERSION_MINOR, part(env!("CARGO_PKG_VERSION_MINOR")), "update the constants in lib.rs");
    assert_eq!(MICROVIT_VERSION_PATCH, part(env!("CARGO_PKG_VERSION_PATCH")), "update the constants in lib.rs");
    let number = MICROVIT_VERSION_MAJOR * 10000 + MICROVIT_VERSION_MINOR * 100 + MICROVIT_VERSION_PATCH;
    assert_eq!(MICROVIT_VERSION_NUMBER, number);
    assert_eq!(microvit_version_number(), number);
    assert_eq!(microvit_version_number(), microvit_version_number());
    assert!(HEADER.contains(&format!("#define MICROVIT_VERSION_NUMBER {number}\n")));
}

/// The status codes are ABI: this table is the contract, and the header
/// must say the same.
#[test]
fn status_codes_are_stable() {
    let table = [
        (Status::Ok, 0, "OK"),
        (Status::NullArgument, 1, "NULL_ARGUMENT"),
        (Status::InvalidArgument, 2, "INVALID_ARGUMENT"),
        (Status::BufferTooSmall, 3, "BUFFER_TOO_SMALL"),
        (Status::IoError, 4, "IO_ERROR"),
        (Status::InvalidModel, 5, "INVALID_MODEL"),
        (Status::UnsupportedModel, 6, "UNSUPPORTED_MODEL"),
        (Status::MisalignedBuffer, 7, "MISALIGNED_BUFFER"),
        (Status::BackendUnavailable, 8, "BACKEND_UNAVAILABLE"),
        (Status::WorkspaceMismatch, 9, "WORKSPACE_MISMATCH"),
        (Status::Panic, 10, "PANIC"),
        (Status::NoDigit, 11, "NO_DIGIT"),
    ];
    assert_eq!(Status::all().len(), table.len(), "a new status needs a row here (and a new number)");
    let mut descriptions = std::collections::HashSet::new();
    for (status, code, name) in table {
        assert_eq!(status as i32, code, "{status:?} was renumbered");
        assert!(HEADER.contains(&format!("  MICROVIT_STATUS_{name} = {code},\n")), "header lacks {name} = {code}");
        assert!(Status::all().contains(&status));
        // SAFETY: a static string.
        let s = unsafe { CStr::from_ptr(microvit_status_str(status.into())) }.to_str().unwrap();
        assert!(!s.is_empty() && s != "unknown status", "{status:?}: {s:?}");
        assert!(descriptions.insert(s), "{s:?} describes two statuses");
    }
    for garbage in [-1, 12, 99, i32::MIN, i32::MAX] {
        // SAFETY: a static string.
        let s = unsafe { CStr::from_ptr(microvit_status_str(StatusArg(garbage))) };
        assert_eq!(s.to_str().unwrap(), "unknown status");
    }
    // SAFETY: a static string.
    assert_eq!(unsafe { CStr::from_ptr(microvit_status_str(Status::Ok.into())) }.to_str().unwrap(), "ok");
}

#[test]
fn last_error_message_truncates_and_terminates() {
    let path = CString::new("/nonexistent/d\u{e9}j\u{e0}-vu/model.mvit").unwrap();
    let mut m = sentinel();
    // SAFETY: valid path and out-pointer.
    let status = unsafe { microvit_model_load_file(path.as_ptr(), &mut m) };
    assert_eq!(status, Status::IoError);
    assert!(m.is_null());
    let full = last_error_message();
    assert!(full.contains("/nonexistent/d\u{e9}j\u{e0}-vu/model.mvit"), "{full}");
    // Length only: NULL buffer, with length 0 or with a garbage length.
    // SAFETY: NULL buffers are never written.
    assert_eq!(unsafe { microvit_last_error_message(ptr::null_mut(), 0) }, full.len());
    // SAFETY: as above.
    assert_eq!(unsafe { microvit_last_error_message(ptr::null_mut(), usize::MAX) }, full.len());
    // A zero-length buffer is not written at all.
    let mut byte = 0x55 as c_char;
    // SAFETY: len 0: nothing is written.
    assert_eq!(unsafe { microvit_last_error_message(&mut byte, 0) }, full.len());
    assert_eq!(byte, 0x55);
    // Every buffer length: NUL-terminated, a prefix, valid UTF-8 (the é and
    // à are two bytes each and never cut in half), and nothing written
    // past the buffer.
    for len in 1..full.len() + 4 {
        let mut buf = vec![0x55 as c_char; len + 8];
        // SAFETY: buf has at least len bytes.
        let n = unsafe { microvit_last_error_message(buf.as_mut_ptr(), len) };
        assert_eq!(n, full.len());
        // SAFETY: NUL-terminated within len.
        let got = unsafe { CStr::from_ptr(buf.as_ptr()) };
        let got = got.to_str().expect("truncation keeps UTF-8 valid");
        assert!(got.len() < len && full.starts_with(got), "len {len}: {got:?}");
        assert!(got.len() + 2 >= len.min(full.len() + 1), "len {len}: cut too much: {got:?}");
        assert!(buf[len..].iter().all(|&b| b == 0x55), "wrote past len {len}");
    }
}

#[test]
fn last_error_message_is_capped_and_per_thread() {
    let long = CString::new(format!("/nonexistent/{}", "\u{e9}".repeat(3000))).unwrap();
    let mut m = ptr::null_mut();
    // SAFETY: valid path and out-pointer.
    assert_eq!(unsafe { microvit_model_load_file(long.as_ptr(), &mut m) }, Status::IoError);
    let msg = last_error();
    assert!(msg.len() < MICROVIT_ERROR_MESSAGE_CAPACITY && msg.len() > MICROVIT_ERROR_MESSAGE_CAPACITY - 4);
    let mut buf = [0 as c_char; MICROVIT_ERROR_MESSAGE_CAPACITY];
    // SAFETY: buf has its length.
    let n = unsafe { microvit_last_error_message(buf.as_mut_ptr(), buf.len()) };
    assert!(n < buf.len(), "a MICROVIT_ERROR_MESSAGE_CAPACITY buffer always holds the message");

    // Another thread has its own (empty) message, and its failure does not
    // touch this thread's.
    std::thread::spawn(|| {
        assert_eq!(last_error(), "");
        // SAFETY: NULL is rejected.
        assert_eq!(unsafe { microvit_model_load_file(ptr::null(), &mut ptr::null_mut()) }, Status::NullArgument);
        assert_eq!(last_error(), "path is NULL");
    })
    .join()
    .unwrap();
    assert_eq!(last_error(), msg);
    // Success clears it.
    expect(microvit_set_backend(Backend::Auto.into()), Status::Ok, "");
}

#[test]
fn load_from_memory() {
    let blob = seed_blob();
    let mut m = sentinel();
    // SAFETY: (all calls in this test) the buffers are valid for the lengths
    // given, except where NULL or a garbage length is the point.
    // SAFETY: a NULL argument is what is being checked; the rest are valid.
    expect(unsafe { microvit_model_load(ptr::null(), blob.len(), &mut m) }, Status::NullArgument, "data is NULL");
    assert!(m.is_null(), "a failure stores NULL");
    // SAFETY: see above.
    expect(unsafe { microvit_model_load(ptr::null(), 0, &mut m) }, Status::NullArgument, "data is NULL");
    // SAFETY: see above.
    expect(
        unsafe { microvit_model_load(blob.as_ptr(), blob.len(), ptr::null_mut()) },
        Status::NullArgument,
        "out_model",
    );
    m = sentinel();
    // SAFETY: see above.
    expect(unsafe { microvit_model_load(blob.as_ptr(), 0, &mut m) }, Status::InvalidModel, "truncated");
    assert!(m.is_null());
    for garbage in [usize::MAX, isize::MAX as usize + 1, usize::MAX - blob.as_ptr() as usize + 1] {
        // SAFETY: rejected before the buffer is read.
        expect(unsafe { microvit_model_load(blob.as_ptr(), garbage, &mut m) }, Status::InvalidArgument, "data");
    }
    // SAFETY: see above.
    expect(unsafe { microvit_model_load(blob.as_ptr(), blob.len() - 1, &mut m) }, Status::InvalidModel, "truncated");
    let mut corrupt = blob.clone();
    corrupt[1000] ^= 1;
    // SAFETY: see above.
    expect(unsafe { microvit_model_load(corrupt.as_ptr(), corrupt.len(), &mut m) }, Status::InvalidModel, "checksum");
    let mut newer = blob.clone();
    newer[4] = 2;
    restamp_checksum(&mut newer);
    // SAFETY: see above.
    expect(unsafe { microvit_model_load(newer.as_ptr(), newer.len(), &mut m) }, Status::UnsupportedModel, "version 2");
    let mut future = blob.clone();
    future[16] = 200; // the encoding byte: one from a newer converter
    restamp_checksum(&mut future);
    // SAFETY: see above.
    expect(unsafe { microvit_model_load(future.as_ptr(), future.len(), &mut m) }, Status::UnsupportedModel, "200");
    // A garbage blob of the right length.
    let junk = vec![0xA5u8; blob.len()];
    // SAFETY: see above.
    expect(unsafe { microvit_model_load(junk.as_ptr(), junk.len(), &mut m) }, Status::InvalidModel, "magic");
    assert!(m.is_null());

    // The copy is independent of the buffer.
    let mut copy = blob.clone();
    let model = load(&copy);
    copy.fill(0);
    drop(copy);
    let image = random_image(&EngineShape::SEED, 1);
    let engine_model = microvit_engine::Model::from_bytes(&blob).unwrap();
    let expected = engine_model.infer(&image, &mut engine_model.workspace()).unwrap().to_vec();
    assert_eq!(classify(&model, ptr::null_mut(), &image).logits, expected);
}

#[test]
fn load_borrowed() {
    let blob = seed_blob();
    // A u32 vector is 4-byte aligned; one byte in, it is not.
    let mut words = vec![0u32; blob.len() / 4 + 1];
    // SAFETY: the vector has at least blob.len() + 1 bytes.
    let bytes = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 4) };
    bytes[..blob.len()].copy_from_slice(&blob);
    let mut m = sentinel();
    // SAFETY: (all calls in this test) valid buffers except where NULL is the
    // point; `words` outlives the model.
    // SAFETY: a NULL argument is what is being checked; the rest are valid.
    expect(unsafe { microvit_model_load_borrowed(ptr::null(), 64, &mut m) }, Status::NullArgument, "data is NULL");
    assert!(m.is_null());
    // SAFETY: see above.
    expect(
        unsafe { microvit_model_load_borrowed(bytes.as_ptr(), blob.len(), ptr::null_mut()) },
        Status::NullArgument,
        "",
    );
    // SAFETY: see above.
    expect(unsafe { microvit_model_load_borrowed(bytes.as_ptr(), usize::MAX, &mut m) }, Status::InvalidArgument, "");
    // SAFETY: see above.
    expect(unsafe { microvit_model_load_borrowed(bytes.as_ptr(), 10, &mut m) }, Status::InvalidModel, "truncated");
    m = sentinel();
    bytes.copy_within(..blob.len(), 1);
    // SAFETY: see above.
    let status = unsafe { microvit_model_load_borrowed(bytes[1..].as_ptr(), blob.len(), &mut m) };
    expect(status, Status::MisalignedBuffer, "4-byte aligned");
    assert!(m.is_null());
    bytes.copy_within(1..blob.len() + 1, 0);
    // SAFETY: see above.
    expect(unsafe { microvit_model_load_borrowed(bytes.as_ptr(), blob.len(), &mut m) }, Status::Ok, "");
    let model = Loaded(m);
    let image = random_image(&EngineShape::SEED, 7);
    let copied = load(&blob);
    assert_eq!(classify(&model, ptr::null_mut(), &image), classify(&copied, ptr::null_mut(), &image));
    drop(model);
    drop(words);
}

#[test]
fn load_from_file() {
    let mut m = sentinel();
    // SAFETY: (all calls in this test) valid strings and out-pointers except
    // where NULL is the point.
    // SAFETY: a NULL argument is what is being checked; the rest are valid.
    expect(unsafe { microvit_model_load_file(ptr::null(), &mut m) }, Status::NullArgument, "path is NULL");
    assert!(m.is_null());
    let path = CString::new(SEED_MODEL).unwrap();
    // SAFETY: see above.
    expect(unsafe { microvit_model_load_file(path.as_ptr(), ptr::null_mut()) }, Status::NullArgument, "out_model");
    let missing = CString::new("/nonexistent/model.mvit").unwrap();
    // SAFETY: see above.
    expect(unsafe { microvit_model_load_file(missing.as_ptr(), &mut m) }, Status::IoError, "/nonexistent/model.mvit");
    let dir = CString::new(env!("CARGO_MANIFEST_DIR")).unwrap();
    // SAFETY: see above.
    expect(unsafe { microvit_model_load_file(dir.as_ptr(), &mut m) }, Status::IoError, "cannot read");
    let empty = CString::new("").unwrap();
    // SAFETY: see above.
    expect(unsafe { microvit_model_load_file(empty.as_ptr(), &mut m) }, Status::IoError, "cannot read");

    let tmp = std::env::temp_dir().join(format!("microvit-ffi-test-{}.mvit", std::process::id()));
    std::fs::write(&tmp, &seed_blob()[..500]).unwrap();
    let truncated = CString::new(tmp.to_str().unwrap()).unwrap();
    // SAFETY: see above.
    expect(unsafe { microvit_model_load_file(truncated.as_ptr(), &mut m) }, Status::InvalidModel, "truncated");
    assert!(last_error().starts_with(tmp.to_str().unwrap()), "the message names the file");
    std::fs::remove_file(&tmp).unwrap();
    assert!(m.is_null());

    // SAFETY: see above.
    expect(unsafe { microvit_model_load_file(path.as_ptr(), &mut m) }, Status::Ok, "");
    let model = Loaded(m);
    assert_eq!(shape(&model).classes, 10);
}

/// Issue #18: a FIFO with no writer blocked microvit_model_load_file for
/// ever (opening it blocks), and /dev/zero was read to 256 MiB before the
/// size check. Both are refused from their metadata, before the open, as
/// IO_ERROR. The FIFO part needs `mkfifo`, which miri cannot run; the
/// devices run everywhere.
#[cfg(unix)]
#[test]
fn load_file_refuses_fifos_and_devices() {
    let mut m = sentinel();
    #[cfg(not(miri))]
    {
        let fifo = std::env::temp_dir().join(format!("microvit-ffi-fifo-{}.mvit", std::process::id()));
        let _ = std::fs::remove_file(&fifo);
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs").success());
        let path = CString::new(fifo.to_str().unwrap()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut m = sentinel();
            // SAFETY: a valid string and out-pointer.
            let status = unsafe { microvit_model_load_file(path.as_ptr(), &mut m) };
            tx.send((status, last_error(), m.is_null())).unwrap();
        });
        let (status, message, reset) = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap_or_else(|_| {
            // Release the blocked open (a writer that closes at once), then fail.
            let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
            panic!("microvit_model_load_file blocked on a FIFO with no writer");
        });
        assert_eq!(status, Status::IoError, "{message}");
        assert!(message.ends_with("not a regular file (a FIFO, socket or device)"), "{message}");
        assert!(reset);
        std::fs::remove_file(&fifo).unwrap();
    }
    for device in ["/dev/zero", "/dev/null"] {
        let path = CString::new(device).unwrap();
        // SAFETY: a valid string and out-pointer.
        let status = unsafe { microvit_model_load_file(path.as_ptr(), &mut m) };
        expect(
            status,
            Status::IoError,
            &format!("cannot read {device}: not a regular file (a FIFO, socket or device)"),
        );
        assert!(m.is_null());
    }
}

#[test]
fn free_accepts_null() {
    // SAFETY: NULL is documented as a no-op.
    unsafe { microvit_model_free(ptr::null_mut()) };
    // SAFETY: as above.
    unsafe { microvit_workspace_free(ptr::null_mut()) };
    let model = load(&seed_blob());
    let ws = workspace(&model);
    // SAFETY: live objects, freed once.
    unsafe { microvit_workspace_free(ws.0) };
    std::mem::forget(ws);
    // SAFETY: as above.
    unsafe { microvit_model_free(model.0) };
    std::mem::forget(model);
}

#[test]
fn shape_of_the_seed_model() {
    // The f32 seed itself, under miri too: nothing here runs it.
    let model = load(&std::fs::read(SEED_MODEL).unwrap());
    let mut s = std::mem::MaybeUninit::uninit();
    // SAFETY: (all calls in this test) NULL is the point, or valid pointers.
    expect(unsafe { microvit_model_shape(ptr::null(), s.as_mut_ptr()) }, Status::NullArgument, "model is NULL");
    // SAFETY: see above.
    expect(unsafe { microvit_model_shape(model.0, ptr::null_mut()) }, Status::NullArgument, "out_shape is NULL");
    let s = shape(&model);
    let expected = microvit::Shape {
        image_side: 28,
        patch_side: 7,
        pixels: 784,
        classes: 10,
        tokens: 17,
        dim: 32,
        heads: 2,
        encoding: Encoding::F32,
        parameter_count: 6794,
    };
    assert_eq!(s, expected);
    // SAFETY: a static string.
    let name = unsafe { CStr::from_ptr(microvit_encoding_name(EncodingArg(s.encoding as i32))) };
    assert_eq!(name.to_str().unwrap(), "f32");
    for (code, name) in [(2, "f16"), (3, "int8"), (0, "unknown"), (-1, "unknown"), (4, "unknown")] {
        // SAFETY: a static string.
        assert_eq!(unsafe { CStr::from_ptr(microvit_encoding_name(EncodingArg(code))) }.to_str().unwrap(), name);
        // The 0.1 name answers the same.
        // SAFETY: a static string.
        assert_eq!(unsafe { CStr::from_ptr(microvit_dtype_name(EncodingArg(code))) }.to_str().unwrap(), name);
    }
}

#[test]
fn workspace_create_checks_its_arguments() {
    let model = load(&seed_blob());
    let mut w = sentinel();
    // SAFETY: (all calls in this test) NULL is the point, or valid pointers.
    expect(unsafe { microvit_workspace_create(ptr::null(), &mut w) }, Status::NullArgument, "model is NULL");
    assert!(w.is_null());
    // SAFETY: see above.
    expect(unsafe { microvit_workspace_create(model.0, ptr::null_mut()) }, Status::NullArgument, "out_workspace");
    let ws = workspace(&model);
    // A workspace where a model belongs, and the reverse, is detected.
    // SAFETY: both are live microvit objects; the tag check reads their
    // first 8 bytes only.
    let status = unsafe { microvit_workspace_create(ws.0.cast(), &mut w) };
    expect(status, Status::InvalidArgument, "not point to a live microvit_model");
    let image = random_image(&EngineShape::SEED, 3);
    // SAFETY: see above.
    let status = unsafe {
        microvit_classify(
            model.0,
            model.0.cast(),
            image.as_ptr(),
            image.len(),
            &mut 0,
            ptr::null_mut(),
            0,
            ptr::null_mut(),
            0,
        )
    };
    expect(status, Status::InvalidArgument, "not point to a live microvit_workspace");
    // The same with a workspace as classify's model (a WorkspaceBox is
    // smaller than a ModelBox: the check must read the tag alone), and as
    // every other function's model.
    // SAFETY: see above.
    let status = unsafe {
        microvit_classify(
            ws.0.cast(),
            ptr::null_mut(),
            image.as_ptr(),
            image.len(),
            &mut 0,
            ptr::null_mut(),
            0,
            ptr::null_mut(),
            0,
        )
    };
    expect(status, Status::InvalidArgument, "model does not point to a live microvit_model");
    let mut s = std::mem::MaybeUninit::uninit();
    // SAFETY: see above.
    let status = unsafe { microvit_model_shape(ws.0.cast(), s.as_mut_ptr()) };
    expect(status, Status::InvalidArgument, "model does not point to a live microvit_model");
    let mut b = Backend::Auto;
    // SAFETY: see above.
    let status = unsafe { microvit_model_backend(ws.0.cast(), &mut b) };
    expect(status, Status::InvalidArgument, "model does not point to a live microvit_model");
    // Freeing one as the other leaves it alone (freeing it with the other's
    // layout would corrupt the heap); both still work after.
    // SAFETY: live microvit objects; the free functions check the tag first.
    unsafe { microvit_model_free(ws.0.cast()) };
    // SAFETY: see above.
    unsafe { microvit_workspace_free(model.0.cast()) };
    let expected = classify(&model, ptr::null_mut(), &image);
    assert_eq!(classify(&model, ws.0, &image), expected);
}

#[test]
fn classify_checks_every_argument() {
    let model = load(&seed_blob());
    let ws = workspace(&model);
    // The pixels in u32-aligned storage: case 14 passes them as out_class,
    // which must fail on the overlap, not on alignment. A Vec<u8> is only
    // byte-aligned (miri's allocator shows it: seeds 1 to 3 misalign it).
    let mut storage = [0u32; 784 / 4];
    bytes_of_words(&mut storage).copy_from_slice(&random_image(&EngineShape::SEED, 5));
    let image: &[u8] = bytes_of_words(&mut storage);
    // Room for 20 logits, so that the overlapping cases stay in bounds even
    // if a check were missing.
    let (mut class, mut logits, mut probs) = (0u32, [0f32; 20], [0f32; 10]);
    let (c, l, p) = (&mut class as *mut u32, logits.as_mut_ptr(), probs.as_mut_ptr());
    let px = image.as_ptr();
    type Call = (*const Model, *const u8, usize, *mut u32, *mut f32, usize, *mut f32, usize);
    let run = |(m, px, n, c, l, lc, p, pc): Call, w: *mut Workspace| {
        // SAFETY: each buffer is valid for the length given, or NULL, or the
        // length is garbage that the check must catch before any access.
        unsafe { microvit_classify(m, w, px, n, c, l, lc, p, pc) }
    };
    let null_f = ptr::null_mut::<f32>();
    let cases: Vec<(Call, Status, &str)> = vec![
        ((ptr::null(), px, 784, c, l, 10, p, 10), Status::NullArgument, "model is NULL"),
        ((model.0, ptr::null(), 784, c, l, 10, p, 10), Status::NullArgument, "pixels is NULL"),
        ((model.0, ptr::null(), 0, c, l, 10, p, 10), Status::NullArgument, "pixels is NULL"),
        ((model.0, px, 0, c, l, 10, p, 10), Status::InvalidArgument, "pixel_count is 0"),
        ((model.0, px, 783, c, l, 10, p, 10), Status::InvalidArgument, "pixel_count is 783, 1 image(s) of 28x28"),
        ((model.0, px, 785, c, l, 10, p, 10), Status::InvalidArgument, "need 784"),
        ((model.0, px, usize::MAX, c, l, 10, p, 10), Status::InvalidArgument, "pixel_count"),
        ((model.0, px, 784, c, l, 9, p, 10), Status::BufferTooSmall, "out_logits has room for 9 values, 10"),
        ((model.0, px, 784, c, l, 0, p, 10), Status::BufferTooSmall, "out_logits"),
        ((model.0, px, 784, c, l, 10, p, 3), Status::BufferTooSmall, "out_probs has room for 3"),
        ((model.0, px, 784, c, l, 10, l, 10), Status::InvalidArgument, "out_logits and out_probs overlap"),
        ((model.0, px, 784, c, l, 10, l.wrapping_add(9), 10), Status::InvalidArgument, "out_logits and out_probs"),
        (
            (model.0, px, 784, l.wrapping_add(3).cast(), l.wrapping_add(1), 10, p, 10),
            Status::InvalidArgument,
            "out_class and out_logits",
        ),
        ((model.0, px, 784, l.wrapping_add(11).cast(), l.wrapping_add(1), 10, p, 10), Status::Ok, ""),
        ((model.0, px, 784, px as *mut u32, null_f, 0, null_f, 0), Status::InvalidArgument, "pixels and out_class"),
        ((model.0, px, 784, c, l.cast::<u8>().wrapping_add(2).cast(), 10, p, 10), Status::InvalidArgument, "aligned"),
        ((model.0, px, 784, c, l, usize::MAX, null_f, usize::MAX), Status::Ok, ""),
        ((model.0, px, 784, ptr::null_mut(), null_f, 10, null_f, 10), Status::Ok, ""),
        ((model.0, px, 784, c, null_f, 0, p, 10), Status::Ok, ""),
    ];
    for w in [ws.0, ptr::null_mut()] {
        for (i, &(call, status, needle)) in cases.iter().enumerate() {
            // Under miri an f32 inference takes minutes: the cases that run
            // one take the workspace and NULL in turn; natively both.
            if cfg!(miri) && status == Status::Ok && (i % 2 == 0) != (w == ws.0) {
                continue;
            }
            let got = run(call, w);
            assert_eq!(got, status, "case {i} ({needle}): {}", last_error_message());
            let msg = last_error();
            assert!(msg.contains(needle), "case {i}: {msg:?} lacks {needle:?}");
        }
    }

    // A workspace made for another shape.
    let other = load(&random_f32_blob(EngineShape { dim: 24, ..EngineShape::SEED }, 9));
    let other_ws = workspace(&other);
    let status = run((model.0, px, 784, c, l, 10, p, 10), other_ws.0);
    expect(status, Status::WorkspaceMismatch, "dim 24");
    // The workspace fits every model of its own shape.
    let twin = load(&random_f32_blob(EngineShape { dim: 24, ..EngineShape::SEED }, 10));
    classify(&twin, other_ws.0, image);
}

#[test]
fn classify_equals_the_engine() {
    let blob = seed_blob();
    let model = load(&blob);
    let ws = workspace(&model);
    let engine_model = microvit_engine::Model::from_bytes(&blob).unwrap();
    let mut engine_ws = engine_model.workspace();
    // Two images under miri, where an f32 inference takes minutes.
    for image in mnist_like_images(if cfg!(miri) { 2 } else { 40 }) {
        let logits = engine_model.infer(&image, &mut engine_ws).unwrap().to_vec();
        let mut probs = vec![0.0; 10];
        microvit_engine::softmax(&logits, &mut probs);
        let expected = Result1 { class: microvit_engine::argmax(&logits) as u32, logits, probs };
        assert_eq!(classify(&model, ws.0, &image), expected);
        assert_eq!(classify(&model, ptr::null_mut(), &image), expected);
    }
}

#[test]
fn batch_equals_per_image_calls() {
    let model = load(&seed_blob());
    let ws = workspace(&model);
    // Three images under miri, where an f32 inference takes minutes.
    let images = mnist_like_images(if cfg!(miri) { 3 } else { 37 });
    let pixels: Vec<u8> = images.concat();
    let n = images.len();
    let singles: Vec<Result1> = images.iter().map(|image| classify(&model, ws.0, image)).collect();
    let (mut classes, mut logits, mut probs) = (vec![u32::MAX; n], vec![f32::NAN; n * 10], vec![f32::NAN; n * 10]);
    for w in [ws.0, ptr::null_mut()] {
        // SAFETY: every buffer has the length passed with it.
        let status = unsafe {
            microvit_classify_batch(
                model.0,
                w,
                n,
                pixels.as_ptr(),
                pixels.len(),
                classes.as_mut_ptr(),
                classes.len(),
                logits.as_mut_ptr(),
                logits.len(),
                probs.as_mut_ptr(),
                probs.len(),
            )
        };
        expect(status, Status::Ok, "");
        for (i, one) in singles.iter().enumerate() {
            assert_eq!(classes[i], one.class, "image {i}");
            assert_eq!(logits[i * 10..][..10], one.logits[..], "image {i}");
            assert_eq!(probs[i * 10..][..10], one.probs[..], "image {i}");
        }
    }
    // Only the classes.
    let mut only = vec![u32::MAX; n];
    // SAFETY: as above.
    let status = unsafe {
        microvit_classify_batch(
            model.0,
            ws.0,
            n,
            pixels.as_ptr(),
            pixels.len(),
            only.as_mut_ptr(),
            n,
            ptr::null_mut(),
            0,
            ptr::null_mut(),
            0,
        )
    };
    expect(status, Status::Ok, "");
    assert_eq!(only, classes);
}

#[test]
fn batch_checks_every_argument() {
    let model = load(&seed_blob());
    let pixels = mnist_like_images(4).concat();
    let (mut classes, mut logits) = ([0u32; 4], [0f32; 44]);
    let (c, l, px) = (classes.as_mut_ptr(), logits.as_mut_ptr(), pixels.as_ptr());
    let null_f = ptr::null_mut::<f32>();
    type Call = (*const Model, usize, *const u8, usize, *mut u32, usize, *mut f32, usize);
    let cases: Vec<(Call, Status, &str)> = vec![
        ((ptr::null(), 4, px, 3136, c, 4, l, 40), Status::NullArgument, "model is NULL"),
        ((model.0, 4, ptr::null(), 3136, c, 4, l, 40), Status::NullArgument, "pixels is NULL"),
        ((model.0, 4, px, 3135, c, 4, l, 40), Status::InvalidArgument, "pixel_count is 3135, 4 image(s)"),
        ((model.0, 3, px, 3136, c, 4, l, 40), Status::InvalidArgument, "need 2352"),
        ((model.0, usize::MAX / 2, px, 3136, c, 4, l, 40), Status::InvalidArgument, "overflows"),
        ((model.0, usize::MAX / 784, px, usize::MAX / 784 * 784, c, 4, l, 40), Status::InvalidArgument, "pixels: a"),
        ((model.0, 4, px, 3136, c, 3, l, 40), Status::BufferTooSmall, "out_classes has room for 3 values, 4"),
        ((model.0, 4, px, 3136, c, 4, l, 39), Status::BufferTooSmall, "out_logits has room for 39 values, 40"),
        (
            (model.0, 4, px, 3136, l.wrapping_add(39).cast(), 4, l, 40),
            Status::InvalidArgument,
            "out_classes and out_logits",
        ),
        ((model.0, 4, px, 3136, l.wrapping_add(40).cast(), 4, l, 40), Status::Ok, ""),
        ((model.0, 4, px, 3136, c, usize::MAX, l, usize::MAX), Status::Ok, ""),
        ((model.0, 0, px, 0, c, 0, l, 0), Status::Ok, ""),
        ((model.0, 0, px, 0, ptr::null_mut(), 7, null_f, 7), Status::Ok, ""),
        // No images: NULL pixels and outputs are fine, as the header says.
        ((model.0, 0, ptr::null(), 0, ptr::null_mut(), 0, null_f, 0), Status::Ok, ""),
        ((model.0, 0, ptr::null(), 1, ptr::null_mut(), 0, null_f, 0), Status::NullArgument, "pixels is NULL"),
        ((model.0, 2, px, 1568, ptr::null_mut(), 0, l, 20), Status::Ok, ""),
    ];
    for (i, &((m, n, px, pc, c, cc, l, lc), status, needle)) in cases.iter().enumerate() {
        // SAFETY: each buffer is valid for the length given, or NULL, or the
        // length is garbage that the check must catch before any access.
        let got = unsafe { microvit_classify_batch(m, ptr::null_mut(), n, px, pc, c, cc, l, lc, null_f, 0) };
        assert_eq!(got, status, "case {i} ({needle}): {}", last_error_message());
        assert!(last_error().contains(needle), "case {i}: {:?} lacks {needle:?}", last_error());
    }
    // Probabilities are checked like logits.
    let mut probs = [0f32; 40];
    // SAFETY: as above.
    let status =
        unsafe { microvit_classify_batch(model.0, ptr::null_mut(), 4, px, 3136, c, 4, l, 40, probs.as_mut_ptr(), 30) };
    expect(status, Status::BufferTooSmall, "out_probs has room for 30");
    // SAFETY: as above.
    let status = unsafe { microvit_classify_batch(model.0, ptr::null_mut(), 4, px, 3136, c, 4, l, 40, l, 40) };
    expect(status, Status::InvalidArgument, "out_logits and out_probs overlap");
}

#[test]
fn thread_cache_follows_the_model_shape() {
    std::thread::spawn(|| {
        let seed = load(&seed_blob());
        let other_shape = EngineShape { image_side: 32, patch_side: 4, dim: 24, heads: 3, classes: 7 };
        let other = load(&random_f32_blob(other_shape, 3));
        assert_eq!(cached_workspace_shape(), None, "nothing is allocated before the first NULL call");
        let image = random_image(&EngineShape::SEED, 11);
        let first = classify(&seed, ptr::null_mut(), &image);
        assert_eq!(cached_workspace_shape(), Some(EngineShape::SEED));
        // A caller's workspace leaves the cache alone.
        let ws = workspace(&seed);
        assert_eq!(classify(&seed, ws.0, &image), first);
        assert_eq!(cached_workspace_shape(), Some(EngineShape::SEED));
        // Another shape replaces it.
        let other_image = random_image(&other_shape, 12);
        let mut class = 0;
        // SAFETY: valid buffers.
        let status = unsafe {
            microvit_classify(
                other.0,
                ptr::null_mut(),
                other_image.as_ptr(),
                other_image.len(),
                &mut class,
                ptr::null_mut(),
                0,
                ptr::null_mut(),
                0,
            )
        };
        expect(status, Status::Ok, "");
        assert!(class < 7);
        assert_eq!(cached_workspace_shape(), Some(other_shape));
        assert_eq!(classify(&seed, ptr::null_mut(), &image), first);
        assert_eq!(cached_workspace_shape(), Some(EngineShape::SEED));
        microvit_thread_cache_release();
        assert_eq!(cached_workspace_shape(), None);
        microvit_thread_cache_release();
        assert_eq!(classify(&seed, ptr::null_mut(), &image), first);
    })
    .join()
    .unwrap();
}

#[test]
fn one_model_shared_by_many_threads() {
    let model = load(&seed_blob());
    // Under miri (minutes per f32 inference): 2 images, 2 threads, once each.
    let (image_count, threads, rounds) = if cfg!(miri) { (2, 2, 1) } else { (20, 4, 5) };
    let images = mnist_like_images(image_count);
    let expected: Vec<Result1> = images.iter().map(|im| classify(&model, ptr::null_mut(), im)).collect();
    struct Shared(*mut Model);
    // SAFETY: the model is immutable and documented as shareable.
    unsafe impl Sync for Shared {}
    let shared = Shared(model.0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (shared, images, expected) = (&shared, &images, &expected);
            s.spawn(move || {
                let model = Loaded(shared.0);
                let owned = (t % 2 == 0).then(|| workspace(&model));
                let ws = owned.as_ref().map_or(ptr::null_mut(), |w| w.0);
                for _ in 0..rounds {
                    for (im, want) in images.iter().zip(expected) {
                        assert_eq!(&classify(&model, ws, im), want);
                    }
                }
                drop(owned);
                std::mem::forget(model); // Owned by the outer guard.
            });
        }
    });
}

#[test]
fn backends() {
    use microvit_engine::Backend as Engine;
    let best = match Engine::detect() {
        Engine::Scalar => Backend::Scalar,
        Engine::Avx2 => Backend::Avx2,
        Engine::Avx512Vnni => Backend::Avx512Vnni,
        Engine::AvxVnni => Backend::AvxVnni,
        Engine::Neon => Backend::Neon,
        Engine::Dotprod => Backend::Dotprod,
    };
    assert_eq!(microvit_get_backend(), best, "AUTO resolves to the best backend of this CPU");
    assert!(microvit_backend_available(Backend::Auto.into()));
    assert!(microvit_backend_available(Backend::Scalar.into()));
    assert_eq!(microvit_backend_available(Backend::Avx2.into()), Engine::Avx2.is_available());
    assert_eq!(microvit_backend_available(Backend::Neon.into()), Engine::Neon.is_available());
    assert_eq!(microvit_backend_available(Backend::Avx512Vnni.into()), Engine::Avx512Vnni.is_available());
    assert_eq!(microvit_backend_available(Backend::AvxVnni.into()), Engine::AvxVnni.is_available());
    assert_eq!(microvit_backend_available(Backend::Dotprod.into()), Engine::Dotprod.is_available());
    for garbage in [-1, 7, i32::MAX, i32::MIN] {
        assert!(!microvit_backend_available(BackendArg(garbage)));
        expect(microvit_set_backend(BackendArg(garbage)), Status::InvalidArgument, "not a microvit_backend value");
        // SAFETY: a static string.
        assert_eq!(unsafe { CStr::from_ptr(microvit_backend_name(BackendArg(garbage))) }.to_str().unwrap(), "unknown");
    }
    // Exactly one of the SIMD backends can be missing on any CPU.
    let missing = if Engine::Avx2.is_available() { Backend::Neon } else { Backend::Avx2 };
    expect(microvit_set_backend(missing.into()), Status::BackendUnavailable, "not available on this CPU");
    assert_eq!(microvit_get_backend(), best, "a refused backend changes nothing");
    for (b, name) in [
        (Backend::Auto, "auto"),
        (Backend::Scalar, "scalar"),
        (Backend::Avx2, "avx2"),
        (Backend::Neon, "neon"),
        (Backend::Avx512Vnni, "avx512vnni"),
        (Backend::AvxVnni, "avxvnni"),
        (Backend::Dotprod, "dotprod"),
    ] {
        // SAFETY: a static string.
        assert_eq!(unsafe { CStr::from_ptr(microvit_backend_name(b.into())) }.to_str().unwrap(), name);
    }
    let model_backend = |model: &Loaded| {
        let mut b = Backend::Auto;
        // SAFETY: a live model and a valid out-pointer.
        expect(unsafe { microvit_model_backend(model.0, &mut b) }, Status::Ok, "");
        b
    };
    // A model keeps the backend it was loaded with; f32 models always run
    // the scalar reference.
    let int8 = std::fs::read(SEED_MODEL.replace(".mvit", ".int8.mvit")).unwrap();
    expect(microvit_set_backend(Backend::Scalar.into()), Status::Ok, "");
    assert_eq!(microvit_get_backend(), Backend::Scalar);
    let on_scalar = load(&int8);
    expect(microvit_set_backend(Backend::Auto.into()), Status::Ok, "");
    let on_best = load(&int8);
    assert_eq!(model_backend(&on_scalar), Backend::Scalar);
    assert_eq!(model_backend(&on_best), best);
    assert_eq!(model_backend(&load(&seed_blob())), Backend::Scalar);
    // Both classify every digit the same (int8 is bit-exact everywhere).
    let shape = EngineShape::SEED;
    // Two digits under miri, where an inference takes minutes.
    for seed in 0..if cfg!(miri) { 2 } else { 20 } {
        let image = random_image(&shape, seed);
        let mut logits = [[0f32; 10]; 2];
        for (model, out) in [&on_scalar, &on_best].into_iter().zip(logits.iter_mut()) {
            let mut class = 0;
            // SAFETY: valid buffers of the stated lengths.
            let status = unsafe {
                microvit_classify(
                    model.0,
                    ptr::null_mut(),
                    image.as_ptr(),
                    784,
                    &mut class,
                    out.as_mut_ptr(),
                    10,
                    ptr::null_mut(),
                    0,
                )
            };
            expect(status, Status::Ok, "");
        }
        assert_eq!(logits[0], logits[1], "digit {seed}");
    }
    // SAFETY: (these two calls) NULL is the point, or valid pointers.
    let mut b = Backend::Auto;
    // SAFETY: a NULL argument is what is being checked; the rest are valid.
    expect(unsafe { microvit_model_backend(ptr::null(), &mut b) }, Status::NullArgument, "model is NULL");
    // SAFETY: see above.
    expect(unsafe { microvit_model_backend(on_best.0, ptr::null_mut()) }, Status::NullArgument, "out_backend is NULL");
    assert!(HEADER.contains("  MICROVIT_BACKEND_AUTO = 0,\n  /**"));
    assert!(HEADER.contains("  MICROVIT_BACKEND_DOTPROD = 6,\n};"));
}

#[test]
fn panics_are_caught_at_the_boundary() {
    // No input reaches a panic in the engine (that is the point of its
    // checks), so the guard every exported function runs in is tested
    // directly, with each kind of panic payload.
    let status = guard(|| panic!("boom {}", 42));
    assert_eq!(status, Status::Panic);
    assert!(last_error().contains("panic caught at the C boundary: boom 42"), "{}", last_error());
    assert_eq!(guard(|| panic!("static boom")), Status::Panic);
    assert!(last_error().contains("static boom"));
    assert_eq!(guard(|| std::panic::panic_any(7u8)), Status::Panic);
    assert!(last_error().contains("(no message)"));
    // A panic while the workspace cache or the error buffer is in use leaves
    // both usable.
    assert_eq!(guard_value(-1, || -> i32 { panic!("in a value function") }), -1);
    assert!(last_error().contains("in a value function"));
    assert_eq!(guard_value(5, || 6), 6);
    assert_eq!(guard(|| Ok(())), Status::Ok);
    assert_eq!(last_error(), "");
    assert_eq!(guard(|| Err(Status::BufferTooSmall)), Status::BufferTooSmall);
    // Statuses from a real call still work after a caught panic.
    let model = load(&seed_blob());
    let image = random_image(&EngineShape::SEED, 2);
    classify(&model, ptr::null_mut(), &image);
}

#[test]
fn classify_attention_returns_what_the_attention_saw() {
    // The f32 model's attention for MNIST test digit 0 is PyTorch's (the
    // golden fixture, first digit), and it is opt-in: NULL or a short
    // buffer is refused before anything is written.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let fixture = std::fs::read(format!("{root}/tests/fixtures/microvit-seed.cls_attention.npy")).unwrap();
    let header_len = u16::from_le_bytes([fixture[8], fixture[9]]) as usize;
    let golden: Vec<f32> = fixture[10 + header_len..]
        .chunks_exact(4)
        .take(2 * 17)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    // Only the header and the first digit are inflated: in-process rather
    // than by zcat, so that miri (which cannot start processes) runs it too.
    let gz = std::fs::File::open(format!("{root}/data/t10k-images-idx3-ubyte.gz")).unwrap();
    let mut head = [0u8; 16 + 784];
    std::io::Read::read_exact(&mut flate2::read::GzDecoder::new(gz), &mut head).expect("inflates the test set");
    let digit = &head[16..];
    for (blob, tolerance) in [(std::fs::read(SEED_MODEL).unwrap(), 1e-5f32), (std::fs::read(INT8_MODEL).unwrap(), 0.02)]
    {
        let model = load(&blob);
        let (mut class, mut logits, mut attention) = (0u32, [0f32; 10], [0f32; 34]);
        // SAFETY: valid buffers of the stated lengths.
        let status = unsafe {
            microvit_classify_attention(
                model.0,
                ptr::null_mut(),
                digit.as_ptr(),
                784,
                &mut class,
                logits.as_mut_ptr(),
                10,
                attention.as_mut_ptr(),
                34,
            )
        };
        expect(status, Status::Ok, "");
        assert_eq!(class, 7);
        for head in attention.chunks_exact(17) {
            assert!((head.iter().sum::<f32>() - 1.0).abs() < 2e-3, "a head's row sums to 1");
        }
        let worst = attention.iter().zip(&golden).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst <= tolerance, "attention differs from PyTorch by {worst}");
        let mut short = [7f32; 33];
        // SAFETY: valid buffers of the stated lengths (NULL is the point).
        let status = unsafe {
            microvit_classify_attention(
                model.0,
                ptr::null_mut(),
                digit.as_ptr(),
                784,
                ptr::null_mut(),
                ptr::null_mut(),
                0,
                short.as_mut_ptr(),
                33,
            )
        };
        expect(status, Status::BufferTooSmall, "out_attention has room for 33 values, 34 are needed");
        assert!(short.iter().all(|&v| v == 7.0), "nothing written on failure");
        // SAFETY: as above.
        let status = unsafe {
            microvit_classify_attention(
                model.0,
                ptr::null_mut(),
                digit.as_ptr(),
                784,
                ptr::null_mut(),
                ptr::null_mut(),
                0,
                ptr::null_mut(),
                34,
            )
        };
        expect(status, Status::NullArgument, "out_attention is NULL");
        // SAFETY: as above.
        let status = unsafe {
            microvit_classify_attention(
                model.0,
                ptr::null_mut(),
                digit.as_ptr(),
                783,
                ptr::null_mut(),
                ptr::null_mut(),
                0,
                attention.as_mut_ptr(),
                34,
            )
        };
        expect(status, Status::InvalidArgument, "pixel_count is 783");
        // SAFETY: NULL model.
        let status = unsafe {
            microvit_classify_attention(
                ptr::null(),
                ptr::null_mut(),
                digit.as_ptr(),
                784,
                ptr::null_mut(),
                ptr::null_mut(),
                0,
                attention.as_mut_ptr(),
                34,
            )
        };
        expect(status, Status::NullArgument, "model is NULL");
    }
}
