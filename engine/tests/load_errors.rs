//! Every way the loader rejects a blob: one or more malformed blobs per
//! `LoadError` variant, each checked for the exact error value and for a
//! Display message that names the problem.
//!
//! Blobs start from a valid synthetic one and are corrupted on purpose:
//! header and table bytes are edited in place (then the checksum is
//! restamped so the deeper check is reached), or inconsistent tables are
//! written with `BlobWriter::raw_tensor`.

use microvit_engine::format::{
    self, BlobWriter, Dims, ElemType, Encoding, ModelConfig, TensorId, CHECKSUM_RANGE, HEADER_LEN, TABLE_ENTRY_LEN,
    TENSOR_ALIGN,
};
use microvit_engine::shape::ShapeError;
use microvit_engine::synthetic::{f32_blob, random_f32_blob, random_image, random_state_dict};
use microvit_engine::{crc32c, LoadError, Model, Shape, BORROWED_ALIGN};
use std::sync::OnceLock;

// Header field offsets of a version-1 blob. They are private consts in
// engine/src/format.rs (`OFF_*`, `RESERVED`) and specified in docs/FORMAT.md;
// replicated here so the tests can corrupt individual fields.
const OFF_MAGIC: usize = 0; // [u8; 4] "MVIT"
const OFF_VERSION: usize = 4; // u16
const OFF_HEADER_LEN: usize = 6; // u16
const OFF_BLOB_LEN: usize = 8; // u32
const OFF_CHECKSUM: usize = 12; // u32, CRC-32C of everything else
const OFF_ENCODING: usize = 16; // u8
const OFF_TENSOR_COUNT: usize = 18; // u16
const OFF_SHAPE: usize = 20; // five u16: image side, patch side, dim, heads, classes
const OFF_PIXEL_MEAN: usize = 32; // f32
const OFF_PIXEL_STD: usize = 36; // f32
const OFF_LN_EPS: usize = 40; // f32
/// Reserved (must be zero) header bytes: 17, 30..32, 44..64.
const RESERVED_HEADER_BYTES: [std::ops::Range<usize>; 3] = [17..18, 30..32, 44..64];

// Tensor table entry fields (32 bytes each, after the header).
const ENTRY_ID: usize = 0; // u16
const ENTRY_ELEM: usize = 2; // u8
const ENTRY_RANK: usize = 3; // u8
const ENTRY_DIMS: usize = 4; // four u32
const ENTRY_OFFSET: usize = 20; // u32
const ENTRY_LEN: usize = 24; // u32
const ENTRY_RESERVED: usize = 28; // u32, must be zero

const SEED: u64 = 0x5EED_0001;

// ---------------------------------------------------------------- helpers

/// A fresh copy of the one valid blob every test corrupts. Built once:
/// building it (7,000 weights, their bytes, the checksum) took most of a
/// small test's time under miri.
fn seed_blob() -> Vec<u8> {
    static BLOB: OnceLock<Vec<u8>> = OnceLock::new();
    BLOB.get_or_init(|| random_f32_blob(Shape::SEED, SEED)).clone()
}

