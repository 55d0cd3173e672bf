//! Reading a PyTorch state_dict from safetensors into f32 tensors.

use std::collections::{BTreeMap, HashMap};

use half::{bf16, f16};
use microvit_engine::format::TensorId;
use safetensors::{Dtype as StDtype, SafeTensors};

use crate::ConvertError;

/// One tensor, widened to f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

/// A state_dict under canonical names (no `model.`/`module.` prefix), with
/// the file's metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateDict {
    pub tensors: BTreeMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
}

/// Prefixes that wrappers (`nn.DataParallel`, Lightning modules) put in
/// front of the names.
const PREFIXES: [&str; 2] = ["module.", "model."];

fn canonical_name(name: &str) -> &str {
    let mut name = name;
    while let Some(rest) = PREFIXES.iter().find_map(|p| name.strip_prefix(p)) {
        name = rest;
    }
    name
}

/// Reads every tensor of a safetensors file.
pub fn read_safetensors(bytes: &[u8]) -> Result<StateDict, ConvertError> {
    let invalid = |e: safetensors::SafeTensorError| ConvertError::Safetensors { reason: e.to_string() };
    let st = SafeTensors::deserialize(bytes).map_err(invalid)?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(invalid)?;
    let mut sd = StateDict { metadata: meta.metadata().clone().unwrap_or_default(), ..Default::default() };
    let mut entries = st.tensors();
    // Sort so errors are reported in the same order on every run.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, view) in entries {
        let data: Vec<f32> = match view.dtype() {
            StDtype::F32 => view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            StDtype::F16 => view.data().chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            StDtype::BF16 => view.data().chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            other => return Err(ConvertError::UnsupportedTensorDtype { tensor: name, dtype: format!("{other:?}") }),
        };
        let canonical = canonical_name(&name).to_string();
        let tensor = Tensor { dims: view.shape().to_vec(), data };
        if sd.tensors.insert(canonical.clone(), tensor).is_some() {
            return Err(ConvertError::DuplicateTensor { tensor: canonical });
        }
    }
    Ok(sd)
}

impl StateDict {
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Every Micro-ViT tensor is there and nothing else.
    pub fn check_names(&self) -> Result<(), ConvertError> {
        if let Some(id) = TensorId::STATE_DICT.iter().find(|id| !self.tensors.contains_key(id.name())) {
            return Err(ConvertError::MissingTensor { tensor: id.name().into() });
        }
        if let Some(name) = self.tensors.keys().find(|n| TensorId::STATE_DICT.iter().all(|id| id.name() != *n)) {
            return Err(ConvertError::UnexpectedTensor { tensor: name.clone() });
        }
        Ok(())
    }
}
