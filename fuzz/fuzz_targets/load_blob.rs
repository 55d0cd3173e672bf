//! Blob parsing and loading: `Model::from_bytes` and the zero-copy
//! `Model::from_bytes_borrowed` (on an aligned copy) must agree, never
//! panic, and a model they accept must run and give finite logits.
//!
//! Input: one mode byte, then the blob. Mode bit 0 set: before loading, the
//! blob's length field and checksum are rewritten to match its bytes (a
//! hostile file, not a corrupted one), so mutations reach the header, table
//! and value checks behind the checksum. Bit 1 set: the borrowed copy starts
//! at a 4-byte (not 64-byte) boundary.

#![no_main]

use libfuzzer_sys::fuzz_target;
use microvit_engine::format::{self, HEADER_LEN};
use microvit_engine::{LoadError, Model, Workspace, BORROWED_ALIGN};

/// An image of `pixels` bytes that is not all one value.
fn fixed_image(pixels: usize) -> Vec<u8> {
    (0..pixels).map(|i| (i * 37 % 256) as u8).collect()
}

/// A copy of `bytes` at `offset` bytes past a 64-byte boundary.
struct Aligned {
    lines: Vec<[u64; 8]>,
    offset: usize,
    len: usize,
}

impl Aligned {
    fn new(bytes: &[u8], offset: usize) -> Aligned {
        let mut lines = vec![[0u64; 8]; (bytes.len() + offset).div_ceil(64) + 1];
        let raw: &mut [u8] = bytemuck_bytes(&mut lines);
        raw[offset..offset + bytes.len()].copy_from_slice(bytes);
        Aligned { lines, offset, len: bytes.len() }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `lines` owns at least `offset + len` initialised bytes.
        let all = unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<u8>(), self.lines.len() * 64) };
        &all[self.offset..self.offset + self.len]
    }
}

fn bytemuck_bytes(lines: &mut [[u64; 8]]) -> &mut [u8] {
    // SAFETY: u64 arrays have no padding and any byte pattern is a valid u64.
    unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u8>(), lines.len() * 64) }
}

fn run(model: &Model<'_>) -> (Vec<u32>, Vec<i32>) {
    let shape = model.shape();
    let mut ws: Workspace = model.workspace();
    // A wrong-sized image is an error, not a panic.
    let wrong = vec![0u8; shape.pixels() + 1];
    assert!(model.infer(&wrong, &mut ws).is_err());
    let image = fixed_image(shape.pixels());
    let logits = model.infer(&image, &mut ws).expect("a loaded model runs a right-sized image");
    assert_eq!(logits.len(), shape.classes as usize);
    // No NaN or infinity from any model that loads (docs/FORMAT.md,
    // magnitude bounds), for this image nor for the extreme ones.
    assert!(logits.iter().all(|v| v.is_finite()), "{logits:?}");
    for extreme in [0u8, 255] {
        let logits = model.infer(&vec![extreme; shape.pixels()], &mut ws).unwrap();
        assert!(logits.iter().all(|v| v.is_finite()), "{extreme}: {logits:?}");
    }
    let logits = model.infer(&image, &mut ws).unwrap();
    let bits = logits.iter().map(|v| v.to_bits()).collect();
    let class = model.classify(&image, &mut ws).unwrap();
    assert!(class < shape.classes as usize);
    let mut attention = vec![0f32; shape.heads as usize * shape.tokens() as usize];
    model.infer_with_attention(&image, &mut ws, &mut attention).unwrap();
    (bits, ws.logits_fixed().to_vec())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, blob)) = data.split_first() else { return };
    let mut blob = blob.to_vec();
    if mode & 1 == 1 && blob.len() >= HEADER_LEN {
        let len = blob.len() as u32;
        blob[8..12].copy_from_slice(&len.to_le_bytes());
        format::restamp_checksum(&mut blob);
    }
    let offset = if mode & 2 == 2 { BORROWED_ALIGN } else { 0 };

    let owned = Model::from_bytes(&blob);
    let copy = Aligned::new(&blob, offset);
    let borrowed = Model::from_bytes_borrowed(copy.bytes());
    // The header-and-table parse gives the same verdict on its own.
    let layout = format::parse(&blob);

    match (&owned, &borrowed) {
        (Ok(a), Ok(b)) => {
            assert!(layout.is_ok());
            assert_eq!(a.layout(), b.layout());
            assert_eq!(a.blob(), &blob[..]);
            assert_eq!(b.blob().as_ptr(), copy.bytes().as_ptr(), "a borrowed load must not copy");
            assert_eq!(run(a), run(b), "owned and borrowed loads disagree");
        }
        (Err(a), Err(b)) => {
            // Compared as text: a NaN parameter makes the errors unequal to themselves.
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "owned and borrowed loads fail differently");
            assert!(!a.to_string().is_empty());
            if let Err(e) = &layout {
                assert_eq!(format!("{e:?}"), format!("{a:?}"));
            }
            assert!(!matches!(a, LoadError::MisalignedBuffer { .. }));
        }
        _ => panic!("owned {:?} vs borrowed {:?}", owned.as_ref().err(), borrowed.as_ref().err()),
    }
});
