//! Classifying 28 × 28 inputs: microvit_classify(), _attention() and
//! _batch(), and the output checks they share with the image functions.

use microvit_engine as engine;

use crate::args::{disjoint, input, output, span, Span};
use crate::handles::{self, Model, Workspace};
use crate::status::{bail, fail, guard, infer_status, Status};

/// Classifies one image.
///
/// pixels: pixel_count u8 gray values, row-major, 0 = background as in
/// MNIST; pixel_count must equal shape.pixels (image_side squared), else
/// INVALID_ARGUMENT.
///
/// workspace: a workspace from microvit_workspace_create() for a model of
/// this shape and encoding (WORKSPACE_MISMATCH otherwise), or NULL to use this
/// thread's cached workspace, which is allocated on the thread's first NULL
/// call, reused after, replaced when a model of another shape or encoding
/// comes, and freed when the thread exits or calls
/// microvit_thread_cache_release().
/// With a workspace, this function never allocates.
///
/// Outputs, each optional (NULL = not wanted; its capacity is then ignored):
/// - out_class: the index of the largest logit (the first one on ties);
/// - out_logits: shape.classes logits; logits_capacity is the number of
///   floats out_logits has room for and must be >= shape.classes, else
///   BUFFER_TOO_SMALL;
/// - out_probs: shape.classes softmax probabilities, likewise with
///   probs_capacity.
///
/// No output may overlap pixels or another output (INVALID_ARGUMENT).
/// Outputs are written only on success (and may be partly written on
/// PANIC).
///
/// # Safety
/// Every non-NULL pointer points to the number of elements its length
/// argument says; model is a live model; workspace is NULL or a live
/// workspace not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn microvit_classify(
    model: *const Model,
    workspace: *mut Workspace,
    pixels: *const u8,
    pixel_count: usize,
    out_class: *mut u32,
    out_logits: *mut f32,
    logits_capacity: usize,
    out_probs: *mut f32,
    probs_capacity: usize,
) -> Status {
    guard(|| {
        let outputs = Outputs {
            classes: (out_class, 1),
            logits: (out_logits, logits_capacity),
            probs: (out_probs, probs_capacity),
            names: ["out_class", "out_logits", "out_probs"],
        };
        // SAFETY: forwarded from the caller.
        unsafe { classify_images(model, workspace, 1, pixels, pixel_count, outputs) }
    })
}

/// Classifies one image like microvit_classify() and also writes what the
/// attention saw: the CLS token's attention for each head, shape.heads rows
/// of shape.tokens floats (token 0 is the CLS token itself, then the patches
/// row-major over the patch grid; each row sums to 1), as the model's own
/// path computed it (int8 models: its Q.14 fixed-point probabilities).
/// Opt-in, so plain classify does not pay for it.
///
/// out_attention is required: attention_capacity must be >=
/// shape.heads * shape.tokens, else BUFFER_TOO_SMALL. out_class and
/// out_logits are optional as in microvit_classify(). Statuses, workspace
/// and overlap rules as microvit_classify(); with a workspace this function
/// never allocates.
///
/// # Safety
/// As microvit_classify(); out_attention points to attention_capacity
/// writable floats.
#[no_mangle]
pub unsafe extern "C" fn microvit_classify_attention(
    model: *const Model,
    workspace: *mut Workspace,
    pixels: *const u8,
    pixel_count: usize,
    out_class: *mut u32,
    out_logits: *mut f32,
    logits_capacity: usize,
    out_attention: *mut f32,
    attention_capacity: usize,
) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let model = &unsafe { handles::model("model", model) }?.inner;
        let shape = model.shape();
        let (per_image, classes) = (shape.pixels(), shape.classes as usize);
        let rows = shape.heads as usize * shape.tokens() as usize;
        if pixels.is_null() {
            bail!(Status::NullArgument, "pixels is NULL");
        }
        if out_attention.is_null() {
            bail!(Status::NullArgument, "out_attention is NULL");
        }
        if pixel_count != per_image {
            let side = shape.image_side;
            bail!(
                Status::InvalidArgument,
                "pixel_count is {pixel_count}, 1 image(s) of {side}x{side} pixels need {per_image}"
            );
        }
        let spans = [
            Some(span("pixels", pixels, per_image)?),
            output_span("out_class", (out_class, 1), 1)?,
            output_span("out_logits", (out_logits, logits_capacity), classes)?,
            output_span("out_attention", (out_attention, attention_capacity), rows)?,
        ];
        disjoint(&spans)?;
        if !workspace.is_null() {
            // SAFETY: forwarded from the caller.
            unsafe { handles::checked_workspace(model, workspace) }?;
        }
        // SAFETY: checked by `span` and `disjoint` above; the sizes are the
        // caller's by contract.
        let image = unsafe { input(pixels, per_image) };
        // SAFETY: see above.
        let attention = unsafe { output(out_attention, rows) };
        // SAFETY: see above.
        let class_out = (!out_class.is_null()).then(|| unsafe { output(out_class, 1) });
        // SAFETY: see above.
        let logits_out = (!out_logits.is_null()).then(|| unsafe { output(out_logits, classes) });
        // SAFETY: forwarded from the caller.
        unsafe {
            handles::with_workspace(model, workspace, |ws| {
                let logits = model
                    .infer_with_attention(image, ws, attention)
                    .map_err(|e| fail(infer_status(&e), format_args!("{e}")))?;
                if let Some(c) = class_out {
                    c[0] = engine::argmax(logits) as u32;
                }
                if let Some(l) = logits_out {
                    l.copy_from_slice(logits);
                }
                Ok(())
            })
        }
    })
}

