//! `microvit eval --report DIR`: where the model fails, as pictures and a markdown page.
//!
//! * `confusion.png`: the confusion matrix as a heat map, with counts, axis labels and per-class accuracy.
//! * `misclassified.png`: the [`GALLERY_LIMIT`] most confident mistakes, each with its attention overlays.
//! * `attention_by_class.png`: each head's CLS attention averaged over every digit of a true class,
//!   drawn over that class's mean digit.
//! * `report.md`: links the pictures; overall and per-class accuracy; the most confused pairs.
//!
//! The attention comes from a second pass over the images with
//! [`Model::infer_with_attention`](microvit_engine::Model::infer_with_attention) (the evaluation itself
//! runs plain inference); its predictions are checked against the evaluation's.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use microvit_dataset::idx::Images;
use microvit_engine::{Model, Shape};

use crate::draw::{self, Canvas};
use crate::eval::Evaluation;
use crate::explain::{self, colour_bar, percent, Panel};

/// At most this many mistakes are drawn in `misclassified.png`: the most confident ones.
pub const GALLERY_LIMIT: usize = 64;

/// The pairs the design expected to be confused most (each in both directions).
pub const EXPECTED_PAIRS: [(usize, usize); 2] = [(4, 9), (3, 8)];

/// What the report is about, besides the evaluation.
pub struct Input<'a> {
    pub model: &'a Model<'a>,
    /// The model's file; `None` for the built-in model.
    pub model_path: Option<&'a Path>,
    pub images_path: &'a Path,
    pub images: &'a Images,
}

/// One misclassified image.
#[derive(Clone, Debug)]
pub struct Mistake {
    /// Index in the evaluated set.
    pub index: usize,
    pub label: usize,
    pub predicted: usize,
    /// Probability of the (wrong) predicted class.
    pub confidence: f32,
    /// `heads × tokens` CLS attention.
    pub attention: Vec<f32>,
}

/// What the attention pass collects.
#[derive(Clone, Debug)]
pub struct AttentionSummary {
    /// Every mistake, most confident first (ties: lower index first).
    pub mistakes: Vec<Mistake>,
    /// Digits per true class.
    pub counts: Vec<usize>,
    /// `classes × heads × tokens`: mean CLS attention per true class.
    pub class_attention: Vec<f32>,
    /// `classes × side²`: mean digit per true class.
    pub class_pixels: Vec<u8>,
}

/// Runs every image again with attention; checks the predictions agree with `eval`.
pub fn attention_pass(model: &Model<'_>, images: &Images, eval: &Evaluation) -> Result<AttentionSummary, String> {
    let shape = model.shape();
    let (heads, tokens, classes) = (shape.heads as usize, shape.tokens() as usize, eval.classes);
    let n_pixels = images.side * images.side;
    let mut counts = vec![0usize; classes];
    let mut attention_sums = vec![0f64; classes * heads * tokens];
    let mut pixel_sums = vec![0u64; classes * n_pixels];
    let mut mistakes = Vec::new();
    let mut ws = model.workspace();
    for (i, image) in images.iter().enumerate() {
        let e = explain::explain(model, &mut ws, image)?;
        let label = eval.labels[i] as usize;
        if e.predicted != eval.predictions[i] {
            return Err(format!(
                "image {i}: inference with attention predicts {}, plain inference {}",
                e.predicted, eval.predictions[i]
            ));
        }
        counts[label] += 1;
        for (sum, &a) in attention_sums[label * heads * tokens..][..heads * tokens].iter_mut().zip(&e.attention) {
            *sum += f64::from(a);
        }
        for (sum, &p) in pixel_sums[label * n_pixels..][..n_pixels].iter_mut().zip(image) {
            *sum += u64::from(p);
        }
        if e.predicted != label {
            let confidence = e.probs[e.predicted];
            mistakes.push(Mistake { index: i, label, predicted: e.predicted, confidence, attention: e.attention });
        }
    }
    mistakes.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then(a.index.cmp(&b.index)));
    let class_attention = attention_sums
        .chunks(heads * tokens)
        .zip(&counts)
        .flat_map(|(sums, &n)| sums.iter().map(move |s| (s / n.max(1) as f64) as f32))
        .collect();
    let class_pixels = pixel_sums
        .chunks(n_pixels)
        .zip(&counts)
        .flat_map(|(sums, &n)| sums.iter().map(move |&s| ((s + n as u64 / 2) / n.max(1) as u64) as u8))
        .collect();
    Ok(AttentionSummary { mistakes, counts, class_attention, class_pixels })
}

