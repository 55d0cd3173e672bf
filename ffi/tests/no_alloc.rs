//! The classify functions never allocate when given a workspace, on success
//! or on any error path (the last error message lives in a fixed buffer);
//! with a NULL workspace they allocate only on a thread's first call.
//!
//! A counting global allocator counts allocations made on the thread that
//! armed it; one test function, so nothing else runs meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use microvit::*;
use microvit_engine::synthetic::{random_f32_blob, random_image};
use microvit_engine::Shape as EngineShape;

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

fn note_allocation() {
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: forwards to the system allocator unchanged.
// SAFETY: every call is forwarded to the system allocator unchanged; the
// counting touches no allocator state.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_during(f: impl FnOnce()) -> usize {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    ALLOCATIONS.load(Ordering::SeqCst)
}

/// `microvit_classify` with every output, returning the status.
fn classify(model: *const Model, ws: *mut Workspace, image: &[u8], logits: &mut [f32], probs: &mut [f32]) -> Status {
    let mut class = 0u32;
    // SAFETY: every buffer has the length passed with it, or the call fails
    // its checks first.
    unsafe {
        microvit_classify(
            model,
            ws,
            image.as_ptr(),
            image.len(),
            &mut class,
            logits.as_mut_ptr(),
            logits.len(),
            probs.as_mut_ptr(),
            probs.len(),
        )
    }
}

