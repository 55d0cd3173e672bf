//! The blob format: one definition, used by the converter to write and by the
//! engine to read. `docs/FORMAT.md` is its specification; keep them in step.
//!
//! Layout (all integers little-endian):
//! - a 64-byte header (magic, version, lengths, checksum, encoding, shape,
//!   input normalisation, LayerNorm epsilon),
//! - a tensor table of 32-byte entries,
//! - tensor data, each tensor at a 64-byte aligned offset, zero padding
//!   between.
//!
//! The CRC-32C checksum covers every byte of the blob except its own four.

#[cfg(feature = "alloc")]
use alloc::{vec, vec::Vec};

use crate::crc32c::Crc32c;
use crate::error::LoadError;
pub use crate::ids::{encoding_tensors, Dims, ElemType, Encoding, TensorId, INT8_PARAM_COUNT};
use crate::shape::Shape;

pub const MAGIC: [u8; 4] = *b"MVIT";
pub const FORMAT_VERSION: u16 = 1;
pub const HEADER_LEN: usize = 64;
pub const TABLE_ENTRY_LEN: usize = 32;
/// Every tensor starts at a multiple of this, so SIMD loads and cache lines
/// line up and a mmapped blob can be used in place.
pub const TENSOR_ALIGN: usize = 64;
/// Byte range of the checksum field, which the checksum skips.
pub const CHECKSUM_RANGE: core::ops::Range<usize> = 12..16;

// Header field offsets.
const OFF_VERSION: usize = 4;
const OFF_HEADER_LEN: usize = 6;
const OFF_BLOB_LEN: usize = 8;
const OFF_ENCODING: usize = 16;
const OFF_TENSOR_COUNT: usize = 18;
const OFF_SHAPE: usize = 20; // five u16: image side, patch side, dim, heads, classes
const OFF_PIXEL_MEAN: usize = 32;
const OFF_PIXEL_STD: usize = 36;
const OFF_LN_EPS: usize = 40;
/// Bytes that must be zero in a version-1 header (room for later fields).
const RESERVED: [core::ops::Range<usize>; 3] = [17..18, 30..32, 44..64];

/// The largest magnitude of a value of an f32 blob (the PyTorch weights):
/// 2^20. `patch_embed.weight` is bounded after the input normalisation
/// instead, `|w| · (1 + |pixel_mean|) / pixel_std ≤ 2^20` (the weight a
/// pixel in [0, 1] meets). docs/FORMAT.md, "Magnitude bounds", proves that
/// these keep every logit of every image finite.
pub const F32_VALUE_LIMIT: f64 = (1u64 << 20) as f64;

/// The largest magnitude of the f32 constants of an f16 blob (token bias,
/// CLS norm and score, head bias): 2^40. Its f16 tensors are bounded by half
/// precision itself (65504); with both, every logit is finite (docs/FORMAT.md).
pub const F16_CONSTANT_LIMIT: f64 = (1u64 << 40) as f64;

/// Everything about a model that is not a tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelConfig {
    pub shape: Shape,
    /// Input normalisation: the network sees `(pixel / 255 - mean) / std`.
    pub pixel_mean: f32,
    pub pixel_std: f32,
    pub layer_norm_eps: f32,
}

impl ModelConfig {
    /// MNIST's usual normalisation and PyTorch's LayerNorm default.
    pub fn mnist(shape: Shape) -> ModelConfig {
        ModelConfig { shape, pixel_mean: 0.1307, pixel_std: 0.3081, layer_norm_eps: 1e-5 }
    }

    /// Checks the scalar parameters; on failure, the offending one's name
    /// and value. Bounds are wide enough for any real normalisation, narrow
    /// enough that normalised pixels and LayerNorm stay finite in f32.
    pub fn check_parameters(&self) -> Result<(), (&'static str, f32)> {
        let params = [
            ("pixel_mean", self.pixel_mean, self.pixel_mean.abs() <= 1e6),
            ("pixel_std", self.pixel_std, (1e-6..=1e6).contains(&self.pixel_std)),
            ("layer_norm_eps", self.layer_norm_eps, self.layer_norm_eps > 0.0 && self.layer_norm_eps <= 1.0),
        ];
        match params.into_iter().find(|(_, _, ok)| !ok) {
            Some((name, value, _)) => Err((name, value)),
            None => Ok(()),
        }
    }

