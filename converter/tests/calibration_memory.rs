//! int8 calibration runs in memory that does not grow with the number of
//! calibration digits (issue #18: 1.4 million blank digits, a 1 MB gzip,
//! made `convert --dtype int8` reserve 5.6 GB and abort).
//!
//! A counting global allocator measures the peak heap use of `convert`
//! above what was allocated before the call (the calibration digits
//! themselves are the caller's): it must be the same for 100 and for 3,000
//! digits. Before the fix it grew by 8 bytes per patch value, 4 KiB per
//! digit. One test in this binary, so no other test allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use microvit_converter::quantize::MEASURED_DIGITS;
use microvit_converter::{convert, ConvertOptions, Encoding, QuantReport};
use microvit_dataset::repo_root;
use microvit_engine::synthetic::random_image;
use microvit_engine::Shape;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::SeqCst) + by;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak heap bytes `convert` used above what was live when it was called,
/// and what it reported.
fn peak_of_convert(safetensors: &[u8], calibration: Vec<u8>) -> (usize, QuantReport) {
    let options = ConvertOptions { encoding: Encoding::Int8, calibration: Some(calibration), ..Default::default() };
    let before = CURRENT.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let converted = convert(safetensors, &options).expect("the seed model converts");
    let peak = PEAK.load(Ordering::SeqCst) - before;
    (peak, converted.report.expect("int8 reports its calibration"))
}

#[test]
fn calibration_memory_does_not_grow_with_the_number_of_digits() {
    let safetensors = std::fs::read(repo_root().join("models/microvit-seed.safetensors")).unwrap();
    let digits = |n: u64| -> Vec<u8> { (0..n).flat_map(|seed| random_image(&Shape::SEED, seed)).collect() };
    let (few, _) = peak_of_convert(&safetensors, digits(100));
    let (many, report) = peak_of_convert(&safetensors, digits(3_000));
    // The same work per digit, one digit at a time: the peaks agree to
    // within allocator noise, far below the 2,900 × 4 KiB = 11.9 MB that
    // keeping every patch value would cost.
    assert!(many <= few + 64 * 1024, "peak heap use grew from {few} to {many} bytes with 30 times the digits");
    assert_eq!((report.calibration_images, report.measured_images), (3_000, 3_000));
    assert_eq!(report.z_values, 3_000 * 16 * 32);

    // Past MEASURED_DIGITS the scales still come from every digit, and the
    // error figures from the first MEASURED_DIGITS, as the report says.
    let n = MEASURED_DIGITS + 7;
    let mut blank_then_ink = vec![0u8; n * 784];
    blank_then_ink[(n - 1) * 784..].copy_from_slice(&random_image(&Shape::SEED, 1));
    let (_, report) = peak_of_convert(&safetensors, blank_then_ink);
    assert_eq!((report.calibration_images, report.measured_images), (n, MEASURED_DIGITS));
    assert!(report.to_string().contains(&format!("(on the first {MEASURED_DIGITS} digits)")), "{report}");
    let (_, inked) = peak_of_convert(&safetensors, random_image(&Shape::SEED, 1));
    let (_, blank) = peak_of_convert(&safetensors, vec![0; 784]);
    assert!(inked.z_max > blank.z_max, "the digits differ");
    assert_eq!(report.z_max, inked.z_max, "the last digit, past the measured ones, set the range");
}
