//! Workspaces in caller memory (what a firmware without a heap runs in):
//! the size they report, their refusals, and results identical to a
//! workspace on the heap for every shipped model.

mod common;

use microvit_engine::preprocess::{PixelFormat, Polarity, SourceImage};
use microvit_engine::{Backend, Encoding, InferError, Model, Shape, WorkspaceIn};

fn shipped(name: &str) -> Model<'static> {
    Model::from_bytes(&std::fs::read(common::repo("models").join(name)).unwrap()).unwrap()
}

const MODELS: [&str; 6] = [
    "microvit-seed.mvit",
    "microvit-seed.f16.mvit",
    "microvit-seed.int8.mvit",
    "microvit-4k.mvit",
    "microvit-4k.f16.mvit",
    "microvit-4k.int8.mvit",
];

#[test]
fn int8_workspace_of_the_seed_shape_is_649_words() {
    // What the README quotes (examples/cortex-m asks the model).
    assert_eq!(WorkspaceIn::words(Shape::SEED, Encoding::Int8), 649);
    assert_eq!(shipped("microvit-seed.int8.mvit").workspace_words(), 649);
    assert_eq!(shipped("microvit-4k.int8.mvit").workspace_words(), 517); // dim 24
    assert!(WorkspaceIn::words(Shape::SEED, Encoding::F32) > WorkspaceIn::words(Shape::SEED, Encoding::F16));
}

#[test]
fn logits_equal_a_heap_workspaces_for_every_shipped_model_and_backend() {
    let images = common::test_images();
    for name in MODELS {
        let mut model = shipped(name);
        for backend in Backend::available() {
            model.set_backend(backend).unwrap();
            let mut heap = model.workspace();
            let mut mem = vec![u32::MAX; model.workspace_words()];
            let mut ws = model.workspace_in(&mut mem).unwrap();
            assert_eq!(ws.encoding(), model.encoding());
            // Under miri, which interprets every operation: 2 digits.
            for image in images.chunks_exact(784).take(if cfg!(miri) { 2 } else { 50 }) {
                let want = model.infer(image, &mut heap).unwrap().to_vec();
                assert_eq!(model.infer(image, &mut ws).unwrap(), &want[..], "{name} on {backend}");
                assert_eq!(ws.logits_fixed(), heap.logits_fixed(), "{name} on {backend}");
            }
        }
    }
}

#[test]
fn too_little_memory_is_refused_with_the_size_needed() {
    let model = shipped("microvit-seed.int8.mvit");
    let needed = model.workspace_words();
    let mut mem = vec![0u32; needed - 1];
    let err = model.workspace_in(&mut mem).unwrap_err();
    assert_eq!(err, InferError::WorkspaceMemory { needed, found: needed - 1 });
    assert_eq!(
        err.to_string(),
        format!("workspace memory of {} u32 words is too small: the model needs {needed}", needed - 1)
    );
}

#[test]
fn a_workspace_for_another_model_or_without_image_buffers_is_refused() {
    let int8 = shipped("microvit-seed.int8.mvit");
    let f16 = shipped("microvit-seed.f16.mvit");
    let mut mem = vec![0u32; f16.workspace_words()];
    let mut ws = f16.workspace_in(&mut mem).unwrap();
    assert_eq!(int8.infer(&[0; 784], &mut ws), Err(InferError::WorkspaceMismatch));

    let mut mem = vec![0u32; int8.workspace_words()];
    let mut ws = int8.workspace_in(&mut mem).unwrap();
    let pixels = [0u8; 40 * 40];
    let image = SourceImage::packed(&pixels, PixelFormat::Gray8, 40, 40).unwrap();
    assert_eq!(int8.infer_image(&image, Polarity::Auto, &mut ws).unwrap_err(), InferError::WorkspaceMismatch);
}