/// Classifies image_count images stored back to back: pixels holds
/// pixel_count = image_count * shape.pixels bytes (INVALID_ARGUMENT
/// otherwise, also when the product overflows). image_count may be 0: then
/// pixel_count must be 0, pixels may be NULL, and nothing is written.
///
/// The same as calling microvit_classify() on each image in turn, with the
/// results stored row by row:
/// - out_classes: image_count class indices (classes_capacity >= image_count);
/// - out_logits: image_count * shape.classes floats, image i's logits at
///   out_logits[i * shape.classes] (logits_capacity >= that);
/// - out_probs: likewise for probabilities.
///
/// Each output is optional; workspace and the allocation guarantee are as
/// for microvit_classify().
///
/// # Safety
/// As microvit_classify().
#[no_mangle]
pub unsafe extern "C" fn microvit_classify_batch(
    model: *const Model,
    workspace: *mut Workspace,
    image_count: usize,
    pixels: *const u8,
    pixel_count: usize,
    out_classes: *mut u32,
    classes_capacity: usize,
    out_logits: *mut f32,
    logits_capacity: usize,
    out_probs: *mut f32,
    probs_capacity: usize,
) -> Status {
    guard(|| {
        let outputs = Outputs {
            classes: (out_classes, classes_capacity),
            logits: (out_logits, logits_capacity),
            probs: (out_probs, probs_capacity),
            names: ["out_classes", "out_logits", "out_probs"],
        };
        // SAFETY: forwarded from the caller.
        unsafe { classify_images(model, workspace, image_count, pixels, pixel_count, outputs) }
    })
}

/// The optional outputs of a classify call: pointer and capacity in
/// elements, and the argument names for error messages.
struct Outputs {
    classes: (*mut u32, usize),
    logits: (*mut f32, usize),
    probs: (*mut f32, usize),
    names: [&'static str; 3],
}

/// Checks the capacity of an optional output and returns its span.
pub(crate) fn output_span<T>(
    name: &'static str,
    (ptr, capacity): (*mut T, usize),
    needed: usize,
) -> Result<Option<Span>, Status> {
    if ptr.is_null() {
        return Ok(None);
    }
    if capacity < needed {
        bail!(Status::BufferTooSmall, "{name} has room for {capacity} values, {needed} are needed");
    }
    span(name, ptr.cast_const(), needed).map(Some)
}

/// The body of both classify functions.
///
/// # Safety
/// As microvit_classify().
unsafe fn classify_images(
    model: *const Model,
    ws: *mut Workspace,
    count: usize,
    pixels: *const u8,
    pixel_count: usize,
    out: Outputs,
) -> Result<(), Status> {
    // SAFETY: forwarded from the caller.
    let model = &unsafe { handles::model("model", model) }?.inner;
    let shape = model.shape();
    let (per_image, classes) = (shape.pixels(), shape.classes as usize);
    if count == 0 && pixel_count == 0 {
        // Nothing to classify: no buffer is looked at (NULLs allowed).
        return Ok(());
    }
    if pixels.is_null() {
        bail!(Status::NullArgument, "pixels is NULL");
    }
    let side = shape.image_side;
    let Some(total) = count.checked_mul(per_image) else {
        bail!(Status::InvalidArgument, "image_count {count} times {side}x{side} pixels overflows");
    };
    if pixel_count != total {
        bail!(
            Status::InvalidArgument,
            "pixel_count is {pixel_count}, {count} image(s) of {side}x{side} pixels need {total}"
        );
    }
    let Some(scores) = count.checked_mul(classes) else {
        bail!(Status::InvalidArgument, "image_count {count} times {classes} classes overflows");
    };
    let [class_name, logits_name, probs_name] = out.names;
    let spans = [
        Some(span("pixels", pixels, total)?),
        output_span(class_name, out.classes, count)?,
        output_span(logits_name, out.logits, scores)?,
        output_span(probs_name, out.probs, scores)?,
    ];
    disjoint(&spans)?;
    if !ws.is_null() {
        // Checked before any output is written, so that a failure leaves the
        // outputs untouched.
        // SAFETY: forwarded from the caller.
        unsafe { handles::checked_workspace(model, ws) }?;
    }

    // SAFETY: checked by `span` and `disjoint` above (here and for the three
    // outputs below); the sizes are the caller's by contract.
    let images = unsafe { input(pixels, total) };
    // SAFETY: see above.
    let mut class_out = (!out.classes.0.is_null()).then(|| unsafe { output(out.classes.0, count) });
    // SAFETY: see above.
    let mut logits_out = (!out.logits.0.is_null()).then(|| unsafe { output(out.logits.0, scores) });
    // SAFETY: see above.
    let mut probs_out = (!out.probs.0.is_null()).then(|| unsafe { output(out.probs.0, scores) });

    // SAFETY: forwarded from the caller.
    unsafe {
        handles::with_workspace(model, ws, |ws| {
            for (i, image) in images.chunks_exact(per_image).enumerate() {
                let logits = model.infer(image, ws).map_err(|e| fail(infer_status(&e), format_args!("{e}")))?;
                if let Some(c) = class_out.as_deref_mut() {
                    c[i] = engine::argmax(logits) as u32;
                }
                if let Some(l) = logits_out.as_deref_mut() {
                    l[i * classes..][..classes].copy_from_slice(logits);
                }
                if let Some(p) = probs_out.as_deref_mut() {
                    engine::softmax(logits, &mut p[i * classes..][..classes]);
                }
            }
            Ok(())
        })
    }
}