/// Writes the report into `dir` (created if needed) and returns the path of `report.md`.
pub fn write(dir: &Path, input: &Input<'_>, eval: &Evaluation) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let shape = input.model.shape();
    let summary = attention_pass(input.model, input.images, eval)?;
    confusion_picture(eval).save_png(&dir.join("confusion.png"))?;
    gallery_picture(shape, input.images, eval, &summary).save_png(&dir.join("misclassified.png"))?;
    class_attention_picture(shape, &summary).save_png(&dir.join("attention_by_class.png"))?;
    let md = dir.join("report.md");
    std::fs::write(&md, markdown(input, eval, &summary)).map_err(|e| format!("cannot write {}: {e}", md.display()))?;
    Ok(md)
}

// ----- confusion.png -------------------------------------------------------------------------------

const MARGIN: usize = 16;
const CELL: usize = 56;
const CONFUSION_GRID_X: usize = MARGIN + 56;
const CONFUSION_GRID_Y: usize = MARGIN + 96;

/// Width and height of `confusion.png` for `classes` classes (732 × 766 for ten).
pub fn confusion_size(classes: usize) -> (usize, usize) {
    let width = CONFUSION_GRID_X + classes * CELL + 12 + 72 + MARGIN;
    let height = CONFUSION_GRID_Y + classes * CELL + 16 + 14 + 8 + 16 + 8 + 16 + MARGIN;
    (width, height)
}

/// Cell (true class `t`, predicted class `p`) of `confusion.png`: left, top and side, in pixels.
pub fn confusion_cell(t: usize, p: usize) -> (usize, usize, usize) {
    (CONFUSION_GRID_X + p * CELL, CONFUSION_GRID_Y + t * CELL, CELL)
}

/// Colour position of a count: log(1 + n) / log(1 + max), so single mistakes show next to a diagonal of
/// a thousand.
pub fn count_scale(n: usize, max: usize) -> f32 {
    ((n as f64).ln_1p() / (max.max(1) as f64).ln_1p()) as f32
}

/// The confusion matrix heat map.
pub fn confusion_picture(eval: &Evaluation) -> Canvas {
    let c = eval.classes;
    let (width, height) = confusion_size(c);
    let mut canvas = Canvas::new(width, height, draw::PAPER);
    let (gx, gy) = (CONFUSION_GRID_X, CONFUSION_GRID_Y);
    let max = eval.confusion.iter().copied().max().unwrap_or(0);

    let title = format!("confusion matrix: {} digits, {:.2}% correct", eval.len(), eval.accuracy());
    canvas.text(MARGIN, MARGIN, &title, 2, draw::INK);
    canvas.text(MARGIN, MARGIN + 24, "rows: true, columns: predicted, colour: log(1 + count)", 2, draw::MUTED);
    canvas.text_centred(gx + c * CELL / 2, gy - 46, "predicted", 2, draw::INK);
    // "true", stacked letter by letter along the rows.
    for (k, ch) in "true".chars().enumerate() {
        canvas.text(MARGIN, gy + c * CELL / 2 - 36 + k * 18, &ch.to_string(), 2, draw::INK);
    }
    canvas.text(gx + c * CELL + 12, gy - 22, "correct", 2, draw::INK);
    for k in 0..c {
        canvas.text_centred(gx + k * CELL + CELL / 2, gy - 22, &k.to_string(), 2, draw::INK);
        canvas.text_right(gx - 8, gy + k * CELL + CELL / 2 - 7, &k.to_string(), 2, draw::INK);
    }
    for t in 0..c {
        let row = &eval.confusion[t * c..][..c];
        for (p, &n) in row.iter().enumerate() {
            let (x, y, _) = confusion_cell(t, p);
            let colour = draw::viridis(count_scale(n, max));
            canvas.fill_rect(x, y, CELL, CELL, colour);
            let ink = if n == 0 { draw::mix(colour, draw::WHITE, 0.35) } else { draw::text_colour_on(colour) };
            canvas.text_centred(x + CELL / 2, y + CELL / 2 - 7, &n.to_string(), 2, ink);
        }
        let total: usize = row.iter().sum();
        let accuracy = 100.0 * row[t] as f64 / total.max(1) as f64;
        canvas.text(gx + c * CELL + 12, gy + t * CELL + CELL / 2 - 7, &format!("{accuracy:.2}%"), 2, draw::INK);
    }
    // Cell borders.
    for k in 0..=c {
        canvas.fill_rect(gx + k * CELL, gy, 1, c * CELL + 1, draw::PAPER);
        canvas.fill_rect(gx, gy + k * CELL, c * CELL + 1, 1, draw::PAPER);
    }

    // The colour scale, with ticks at 0, 1, 10, 100, … up to the largest count.
    let (bar_y, bar_w) = (gy + c * CELL + 16, c * CELL);
    for x in 0..bar_w {
        canvas.fill_rect(gx + x, bar_y, 1, 14, draw::viridis(x as f32 / (bar_w - 1) as f32));
    }
    canvas.stroke_rect(gx, bar_y, bar_w, 14, draw::MUTED);
    let mut tick = 0;
    while tick <= max {
        let x = gx + (count_scale(tick, max) * (bar_w - 1) as f32).round() as usize;
        canvas.fill_rect(x, bar_y + 14, 1, 5, draw::INK);
        canvas.text_centred(x, bar_y + 22, &tick.to_string(), 2, draw::INK);
        tick = if tick == 0 { 1 } else { tick * 10 };
    }
    canvas.text_right(gx + bar_w, bar_y + 22 + 16 + 8, &format!("largest cell: {max}"), 2, draw::MUTED);
    canvas
}

