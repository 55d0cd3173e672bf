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
    let (header_len, meta) = SafeTensors::read_metadata(bytes).map_err(invalid)?;
    // read_metadata checked the length and the UTF-8 of the header.
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).expect("a checked header");
    unique_keys::check(header).map_err(|reason| ConvertError::Safetensors { reason })?;
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

/// Duplicate keys in the JSON header. serde_json, and so the safetensors
/// crate, keeps the last of two equal keys without a word; the safetensors
/// format disallows them, and two tensors of one name (or two values of one
/// metadata key) mean a broken export: which one was meant is unknowable.
mod unique_keys {
    use std::cell::RefCell;
    use std::collections::HashSet;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

    /// The first key found twice, and where.
    type Found = RefCell<Option<(String, &'static str)>>;

    /// A JSON object whose keys must be unique; `nested` checks the value
    /// of `__metadata__` the same way (at the top level only).
    struct UniqueMap<'f> {
        found: &'f Found,
        what: &'static str,
        nested: bool,
    }

    impl<'de> DeserializeSeed<'de> for UniqueMap<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for UniqueMap<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if self.nested && key == "__metadata__" {
                    map.next_value_seed(UniqueMap { found: self.found, what: "metadata key", nested: false })?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
                if !seen.insert(key.clone()) {
                    let what = if self.nested && key == "__metadata__" { "key" } else { self.what };
                    *self.found.borrow_mut() = Some((key, what));
                    return Err(de::Error::custom("duplicate key"));
                }
            }
            Ok(())
        }

        // `__metadata__` may be null; anything else was refused already.
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }
    }

    /// Checks a header that the safetensors crate has accepted.
    pub(super) fn check(header: &str) -> Result<(), String> {
        let found = Found::default();
        let mut json = serde_json::Deserializer::from_str(header);
        let result = UniqueMap { found: &found, what: "tensor", nested: true }.deserialize(&mut json);
        match (result, found.into_inner()) {
            (Ok(()), _) => Ok(()),
            (Err(_), Some((key, what))) => Err(format!(
                "the JSON header names {what} {key:?} twice (duplicate keys are not allowed: which one was meant?)"
            )),
            (Err(e), None) => Err(format!("JSON header: {e}")),
        }
    }
}
