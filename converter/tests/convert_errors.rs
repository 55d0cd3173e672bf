//! Every way a state_dict can be wrong gets its own error, naming the tensor
//! and what is wrong. The safetensors files are built by hand here so they
//! can be malformed on purpose.

use microvit_converter::{convert, ConvertError, ConvertOptions, Encoding};
use microvit_engine::format::TensorId;
use microvit_engine::shape::ShapeError;
use microvit_engine::synthetic::random_state_dict;
use microvit_engine::{Model, Shape};

#[derive(Clone)]
struct Entry {
    name: String,
    dtype: &'static str,
    dims: Vec<usize>,
    data: Vec<u8>,
}

/// A safetensors file: 8-byte header length, JSON header, data.
fn safetensors(entries: &[Entry], metadata: &[(&str, &str)]) -> Vec<u8> {
    let mut json = String::from("{");
    if !metadata.is_empty() {
        let kv: Vec<String> = metadata.iter().map(|(k, v)| format!("\"{k}\":\"{v}\"")).collect();
        json += &format!("\"__metadata__\":{{{}}},", kv.join(","));
    }
    let mut data = Vec::new();
    let mut fields = Vec::new();
    for e in entries {
        let (start, end) = (data.len(), data.len() + e.data.len());
        data.extend_from_slice(&e.data);
        fields.push(format!(
            "\"{}\":{{\"dtype\":\"{}\",\"shape\":{:?},\"data_offsets\":[{start},{end}]}}",
            e.name, e.dtype, e.dims
        ));
    }
    json += &fields.join(",");
    json += "}";
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(&data);
    out
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The entries of a random model of `shape`, as PyTorch would save them.
fn model_entries(shape: &Shape) -> Vec<Entry> {
    random_state_dict(shape, 7)
        .into_iter()
        .map(|(id, values)| Entry {
            name: id.name().to_string(),
            dtype: "F32",
            dims: id.dims(shape).as_slice().iter().map(|&d| d as usize).collect(),
            data: f32_bytes(&values),
        })
        .collect()
}

const META: [(&str, &str); 1] = [("microvit.num_heads", "2")];

fn convert_entries(entries: &[Entry]) -> Result<microvit_converter::Converted, ConvertError> {
    convert(&safetensors(entries, &META), &ConvertOptions::default())
}

fn with(entries: &[Entry], name: &str, edit: impl FnOnce(&mut Entry)) -> Vec<Entry> {
    let mut out = entries.to_vec();
    edit(out.iter_mut().find(|e| e.name == name).unwrap());
    out
}

#[test]
fn converts_a_valid_model_of_every_float_dtype_and_prefix() {
    let shape = Shape::SEED;
    let entries = model_entries(&shape);
    let reference = convert_entries(&entries).unwrap();
    assert_eq!(reference.config.shape, shape);
    let model = Model::from_bytes(&reference.blob).unwrap();
    let original = random_state_dict(&shape, 7);
    for ((name, stored), (id, values)) in model.state_dict().iter().zip(&original) {
        assert_eq!(*name, id.name());
        assert_eq!(stored, &values.as_slice(), "{name} round-trips bit for bit");
    }

    // model./module. prefixes are tolerated and change nothing.
    for prefix in ["model.", "module.", "module.model."] {
        let prefixed: Vec<Entry> =
            entries.iter().map(|e| Entry { name: format!("{prefix}{}", e.name), ..e.clone() }).collect();
        assert_eq!(convert_entries(&prefixed).unwrap().blob, reference.blob, "prefix {prefix}");
    }

    // f16 and bf16 tensors are widened exactly.
    for (dtype, encode) in [
        ("F16", (|v: f32| half::f16::from_f32(v).to_le_bytes()) as fn(f32) -> [u8; 2]),
        ("BF16", |v: f32| half::bf16::from_f32(v).to_le_bytes()),
    ] {
        let narrow: Vec<Entry> = random_state_dict(&shape, 7)
            .into_iter()
            .map(|(id, values)| Entry {
                name: id.name().into(),
                dtype,
                dims: id.dims(&shape).as_slice().iter().map(|&d| d as usize).collect(),
                data: values.iter().flat_map(|&v| encode(v)).collect(),
            })
            .collect();
        let blob = convert_entries(&narrow).unwrap().blob;
        let model = Model::from_bytes(&blob).unwrap();
        let patch = model.state_dict()[0].1[5];
        let want = original[0].1[5];
        let tolerance = if dtype == "F16" { 1e-3 } else { 1e-2 };
        assert!((patch - want).abs() <= tolerance * want.abs().max(1e-2), "{dtype}: {patch} vs {want}");
    }
}

#[test]
fn shape_is_inferred_for_other_family_members() {
    let shape = Shape { image_side: 32, patch_side: 4, dim: 24, heads: 3, classes: 7 };
    let file = safetensors(&model_entries(&shape), &[]);
    let options = ConvertOptions { heads: Some(3), ..Default::default() };
    assert_eq!(convert(&file, &options).unwrap().config.shape, shape);
}

#[test]
fn options_override_metadata_and_metadata_overrides_defaults() {
    let entries = model_entries(&Shape::SEED);
    let file = safetensors(&entries, &[("microvit.num_heads", "4"), ("microvit.pixel_std", "0.5")]);
    let from_meta = convert(&file, &ConvertOptions::default()).unwrap().config;
    assert_eq!((from_meta.shape.heads, from_meta.pixel_std, from_meta.pixel_mean), (4, 0.5, 0.1307));
    let options = ConvertOptions { heads: Some(2), pixel_std: Some(0.25), ..Default::default() };
    let from_options = convert(&file, &options).unwrap().config;
    assert_eq!((from_options.shape.heads, from_options.pixel_std), (2, 0.25));
}

#[test]
fn not_safetensors() {
    for bytes in [&b""[..], b"hello world", &[0xff; 64]] {
        let err = convert(bytes, &ConvertOptions::default()).unwrap_err();
        assert!(matches!(err, ConvertError::Safetensors { .. }), "{err:?}");
        assert!(err.to_string().starts_with("not a valid safetensors file"));
    }
}

#[test]
fn unsupported_tensor_dtype() {
    let entries = with(&model_entries(&Shape::SEED), "head.bias", |e| {
        e.dtype = "I32";
    });
    let err = convert_entries(&entries).unwrap_err();
    assert_eq!(err, ConvertError::UnsupportedTensorDtype { tensor: "head.bias".into(), dtype: "I32".into() });
    assert!(err.to_string().contains("only F32, F16 and BF16"));
}

#[test]
fn duplicate_after_prefix_removal() {
    let mut entries = model_entries(&Shape::SEED);
    let mut dup = entries[0].clone();
    dup.name = format!("module.{}", dup.name);
    entries.push(dup);
    let err = convert_entries(&entries).unwrap_err();
    assert_eq!(err, ConvertError::DuplicateTensor { tensor: "patch_embed.weight".into() });
}

/// Issue #18: a key twice in the JSON header was accepted, the last one
/// winning. Two tensors of one name (however the name is spelt in JSON)
/// or two values of one metadata key are refused, naming the key.
#[test]
fn duplicate_keys_in_the_json_header() {
    let entries = model_entries(&Shape::SEED);
    let file = safetensors(&entries, &META);
    assert!(convert(&file, &ConvertOptions::default()).is_ok());
    let header_len = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&file[8..8 + header_len]).unwrap();
    let data = &file[8 + header_len..];
    let with_header = |json: &str| {
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(json.as_bytes());
        out.extend_from_slice(data);
        out
    };
    // head.bias's entry twice (the safetensors crate keeps the last, so the
    // file is valid to it).
    let at = header.find("\"head.bias\"").unwrap();
    let entry_end = at + header[at..].find('}').unwrap() + 1;
    let again = &header[at..entry_end];
    let cases = [
        (format!("{},{again}}}", &header[..header.len() - 1]), "tensor \"head.bias\""),
        // The same name spelt with a JSON escape.
        (
            format!(
                "{},{}}}",
                &header[..header.len() - 1],
                header[at..entry_end].replace("head.bias", "head\\u002ebias")
            ),
            "tensor \"head.bias\"",
        ),
        (
            header.replace(
                "{\"microvit.num_heads\":\"2\"}",
                "{\"microvit.num_heads\":\"2\",\"microvit.num_heads\":\"4\"}",
            ),
            "metadata key \"microvit.num_heads\"",
        ),
    ];
    for (json, needle) in cases {
        let err = convert(&with_header(&json), &ConvertOptions::default()).unwrap_err();
        match &err {
            ConvertError::Safetensors { reason } => {
                assert!(reason.contains(&format!("the JSON header names {needle} twice")), "{reason}")
            }
            other => panic!("{json}: {other:?}"),
        }
        assert!(err.to_string().starts_with("not a valid safetensors file: the JSON header names"), "{err}");
    }
}