// ----- misclassified.png ---------------------------------------------------------------------------

const GALLERY_COLUMNS: usize = 4;
const GALLERY_HEADER: usize = MARGIN + 16 + 10 + 16 + 8 + 16 + 20;
const TILE_HEADER: usize = 22;

fn tile_scale(shape: Shape) -> usize {
    explain::panel_scale(shape, 84)
}

fn tile_size(shape: Shape) -> (usize, usize) {
    let panel = shape.image_side as usize * tile_scale(shape);
    let heads = shape.heads as usize;
    ((heads + 1) * panel + heads * 4, TILE_HEADER + panel)
}

/// Width and height of `misclassified.png` when it shows `tiles` mistakes (1144 × 2084 for 64 with the
/// seed shape).
pub fn gallery_size(shape: Shape, tiles: usize) -> (usize, usize) {
    let (tw, th) = tile_size(shape);
    let width = 2 * MARGIN + GALLERY_COLUMNS * tw + (GALLERY_COLUMNS - 1) * 24;
    let rows = tiles.div_ceil(GALLERY_COLUMNS).max(1);
    (width, GALLERY_HEADER + rows * (th + 18) - 18 + MARGIN)
}

/// The most confident mistakes, each as the digit and its attention overlays.
pub fn gallery_picture(shape: Shape, images: &Images, eval: &Evaluation, summary: &AttentionSummary) -> Canvas {
    let shown = &summary.mistakes[..summary.mistakes.len().min(GALLERY_LIMIT)];
    let (width, height) = gallery_size(shape, shown.len());
    let mut canvas = Canvas::new(width, height, draw::PAPER);
    let (heads, tokens) = (shape.heads as usize, shape.tokens() as usize);
    let title = if shown.len() < summary.mistakes.len() {
        format!("the {} most confident of {} mistakes ({} digits)", shown.len(), summary.mistakes.len(), eval.len())
    } else {
        format!("all {} mistakes ({} digits), most confident first", shown.len(), eval.len())
    };
    canvas.text(MARGIN, MARGIN, &title, 2, draw::INK);
    let heads_list: Vec<String> = (0..heads).map(|h| format!("head {h}")).collect();
    let legend = [
        format!("each: true -> predicted (confidence), #index; the digit, then {}", heads_list.join(" and ")),
        format!(
            "CLS attention over the {g}x{g} patches, viridis from 0 to the digit's largest patch weight",
            g = shape.grid()
        ),
    ];
    canvas.text(MARGIN, MARGIN + 26, &legend[0], 2, draw::MUTED);
    canvas.text(MARGIN, MARGIN + 26 + 20, &legend[1], 2, draw::MUTED);
    if shown.is_empty() {
        canvas.text(MARGIN, GALLERY_HEADER, "no mistakes", 2, draw::INK);
        return canvas;
    }
    let (tw, th) = tile_size(shape);
    let scale = tile_scale(shape);
    for (k, m) in shown.iter().enumerate() {
        let x = MARGIN + (k % GALLERY_COLUMNS) * (tw + 24);
        let y = GALLERY_HEADER + (k / GALLERY_COLUMNS) * (th + 18);
        let end = canvas.text(x, y, &format!("{} -> {}", m.label, m.predicted), 2, draw::RED);
        canvas.text(end + 6, y, &format!("({})", percent(m.confidence)), 2, draw::INK);
        canvas.text_right(x + tw, y + 4, &format!("#{}", m.index), 1, draw::MUTED);
        let pixels = images.get(m.index);
        let vmax = m.attention.chunks(tokens).flat_map(|row| row[1..].iter().copied()).fold(0.0, f32::max);
        let mut panel = Panel { shape, scale, pixels, patches: None, vmax, cell_labels: None };
        let size = panel.size();
        panel.draw(&mut canvas, x, y + TILE_HEADER);
        for h in 0..heads {
            panel.patches = Some(&m.attention[h * tokens + 1..][..tokens - 1]);
            panel.draw(&mut canvas, x + (h + 1) * (size + 4), y + TILE_HEADER);
        }
    }
    canvas
}

