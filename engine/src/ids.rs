//! The identifiers of the blob format: encodings, element types, tensor
//! ids and dimensions. Plain values that import nothing of the engine, so
//! that both the errors and the format parser can name them.

use core::fmt;

use crate::shape::Shape;

/// How the weights are stored, and so which forward pass runs them: the one
/// name of this concept in the engine, the converter, the CLI (`--dtype`)
/// and the C ABI (`microvit_encoding`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Encoding {
    /// The PyTorch tensors as they are, in f32: the reference.
    #[default]
    F32 = 1,
    /// Weights in IEEE half precision, compute in f32.
    F16 = 2,
    /// Integer-only fixed point with int8 weights.
    Int8 = 3,
}

impl Encoding {
    pub const ALL: [Encoding; 3] = [Encoding::F32, Encoding::F16, Encoding::Int8];

    /// The encoding named `name` (`f32`, `f16`, `int8`; any case).
    pub fn from_name(name: &str) -> Option<Encoding> {
        Encoding::ALL.into_iter().find(|e| e.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this build runs the encoding: int8 always, f32 and f16 with
    /// the `float` feature (on by default).
    pub fn is_built(self) -> bool {
        cfg!(feature = "float") || self == Encoding::Int8
    }

    pub fn from_code(code: u8) -> Option<Encoding> {
        match code {
            1 => Some(Encoding::F32),
            2 => Some(Encoding::F16),
            3 => Some(Encoding::Int8),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::F32 => "f32",
            Encoding::F16 => "f16",
            Encoding::Int8 => "int8",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Element type of a stored tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ElemType {
    F32 = 1,
    F16 = 2,
    I8 = 3,
    I16 = 4,
    I32 = 5,
}

impl ElemType {
    pub fn from_code(code: u8) -> Option<ElemType> {
        match code {
            1 => Some(ElemType::F32),
            2 => Some(ElemType::F16),
            3 => Some(ElemType::I8),
            4 => Some(ElemType::I16),
            5 => Some(ElemType::I32),
            _ => None,
        }
    }

    pub fn size(self) -> usize {
        match self {
            ElemType::I8 => 1,
            ElemType::F16 | ElemType::I16 => 2,
            ElemType::F32 | ElemType::I32 => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ElemType::F32 => "f32",
            ElemType::F16 => "f16",
            ElemType::I8 => "i8",
            ElemType::I16 => "i16",
            ElemType::I32 => "i32",
        }
    }

    /// An element type byte for messages: its name, or the unknown code.
    pub(crate) fn describe_code(code: u8) -> impl fmt::Display {
        struct Described(u8);
        impl fmt::Display for Described {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match ElemType::from_code(self.0) {
                    Some(t) => f.write_str(t.name()),
                    None => write!(f, "code {} (unknown)", self.0),
                }
            }
        }
        Described(code)
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Tensor dimensions: rank 1 to 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dims {
    rank: u8,
    dims: [u32; 4],
}

impl Dims {
    pub fn new(dims: &[u32]) -> Dims {
        assert!((1..=4).contains(&dims.len()), "tensor rank must be 1..=4");
        let mut d = [0; 4];
        d[..dims.len()].copy_from_slice(dims);
        Dims { rank: dims.len() as u8, dims: d }
    }

    pub fn as_slice(&self) -> &[u32] {
        &self.dims[..self.rank as usize]
    }

    /// Number of elements, or `None` if it overflows `usize`.
    pub fn elements(&self) -> Option<usize> {
        self.as_slice().iter().try_fold(1usize, |n, &d| n.checked_mul(d as usize))
    }
}

impl fmt::Display for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `[a, b]` by hand: a slice's Debug formatting costs kilobytes.
        f.write_str("[")?;
        for (i, d) in self.as_slice().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// What a tensor is. The f32 encoding stores exactly the PyTorch state_dict
/// (ids 1 to 12); the int8 (256 up) and f16 (320 up) encodings store the
/// model folded at convert time (docs/FIXED_POINT.md derives each tensor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum TensorId {
    PatchEmbedWeight = 1,
    PatchEmbedBias = 2,
    ClsToken = 3,
    PosEmbed = 4,
    NormWeight = 5,
    NormBias = 6,
    InProjWeight = 7,
    InProjBias = 8,
    OutProjWeight = 9,
    OutProjBias = 10,
    HeadWeight = 11,
    HeadBias = 12,
    /// int8: patch embedding with the input normalisation folded in, per
    /// output channel on a common grid: `[D, P²]` i8 in ±127.
    Int8PatchWeight = 256,
    /// int8: per-channel multiplier of the patch accumulators, `[D]` i32 ≥ 1.
    Int8PatchScale = 257,
    /// int8: patch bias + position embedding per patch token, `[T-1, D]` i32.
    Int8TokenBias = 258,
    /// int8: scalar parameters, `[8]` i32 (see `int8::Params`).
    Int8Params = 259,
    /// int8: the CLS token after LayerNorm (before its affine), `[D]` i16 of
    /// L2 norm 2^14 (`int8::NORM_BITS`).
    Int8ClsNorm = 260,
    /// int8: per-head score vectors `γ ⊙ W_kᵀ q_cls / √hd`, `[H, D]` i16.
    Int8ScoreWeight = 261,
    /// int8: the CLS token's own score per head, `[H]` i32 Q.16.
    Int8ClsScore = 262,
    /// int8: `head · out_proj · W_v · diag(γ)` per head, `[H, C, D]` i16.
    Int8HeadWeight = 263,
    /// int8: every constant logit contribution, `[C]` i32 Q.16.
    Int8HeadBias = 264,
    /// f16: patch embedding with the input normalisation folded in, `[D, P²]`.
    F16PatchWeight = 320,
    /// f16: patch bias + position embedding per patch token, `[T-1, D]` f32.
    F16TokenBias = 321,
    /// f16: the CLS token after LayerNorm (before its affine), `[D]` f32.
    F16ClsNorm = 322,
    /// f16: per-head score vectors, `[H, D]`.
    F16ScoreWeight = 323,
    /// f16: the CLS token's own score per head, `[H]` f32.
    F16ClsScore = 324,
    /// f16: `head · out_proj · W_v · diag(γ)` per head, `[H, C, D]`.
    F16HeadWeight = 325,
    /// f16: every constant logit contribution, `[C]` f32.
    F16HeadBias = 326,
}

/// Scalar parameters of an int8 blob, in the order of `Int8Params`.
pub const INT8_PARAM_COUNT: usize = 8;

impl TensorId {
    /// The PyTorch state_dict tensors, in table order.
    pub const STATE_DICT: [TensorId; 12] = [
        TensorId::PatchEmbedWeight,
        TensorId::PatchEmbedBias,
        TensorId::ClsToken,
        TensorId::PosEmbed,
        TensorId::NormWeight,
        TensorId::NormBias,
        TensorId::InProjWeight,
        TensorId::InProjBias,
        TensorId::OutProjWeight,
        TensorId::OutProjBias,
        TensorId::HeadWeight,
        TensorId::HeadBias,
    ];

    /// Every tensor id of every encoding.
    pub const ALL: [TensorId; 28] = [
        TensorId::PatchEmbedWeight,
        TensorId::PatchEmbedBias,
        TensorId::ClsToken,
        TensorId::PosEmbed,
        TensorId::NormWeight,
        TensorId::NormBias,
        TensorId::InProjWeight,
        TensorId::InProjBias,
        TensorId::OutProjWeight,
        TensorId::OutProjBias,
        TensorId::HeadWeight,
        TensorId::HeadBias,
        TensorId::Int8PatchWeight,
        TensorId::Int8PatchScale,
        TensorId::Int8TokenBias,
        TensorId::Int8Params,
        TensorId::Int8ClsNorm,
        TensorId::Int8ScoreWeight,
        TensorId::Int8ClsScore,
        TensorId::Int8HeadWeight,
        TensorId::Int8HeadBias,
        TensorId::F16PatchWeight,
        TensorId::F16TokenBias,
        TensorId::F16ClsNorm,
        TensorId::F16ScoreWeight,
        TensorId::F16ClsScore,
        TensorId::F16HeadWeight,
        TensorId::F16HeadBias,
    ];

    pub fn from_code(code: u16) -> Option<TensorId> {
        TensorId::ALL.iter().copied().find(|t| *t as u16 == code)
    }

    /// The PyTorch state_dict name.
    pub fn name(self) -> &'static str {
        match self {
            TensorId::PatchEmbedWeight => "patch_embed.weight",
            TensorId::PatchEmbedBias => "patch_embed.bias",
            TensorId::ClsToken => "cls_token",
            TensorId::PosEmbed => "pos_embed",
            TensorId::NormWeight => "norm.weight",
            TensorId::NormBias => "norm.bias",
            TensorId::InProjWeight => "attention.in_proj_weight",
            TensorId::InProjBias => "attention.in_proj_bias",
            TensorId::OutProjWeight => "attention.out_proj.weight",
            TensorId::OutProjBias => "attention.out_proj.bias",
            TensorId::HeadWeight => "head.weight",
            TensorId::HeadBias => "head.bias",
            TensorId::Int8PatchWeight => "int8.patch_weight",
            TensorId::Int8PatchScale => "int8.patch_scale",
            TensorId::Int8TokenBias => "int8.token_bias",
            TensorId::Int8Params => "int8.params",
            TensorId::Int8ClsNorm => "int8.cls_norm",
            TensorId::Int8ScoreWeight => "int8.score_weight",
            TensorId::Int8ClsScore => "int8.cls_score",
            TensorId::Int8HeadWeight => "int8.head_weight",
            TensorId::Int8HeadBias => "int8.head_bias",
            TensorId::F16PatchWeight => "f16.patch_weight",
            TensorId::F16TokenBias => "f16.token_bias",
            TensorId::F16ClsNorm => "f16.cls_norm",
            TensorId::F16ScoreWeight => "f16.score_weight",
            TensorId::F16ClsScore => "f16.cls_score",
            TensorId::F16HeadWeight => "f16.head_weight",
            TensorId::F16HeadBias => "f16.head_bias",
        }
    }

    /// The dimensions PyTorch gives this tensor for a model of `shape`.
    pub fn dims(self, shape: &Shape) -> Dims {
        let d = shape.dim;
        match self {
            TensorId::PatchEmbedWeight => Dims::new(&[d, shape.patch_side * shape.patch_side]),
            TensorId::PatchEmbedBias | TensorId::NormWeight | TensorId::NormBias | TensorId::OutProjBias => {
                Dims::new(&[d])
            }
            TensorId::ClsToken => Dims::new(&[1, 1, d]),
            TensorId::PosEmbed => Dims::new(&[1, shape.tokens(), d]),
            TensorId::InProjWeight => Dims::new(&[3 * d, d]),
            TensorId::InProjBias => Dims::new(&[3 * d]),
            TensorId::OutProjWeight => Dims::new(&[d, d]),
            TensorId::HeadWeight => Dims::new(&[shape.classes, d]),
            TensorId::HeadBias => Dims::new(&[shape.classes]),
            TensorId::Int8PatchWeight | TensorId::F16PatchWeight => {
                Dims::new(&[d, shape.patch_side * shape.patch_side])
            }
            TensorId::Int8PatchScale | TensorId::Int8ClsNorm | TensorId::F16ClsNorm => Dims::new(&[d]),
            TensorId::Int8TokenBias | TensorId::F16TokenBias => Dims::new(&[shape.tokens() - 1, d]),
            TensorId::Int8Params => Dims::new(&[INT8_PARAM_COUNT as u32]),
            TensorId::Int8ScoreWeight | TensorId::F16ScoreWeight => Dims::new(&[shape.heads, d]),
            TensorId::Int8ClsScore | TensorId::F16ClsScore => Dims::new(&[shape.heads]),
            TensorId::Int8HeadWeight | TensorId::F16HeadWeight => Dims::new(&[shape.heads, shape.classes, d]),
            TensorId::Int8HeadBias | TensorId::F16HeadBias => Dims::new(&[shape.classes]),
        }
    }
}

impl fmt::Display for TensorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The tensors an encoding stores, each with its element type.
pub fn encoding_tensors(encoding: Encoding) -> &'static [(TensorId, ElemType)] {
    use TensorId::*;
    const F32: [(TensorId, ElemType); 12] = [
        (PatchEmbedWeight, ElemType::F32),
        (PatchEmbedBias, ElemType::F32),
        (ClsToken, ElemType::F32),
        (PosEmbed, ElemType::F32),
        (NormWeight, ElemType::F32),
        (NormBias, ElemType::F32),
        (InProjWeight, ElemType::F32),
        (InProjBias, ElemType::F32),
        (OutProjWeight, ElemType::F32),
        (OutProjBias, ElemType::F32),
        (HeadWeight, ElemType::F32),
        (HeadBias, ElemType::F32),
    ];
    const INT8: [(TensorId, ElemType); 9] = [
        (Int8PatchWeight, ElemType::I8),
        (Int8PatchScale, ElemType::I32),
        (Int8TokenBias, ElemType::I32),
        (Int8Params, ElemType::I32),
        (Int8ClsNorm, ElemType::I16),
        (Int8ScoreWeight, ElemType::I16),
        (Int8ClsScore, ElemType::I32),
        (Int8HeadWeight, ElemType::I16),
        (Int8HeadBias, ElemType::I32),
    ];
    const F16: [(TensorId, ElemType); 7] = [
        (F16PatchWeight, ElemType::F16),
        (F16TokenBias, ElemType::F32),
        (F16ClsNorm, ElemType::F32),
        (F16ScoreWeight, ElemType::F16),
        (F16ClsScore, ElemType::F32),
        (F16HeadWeight, ElemType::F16),
        (F16HeadBias, ElemType::F32),
    ];
    match encoding {
        Encoding::F32 => &F32,
        Encoding::F16 => &F16,
        Encoding::Int8 => &INT8,
    }
}