    /// The largest magnitude a value of float tensor `id` may have in a
    /// blob of this config ([`F32_VALUE_LIMIT`], [`F16_CONSTANT_LIMIT`]), or
    /// `None` when its type bounds it already (f16 values; int8 tensors,
    /// whose ranges `int8::validate` checks). The loader and the converter
    /// both enforce it.
    pub fn value_limit(&self, id: TensorId) -> Option<f64> {
        use TensorId::*;
        match id {
            PatchEmbedWeight => Some(F32_VALUE_LIMIT * self.pixel_std as f64 / (1.0 + (self.pixel_mean as f64).abs())),
            PatchEmbedBias | ClsToken | PosEmbed | NormWeight | NormBias | InProjWeight | InProjBias
            | OutProjWeight | OutProjBias | HeadWeight | HeadBias => Some(F32_VALUE_LIMIT),
            F16TokenBias | F16ClsNorm | F16ClsScore | F16HeadBias => Some(F16_CONSTANT_LIMIT),
            F16PatchWeight | F16ScoreWeight | F16HeadWeight | Int8PatchWeight | Int8PatchScale | Int8TokenBias
            | Int8Params | Int8ClsNorm | Int8ScoreWeight | Int8ClsScore | Int8HeadWeight | Int8HeadBias => None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), LoadError> {
        self.shape.validate().map_err(LoadError::InvalidShape)?;
        self.check_parameters().map_err(|(name, value)| LoadError::InvalidParameter { name, value })
    }
}

/// A parsed, validated header.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Header {
    pub version: u16,
    pub encoding: Encoding,
    pub config: ModelConfig,
    pub blob_len: usize,
    pub checksum: u32,
}

/// Where one tensor's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    pub id: TensorId,
    pub elem: ElemType,
    pub dims: Dims,
    pub offset: usize,
    pub len: usize,
}

/// A validated blob layout: the header and one entry per tensor of its
/// encoding, in the encoding's order.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub header: Header,
    pub tensors: TensorTable,
}

/// The tensor entries of a layout: a `Vec`, or without `alloc` a
/// fixed-capacity list of the same use (`push`, and a slice for the rest).
#[cfg(feature = "alloc")]
pub type TensorTable = Vec<TensorEntry>;
#[cfg(not(feature = "alloc"))]
pub type TensorTable = TensorList;

/// Most tensors an encoding has (f32: 12); a test checks every encoding.
pub const MAX_TENSORS: usize = 12;

/// Up to [`MAX_TENSORS`] entries without a heap.
#[derive(Clone, Debug)]
pub struct TensorList {
    entries: [TensorEntry; MAX_TENSORS],
    len: usize,
}

impl Default for TensorList {
    fn default() -> TensorList {
        let unused = TensorEntry {
            id: TensorId::PatchEmbedWeight,
            elem: ElemType::F32,
            dims: Dims::new(&[0]),
            offset: 0,
            len: 0,
        };
        TensorList { entries: [unused; MAX_TENSORS], len: 0 }
    }
}

impl TensorList {
    /// Appends an entry. The parser pushes each id of one encoding at most
    /// once, so the capacity is never exceeded.
    pub fn push(&mut self, entry: TensorEntry) {
        self.entries[self.len] = entry;
        self.len += 1;
    }
}

impl core::ops::Deref for TensorList {
    type Target = [TensorEntry];

    fn deref(&self) -> &[TensorEntry] {
        &self.entries[..self.len]
    }
}

impl PartialEq for TensorList {
    fn eq(&self, other: &TensorList) -> bool {
        **self == **other
    }
}