// ----- attention_by_class.png ----------------------------------------------------------------------

const CLASS_LABEL_WIDTH: usize = 88;
const CLASS_TOP: usize = MARGIN + 16 + 10 + 16 + 14 + 16 + 6;

fn class_panel(shape: Shape) -> usize {
    shape.image_side as usize * explain::panel_scale(shape, 112)
}

/// Width and height of `attention_by_class.png` (1408 × 360 for the seed shape).
pub fn class_attention_size(shape: Shape) -> (usize, usize) {
    let (panel, classes, heads) = (class_panel(shape), shape.classes as usize, shape.heads as usize);
    let width = MARGIN + CLASS_LABEL_WIDTH + classes * (panel + 8) - 8 + 16 + 16 + 64 + MARGIN;
    (width, CLASS_TOP + heads * (panel + 8) - 8 + 18 + MARGIN)
}

/// Each head's mean CLS attention per true class, over the class's mean digit.
pub fn class_attention_picture(shape: Shape, summary: &AttentionSummary) -> Canvas {
    let (width, height) = class_attention_size(shape);
    let mut canvas = Canvas::new(width, height, draw::PAPER);
    let (heads, tokens, classes) = (shape.heads as usize, shape.tokens() as usize, shape.classes as usize);
    let n_pixels = (shape.image_side * shape.image_side) as usize;
    let panel = class_panel(shape);
    let patches = |c: usize, h: usize| &summary.class_attention[(c * heads + h) * tokens + 1..][..tokens - 1];
    let vmax =
        (0..classes).flat_map(|c| (0..heads).flat_map(move |h| patches(c, h).iter().copied())).fold(0.0, f32::max);
    let label_scale = if shape.patch_side as usize * explain::panel_scale(shape, 112) >= 24 { Some(1) } else { None };

    canvas.text(MARGIN, MARGIN, "mean CLS attention per head, over all digits of each true class", 2, draw::INK);
    canvas.text(
        MARGIN,
        MARGIN + 26,
        "drawn on the class's mean digit; numbers: percent of the head's attention on that patch",
        2,
        draw::MUTED,
    );
    let left = MARGIN + CLASS_LABEL_WIDTH;
    for c in 0..classes {
        let x = left + c * (panel + 8);
        let label = format!("{c} ({})", summary.counts[c]);
        canvas.text_centred(x + panel / 2, CLASS_TOP - 22, &label, 2, draw::INK);
        let pixels = &summary.class_pixels[c * n_pixels..][..n_pixels];
        for h in 0..heads {
            let y = CLASS_TOP + h * (panel + 8);
            let p = Panel {
                shape,
                scale: explain::panel_scale(shape, 112),
                pixels,
                patches: Some(patches(c, h)),
                vmax,
                cell_labels: label_scale,
            };
            p.draw(&mut canvas, x, y);
        }
    }
    for h in 0..heads {
        let y = CLASS_TOP + h * (panel + 8);
        canvas.text(MARGIN, y + panel / 2 - 16, &format!("head {h}"), 2, draw::INK);
        let self_attention: f32 = (0..classes).map(|c| summary.class_attention[(c * heads + h) * tokens]).sum::<f32>();
        let mean_self = self_attention / classes.max(1) as f32;
        canvas.text(MARGIN, y + panel / 2 + 4, &format!("CLS {}", percent(mean_self)), 1, draw::MUTED);
    }
    let bar_x = left + classes * (panel + 8) - 8 + 16;
    colour_bar(&mut canvas, bar_x, CLASS_TOP, 16, heads * (panel + 8) - 8, vmax, "mean");
    canvas
}