#[test]
fn missing_tensor() {
    let entries: Vec<Entry> = model_entries(&Shape::SEED).into_iter().filter(|e| e.name != "norm.bias").collect();
    let err = convert_entries(&entries).unwrap_err();
    assert_eq!(err, ConvertError::MissingTensor { tensor: "norm.bias".into() });
    assert!(err.to_string().contains("norm.bias is missing"));
}

#[test]
fn unexpected_tensor() {
    let mut entries = model_entries(&Shape::SEED);
    entries.push(Entry { name: "blocks.0.mlp.weight".into(), dtype: "F32", dims: vec![1], data: f32_bytes(&[1.0]) });
    let err = convert_entries(&entries).unwrap_err();
    assert_eq!(err, ConvertError::UnexpectedTensor { tensor: "blocks.0.mlp.weight".into() });
}

#[test]
fn bad_shapes_name_the_tensor_and_the_reason() {
    let entries = model_entries(&Shape::SEED);
    let cases: Vec<(&str, Vec<usize>, &str)> = vec![
        ("patch_embed.weight", vec![32, 48], "48 inputs is not a square patch"),
        ("patch_embed.weight", vec![1568], "expected [dim, patch_side²]"),
        ("pos_embed", vec![1, 18, 32], "18 tokens is not a square grid"),
        ("pos_embed", vec![17, 32], "expected [1, tokens, dim]"),
        ("head.weight", vec![320], "expected [classes, dim]"),
        ("norm.weight", vec![31], "needs [32]"),
        ("attention.in_proj_weight", vec![96, 31], "needs [96, 32]"),
        ("cls_token", vec![32], "needs [1, 1, 32]"),
    ];
    for (name, dims, reason) in cases {
        let count: usize = dims.iter().product();
        let broken = with(&entries, name, |e| {
            e.dims = dims.clone();
            e.data = f32_bytes(&vec![0.5; count]);
        });
        match convert_entries(&broken).unwrap_err() {
            ConvertError::BadShape { tensor, found, reason: r } => {
                assert_eq!((tensor.as_str(), &found), (name, &dims));
                assert!(r.contains(reason), "{name} {dims:?}: {r:?} lacks {reason:?}");
            }
            other => panic!("{name} {dims:?}: {other:?}"),
        }
    }
}