impl<'a> IntoIterator for &'a TensorList {
    type Item = &'a TensorEntry;
    type IntoIter = core::slice::Iter<'a, TensorEntry>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Layout {
    /// The entry of `id`. The loader stores the entries in the order of
    /// [`encoding_tensors`], which lists each encoding's ids in ascending
    /// order from its first, so the position is the id's distance from
    /// that first one: no search on the inference path.
    #[inline]
    pub fn tensor(&self, id: TensorId) -> &TensorEntry {
        let first = self.tensors.first().map_or(0, |t| t.id as usize);
        let entry = (id as usize).checked_sub(first).and_then(|i| self.tensors.get(i));
        match entry {
            Some(t) if t.id == id => t,
            _ => self.tensors.iter().find(|t| t.id == id).expect("layout holds every tensor of its encoding"),
        }
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn f32_at(b: &[u8], off: usize) -> f32 {
    f32::from_bits(u32_at(b, off))
}

/// The checksum of a blob: CRC-32C over everything but the checksum field.
pub fn compute_checksum(blob: &[u8]) -> u32 {
    let mut crc = Crc32c::new();
    crc.update(&blob[..CHECKSUM_RANGE.start]);
    crc.update(&blob[CHECKSUM_RANGE.end..]);
    crc.finish()
}

/// Parses and validates everything about a blob except the tensor values:
/// framing, checksum, header, and the tensor table against the shape.
pub fn parse(blob: &[u8]) -> Result<Layout, LoadError> {
    let actual = blob.len();
    if actual < MAGIC.len() {
        return Err(LoadError::Truncated { needed: HEADER_LEN, actual });
    }
    if blob[..4] != MAGIC {
        return Err(LoadError::BadMagic { found: [blob[0], blob[1], blob[2], blob[3]] });
    }
    // Bytes 0..16 (magic, version, header length, blob length, checksum)
    // sit where they are in every format version, so the checksum can be
    // verified before anything version-dependent is read: a flipped bit in
    // the version is corruption, and only a blob with a valid checksum is
    // "from a newer converter".
    if actual < CHECKSUM_RANGE.end {
        return Err(LoadError::Truncated { needed: HEADER_LEN, actual });
    }
    let declared = u32_at(blob, OFF_BLOB_LEN) as usize;
    if declared > actual {
        return Err(LoadError::Truncated { needed: declared.max(HEADER_LEN), actual });
    }
    if declared < actual {
        return Err(LoadError::TrailingBytes { declared, actual });
    }
    let stored = u32_at(blob, CHECKSUM_RANGE.start);
    let computed = compute_checksum(blob);
    if stored != computed {
        return Err(LoadError::ChecksumMismatch { stored, computed });
    }
    let version = u16_at(blob, OFF_VERSION);
    if version != FORMAT_VERSION {
        return Err(LoadError::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
    }
    if actual < HEADER_LEN {
        return Err(LoadError::Truncated { needed: HEADER_LEN, actual });
    }
    let header_len = u16_at(blob, OFF_HEADER_LEN);
    if header_len as usize != HEADER_LEN {
        return Err(LoadError::BadHeaderLength { found: header_len, expected: HEADER_LEN as u16 });
    }

    // The bytes are what the converter wrote; from here on we check that
    // what it wrote is consistent, since a hostile file can carry a valid
    // checksum.
    for range in RESERVED {
        if let Some(i) = range.clone().find(|&i| blob[i] != 0) {
            return Err(LoadError::ReservedNotZero { offset: i });
        }
    }
    let code = blob[OFF_ENCODING];
    let encoding = Encoding::from_code(code).ok_or(LoadError::UnknownEncoding { found: code })?;
    if !encoding.is_built() {
        return Err(LoadError::EncodingNotBuilt { encoding });
    }
    let shape = Shape {
        image_side: u16_at(blob, OFF_SHAPE) as u32,
        patch_side: u16_at(blob, OFF_SHAPE + 2) as u32,
        dim: u16_at(blob, OFF_SHAPE + 4) as u32,
        heads: u16_at(blob, OFF_SHAPE + 6) as u32,
        classes: u16_at(blob, OFF_SHAPE + 8) as u32,
    };
    let config = ModelConfig {
        shape,
        pixel_mean: f32_at(blob, OFF_PIXEL_MEAN),
        pixel_std: f32_at(blob, OFF_PIXEL_STD),
        layer_norm_eps: f32_at(blob, OFF_LN_EPS),
    };
    config.validate()?;
    let header = Header { version, encoding, config, blob_len: declared, checksum: stored };

    let count = u16_at(blob, OFF_TENSOR_COUNT) as usize;
    let table_end = HEADER_LEN + count * TABLE_ENTRY_LEN;
    if table_end > actual {
        return Err(LoadError::TensorTableOutOfBounds { count, end: table_end, blob_len: actual });
    }
    let expected = encoding_tensors(encoding);
    let mut found = TensorTable::default();
    for i in 0..count {
        let e = &blob[HEADER_LEN + i * TABLE_ENTRY_LEN..][..TABLE_ENTRY_LEN];
        let code = u16_at(e, 0);
        let (id, elem) = expected
            .iter()
            .copied()
            .find(|(id, _)| *id as u16 == code)
            .ok_or(LoadError::UnexpectedTensor { id: code, encoding })?;
        if found.iter().any(|t| t.id == id) {
            return Err(LoadError::DuplicateTensor { tensor: id });
        }
        if e[2] != elem as u8 {
            return Err(LoadError::WrongElementType { tensor: id, expected: elem, found: e[2] });
        }
        let want = id.dims(&shape);
        let rank = e[3] as usize;
        let raw_dims = [u32_at(e, 4), u32_at(e, 8), u32_at(e, 12), u32_at(e, 16)];
        let dims = if (1..=4).contains(&rank) && raw_dims[rank..].iter().all(|&d| d == 0) {
            Dims::new(&raw_dims[..rank])
        } else {
            // Not even a well-formed shape: report it as the raw rank-4 field.
            Dims::new(&raw_dims)
        };
        if dims != want {
            return Err(LoadError::WrongTensorShape { tensor: id, expected: want, found: dims });
        }
        let offset = u32_at(e, 20) as usize;
        let len = u32_at(e, 24) as usize;
        let needed = want.elements().expect("shape family bounds the size") * elem.size();
        if len != needed {
            return Err(LoadError::WrongByteLength { tensor: id, expected: needed, found: len });
        }
        if let Some(j) = (28..32).find(|&j| e[j] != 0) {
            return Err(LoadError::ReservedNotZero { offset: HEADER_LEN + i * TABLE_ENTRY_LEN + j });
        }
        if !offset.is_multiple_of(TENSOR_ALIGN) {
            return Err(LoadError::MisalignedTensor { tensor: id, offset });
        }
        if offset < table_end || offset.checked_add(len).is_none_or(|end| end > actual) {
            return Err(LoadError::TensorOutOfBounds { tensor: id, offset, len, blob_len: actual });
        }
        if let Some(other) = found.iter().find(|t| offset < t.offset + t.len && t.offset < offset + len) {
            return Err(LoadError::OverlappingTensors { first: other.id, second: id });
        }
        found.push(TensorEntry { id, elem, dims, offset, len });
    }
    let mut tensors = TensorTable::default();
    for (id, _) in expected {
        let entry = found.iter().find(|t| t.id == *id).ok_or(LoadError::MissingTensor { tensor: *id })?;
        tensors.push(*entry);
    }
    Ok(Layout { header, tensors })
}

/// Writes a blob. The converter is its only production user; tests use it to
/// build malformed blobs on purpose.
#[cfg(feature = "alloc")]
#[derive(Clone, Debug)]
pub struct BlobWriter {
    encoding: Encoding,
    config: ModelConfig,
    tensors: Vec<(u16, u8, Vec<u32>, Vec<u8>)>,
}

#[cfg(feature = "alloc")]
impl BlobWriter {
    pub fn new(encoding: Encoding, config: ModelConfig) -> BlobWriter {
        BlobWriter { encoding, config, tensors: Vec::new() }
    }

    /// Adds a tensor with its raw little-endian bytes.
    pub fn tensor(&mut self, id: TensorId, elem: ElemType, dims: &[u32], bytes: Vec<u8>) -> &mut Self {
        self.raw_tensor(id as u16, elem as u8, dims, bytes)
    }

    /// Adds a tensor without any checking (for tests of the loader).
    pub fn raw_tensor(&mut self, id: u16, elem: u8, dims: &[u32], bytes: Vec<u8>) -> &mut Self {
        self.tensors.push((id, elem, dims.to_vec(), bytes));
        self
    }

    /// Lays out the blob and stamps its length and checksum.
    pub fn finish(&self) -> Vec<u8> {
        let align = |n: usize| n.div_ceil(TENSOR_ALIGN) * TENSOR_ALIGN;
        let table_end = HEADER_LEN + self.tensors.len() * TABLE_ENTRY_LEN;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut end = align(table_end);
        for (_, _, _, bytes) in &self.tensors {
            offsets.push(end);
            end = align(end + bytes.len());
        }
        let mut blob = vec![0u8; end];
        let put16 = |b: &mut [u8], off: usize, v: u16| b[off..off + 2].copy_from_slice(&v.to_le_bytes());
        let put32 = |b: &mut [u8], off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
        let s = &self.config.shape;
        blob[..4].copy_from_slice(&MAGIC);
        put16(&mut blob, OFF_VERSION, FORMAT_VERSION);
        put16(&mut blob, OFF_HEADER_LEN, HEADER_LEN as u16);
        put32(&mut blob, OFF_BLOB_LEN, end as u32);
        blob[OFF_ENCODING] = self.encoding as u8;
        put16(&mut blob, OFF_TENSOR_COUNT, self.tensors.len() as u16);
        for (i, v) in [s.image_side, s.patch_side, s.dim, s.heads, s.classes].into_iter().enumerate() {
            put16(&mut blob, OFF_SHAPE + 2 * i, v as u16);
        }
        put32(&mut blob, OFF_PIXEL_MEAN, self.config.pixel_mean.to_bits());
        put32(&mut blob, OFF_PIXEL_STD, self.config.pixel_std.to_bits());
        put32(&mut blob, OFF_LN_EPS, self.config.layer_norm_eps.to_bits());
        for (i, ((id, elem, dims, bytes), &offset)) in self.tensors.iter().zip(&offsets).enumerate() {
            let e = HEADER_LEN + i * TABLE_ENTRY_LEN;
            put16(&mut blob, e, *id);
            blob[e + 2] = *elem;
            blob[e + 3] = dims.len() as u8;
            for (j, d) in dims.iter().take(4).enumerate() {
                put32(&mut blob, e + 4 + 4 * j, *d);
            }
            put32(&mut blob, e + 20, offset as u32);
            put32(&mut blob, e + 24, bytes.len() as u32);
            blob[offset..offset + bytes.len()].copy_from_slice(bytes);
        }
        restamp_checksum(&mut blob);
        blob
    }
}

/// Recomputes and stores the checksum (after deliberate edits in tests).
pub fn restamp_checksum(blob: &mut [u8]) {
    let crc = compute_checksum(blob);
    blob[CHECKSUM_RANGE].copy_from_slice(&crc.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the `float` feature only int8 blobs load: the others are
    /// refused by name before anything reads their tensors. (Runs in a
    /// `--no-default-features --features std` test build: .ci/cortex-m.sh.)
    #[cfg(all(feature = "std", not(feature = "float")))]
    #[test]
    fn an_int8_only_build_refuses_float_blobs_by_name() {
        let models = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/");
        for (file, encoding) in [("microvit-seed.mvit", Encoding::F32), ("microvit-seed.f16.mvit", Encoding::F16)] {
            let blob = std::fs::read(std::format!("{models}{file}")).unwrap();
            assert_eq!(parse(&blob).err(), Some(LoadError::EncodingNotBuilt { encoding }), "{file}");
        }
        let int8 = std::fs::read(std::format!("{models}microvit-seed.int8.mvit")).unwrap();
        assert_eq!(parse(&int8).map(|l| l.header.encoding), Ok(Encoding::Int8));
    }

    /// `Layout::tensor` finds entries by position; that needs every
    /// encoding's ids to be consecutive.
    #[test]
    fn tensor_lists_hold_every_encodings_tensors() {
        let mut list = TensorList::default();
        let encoding = Encoding::ALL.into_iter().max_by_key(|e| encoding_tensors(*e).len()).unwrap();
        for (i, &(id, elem)) in encoding_tensors(encoding).iter().enumerate() {
            list.push(TensorEntry { id, elem, dims: Dims::new(&[1]), offset: i, len: 1 });
        }
        assert_eq!(list.len(), MAX_TENSORS);
        assert_eq!(list.iter().map(|t| t.offset).collect::<Vec<_>>(), (0..MAX_TENSORS).collect::<Vec<_>>());
        assert_eq!(list.clone(), list);
    }

    #[test]
    fn each_encodings_tensor_ids_are_consecutive() {
        for encoding in [Encoding::F32, Encoding::F16, Encoding::Int8] {
            let ids: Vec<u16> = encoding_tensors(encoding).iter().map(|(id, _)| *id as u16).collect();
            assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{encoding:?}: {ids:?}");
        }
    }
}
