//! Inference never touches the heap: once a model is loaded and its
//! workspace made, `infer`, `classify`, `infer_batch`,
//! `infer_with_attention`, `preprocess` and `infer_image` allocate nothing,
//! in every encoding on every backend this CPU has (AVX2 here, NEON under
//! qemu in CI).
//!
//! A counting global allocator wraps the system one. It counts allocations
//! (alloc, alloc_zeroed, realloc) only on the thread that armed it, so the
//! test harness's own threads cannot disturb the count, and the tests take a
//! lock so the shared counter is used by one test at a time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use microvit_engine::preprocess::{PixelFormat, Polarity, SourceImage};
use microvit_engine::synthetic::{random_f16_blob, random_f32_blob, random_image, random_int8_blob};
use microvit_engine::{argmax, Backend, InferError, Model, Shape};

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static SERIAL: Mutex<()> = Mutex::new(());

thread_local! {
    // Const-initialised and without a destructor, so reading it from inside
    // the allocator never allocates.
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

fn note_allocation() {
    // `try_with`: the thread-local may already be gone while a thread exits.
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counting touches no allocator state.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's contract for this method, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's contract for this method, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's contract for this method, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for this method, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` with the counter armed on this thread and returns how many
/// allocations it made.
fn allocations_during(f: impl FnOnce()) -> usize {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    ALLOCATIONS.load(Ordering::SeqCst)
}

fn check_inference_does_not_allocate(shape: Shape) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());

    // The counter works: a real allocation while armed is seen.
    let seen = allocations_during(|| {
        let v: Vec<u64> = Vec::with_capacity(std::hint::black_box(16));
        std::hint::black_box(&v);
    });
    assert!(seen >= 1, "the counting allocator saw no allocation");

    let blobs = [random_f32_blob(shape, 0xA110C), random_f16_blob(shape, 0xA110C), random_int8_blob(shape, 0xA110C)];
    for blob in &blobs {
        for backend in Backend::available() {
            let mut model = Model::from_bytes(blob).unwrap();
            model.set_backend(backend).unwrap();
            check_model(&model, &shape);
        }
    }
}

/// Every inference entry point of `model`, on its backend, allocates nothing.
fn check_model(model: &Model<'_>, shape: &Shape) {
    let what = format!("{shape} {} on {}", model.encoding().name(), model.backend());
    let mut ws = model.workspace();
    let images: Vec<Vec<u8>> = (0..100).map(|seed| random_image(shape, seed)).collect();
    let batch: Vec<u8> = images[..10].concat();
    // Expected classes computed before arming, with a workspace of its own.
    let mut check_ws = model.workspace();
    let expected: Vec<usize> = images.iter().map(|im| argmax(model.infer(im, &mut check_ws).unwrap())).collect();
    let mut classes = vec![usize::MAX; images.len()];
    let mut logits = vec![0.0f32; 10 * shape.classes as usize];
    let mut attention = vec![0.0f32; (shape.heads * shape.tokens()) as usize];
    let mut checksum = 0.0f32;
    // A drawing: dark strokes on a transparent 300×200 canvas, and a blank one.
    let mut drawing = vec![0u8; 300 * 200 * 4];
    for y in 40..160 {
        for x in [100usize, 101, 102, 103, 180, 181, 182] {
            drawing[(y * 300 + x) * 4 + 3] = 255;
            drawing[((y / 2 + 60) * 300 + x - 60) * 4 + 3] = 255;
        }
    }
    let drawing = SourceImage::packed(&drawing, PixelFormat::Rgba8, 300, 200).unwrap();
    let blank = vec![200u8; 64 * 48];
    let blank = SourceImage::packed(&blank, PixelFormat::Gray8, 64, 48).unwrap();

    // Warm-up.
    model.infer(&images[0], &mut ws).unwrap();

    let count = allocations_during(|| {
        for (i, image) in images.iter().enumerate() {
            let logits = model.infer(image, &mut ws).unwrap();
            checksum += logits[0];
            classes[i] = model.classify(image, &mut ws).unwrap();
        }
        model.infer_batch(&batch, &mut ws, &mut logits).unwrap();
        model.infer_with_attention(&images[0], &mut ws, &mut attention).unwrap();
        // Photos and drawings: preprocessing, and preprocessing with inference.
        model.preprocess(&drawing, Polarity::Auto, &mut ws).unwrap();
        checksum += model.infer_image(&drawing, Polarity::Auto, &mut ws).unwrap().logits[0];
        // A failing inference does not allocate either.
        assert!(model.infer(&images[0][1..], &mut ws).is_err());
        assert!(matches!(model.infer_image(&blank, Polarity::Auto, &mut ws), Err(InferError::NoDigit(_))));
    });
    assert_eq!(count, 0, "{what}: inference allocated {count} times");
    assert!(checksum.is_finite());
    assert_eq!(classes, expected, "{what}: classify disagrees with argmax of infer");
}

#[cfg_attr(miri, ignore)]
#[test]
fn seed_shape_inference_does_not_allocate() {
    check_inference_does_not_allocate(Shape::SEED);
}

#[cfg_attr(miri, ignore)]
#[test]
fn other_shape_inference_does_not_allocate() {
    check_inference_does_not_allocate(Shape { image_side: 32, patch_side: 4, dim: 24, heads: 3, classes: 7 });
    // One head, one patch covering the whole image (the dense kernels).
    check_inference_does_not_allocate(Shape { image_side: 16, patch_side: 16, dim: 8, heads: 1, classes: 2 });
}