// ----- report.md -----------------------------------------------------------------------------------

/// Unordered class pairs (a < b) with their confusions each way, most confused (a as b + b as a) first.
pub fn pair_confusions(eval: &Evaluation) -> Vec<(usize, usize, usize, usize)> {
    let c = eval.classes;
    let mut pairs: Vec<_> = (0..c)
        .flat_map(|a| (a + 1..c).map(move |b| (a, b)))
        .map(|(a, b)| (a, b, eval.confusion[a * c + b], eval.confusion[b * c + a]))
        .filter(|&(_, _, ab, ba)| ab + ba > 0)
        .collect();
    pairs.sort_by(|x, y| (y.2 + y.3).cmp(&(x.2 + x.3)).then((x.0, x.1).cmp(&(y.0, y.1))));
    pairs
}

/// What became of the design's expectation that 4 ↔ 9 and 3 ↔ 8 would be the most confused pairs.
fn expectation(pairs: &[(usize, usize, usize, usize)], eval: &Evaluation) -> String {
    const TOP: usize = 5;
    let c = eval.classes;
    let mut measured = Vec::new();
    let (mut held, mut missed) = (Vec::new(), Vec::new());
    for (a, b) in EXPECTED_PAIRS {
        let (ab, ba) = (eval.confusion[a * c + b], eval.confusion[b * c + a]);
        let name = format!("{a} ↔ {b}");
        match pairs.iter().position(|p| (p.0, p.1) == (a, b)) {
            Some(r) => {
                let times = if ab + ba == 1 { "once".to_string() } else { format!("{} times", ab + ba) };
                measured.push(format!("{name} {times} ({ab} + {ba}), rank {} of {}", r + 1, pairs.len()));
            }
            None => measured.push(format!("{name} never")),
        }
        if pairs.iter().take(TOP).any(|p| (p.0, p.1) == (a, b)) {
            held.push(name);
        } else {
            missed.push(name);
        }
    }
    let verdict = match (held.is_empty(), missed.is_empty()) {
        (false, true) => format!("both are among the {TOP} most confused pairs"),
        (true, false) => format!("neither is among the {TOP} most confused pairs"),
        _ => format!("{} is among the {TOP} most confused pairs, {} is not", held.join(", "), missed.join(", ")),
    };
    let others: Vec<String> = pairs
        .iter()
        .take(TOP)
        .filter(|p| !EXPECTED_PAIRS.contains(&(p.0, p.1)))
        .map(|&(a, b, ab, ba)| format!("{a} ↔ {b} ({})", ab + ba))
        .collect();
    let mut text = format!(
        "The design expected 4 ↔ 9 and 3 ↔ 8 to be the most confused pairs. Measured: {}. So {verdict}",
        measured.join("; ")
    );
    if !others.is_empty() {
        let _ = write!(text, "; the top {TOP} also hold {}", others.join(", "));
    }
    text.push('.');
    text
}

/// `path` relative to the working directory when it lies inside it (the shipped model and test set
/// resolve to absolute paths), so the report reads the same on every machine.
fn display(path: &Path) -> String {
    let relative = std::env::current_dir().ok().and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf));
    relative.unwrap_or_else(|| path.to_path_buf()).display().to_string()
}

fn model_name(input: &Input<'_>) -> String {
    input.model_path.map_or_else(|| crate::model_file::builtin::name(input.model.encoding()), display)
}