#[test]
fn classify_does_not_allocate() {
    let seen = allocations_during(|| {
        std::hint::black_box(Vec::<u64>::with_capacity(std::hint::black_box(4)));
    });
    assert!(seen >= 1, "the counting allocator works");

    // The f32 seed; under miri, which runs floats in software (minutes an
    // inference), its int8 twin: same shape, same calls.
    let name = if cfg!(miri) { "microvit-seed.int8.mvit" } else { "microvit-seed.mvit" };
    let blob = std::fs::read(format!("{}/../models/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let other_blob = random_f32_blob(EngineShape { dim: 24, ..EngineShape::SEED }, 1);
    let (mut model, mut other, mut ws, mut other_ws) =
        (ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    // SAFETY: valid buffers and out-pointers.
    unsafe {
        assert_eq!(microvit_model_load(blob.as_ptr(), blob.len(), &mut model), Status::Ok);
        assert_eq!(microvit_model_load(other_blob.as_ptr(), other_blob.len(), &mut other), Status::Ok);
        assert_eq!(microvit_workspace_create(model, &mut ws), Status::Ok);
        assert_eq!(microvit_workspace_create(other, &mut other_ws), Status::Ok);
    }
    // Two images under miri, where an inference takes seconds to minutes.
    let n = if cfg!(miri) { 2 } else { 50 };
    let images: Vec<Vec<u8>> = (0..n as u64).map(|s| random_image(&EngineShape::SEED, s)).collect();
    let batch: Vec<u8> = images.concat();
    let (mut logits, mut probs) = (vec![0f32; 10], vec![0f32; 10]);
    let (mut classes, mut batch_logits) = (vec![0u32; n], vec![0f32; n * 10]);
    let mut message = [0 as std::ffi::c_char; 256];
    // A drawing (dark strokes on a transparent RGBA canvas) and a blank page.
    let mut drawing = vec![0u8; 160 * 120 * 4];
    for y in 20..100 {
        for x in 70..76 {
            drawing[(y * 160 + x) * 4 + 3] = 255;
        }
    }
    let drawing = Image {
        pixels: drawing.as_ptr(),
        len: drawing.len(),
        width: 160,
        height: 120,
        stride: 0,
        format: PixelFormat::Rgba8.into(),
    };
    let blank_pixels = vec![230u8; 64 * 48];
    let blank = Image {
        pixels: blank_pixels.as_ptr(),
        len: blank_pixels.len(),
        width: 64,
        height: 48,
        stride: 0,
        format: PixelFormat::Gray8.into(),
    };
    let mut input = vec![0u8; 784];
    let classify_image = |ws: *mut Workspace, image: &Image, input: &mut [u8], class: &mut u32| {
        // SAFETY: the image describes live pixels; the outputs have their lengths.
        unsafe {
            microvit_classify_image(
                model,
                ws,
                image,
                Polarity::Auto.into(),
                class,
                ptr::null_mut(),
                0,
                ptr::null_mut(),
                0,
                input.as_mut_ptr(),
                input.len(),
                ptr::null_mut(),
            )
        }
    };
    let mut class = 0u32;

    // Warm the thread-local workspace cache and the error buffer.
    assert_eq!(classify(model, ptr::null_mut(), &images[0], &mut logits, &mut probs), Status::Ok);
    assert_eq!(classify(model, ws, &images[0][1..], &mut logits, &mut probs), Status::InvalidArgument);

    let count = allocations_during(|| {
        for image in &images {
            assert_eq!(classify(model, ws, image, &mut logits, &mut probs), Status::Ok);
            assert_eq!(classify(model, ptr::null_mut(), image, &mut logits, &mut probs), Status::Ok);
        }
        // SAFETY: valid buffers.
        let status = unsafe {
            microvit_classify_batch(
                model,
                ws,
                n,
                batch.as_ptr(),
                batch.len(),
                classes.as_mut_ptr(),
                n,
                batch_logits.as_mut_ptr(),
                n * 10,
                ptr::null_mut(),
                0,
            )
        };
        assert_eq!(status, Status::Ok);
        // Photos and drawings, and one with no digit.
        assert_eq!(classify_image(ws, &drawing, &mut input, &mut class), Status::Ok);
        assert_eq!(classify_image(ptr::null_mut(), &drawing, &mut input, &mut class), Status::Ok);
        assert_eq!(classify_image(ws, &blank, &mut input, &mut class), Status::NoDigit);
        // SAFETY: valid image and output.
        let status = unsafe {
            microvit_preprocess(model, ws, &drawing, Polarity::Auto.into(), input.as_mut_ptr(), 784, ptr::null_mut())
        };
        assert_eq!(status, Status::Ok);
        // Error paths, each recording a formatted message.
        assert_eq!(classify(ptr::null(), ws, &images[0], &mut logits, &mut probs), Status::NullArgument);
        assert_eq!(classify(model, ws, &images[0][1..], &mut logits, &mut probs), Status::InvalidArgument);
        assert_eq!(classify(model, ws, &images[0], &mut logits[..9], &mut probs), Status::BufferTooSmall);
        assert_eq!(classify(model, other_ws, &images[0], &mut logits, &mut probs), Status::WorkspaceMismatch);
        // SAFETY: valid buffers; the overlap is rejected.
        let status = unsafe {
            microvit_classify(
                model,
                ws,
                batch.as_ptr(),
                784,
                ptr::null_mut(),
                logits.as_mut_ptr(),
                10,
                logits.as_mut_ptr(),
                10,
            )
        };
        assert_eq!(status, Status::InvalidArgument);
        // SAFETY: valid buffers; the overflow is rejected.
        let status = unsafe {
            microvit_classify_batch(
                model,
                ws,
                usize::MAX,
                batch.as_ptr(),
                1,
                ptr::null_mut(),
                0,
                ptr::null_mut(),
                0,
                ptr::null_mut(),
                0,
            )
        };
        assert_eq!(status, Status::InvalidArgument);
        // SAFETY: message has its length.
        let n = unsafe { microvit_last_error_message(message.as_mut_ptr(), message.len()) };
        assert!(n > 0);
        // Refusing a backend this CPU lacks does not allocate either.
        let missing = if microvit_backend_available(Backend::Avx2.into()) { Backend::Neon } else { Backend::Avx2 };
        let before = microvit_get_backend();
        assert_eq!(microvit_set_backend(missing.into()), Status::BackendUnavailable);
        assert_eq!(microvit_get_backend(), before);
    });
    assert_eq!(count, 0, "classify allocated {count} times");

    // With a NULL workspace, a model of another shape replaces the cached
    // workspace: the one documented allocation.
    let other_image = random_image(&EngineShape { dim: 24, ..EngineShape::SEED }, 3);
    let count = allocations_during(|| {
        assert_eq!(classify(other, ptr::null_mut(), &other_image, &mut logits, &mut probs), Status::Ok);
    });
    assert!(count > 0, "a new cached workspace is allocated");
    let count = allocations_during(|| {
        assert_eq!(classify(other, ptr::null_mut(), &other_image, &mut logits, &mut probs), Status::Ok);
    });
    assert_eq!(count, 0, "and then reused");

    // SAFETY: live objects, freed once.
    unsafe {
        microvit_workspace_free(ws);
        microvit_workspace_free(other_ws);
        microvit_model_free(model);
        microvit_model_free(other);
    }
    microvit_thread_cache_release();
}