#[test]
fn non_finite_weight() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let entries = with(&model_entries(&Shape::SEED), "attention.out_proj.weight", |e| {
            e.data[4 * 37..4 * 38].copy_from_slice(&bad.to_le_bytes());
        });
        match convert_entries(&entries).unwrap_err() {
            ConvertError::NonFinite { tensor, index, value } => {
                assert_eq!((tensor.as_str(), index), ("attention.out_proj.weight", 37));
                assert_eq!(value.to_bits(), bad.to_bits());
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Issue #18: a weight of 3e38 converted (to f32 and f16) and every
/// inference of the blob gave NaN. Now it is refused for every dtype with
/// the loader's own bound, so whatever converts also loads.
#[test]
fn weights_beyond_the_magnitude_bounds() {
    for encoding in [Encoding::F32, Encoding::F16, Encoding::Int8] {
        let entries = with(&model_entries(&Shape::SEED), "attention.in_proj_bias", |e| {
            e.data[4 * 5..4 * 6].copy_from_slice(&3e38f32.to_le_bytes());
        });
        let options = ConvertOptions { encoding, calibration: Some(vec![0; 784]), ..Default::default() };
        let err = convert(&safetensors(&entries, &META), &options).unwrap_err();
        let expected = ConvertError::TooLarge {
            tensor: "attention.in_proj_bias".into(),
            index: 5,
            value: 3e38,
            limit: microvit_engine::format::F32_VALUE_LIMIT,
        };
        assert_eq!(err, expected, "{}", encoding.name());
        let message = err.to_string();
        assert!(message.contains("attention.in_proj_bias holds 3e38 at index 5, beyond the ±1048576.0"), "{message}");
    }
    // The patch weights' bound follows the normalisation: 1000 is fine for
    // MNIST's, not with pixel_std 1e-6 (a normalised pixel reaches 1.1e6).
    let entries = with(&model_entries(&Shape::SEED), "patch_embed.weight", |e| {
        e.data[..4].copy_from_slice(&1000f32.to_le_bytes());
    });
    assert!(convert_entries(&entries).is_ok());
    let options = ConvertOptions { pixel_std: Some(1e-6), ..Default::default() };
    match convert(&safetensors(&entries, &META), &options).unwrap_err() {
        ConvertError::TooLarge { tensor, index: 0, value, .. } => {
            assert_eq!((tensor.as_str(), value), ("patch_embed.weight", 1000.0));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn heads_unknown_without_metadata_or_option() {
    let file = safetensors(&model_entries(&Shape::SEED), &[]);
    let err = convert(&file, &ConvertOptions::default()).unwrap_err();
    assert_eq!(err, ConvertError::HeadsUnknown);
    assert!(err.to_string().contains("--heads"));
}

#[test]
fn bad_metadata() {
    let entries = model_entries(&Shape::SEED);
    let file = safetensors(&entries, &[("microvit.num_heads", "two")]);
    let err = convert(&file, &ConvertOptions::default()).unwrap_err();
    assert_eq!(
        err,
        ConvertError::BadMetadata {
            key: "microvit.num_heads".into(),
            value: "two".into(),
            reason: "not a number".into()
        }
    );
    let file = safetensors(&entries, &[("microvit.num_heads", "2"), ("microvit.image_size", "32")]);
    let err = convert(&file, &ConvertOptions::default()).unwrap_err();
    assert_eq!(
        err,
        ConvertError::BadMetadata {
            key: "microvit.image_size".into(),
            value: "32".into(),
            reason: "the tensor shapes give 28".into()
        }
    );
}

#[test]
fn bad_parameter() {
    let file = safetensors(&model_entries(&Shape::SEED), &META);
    for (options, name) in [
        (ConvertOptions { pixel_std: Some(0.0), ..Default::default() }, "pixel_std"),
        (ConvertOptions { pixel_mean: Some(f32::NAN), ..Default::default() }, "pixel_mean"),
        (ConvertOptions { layer_norm_eps: Some(-1e-5), ..Default::default() }, "layer_norm_eps"),
    ] {
        match convert(&file, &options).unwrap_err() {
            ConvertError::BadParameter { name: n, .. } => assert_eq!(n, name),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn unsupported_shape() {
    let file = safetensors(&model_entries(&Shape::SEED), &[("microvit.num_heads", "3")]);
    let err = convert(&file, &ConvertOptions::default()).unwrap_err();
    assert_eq!(err, ConvertError::UnsupportedShape(ShapeError("3 heads do not divide dim 32".into())));
}

#[test]
fn int8_needs_usable_calibration_digits() {
    let file = safetensors(&model_entries(&Shape::SEED), &META);
    let options =
        |calibration: Option<Vec<u8>>| ConvertOptions { encoding: Encoding::Int8, calibration, ..Default::default() };
    let err = convert(&file, &options(None)).unwrap_err();
    assert_eq!(err, ConvertError::Calibration { reason: "int8 needs calibration digits to choose its scales".into() });
    let err = convert(&file, &options(Some(vec![0; 784 * 2 + 1]))).unwrap_err();
    assert_eq!(
        err,
        ConvertError::Calibration { reason: "1569 bytes is not a whole number of 784-pixel images".into() }
    );
    assert!(convert(&file, &options(Some(vec![0; 0]))).is_err());
    // One black and one white digit are enough to convert.
    let mut two = vec![0u8; 784];
    two.extend([255u8; 784]);
    let converted = convert(&file, &options(Some(two))).unwrap();
    assert_eq!(converted.report.unwrap().calibration_images, 2);
}

#[test]
fn int8_refuses_a_model_its_grid_cannot_hold() {
    // Biases 10^26 times larger than the weights would overflow the i32
    // accumulator at any scale.
    let entries = with(&model_entries(&Shape::SEED), "patch_embed.weight", |e| {
        e.data = f32_bytes(&[1e-20; 32 * 49]);
    });
    let entries = with(&entries, "patch_embed.bias", |e| {
        e.data = f32_bytes(&[1e6; 32]);
    });
    let file = safetensors(&entries, &META);
    let options = ConvertOptions { encoding: Encoding::Int8, calibration: Some(vec![0; 784]), ..Default::default() };
    match convert(&file, &options).unwrap_err() {
        ConvertError::NotQuantizable { reason } => assert!(reason.contains("too large"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn f16_blob_loads_and_runs() {
    let file = safetensors(&model_entries(&Shape::SEED), &META);
    let converted = convert(&file, &ConvertOptions { encoding: Encoding::F16, ..Default::default() }).unwrap();
    let model = Model::from_bytes(&converted.blob).unwrap();
    assert_eq!(model.encoding(), microvit_engine::Encoding::F16);
    let mut ws = model.workspace();
    assert!(model.infer(&[128; 784], &mut ws).unwrap().iter().all(|v| v.is_finite()));
}

#[test]
fn every_tensor_id_is_covered_by_model_entries() {
    // Guards the helpers above: a new state_dict tensor must show up here.
    let names: Vec<String> = model_entries(&Shape::SEED).into_iter().map(|e| e.name).collect();
    let ids: Vec<&str> = TensorId::STATE_DICT.iter().map(|id| id.name()).collect();
    assert_eq!(names, ids);
}