/// The text of `report.md`.
pub fn markdown(input: &Input<'_>, eval: &Evaluation, summary: &AttentionSummary) -> String {
    let c = eval.classes;
    let shape = input.model.shape();
    let mut md = String::new();
    let _ = writeln!(md, "# microvit evaluation report\n");
    let _ = writeln!(
        md,
        "- model: `{}` ({}, {} parameters)",
        model_name(input),
        input.model.encoding(),
        shape.parameter_count()
    );
    let _ = writeln!(md, "- images: `{}` ({} digits)", display(input.images_path), eval.len());
    let _ = writeln!(md, "- accuracy: **{:.2} % ({} / {})**", eval.accuracy(), eval.correct(), eval.len());
    let _ = writeln!(md, "- mistakes: {}\n", eval.len() - eval.correct());

    let _ = writeln!(md, "## Confusion matrix\n\n![confusion matrix](confusion.png)\n");
    let _ = writeln!(
        md,
        "Rows are the true class, columns the predicted class; the colour is log(1 + count), so that single \
         mistakes stay visible next to a diagonal of about a thousand.\n"
    );

    let _ = writeln!(md, "## Per-class accuracy\n");
    let _ = writeln!(md, "| class | digits | correct | accuracy | most often taken for |");
    let _ = writeln!(md, "|---:|---:|---:|---:|---|");
    for t in 0..c {
        let row = &eval.confusion[t * c..][..c];
        let count: usize = row.iter().sum();
        let acc = 100.0 * row[t] as f64 / count.max(1) as f64;
        let most = (0..c).filter(|&p| p != t).map(|p| row[p]).max().unwrap_or(0);
        let worst: Vec<String> =
            (0..c).filter(|&p| p != t && most > 0 && row[p] == most).map(|p| format!("{p} ({most})")).collect();
        let worst = if worst.is_empty() { "-".to_string() } else { worst.join(", ") };
        let _ = writeln!(md, "| {t} | {count} | {} | {acc:.2} % | {worst} |", row[t]);
    }

    let _ = writeln!(md, "\n## Most confused pairs\n");
    let confusions = eval.confusions();
    let top: Vec<String> = confusions.iter().take(5).map(|(t, p, n)| format!("{t} as {p} ({n})")).collect();
    if top.is_empty() {
        let _ = writeln!(md, "No mistakes.");
    } else {
        let _ = writeln!(md, "most confused (true as predicted): {}\n", top.join(", "));
        let _ = writeln!(md, "| true | predicted | digits | share of the true class |");
        let _ = writeln!(md, "|---:|---:|---:|---:|");
        for &(t, p, n) in confusions.iter().take(10) {
            let count: usize = eval.confusion[t * c..][..c].iter().sum();
            let _ = writeln!(md, "| {t} | {p} | {n} | {:.2} % |", 100.0 * n as f64 / count.max(1) as f64);
        }
        let pairs = pair_confusions(eval);
        let _ = writeln!(md, "\nBoth directions together:\n");
        let _ = writeln!(md, "| pair | total | a as b | b as a |");
        let _ = writeln!(md, "|---|---:|---:|---:|");
        for &(a, b, ab, ba) in pairs.iter().take(5) {
            let _ = writeln!(md, "| {a} ↔ {b} | {} | {a} as {b}: {ab} | {b} as {a}: {ba} |", ab + ba);
        }
        if EXPECTED_PAIRS.iter().all(|&(a, b)| a.max(b) < c) {
            let _ = writeln!(md, "\n{}", expectation(&pairs, eval));
        }
    }

    let shown = summary.mistakes.len().min(GALLERY_LIMIT);
    let _ = writeln!(md, "\n## Misclassified digits\n");
    let _ = writeln!(md, "![misclassified digits](misclassified.png)\n");
    if shown < summary.mistakes.len() {
        let _ = writeln!(
            md,
            "The {shown} most confident of the {} mistakes (by the probability given to the wrong class; the \
             picture is capped at {GALLERY_LIMIT}).",
            summary.mistakes.len()
        );
    } else {
        let _ = writeln!(md, "All {shown} mistakes, most confident first.");
    }
    let _ = writeln!(
        md,
        "Each shows true → predicted (confidence) and the digit's index, the digit, then each head's CLS \
         attention over the {g}×{g} patches (colour from 0 to that digit's largest patch weight).",
        g = shape.grid()
    );
    let (shipped_images, _) = microvit_dataset::shipped_test_set();
    // A command that explains the same model on the same digits.
    let explain_model = match input.model_path {
        Some(path) => format!("{} ", display(path)),
        None if input.model.encoding() == crate::model_file::DEFAULT_ENCODING => String::new(),
        None => format!("--dtype {} ", input.model.encoding()),
    };
    if std::fs::canonicalize(input.images_path).ok() == std::fs::canonicalize(&shipped_images).ok() {
        if let Some(m) = summary.mistakes.first() {
            let _ = writeln!(
                md,
                "To look at one closely: `microvit explain {explain_model}--test-digits {} -o DIR`.",
                m.index
            );
        }
    }
    if shown > 0 {
        let _ = writeln!(md, "\n<details><summary>The {shown} digits shown</summary>\n");
        let _ = writeln!(md, "| index | true | predicted | confidence |");
        let _ = writeln!(md, "|---:|---:|---:|---:|");
        for m in &summary.mistakes[..shown] {
            let _ = writeln!(md, "| {} | {} | {} | {:.1} % |", m.index, m.label, m.predicted, 100.0 * m.confidence);
        }
        let _ = writeln!(md, "\n</details>");
    }

    let _ = writeln!(md, "\n## Attention by class\n");
    let _ = writeln!(md, "![mean CLS attention per class](attention_by_class.png)\n");
    let _ = writeln!(
        md,
        "Each head's CLS attention averaged over all digits of a true class, over the class's mean digit. \
         The share a head keeps on the CLS token itself (not drawn):\n"
    );
    let heads = shape.heads as usize;
    let tokens = shape.tokens() as usize;
    let header: Vec<String> = (0..c).map(|k| k.to_string()).collect();
    let _ = writeln!(md, "| head | {} |", header.join(" | "));
    let _ = writeln!(md, "|---|{}", "---:|".repeat(c));
    for h in 0..heads {
        let cells: Vec<String> =
            (0..c).map(|k| format!("{:.1} %", 100.0 * summary.class_attention[(k * heads + h) * tokens])).collect();
        let _ = writeln!(md, "| {h} | {} |", cells.join(" | "));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use microvit_engine::synthetic::{random_f32_blob, random_image};

    /// A seeded random model and `n` random labelled images, evaluated.
    fn evaluated(shape: Shape, n: usize) -> (Model<'static>, Images, Evaluation) {
        let model = Model::from_bytes(&random_f32_blob(shape, 7)).unwrap();
        let pixels: Vec<u8> = (0..n as u64).flat_map(|i| random_image(&shape, i)).collect();
        let images = Images { side: shape.image_side as usize, pixels };
        let labels: Vec<u8> = (0..n).map(|i| (i % shape.classes as usize) as u8).collect();
        let eval = crate::eval::evaluate(&model, &images, &labels).unwrap();
        (model, images, eval)
    }

    #[test]
    fn attention_pass_agrees_with_the_evaluation() {
        let (model, images, eval) = evaluated(Shape::SEED, 200);
        let summary = attention_pass(&model, &images, &eval).unwrap();
        assert_eq!(summary.mistakes.len(), eval.len() - eval.correct());
        assert_eq!(summary.counts, vec![20; 10]);
        assert!(summary.mistakes.windows(2).all(|w| w[0].confidence >= w[1].confidence));
        for m in &summary.mistakes {
            assert_ne!(m.label, m.predicted);
            assert_eq!(eval.predictions[m.index], m.predicted);
        }
        // Mean attention rows are still distributions.
        for row in summary.class_attention.chunks(17) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn pictures_have_their_documented_sizes_and_no_missing_glyphs() {
        for (shape, n) in
            [(Shape::SEED, 300), (Shape { image_side: 12, patch_side: 4, dim: 12, heads: 3, classes: 5 }, 40)]
        {
            let (model, images, eval) = evaluated(shape, n);
            let summary = attention_pass(&model, &images, &eval).unwrap();
            let shown = summary.mistakes.len().min(GALLERY_LIMIT);
            let pictures = [
                (confusion_picture(&eval), confusion_size(eval.classes)),
                (gallery_picture(shape, &images, &eval, &summary), gallery_size(shape, shown)),
                (class_attention_picture(shape, &summary), class_attention_size(shape)),
            ];
            for (k, (canvas, (w, h))) in pictures.iter().enumerate() {
                assert_eq!((canvas.width, canvas.height), (*w, *h), "{shape}: picture {k}");
                assert_eq!(canvas.missing_glyphs_drawn(), 0, "{shape}: picture {k}");
            }
        }
        assert_eq!(confusion_size(10), (732, 766));
        assert_eq!(gallery_size(Shape::SEED, 64), (1144, 2084));
        assert_eq!(class_attention_size(Shape::SEED), (1408, 360));
    }

    #[test]
    fn a_gallery_without_mistakes_says_so() {
        let (model, images, mut eval) = evaluated(Shape::SEED, 20);
        eval.labels = eval.predictions.iter().map(|&p| p as u8).collect();
        let summary = attention_pass(&model, &images, &eval).unwrap();
        assert!(summary.mistakes.is_empty());
        let canvas = gallery_picture(Shape::SEED, &images, &eval, &summary);
        assert_eq!((canvas.width, canvas.height), gallery_size(Shape::SEED, 0));
    }

    #[test]
    fn attention_pass_rejects_predictions_that_disagree() {
        let (model, images, mut eval) = evaluated(Shape::SEED, 5);
        eval.predictions[3] = (eval.predictions[3] + 1) % 10;
        let err = attention_pass(&model, &images, &eval).unwrap_err();
        assert!(err.starts_with("image 3: "), "{err}");
    }

    /// An evaluation with a given confusion matrix (no logits or images needed for the markdown parts).
    fn with_confusion(classes: usize, cells: &[(usize, usize, usize)]) -> Evaluation {
        let mut confusion = vec![0; classes * classes];
        let (mut labels, mut predictions) = (Vec::new(), Vec::new());
        for &(t, p, n) in cells {
            confusion[t * classes + p] += n;
            labels.extend(vec![t as u8; n]);
            predictions.extend(vec![p; n]);
        }
        let elapsed = std::time::Duration::ZERO;
        Evaluation { classes, logits: Vec::new(), predictions, labels, confusion, elapsed }
    }

    #[test]
    fn pairs_add_both_directions_and_the_expectation_is_judged() {
        let mut cells: Vec<_> = (0..10).map(|c| (c, c, 100)).collect();
        cells.extend([(4, 9, 7), (9, 4, 2), (3, 5, 3), (5, 3, 5), (7, 1, 5), (3, 8, 1), (0, 6, 1)]);
        let eval = with_confusion(10, &cells);
        let pairs = pair_confusions(&eval);
        assert_eq!(pairs[..3], [(4, 9, 7, 2), (3, 5, 3, 5), (1, 7, 0, 5)]);
        let text = expectation(&pairs, &eval);
        assert!(text.contains("4 ↔ 9 9 times (7 + 2), rank 1 of 5"), "{text}");
        assert!(text.contains("3 ↔ 8 once (1 + 0), rank 5 of 5"), "{text}");
        assert!(text.contains("So both are among the 5 most confused pairs"), "{text}");

        let mut cells: Vec<_> = (0..10).map(|c| (c, c, 100)).collect();
        cells.extend([(4, 9, 1), (3, 5, 9), (1, 2, 8), (2, 6, 7), (0, 5, 6), (7, 1, 5), (6, 8, 4)]);
        let eval = with_confusion(10, &cells);
        let text = expectation(&pair_confusions(&eval), &eval);
        assert!(text.contains("3 ↔ 8 never"), "{text}");
        assert!(text.contains("So neither is among the 5 most confused pairs"), "{text}");
        assert!(text.contains("the top 5 also hold 3 ↔ 5 (9), 1 ↔ 2 (8)"), "{text}");
    }

    #[test]
    fn markdown_has_accuracy_table_pairs_and_links() {
        let (model, images, eval) = evaluated(Shape::SEED, 100);
        let summary = attention_pass(&model, &images, &eval).unwrap();
        let input = Input {
            model: &model,
            model_path: Some(Path::new("m.mvit")),
            images_path: Path::new("i.idx3"),
            images: &images,
        };
        let md = markdown(&input, &eval, &summary);
        let accuracy = format!("accuracy: **{:.2} % ({} / 100)**", eval.accuracy(), eval.correct());
        assert!(md.contains(&accuracy), "{md}");
        for link in ["(confusion.png)", "(misclassified.png)", "(attention_by_class.png)"] {
            assert!(md.contains(link), "{link}");
        }
        assert!(md.contains("| class | digits | correct | accuracy | most often taken for |"));
        assert!(md.contains("most confused (true as predicted): "));
        assert!(md.contains("The design expected 4 ↔ 9 and 3 ↔ 8"));
        // Not the shipped test set: no `--test-digits` hint, whose indices would point elsewhere.
        assert!(!md.contains("--test-digits"));
    }
}