fn put_u16(blob: &mut [u8], off: usize, v: u16) {
    blob[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(blob: &mut [u8], off: usize, v: u32) {
    blob[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_f32(blob: &mut [u8], off: usize, v: f32) {
    put_u32(blob, off, v.to_bits());
}

fn get_u16(blob: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([blob[off], blob[off + 1]])
}

fn get_u32(blob: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(blob[off..off + 4].try_into().unwrap())
}

/// Byte offset of table entry `i`.
fn entry(i: usize) -> usize {
    HEADER_LEN + i * TABLE_ENTRY_LEN
}

/// Index of the table entry holding `id`.
fn entry_of(blob: &[u8], id: TensorId) -> usize {
    let count = get_u16(blob, OFF_TENSOR_COUNT) as usize;
    (0..count).find(|&i| get_u16(blob, entry(i) + ENTRY_ID) == id as u16).expect("tensor in table")
}

fn tensor_offset(blob: &[u8], id: TensorId) -> usize {
    get_u32(blob, entry(entry_of(blob, id)) + ENTRY_OFFSET) as usize
}

fn tensor_len(blob: &[u8], id: TensorId) -> usize {
    get_u32(blob, entry(entry_of(blob, id)) + ENTRY_LEN) as usize
}

/// The stored checksum field.
fn stored_checksum(blob: &[u8]) -> u32 {
    get_u32(blob, OFF_CHECKSUM)
}

/// The checksum computed independently of `format::compute_checksum`:
/// CRC-32C over the blob without its checksum field.
fn independent_checksum(blob: &[u8]) -> u32 {
    let mut skipped = blob[..CHECKSUM_RANGE.start].to_vec();
    skipped.extend_from_slice(&blob[CHECKSUM_RANGE.end..]);
    crc32c(&skipped)
}

/// Applies an edit to a copy of `blob` and restamps its checksum.
fn edited(blob: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = blob.to_vec();
    edit(&mut b);
    format::restamp_checksum(&mut b);
    b
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A writer holding every seed-shape tensor except those `skip` names, with
/// correct element types, dims and bytes.
fn seed_writer_without(skip: &[TensorId]) -> BlobWriter {
    let shape = Shape::SEED;
    let mut w = BlobWriter::new(Encoding::F32, ModelConfig::mnist(shape));
    for (id, values) in random_state_dict(&shape, SEED) {
        if !skip.contains(&id) {
            w.tensor(id, ElemType::F32, id.dims(&shape).as_slice(), f32_bytes(&values));
        }
    }
    w
}

/// A copy of `blob` at a chosen distance past a 64-byte boundary, to test
/// `from_bytes_borrowed` without relying on the allocator's alignment.
struct AlignedCopy {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedCopy {
    fn new(blob: &[u8], misalign: usize) -> AlignedCopy {
        let mut storage = vec![0u8; blob.len() + 2 * TENSOR_ALIGN];
        let base = storage.as_ptr() as usize;
        let start = (TENSOR_ALIGN - base % TENSOR_ALIGN) % TENSOR_ALIGN + misalign;
        storage[start..start + blob.len()].copy_from_slice(blob);
        AlignedCopy { storage, start, len: blob.len() }
    }

    fn bytes(&self) -> &[u8] {
        &self.storage[self.start..][..self.len]
    }
}

/// Loads `blob` owned and borrowed (from a 64-byte aligned copy), checks
/// both loaders reject it with the same error, and returns that error.
fn load_err(blob: &[u8]) -> LoadError {
    let owned = match Model::from_bytes(blob) {
        Ok(_) => panic!("from_bytes accepted a malformed blob"),
        Err(e) => e,
    };
    let copy = AlignedCopy::new(blob, 0);
    let borrowed = match Model::from_bytes_borrowed(copy.bytes()) {
        Ok(_) => panic!("from_bytes_borrowed accepted a malformed blob"),
        Err(e) => e,
    };
    // NaN parameters make the error unequal to itself; compare the text.
    assert_eq!(format!("{owned:?}"), format!("{borrowed:?}"), "owned and borrowed loads disagree");
    owned
}

/// The Display message is nonempty and mentions every needle.
fn assert_message(err: &LoadError, needles: &[&str]) {
    let msg = err.to_string();
    assert!(!msg.trim().is_empty(), "{err:?} has an empty message");
    for needle in needles {
        assert!(msg.contains(needle), "message {msg:?} of {err:?} does not mention {needle:?}");
    }
    // Usable as a boxed std error.
    let boxed: Box<dyn std::error::Error> = Box::new(err.clone());
    assert_eq!(boxed.to_string(), msg);
}

// ---------------------------------------------------------------- valid blobs

#[test]
fn valid_blob_loads_owned_and_borrowed_with_identical_logits() {
    let blob = seed_blob();
    let owned = Model::from_bytes(&blob).unwrap();
    let aligned = AlignedCopy::new(&blob, 0);
    let borrowed = Model::from_bytes_borrowed(aligned.bytes()).unwrap();
    // Borrowing needs only BORROWED_ALIGN, not a 64-byte boundary.
    let aligned4 = AlignedCopy::new(&blob, BORROWED_ALIGN);
    let borrowed4 = Model::from_bytes_borrowed(aligned4.bytes()).unwrap();

    for m in [&owned, &borrowed, &borrowed4] {
        assert_eq!(m.shape(), Shape::SEED);
        assert_eq!(m.encoding(), Encoding::F32);
        assert_eq!(*m.config(), ModelConfig::mnist(Shape::SEED));
        assert_eq!(m.blob(), &blob[..]);
        assert_eq!(m.layout().tensors.len(), 12);
    }
    assert_eq!(borrowed.blob().as_ptr(), aligned.bytes().as_ptr(), "borrowed load must not copy");

    let (mut w1, mut w2, mut w3) = (owned.workspace(), borrowed.workspace(), borrowed4.workspace());
    for seed in 0..8 {
        let image = random_image(&Shape::SEED, seed);
        let a = owned.infer(&image, &mut w1).unwrap().to_vec();
        let b = borrowed.infer(&image, &mut w2).unwrap().to_vec();
        let c = borrowed4.infer(&image, &mut w3).unwrap().to_vec();
        assert_eq!(a.len(), 10);
        assert!(a.iter().all(|v| v.is_finite()));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b), "image {seed}: owned vs borrowed");
        assert_eq!(bits(&a), bits(&c), "image {seed}: owned vs borrowed at a 4-byte boundary");
    }
}

#[test]
fn valid_blobs_of_other_shapes_load() {
    let shapes = [
        Shape { image_side: 32, patch_side: 4, dim: 24, heads: 3, classes: 7 },
        Shape { image_side: 64, patch_side: 4, dim: 128, heads: 8, classes: 64 },
        Shape { image_side: 2, patch_side: 2, dim: 1, heads: 1, classes: 1 },
        Shape { image_side: 28, patch_side: 28, dim: 16, heads: 1, classes: 10 },
    ];
    for shape in shapes {
        let blob = random_f32_blob(shape, 3);
        let model = Model::from_bytes(&blob).unwrap_or_else(|e| panic!("{shape:?}: {e}"));
        assert_eq!(model.shape(), shape);
        let copy = AlignedCopy::new(&blob, 0);
        assert_eq!(Model::from_bytes_borrowed(copy.bytes()).unwrap().shape(), shape);
    }
}

// ---------------------------------------------------------------- Truncated

#[test]
fn empty_input_is_truncated() {
    let err = load_err(&[]);
    assert_eq!(err, LoadError::Truncated { needed: HEADER_LEN, actual: 0 });
    assert_message(&err, &["truncated", "0 bytes", "64"]);
}

#[test]
fn empty_slice_without_an_aligned_address_is_rejected() {
    // `&[]` points at a dangling address (1 for u8), so the zero-copy loader
    // reports its alignment before its length; either way it must not load.
    assert!(Model::from_bytes_borrowed(&[]).is_err());
    assert_eq!(Model::from_bytes(&[]).err(), Some(LoadError::Truncated { needed: HEADER_LEN, actual: 0 }));
}

#[test]
fn three_bytes_are_truncated() {
    for three in [&b"MVI"[..], &b"xyz"[..], &seed_blob()[..3]] {
        let err = load_err(three);
        assert_eq!(err, LoadError::Truncated { needed: HEADER_LEN, actual: 3 });
        assert_message(&err, &["truncated", "3 bytes"]);
    }
}

#[test]
fn truncated_mid_header() {
    let blob = seed_blob();
    // Before the blob length field is whole, the header is what is missing;
    // after, the declared length says how much is.
    for (len, needed) in [(4, HEADER_LEN), (7, HEADER_LEN), (15, HEADER_LEN), (16, blob.len()), (30, blob.len())] {
        let err = load_err(&blob[..len]);
        assert_eq!(err, LoadError::Truncated { needed, actual: len }, "{len} bytes");
        assert_message(&err, &["truncated", &format!("{len} bytes")]);
    }
}

#[test]
fn truncated_mid_table_and_mid_data() {
    let blob = seed_blob();
    let len = blob.len();
    let data = tensor_offset(&blob, TensorId::InProjWeight) + 100;
    for cut in [HEADER_LEN, entry(5) + 3, data, len - 1] {
        let err = load_err(&blob[..cut]);
        assert_eq!(err, LoadError::Truncated { needed: len, actual: cut }, "{cut} bytes");
        assert_message(&err, &["truncated", &cut.to_string(), &len.to_string()]);
    }
}

#[cfg_attr(miri, ignore)]
#[test]
fn every_truncation_is_rejected() {
    let blob = seed_blob();
    let copy = AlignedCopy::new(&blob, 0);
    for cut in 0..blob.len() {
        let needed = if cut < 16 { HEADER_LEN } else { blob.len() };
        let expected = LoadError::Truncated { needed, actual: cut };
        assert_eq!(Model::from_bytes(&blob[..cut]).err(), Some(expected.clone()), "owned, {cut} bytes");
        assert_eq!(Model::from_bytes_borrowed(&copy.bytes()[..cut]).err(), Some(expected), "borrowed, {cut} bytes");
    }
}

#[test]
fn declared_length_longer_than_blob_is_truncated() {
    let blob = seed_blob();
    let len = blob.len();
    let bad = edited(&blob, |b| put_u32(b, OFF_BLOB_LEN, len as u32 + 64));
    assert_eq!(load_err(&bad), LoadError::Truncated { needed: len + 64, actual: len });
}

// ---------------------------------------------------------------- TrailingBytes

#[test]
fn trailing_bytes() {
    let blob = seed_blob();
    let len = blob.len();
    for extra in [1, 3, 64, 1000] {
        let mut long = blob.clone();
        long.resize(len + extra, 0);
        let err = load_err(&long);
        assert_eq!(err, LoadError::TrailingBytes { declared: len, actual: len + extra });
        assert_message(&err, &[&len.to_string(), &(len + extra).to_string()]);
    }
    // Two blobs glued together.
    let glued = [blob.clone(), blob.clone()].concat();
    assert_eq!(load_err(&glued), LoadError::TrailingBytes { declared: len, actual: 2 * len });
    // A declared length that was shortened.
    let short = edited(&blob, |b| put_u32(b, OFF_BLOB_LEN, len as u32 - 64));
    assert_eq!(load_err(&short), LoadError::TrailingBytes { declared: len - 64, actual: len });
}

// ---------------------------------------------------------------- BadMagic

#[test]
fn bad_magic() {
    let blob = seed_blob();
    for magic in [*b"MVIX", *b"mvit", *b"\x89PNG", [0; 4], *b"TIVM"] {
        let bad = edited(&blob, |b| b[OFF_MAGIC..OFF_MAGIC + 4].copy_from_slice(&magic));
        let err = load_err(&bad);
        assert_eq!(err, LoadError::BadMagic { found: magic });
        assert_message(&err, &["magic", "MVIT"]);
    }
    // Four bytes are enough to tell a file is not a blob at all.
    assert_eq!(load_err(b"PK\x03\x04"), LoadError::BadMagic { found: *b"PK\x03\x04" });
}

// ---------------------------------------------------------------- UnsupportedVersion

#[test]
fn future_version() {
    let blob = seed_blob();
    for version in [2u16, 0, 0x0100, u16::MAX] {
        let bad = edited(&blob, |b| put_u16(b, OFF_VERSION, version));
        let err = load_err(&bad);
        assert_eq!(err, LoadError::UnsupportedVersion { found: version, supported: 1 });
        assert_message(&err, &["version", &version.to_string()]);
    }
    // A flipped bit in the version field is corruption, not a newer format:
    // the checksum is verified before the version is believed.
    for bit in 0..16 {
        let mut bad = blob.clone();
        bad[OFF_VERSION + bit / 8] ^= 1 << (bit % 8);
        let err = load_err(&bad);
        assert!(matches!(err, LoadError::ChecksumMismatch { .. }), "bit {bit}: {err:?}");
        assert_message(&err, &["corrupted"]);
    }
}

// ---------------------------------------------------------------- BadHeaderLength

#[test]
fn bad_header_length() {
    let blob = seed_blob();
    for found in [0u16, 32, 63, 65, 128, u16::MAX] {
        let bad = edited(&blob, |b| put_u16(b, OFF_HEADER_LEN, found));
        let err = load_err(&bad);
        assert_eq!(err, LoadError::BadHeaderLength { found, expected: 64 });
        assert_message(&err, &["header length", &found.to_string(), "64"]);
    }
}

// ---------------------------------------------------------------- ChecksumMismatch

#[test]
fn checksum_mismatch_on_a_flipped_data_byte() {
    let blob = seed_blob();
    let stored = stored_checksum(&blob);
    assert_eq!(stored, independent_checksum(&blob), "a valid blob's checksum");
    let at = tensor_offset(&blob, TensorId::OutProjWeight) + 17;
    let mut bad = blob.clone();
    bad[at] ^= 0x01;
    let computed = independent_checksum(&bad);
    assert_ne!(computed, stored);
    assert_eq!(format::compute_checksum(&bad), computed);
    let err = load_err(&bad);
    assert_eq!(err, LoadError::ChecksumMismatch { stored, computed });
    assert_message(&err, &["checksum", "corrupted", &format!("{stored:#010x}"), &format!("{computed:#010x}")]);
}

#[test]
fn checksum_mismatch_on_a_corrupted_checksum_field() {
    let blob = seed_blob();
    let computed = stored_checksum(&blob);
    for garbage in [0u32, !computed, computed ^ 0x8000_0000] {
        let mut bad = blob.clone();
        put_u32(&mut bad, OFF_CHECKSUM, garbage);
        assert_eq!(load_err(&bad), LoadError::ChecksumMismatch { stored: garbage, computed });
    }
}

#[test]
fn checksum_mismatch_on_edited_header_fields_without_restamp() {
    // Fields that pass the framing checks are only caught by the checksum.
    let blob = seed_blob();
    let stored = stored_checksum(&blob);
    for (at, value) in [(OFF_ENCODING, 9u8), (OFF_SHAPE + 6, 3), (OFF_PIXEL_STD + 3, 0), (63, 1), (entry(4) + 28, 1)] {
        let mut bad = blob.clone();
        bad[at] = value;
        let computed = independent_checksum(&bad);
        assert_eq!(load_err(&bad), LoadError::ChecksumMismatch { stored, computed }, "byte {at}");
    }
}

#[cfg_attr(miri, ignore)]
#[test]
fn every_single_byte_flip_is_rejected() {
    let blob = seed_blob();
    // Each byte inverted in turn; split over a few threads, since every
    // attempt checksums the whole blob.
    let chunk = blob.len().div_ceil(4);
    std::thread::scope(|scope| {
        for start in (0..blob.len()).step_by(chunk) {
            let blob = &blob;
            scope.spawn(move || {
                let mut bad = blob.clone();
                for i in start..(start + chunk).min(blob.len()) {
                    bad[i] ^= 0xFF;
                    assert!(Model::from_bytes(&bad).is_err(), "inverting byte {i} went unnoticed");
                    bad[i] ^= 0xFF;
                }
                assert_eq!(&bad, blob);
            });
        }
    });
    // Single-bit flips in the header, the table and the first bytes of data.
    let mut bad = blob.clone();
    for i in 0..entry(12) + 256 {
        for bit in 0..8 {
            bad[i] ^= 1 << bit;
            assert!(Model::from_bytes(&bad).is_err(), "flipping bit {bit} of byte {i} went unnoticed");
            bad[i] ^= 1 << bit;
        }
    }
}

// ---------------------------------------------------------------- UnknownEncoding

#[test]
fn unknown_encoding() {
    let blob = seed_blob();
    for code in [0u8, 4, 0x7F, 0xFF] {
        let bad = edited(&blob, |b| b[OFF_ENCODING] = code);
        let err = load_err(&bad);
        assert_eq!(err, LoadError::UnknownEncoding { found: code });
        assert_message(&err, &["encoding", &code.to_string()]);
    }
}

// ---------------------------------------------------------------- f32 tensors under another encoding

#[test]
fn state_dict_tensors_do_not_belong_in_folded_encodings() {
    for encoding in [Encoding::F16, Encoding::Int8] {
        let relabelled = edited(&seed_blob(), |b| b[OFF_ENCODING] = encoding as u8);
        let err = load_err(&relabelled);
        assert_eq!(err, LoadError::UnexpectedTensor { id: TensorId::PatchEmbedWeight as u16, encoding });
        assert_message(&err, &["tensor id 1", encoding.name()]);
    }
}

// ---------------------------------------------------------------- ReservedNotZero

#[test]
fn reserved_header_bytes_must_be_zero() {
    let blob = seed_blob();
    for offset in RESERVED_HEADER_BYTES.iter().cloned().flatten() {
        assert_eq!(blob[offset], 0, "a valid blob has zero at reserved byte {offset}");
        for value in [1u8, 0x80, 0xFF] {
            let bad = edited(&blob, |b| b[offset] = value);
            let err = load_err(&bad);
            assert_eq!(err, LoadError::ReservedNotZero { offset }, "byte {offset} = {value}");
            assert_message(&err, &["reserved", &offset.to_string()]);
        }
    }
    // Several nonzero reserved bytes: the first is reported.
    let bad = edited(&blob, |b| {
        b[50] = 1;
        b[31] = 1;
    });
    assert_eq!(load_err(&bad), LoadError::ReservedNotZero { offset: 31 });
}

#[test]
fn reserved_table_entry_bytes_must_be_zero() {
    let blob = seed_blob();
    for i in [0, 5, 11] {
        for byte in 0..4 {
            let bad = edited(&blob, |b| b[entry(i) + ENTRY_RESERVED + byte] = 0x40);
            let err = load_err(&bad);
            // The engine names the very byte that is not zero.
            let offset = HEADER_LEN + i * TABLE_ENTRY_LEN + ENTRY_RESERVED + byte;
            assert_eq!(err, LoadError::ReservedNotZero { offset }, "entry {i}, reserved byte {byte}");
            assert_message(&err, &["reserved", &offset.to_string()]);
        }
    }
}

// ---------------------------------------------------------------- InvalidShape

#[test]
fn invalid_shape() {
    let blob = seed_blob();
    // (field index among image side, patch side, dim, heads, classes; value; message)
    let cases = [
        (3, 3, "3 heads do not divide dim 32"),
        (3, 0, "0 heads do not divide dim 32"),
        (1, 5, "patch side 5 does not divide image side 28"),
        (1, 1, "patch side 1 is outside 2..=28 (the image side)"),
        (1, 56, "patch side 56 is outside 2..=28 (the image side)"),
        (0, 0, "image side 0 is outside 1..=64"),
        (0, 70, "image side 70 is outside 1..=64"),
        (2, 0, "dim 0 is outside 1..=128"),
        (2, 256, "dim 256 is outside 1..=128"),
        (4, 0, "0 classes is outside 1..=64"),
        (4, 65, "65 classes is outside 1..=64"),
    ];
    for (field, value, message) in cases {
        let bad = edited(&blob, |b| put_u16(b, OFF_SHAPE + 2 * field, value));
        let err = load_err(&bad);
        assert_eq!(err, LoadError::InvalidShape(ShapeError(message.to_string())), "field {field} = {value}");
        assert_message(&err, &["model shape", message]);
    }
    // Too many tokens: a 64-pixel image in 2-pixel patches.
    let bad = edited(&blob, |b| {
        put_u16(b, OFF_SHAPE, 64);
        put_u16(b, OFF_SHAPE + 2, 2);
    });
    assert_eq!(load_err(&bad), LoadError::InvalidShape(ShapeError("1025 tokens exceed the limit of 257".into())));
}

// ---------------------------------------------------------------- InvalidParameter

#[test]
fn invalid_parameters() {
    let blob = seed_blob();
    let cases: [(usize, &str, f32); 9] = [
        (OFF_PIXEL_STD, "pixel_std", 0.0),
        (OFF_PIXEL_STD, "pixel_std", -0.0),
        (OFF_PIXEL_STD, "pixel_std", -0.3081),
        (OFF_PIXEL_STD, "pixel_std", f32::INFINITY),
        (OFF_PIXEL_MEAN, "pixel_mean", f32::INFINITY),
        (OFF_PIXEL_MEAN, "pixel_mean", f32::NEG_INFINITY),
        (OFF_LN_EPS, "layer_norm_eps", -1e-5),
        (OFF_LN_EPS, "layer_norm_eps", 0.0),
        (OFF_LN_EPS, "layer_norm_eps", f32::INFINITY),
    ];
    for (off, name, value) in cases {
        let bad = edited(&blob, |b| put_f32(b, off, value));
        let err = load_err(&bad);
        assert_eq!(err, LoadError::InvalidParameter { name, value }, "{name} = {value}");
        assert_message(&err, &[name, &value.to_string()]);
    }
    // NaN is never equal to itself, so these are checked field by field.
    for (off, name) in [(OFF_PIXEL_MEAN, "pixel_mean"), (OFF_PIXEL_STD, "pixel_std"), (OFF_LN_EPS, "layer_norm_eps")] {
        let bad = edited(&blob, |b| put_f32(b, off, f32::NAN));
        let err = load_err(&bad);
        match err {
            LoadError::InvalidParameter { name: n, value } => {
                assert_eq!(n, name);
                assert!(value.is_nan(), "{name}: {value}");
            }
            ref other => panic!("{name} = NaN gave {other:?}"),
        }
        assert_message(&err, &[name, "NaN"]);
    }
    // The same through the writer's config, as a converter bug would.
    let config = ModelConfig { pixel_std: 0.0, ..ModelConfig::mnist(Shape::SEED) };
    let bad = f32_blob(config, &random_state_dict(&Shape::SEED, SEED));
    assert_eq!(load_err(&bad), LoadError::InvalidParameter { name: "pixel_std", value: 0.0 });
    // A shape error wins over a parameter error.
    let both = edited(&blob, |b| {
        put_f32(b, OFF_LN_EPS, -1.0);
        put_u16(b, OFF_SHAPE + 6, 3);
    });
    assert!(matches!(load_err(&both), LoadError::InvalidShape(_)));
}

// ---------------------------------------------------------------- TensorTableOutOfBounds

#[test]
fn tensor_table_out_of_bounds() {
    let blob = seed_blob();
    let len = blob.len();
    for count in [1000usize, 4096, u16::MAX as usize] {
        let bad = edited(&blob, |b| put_u16(b, OFF_TENSOR_COUNT, count as u16));
        let err = load_err(&bad);
        let end = HEADER_LEN + count * TABLE_ENTRY_LEN;
        assert_eq!(err, LoadError::TensorTableOutOfBounds { count, end, blob_len: len });
        assert_message(&err, &["tensor table", &count.to_string(), &end.to_string(), &len.to_string()]);
    }
    // The smallest count whose table does not fit.
    let count = (len - HEADER_LEN) / TABLE_ENTRY_LEN + 1;
    let bad = edited(&blob, |b| put_u16(b, OFF_TENSOR_COUNT, count as u16));
    let end = HEADER_LEN + count * TABLE_ENTRY_LEN;
    assert_eq!(load_err(&bad), LoadError::TensorTableOutOfBounds { count, end, blob_len: len });
    // A header-only blob that announces tensors.
    let mut header_only = blob[..HEADER_LEN].to_vec();
    put_u32(&mut header_only, OFF_BLOB_LEN, HEADER_LEN as u32);
    put_u16(&mut header_only, OFF_TENSOR_COUNT, 1);
    format::restamp_checksum(&mut header_only);
    assert_eq!(
        load_err(&header_only),
        LoadError::TensorTableOutOfBounds { count: 1, end: HEADER_LEN + TABLE_ENTRY_LEN, blob_len: HEADER_LEN }
    );
}

// ---------------------------------------------------------------- UnexpectedTensor

#[test]
fn unexpected_tensor_id() {
    for id in [0u16, 13, 255, 256, 300, u16::MAX] {
        let mut w = seed_writer_without(&[]);
        w.raw_tensor(id, ElemType::F32 as u8, &[4], vec![0; 16]);
        let err = load_err(&w.finish());
        assert_eq!(err, LoadError::UnexpectedTensor { id, encoding: Encoding::F32 });
        assert_message(&err, &[&format!("tensor id {id}"), "f32"]);
    }
    // A stray id in the middle of the table, by editing an entry.
    let blob = seed_blob();
    let bad = edited(&blob, |b| put_u16(b, entry(6) + ENTRY_ID, 99));
    assert_eq!(load_err(&bad), LoadError::UnexpectedTensor { id: 99, encoding: Encoding::F32 });
}

// ---------------------------------------------------------------- DuplicateTensor

#[test]
fn duplicate_tensor() {
    let shape = Shape::SEED;
    for id in [TensorId::HeadBias, TensorId::PatchEmbedWeight, TensorId::PosEmbed] {
        let mut w = seed_writer_without(&[]);
        let dims = id.dims(&shape);
        w.tensor(id, ElemType::F32, dims.as_slice(), vec![0; 4 * dims.elements().unwrap()]);
        let err = load_err(&w.finish());
        assert_eq!(err, LoadError::DuplicateTensor { tensor: id });
        assert_message(&err, &[id.name(), "twice"]);
    }
    // An edited id that repeats an earlier one (the table entry is otherwise
    // that of norm.bias, which has the same dims as norm.weight).
    let bad = edited(&seed_blob(), |b| put_u16(b, entry(5) + ENTRY_ID, TensorId::NormWeight as u16));
    assert_eq!(load_err(&bad), LoadError::DuplicateTensor { tensor: TensorId::NormWeight });
}

// ---------------------------------------------------------------- MissingTensor

#[test]
fn missing_tensor() {
    for id in TensorId::STATE_DICT {
        let blob = seed_writer_without(&[id]).finish();
        let err = load_err(&blob);
        assert_eq!(err, LoadError::MissingTensor { tensor: id });
        assert_message(&err, &[id.name(), "missing"]);
    }
    // No tensors at all: the first one is reported.
    let empty = BlobWriter::new(Encoding::F32, ModelConfig::mnist(Shape::SEED)).finish();
    assert_eq!(load_err(&empty), LoadError::MissingTensor { tensor: TensorId::PatchEmbedWeight });
    // A table count lowered by one drops the last tensor.
    let bad = edited(&seed_blob(), |b| put_u16(b, OFF_TENSOR_COUNT, 11));
    assert_eq!(load_err(&bad), LoadError::MissingTensor { tensor: TensorId::HeadBias });
}

// ---------------------------------------------------------------- WrongElementType

#[test]
fn wrong_element_type() {
    let shape = Shape::SEED;
    let id = TensorId::HeadBias;
    let dims = id.dims(&shape);
    for (elem, name) in [(2u8, "f16"), (3, "i8"), (5, "i32"), (0, "code 0 (unknown)"), (9, "code 9 (unknown)")] {
        let mut w = seed_writer_without(&[id]);
        w.raw_tensor(id as u16, elem, dims.as_slice(), vec![0; 40]);
        let err = load_err(&w.finish());
        assert_eq!(err, LoadError::WrongElementType { tensor: id, expected: ElemType::F32, found: elem });
        assert_message(&err, &[id.name(), name, "expected f32"]);
    }
    // By editing the table.
    let bad = edited(&seed_blob(), |b| b[entry(6) + ENTRY_ELEM] = ElemType::F16 as u8);
    assert_eq!(
        load_err(&bad),
        LoadError::WrongElementType { tensor: TensorId::InProjWeight, expected: ElemType::F32, found: 2 }
    );
}

// ---------------------------------------------------------------- WrongTensorShape

#[test]
fn wrong_tensor_shape() {
    let shape = Shape::SEED;
    let cases: [(TensorId, &[u32]); 7] = [
        (TensorId::PatchEmbedWeight, &[49, 32]), // transposed
        (TensorId::ClsToken, &[32]),             // squeezed
        (TensorId::PosEmbed, &[1, 16, 32]),      // no CLS position
        (TensorId::InProjWeight, &[96, 32, 1]),  // extra axis
        (TensorId::HeadWeight, &[11, 32]),       // other class count
        (TensorId::HeadBias, &[1, 1, 1, 10]),    // rank 4
        (TensorId::NormWeight, &[33]),
    ];
    for (id, dims) in cases {
        let elements: u32 = dims.iter().product();
        let mut w = seed_writer_without(&[id]);
        w.tensor(id, ElemType::F32, dims, vec![0; 4 * elements as usize]);
        let err = load_err(&w.finish());
        let (expected, found) = (id.dims(&shape), Dims::new(dims));
        assert_eq!(err, LoadError::WrongTensorShape { tensor: id, expected, found }, "{id} as {dims:?}");
        assert_message(&err, &[id.name(), &found.to_string(), &expected.to_string()]);
    }

    // Malformed rank fields are reported as the raw four dims.
    let id = TensorId::HeadBias;
    let mut w = seed_writer_without(&[id]);
    w.raw_tensor(id as u16, ElemType::F32 as u8, &[], vec![0; 40]);
    let err = load_err(&w.finish());
    assert_eq!(err, LoadError::WrongTensorShape { tensor: id, expected: Dims::new(&[10]), found: Dims::new(&[0; 4]) });
    let mut w = seed_writer_without(&[id]);
    w.raw_tensor(id as u16, ElemType::F32 as u8, &[10, 1, 1, 1, 1], vec![0; 40]);
    let err = load_err(&w.finish());
    assert_eq!(
        err,
        LoadError::WrongTensorShape { tensor: id, expected: Dims::new(&[10]), found: Dims::new(&[10, 1, 1, 1]) }
    );
    // Rank 1 but a nonzero dim past the rank.
    let blob = seed_blob();
    let i = entry_of(&blob, id);
    let bad = edited(&blob, |b| put_u32(b, entry(i) + ENTRY_DIMS + 8, 7));
    assert_eq!(
        load_err(&bad),
        LoadError::WrongTensorShape { tensor: id, expected: Dims::new(&[10]), found: Dims::new(&[10, 0, 7, 0]) }
    );
    // Rank 0 in an otherwise valid entry.
    let bad = edited(&blob, |b| b[entry(i) + ENTRY_RANK] = 0);
    assert_eq!(
        load_err(&bad),
        LoadError::WrongTensorShape { tensor: id, expected: Dims::new(&[10]), found: Dims::new(&[10, 0, 0, 0]) }
    );

    // A header shape that disagrees with the tensors: the first tensor whose
    // dims depend on the changed field is reported.
    let bad = edited(&blob, |b| put_u16(b, OFF_SHAPE + 8, 11));
    assert_eq!(
        load_err(&bad),
        LoadError::WrongTensorShape {
            tensor: TensorId::HeadWeight,
            expected: Dims::new(&[11, 32]),
            found: Dims::new(&[10, 32])
        }
    );
    let bad = edited(&blob, |b| put_u16(b, OFF_SHAPE + 2, 14));
    assert_eq!(
        load_err(&bad),
        LoadError::WrongTensorShape {
            tensor: TensorId::PatchEmbedWeight,
            expected: Dims::new(&[32, 196]),
            found: Dims::new(&[32, 49])
        }
    );
    // Heads do not change any tensor's dims, so a blob claiming 4 heads
    // loads (and means a different model): that is the checksum's job.
    let four_heads = edited(&blob, |b| put_u16(b, OFF_SHAPE + 6, 4));
    assert_eq!(Model::from_bytes(&four_heads).unwrap().shape().heads, 4);
}

// ---------------------------------------------------------------- WrongByteLength

#[test]
fn wrong_byte_length() {
    let shape = Shape::SEED;
    for (id, len) in
        [(TensorId::HeadBias, 36usize), (TensorId::HeadBias, 44), (TensorId::PosEmbed, 0), (TensorId::ClsToken, 64)]
    {
        let mut w = seed_writer_without(&[id]);
        w.tensor(id, ElemType::F32, id.dims(&shape).as_slice(), vec![0; len]);
        let err = load_err(&w.finish());
        let expected = 4 * id.dims(&shape).elements().unwrap();
        assert_eq!(err, LoadError::WrongByteLength { tensor: id, expected, found: len });
        assert_message(&err, &[id.name(), &expected.to_string(), &len.to_string()]);
    }
    // By editing the table's length field.
    let blob = seed_blob();
    let i = entry_of(&blob, TensorId::OutProjWeight);
    let bad = edited(&blob, |b| put_u32(b, entry(i) + ENTRY_LEN, 4096 + 64));
    assert_eq!(
        load_err(&bad),
        LoadError::WrongByteLength { tensor: TensorId::OutProjWeight, expected: 4096, found: 4160 }
    );
}

// ---------------------------------------------------------------- MisalignedTensor

#[test]
fn misaligned_tensor() {
    let blob = seed_blob();
    for (id, shift) in [(TensorId::PosEmbed, 4usize), (TensorId::PatchEmbedWeight, 1), (TensorId::HeadBias, 32)] {
        let i = entry_of(&blob, id);
        let offset = tensor_offset(&blob, id) + shift;
        let bad = edited(&blob, |b| put_u32(b, entry(i) + ENTRY_OFFSET, offset as u32));
        let err = load_err(&bad);
        assert_eq!(err, LoadError::MisalignedTensor { tensor: id, offset });
        assert_message(&err, &[id.name(), &offset.to_string(), "64-byte"]);
    }
}

// ---------------------------------------------------------------- TensorOutOfBounds

#[test]
fn tensor_out_of_bounds() {
    let blob = seed_blob();
    let blob_len = blob.len();
    let id = TensorId::HeadWeight;
    let (i, len) = (entry_of(&blob, id), tensor_len(&blob, id));
    assert_eq!(len, 1280);
    let far = (u32::MAX as usize / TENSOR_ALIGN) * TENSOR_ALIGN;
    // Past the end, straddling the end, far away, and inside header/table.
    for offset in [blob_len, blob_len - 64, blob_len + 4096, far, 0, 64, 384] {
        let bad = edited(&blob, |b| put_u32(b, entry(i) + ENTRY_OFFSET, offset as u32));
        let err = load_err(&bad);
        assert_eq!(err, LoadError::TensorOutOfBounds { tensor: id, offset, len, blob_len }, "offset {offset}");
        assert_message(&err, &[id.name(), &offset.to_string(), &(offset + len).to_string(), &blob_len.to_string()]);
    }
    // A table grown by one entry ends inside the first tensor's data.
    let first = tensor_offset(&blob, TensorId::PatchEmbedWeight);
    assert_eq!(first, entry(12), "the seed blob's data starts right after its table");
    let bad = edited(&blob, |b| put_u16(b, OFF_TENSOR_COUNT, 13));
    assert_eq!(
        load_err(&bad),
        LoadError::TensorOutOfBounds { tensor: TensorId::PatchEmbedWeight, offset: first, len: 6272, blob_len }
    );
}

// ---------------------------------------------------------------- OverlappingTensors

#[test]
fn overlapping_tensors() {
    let blob = seed_blob();
    // Same start.
    let i = entry_of(&blob, TensorId::PatchEmbedBias);
    let start = tensor_offset(&blob, TensorId::PatchEmbedWeight);
    let bad = edited(&blob, |b| put_u32(b, entry(i) + ENTRY_OFFSET, start as u32));
    let err = load_err(&bad);
    assert_eq!(
        err,
        LoadError::OverlappingTensors { first: TensorId::PatchEmbedWeight, second: TensorId::PatchEmbedBias }
    );
    assert_message(&err, &["patch_embed.weight", "patch_embed.bias", "overlap"]);

    // Starting inside an earlier tensor's last cache line.
    let i = entry_of(&blob, TensorId::HeadBias);
    let inside = tensor_offset(&blob, TensorId::HeadWeight) + 1280 - 64;
    let bad = edited(&blob, |b| put_u32(b, entry(i) + ENTRY_OFFSET, inside as u32));
    assert_eq!(
        load_err(&bad),
        LoadError::OverlappingTensors { first: TensorId::HeadWeight, second: TensorId::HeadBias }
    );

    // A later tensor that covers an earlier one's start: in_proj.weight
    // moved back over patch_embed.bias .. pos_embed.
    let i = entry_of(&blob, TensorId::InProjWeight);
    let back = tensor_offset(&blob, TensorId::PatchEmbedBias);
    let bad = edited(&blob, |b| put_u32(b, entry(i) + ENTRY_OFFSET, back as u32));
    assert_eq!(
        load_err(&bad),
        LoadError::OverlappingTensors { first: TensorId::PatchEmbedBias, second: TensorId::InProjWeight }
    );

    // Adjacent tensors (one ends where the next starts) do not overlap: in
    // the valid blob head.bias starts right where head.weight ends.
    assert_eq!(
        tensor_offset(&blob, TensorId::HeadBias),
        tensor_offset(&blob, TensorId::HeadWeight) + tensor_len(&blob, TensorId::HeadWeight)
    );
    assert!(Model::from_bytes(&blob).is_ok());
}

// ---------------------------------------------------------------- NonFinite

#[test]
fn non_finite_weights() {
    let shape = Shape::SEED;
    let cases = [
        (TensorId::PosEmbed, 100usize, f32::NAN),
        (TensorId::HeadBias, 9, f32::INFINITY),
        (TensorId::PatchEmbedWeight, 0, f32::NEG_INFINITY),
        (TensorId::InProjWeight, 3071, f32::NAN),
        (TensorId::NormWeight, 31, f32::INFINITY),
    ];
    for (id, index, value) in cases {
        let mut tensors = random_state_dict(&shape, SEED);
        tensors.iter_mut().find(|(t, _)| *t == id).unwrap().1[index] = value;
        let blob = f32_blob(ModelConfig::mnist(shape), &tensors);
        let err = load_err(&blob);
        assert_eq!(err, LoadError::NonFinite { tensor: id, index }, "{id}[{index}] = {value}");
        assert_message(&err, &[id.name(), &format!("index {index}")]);
    }
    // By editing the bytes of a valid blob: the first non-finite value of
    // the first tensor (in table order) is reported.
    let blob = seed_blob();
    let bad = edited(&blob, |b| {
        put_f32(b, tensor_offset(&blob, TensorId::OutProjBias) + 4 * 7, f32::INFINITY);
        put_f32(b, tensor_offset(&blob, TensorId::OutProjBias) + 4 * 20, f32::NAN);
        put_f32(b, tensor_offset(&blob, TensorId::HeadWeight), f32::NAN);
    });
    assert_eq!(load_err(&bad), LoadError::NonFinite { tensor: TensorId::OutProjBias, index: 7 });
    // A signalling NaN and the largest finite value.
    let snan = f32::from_bits(0x7F80_0001);
    assert!(snan.is_nan());
    let bad = edited(&blob, |b| put_u32(b, tensor_offset(&blob, TensorId::ClsToken) + 4 * 5, snan.to_bits()));
    assert_eq!(load_err(&bad), LoadError::NonFinite { tensor: TensorId::ClsToken, index: 5 });
    // The largest finite value is finite, but too large (the next section).
    let big = edited(&blob, |b| put_f32(b, tensor_offset(&blob, TensorId::ClsToken) + 4 * 5, f32::MAX));
    assert!(matches!(load_err(&big), LoadError::TooLarge { tensor: TensorId::ClsToken, index: 5, .. }));
}

// ---------------------------------------------------------------- TooLarge

/// Issue #18: an f32 weight of 3e38 loaded, and every inference gave NaN
/// (`classify` printed `0 (NaN %)`). Values beyond the bounds of
/// docs/FORMAT.md are refused; values at them load.
#[test]
fn values_beyond_the_magnitude_bounds() {
    let blob = seed_blob();
    let config = format::parse(&blob).unwrap().header.config;
    // Before the fix: this loaded and gave NaN logits.
    let huge = edited(&blob, |b| put_f32(b, tensor_offset(&blob, TensorId::HeadWeight) + 4 * 17, 3e38));
    let err = load_err(&huge);
    assert_eq!(
        err,
        LoadError::TooLarge { tensor: TensorId::HeadWeight, index: 17, value: 3e38, limit: format::F32_VALUE_LIMIT }
    );
    assert_message(&err, &["head.weight", "3e38", "index 17", "1048576.0", "logit", "docs/FORMAT.md"]);
    // Every f32 tensor: one value just past its bound is refused, the bound
    // itself is accepted, and the first offending value is the one named.
    for id in TensorId::STATE_DICT {
        let limit = config.value_limit(id).unwrap();
        let at = tensor_offset(&blob, id) + 4;
        let mut above = limit as f32;
        while above as f64 <= limit {
            above = f32::from_bits(above.to_bits() + 1);
        }
        let bad = edited(&blob, |b| put_f32(b, at, -above));
        assert_eq!(load_err(&bad), LoadError::TooLarge { tensor: id, index: 1, value: -above, limit }, "{id}");
        let below = f32::from_bits(above.to_bits() - 1);
        assert!(Model::from_bytes(&edited(&blob, |b| put_f32(b, at, below))).is_ok(), "{id} at its bound");
    }
    // The patch weights meet normalised pixels: their bound is 2^20 · std /
    // (1 + |mean|), so a weight fine for MNIST's normalisation is not for a
    // tiny pixel_std.
    let limit = config.value_limit(TensorId::PatchEmbedWeight).unwrap();
    assert_eq!(limit, format::F32_VALUE_LIMIT * 0.3081f32 as f64 / (1.0 + 0.1307f32 as f64));
    let w = tensor_offset(&blob, TensorId::PatchEmbedWeight);
    let ok = edited(&blob, |b| put_f32(b, w, 1000.0));
    assert!(Model::from_bytes(&ok).is_ok());
    let tiny_std = edited(&ok, |b| put_f32(b, OFF_PIXEL_STD, 1e-6));
    match load_err(&tiny_std) {
        LoadError::TooLarge { tensor: TensorId::PatchEmbedWeight, index: 0, value, limit } => {
            assert_eq!(value, 1000.0);
            assert!((limit - 1.0486 * 1e6 * 1e-6 / 1.1307).abs() < 1e-4, "{limit}");
        }
        other => panic!("{other:?}"),
    }
}

/// f16 blobs: the f32 constants are bounded by 2^40 (the f16 tensors by
/// half precision itself).
#[test]
fn f16_constants_beyond_their_bound() {
    let shape = Shape::SEED;
    let blob = microvit_engine::synthetic::random_f16_blob(shape, SEED);
    for id in [TensorId::F16TokenBias, TensorId::F16ClsNorm, TensorId::F16ClsScore, TensorId::F16HeadBias] {
        let at = tensor_offset(&blob, id);
        let limit = format::F16_CONSTANT_LIMIT;
        let bad = edited(&blob, |b| put_f32(b, at, 3e38));
        assert_eq!(load_err(&bad), LoadError::TooLarge { tensor: id, index: 0, value: 3e38, limit }, "{id}");
        assert_message(&load_err(&bad), &[id.name(), "1099511600000.0"]);
        let model = Model::from_bytes(&edited(&blob, |b| put_f32(b, at, -(limit as f32)))).unwrap();
        let mut ws = model.workspace();
        let logits = model.infer(&random_image(&shape, 1), &mut ws).unwrap();
        assert!(logits.iter().all(|v| v.is_finite()), "{id} at its bound: {logits:?}");
    }
}

// ---------------------------------------------------------------- MisalignedBuffer

#[test]
fn misaligned_buffer_for_borrowed_load() {
    let blob = seed_blob();
    // One spare byte: the blob starts at offset 1 of a 64-byte aligned region.
    for misalign in 1..BORROWED_ALIGN {
        let copy = AlignedCopy::new(&blob, misalign);
        let bytes = copy.bytes();
        let address = bytes.as_ptr() as usize;
        assert_eq!(address % TENSOR_ALIGN, misalign);
        let err = match Model::from_bytes_borrowed(bytes) {
            Ok(_) => panic!("a buffer at {address:#x} was borrowed"),
            Err(e) => e,
        };
        assert_eq!(err, LoadError::MisalignedBuffer { required: BORROWED_ALIGN, address });
        assert_message(&err, &["aligned", &format!("{address:#x}"), &BORROWED_ALIGN.to_string()]);
        // The owned loader copies, so the same bytes load.
        assert!(Model::from_bytes(bytes).is_ok());
    }
    // Every 4-byte aligned start (not just 64-byte aligned) is accepted.
    for misalign in (0..TENSOR_ALIGN).step_by(BORROWED_ALIGN) {
        let copy = AlignedCopy::new(&blob, misalign);
        assert!(Model::from_bytes_borrowed(copy.bytes()).is_ok(), "start {misalign} past a 64-byte boundary");
    }
}

// ---------------------------------------------------------------- robustness

/// Any single byte set to any value, with the checksum restamped (a hostile
/// file, not a corrupted one), is either rejected or loads a model that runs
/// and gives finite logits.
#[cfg_attr(miri, ignore)]
#[test]
fn restamped_single_byte_edits_never_panic() {
    let shape = Shape { image_side: 4, patch_side: 2, dim: 4, heads: 2, classes: 3 };
    let blob = random_f32_blob(shape, SEED);
    let image = random_image(&shape, 1);
    let mut bad = blob.clone();
    let (mut accepted, mut rejected) = (0usize, 0usize);
    for i in (0..blob.len()).filter(|i| !CHECKSUM_RANGE.contains(i)) {
        let values: Vec<u8> = if i < entry(12) { (0..=255).collect() } else { vec![0, 0x7F, 0x80, 0xFF, blob[i] ^ 1] };
        for v in values {
            bad[i] = v;
            format::restamp_checksum(&mut bad);
            match Model::from_bytes(&bad) {
                Ok(model) => {
                    accepted += 1;
                    let mut ws = model.workspace();
                    let side_image = random_image(&model.shape(), 1);
                    let image = if model.shape() == shape { &image } else { &side_image };
                    let logits = model.infer(image, &mut ws).unwrap();
                    assert_eq!(logits.len(), model.shape().classes as usize);
                    assert!(logits.iter().all(|v| v.is_finite()), "byte {i} = {v:#04x}: {logits:?}");
                }
                Err(e) => {
                    rejected += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
        }
        bad[i] = blob[i];
    }
    format::restamp_checksum(&mut bad);
    assert_eq!(bad, blob);
    assert!(accepted > 0 && rejected > 0, "accepted {accepted}, rejected {rejected}");
}
