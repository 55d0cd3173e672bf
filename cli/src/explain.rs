//! `microvit explain`: a picture per digit of what the model predicts and where its CLS token looks.
//!
//! Each picture shows the model's input (the digit exactly as the model sees it, after the
//! [`image_input`](crate::image_input) rules that `classify` uses), then one panel per attention head
//! with the CLS token's attention over the patches as a heat map on the patch grid, the predicted class
//! and the top-3 probabilities. The attention a head pays to the CLS token itself has no patch to sit
//! on; it is printed under the panel instead.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use microvit_engine::{argmax, softmax, Model, Shape, Workspace};

use crate::draw::{self, Canvas, Rgb};
use crate::image_input;
use crate::model_file;
use microvit_engine::preprocess::{Digit, PixelFormat, Polarity};

/// What one inference says about one image.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    pub heads: usize,
    /// Tokens per head row: the CLS token, then the patches row-major.
    pub tokens: usize,
    pub probs: Vec<f32>,
    pub predicted: usize,
    /// `heads × tokens`: each head's CLS attention row (sums to 1).
    pub attention: Vec<f32>,
}

/// Runs `image` through `model` and keeps the probabilities and CLS attention.
pub fn explain(model: &Model<'_>, ws: &mut Workspace, image: &[u8]) -> Result<Explanation, String> {
    let shape = model.shape();
    let (heads, tokens) = (shape.heads as usize, shape.tokens() as usize);
    let mut attention = vec![0.0; heads * tokens];
    let logits = model.infer_with_attention(image, ws, &mut attention).map_err(|e| e.to_string())?;
    let mut probs = vec![0.0; logits.len()];
    softmax(logits, &mut probs);
    Ok(Explanation { heads, tokens, predicted: argmax(logits), probs, attention })
}

impl Explanation {
    /// Head `h`'s whole CLS attention row, CLS token first.
    pub fn row(&self, h: usize) -> &[f32] {
        &self.attention[h * self.tokens..][..self.tokens]
    }

    /// Head `h`'s attention on the patches (the row without the CLS token), row-major over the grid.
    pub fn patches(&self, h: usize) -> &[f32] {
        &self.row(h)[1..]
    }

    /// The largest attention any head pays to one patch: the top of the colour scale.
    pub fn patch_max(&self) -> f32 {
        (0..self.heads).flat_map(|h| self.patches(h).iter().copied()).fold(0.0, f32::max)
    }

    /// The `k` most probable classes, most probable first (ties: lower class first).
    pub fn top(&self, k: usize) -> Vec<(usize, f32)> {
        let mut ranked: Vec<(usize, f32)> = self.probs.iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(k);
        ranked
    }

    /// The patch head `h` attends to most: (grid row, grid column, weight).
    pub fn hottest_patch(&self, h: usize, grid: usize) -> (usize, usize, f32) {
        let patches = self.patches(h);
        let i = argmax(patches);
        (i / grid, i % grid, patches[i])
    }
}

/// A probability or attention weight as a percentage for labels: `99.8%`, `0.1%`, `<0.1%`.
pub fn percent(p: f32) -> String {
    if p > 0.0 && p < 0.0005 {
        "<0.1%".to_string()
    } else {
        format!("{:.1}%", 100.0 * p)
    }
}

/// The pixel of a heat-map panel: the patch's colour, lightened towards white where the digit's ink is,
/// so the digit stays readable on every colour.
fn overlay(heat: Rgb, ink: u8) -> Rgb {
    draw::mix(heat, draw::WHITE, 0.7 * f32::from(ink) / 255.0)
}

/// How to draw one digit panel.
#[derive(Clone, Copy, Debug)]
pub struct Panel<'a> {
    pub shape: Shape,
    /// Screen pixels per image pixel.
    pub scale: usize,
    /// The model input, `side × side`.
    pub pixels: &'a [u8],
    /// Attention per patch (row-major over the grid), or `None` for the plain digit.
    pub patches: Option<&'a [f32]>,
    /// The attention drawn with the top colour.
    pub vmax: f32,
    /// Write each patch's attention (in percent) in its corner, at this text scale.
    pub cell_labels: Option<usize>,
}

impl Panel<'_> {
    pub fn size(&self) -> usize {
        self.shape.image_side as usize * self.scale
    }

    /// Draws the panel with its top-left corner at `x, y`.
    pub fn draw(&self, canvas: &mut Canvas, x: usize, y: usize) {
        let side = self.shape.image_side as usize;
        let (patch, grid) = (self.shape.patch_side as usize, self.shape.grid());
        let vmax = if self.vmax > 0.0 { self.vmax } else { 1.0 };
        let heat = |cell: usize| self.patches.map(|a| draw::viridis(a[cell] / vmax));
        canvas.image(x, y, side, self.scale, self.pixels, |i, v| {
            let cell = (i / side / patch) * grid + (i % side) / patch;
            match heat(cell) {
                Some(colour) => overlay(colour, v),
                None => [v, v, v],
            }
        });
        // The patch grid: thin lines between patches, darkening what is under them.
        let cell_px = patch * self.scale;
        let size = self.size();
        for k in 1..grid {
            for t in 0..size {
                for (px, py) in [(x + k * cell_px, y + t), (x + t, y + k * cell_px)] {
                    let under = canvas.get(px, py);
                    let line = if self.patches.is_some() { draw::mix(under, draw::BLACK, 0.45) } else { [70, 70, 78] };
                    canvas.set(px, py, line);
                }
            }
        }
        canvas.stroke_rect(x, y, size, size, draw::MUTED);
        if let (Some(patches), Some(text_scale)) = (self.patches, self.cell_labels) {
            for (cell, &a) in patches.iter().enumerate().take(grid * grid) {
                let label = format!("{:.0}", 100.0 * a);
                let (cx, cy) = (
                    x + (cell % grid) * cell_px + 2 * text_scale + 1,
                    y + (cell / grid) * cell_px + 2 * text_scale + 1,
                );
                let colour = heat(cell).unwrap_or(draw::BLACK);
                outlined_text(canvas, cx, cy, &label, text_scale, draw::text_colour_on(colour));
            }
        }
    }
}

/// Text with a one-pixel halo of the opposite colour, readable on any background.
pub fn outlined_text(canvas: &mut Canvas, x: usize, y: usize, text: &str, scale: usize, colour: Rgb) {
    let halo = if colour == draw::WHITE { draw::BLACK } else { draw::WHITE };
    for (dx, dy) in [(0, 1), (2, 1), (1, 0), (1, 2), (0, 0), (2, 2), (0, 2), (2, 0)] {
        canvas.text(x + dx, y + dy, text, scale, halo);
    }
    canvas.text(x + 1, y + 1, text, scale, colour);
}

/// A vertical colour bar `w × h` at `x, y` (top = `vmax`), labelled to its right in percent.
pub fn colour_bar(canvas: &mut Canvas, x: usize, y: usize, w: usize, h: usize, vmax: f32, caption: &str) {
    for row in 0..h {
        let t = 1.0 - row as f32 / (h - 1).max(1) as f32;
        canvas.fill_rect(x, y + row, w, 1, draw::viridis(t));
    }
    canvas.stroke_rect(x, y, w, h, draw::MUTED);
    let lx = x + w + 6;
    canvas.text(lx, y, &format!("{:.0}%", 100.0 * vmax), 2, draw::INK);
    canvas.text(lx, y + h / 2 - 8, &format!("{:.0}%", 50.0 * vmax), 2, draw::MUTED);
    canvas.text(lx, y + h - 14, "0%", 2, draw::INK);
    canvas.text_centred(x + w / 2, y + h + 8, caption, 1, draw::MUTED);
}

/// Panel scale for a model: about 224 screen pixels per panel (8× for 28×28 MNIST).
pub fn panel_scale(shape: Shape, target: usize) -> usize {
    (target / shape.image_side as usize).max(1)
}

/// One image to explain.
#[derive(Clone, Debug)]
pub struct Subject {
    /// The title drawn at the top (a file name, or which test digit).
    pub title: String,
    /// The model input, `side × side`.
    pub pixels: Vec<u8>,
    /// The true class, when known (test digits).
    pub label: Option<u8>,
    /// The user's image the input was made from, for image files.
    pub photo: Option<Photo>,
}

/// A user's image shrunk to fit a panel, with the box preprocessing found
/// the digit in.
#[derive(Clone, Debug)]
pub struct Photo {
    /// RGB, `width × height`, transparency shown over white.
    pub rgb: Vec<u8>,
    pub width: usize,
    pub height: usize,
    /// The image's own size.
    pub full_width: usize,
    pub full_height: usize,
    /// The digit's box in the shrunk pixels: x, y, width, height.
    pub digit: (usize, usize, usize, usize),
}

impl Photo {
    /// `picture` shrunk (never enlarged) to fit `fit × fit`, and `digit`
    /// mapped onto it.
    pub fn new(picture: &image_input::Picture, digit: &Digit, fit: usize) -> Photo {
        let (w, h) = (picture.width, picture.height);
        let over_white = |c: u8, a: u8| ((c as u32 * a as u32 + 255 * (255 - a as u32) + 127) / 255) as u8;
        let rgb: Vec<u8> = match picture.format {
            PixelFormat::Gray8 => picture.pixels.iter().flat_map(|&v| [v, v, v]).collect(),
            PixelFormat::Rgb8 => picture.pixels.clone(),
            PixelFormat::Rgba8 => {
                picture.pixels.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]].map(|c| over_white(c, p[3]))).collect()
            }
            PixelFormat::Bgra8 => {
                picture.pixels.chunks_exact(4).flat_map(|p| [p[2], p[1], p[0]].map(|c| over_white(c, p[3]))).collect()
            }
        };
        let image = image::RgbImage::from_raw(w as u32, h as u32, rgb).expect("width × height RGB pixels");
        let (tw, th) = match w.max(h) {
            long if long <= fit => (w, h),
            _ if w >= h => (fit, (h * fit / w).max(1)),
            _ => ((w * fit / h).max(1), fit),
        };
        let small = image::imageops::thumbnail(&image, tw as u32, th as u32);
        let shrink = |v: usize, from: usize, to: usize| v * to / from;
        let box_side = |v: usize, from: usize, to: usize| (v * to).div_ceil(from).max(1);
        let digit = (
            shrink(digit.x, w, tw),
            shrink(digit.y, h, th),
            box_side(digit.width, w, tw),
            box_side(digit.height, h, th),
        );
        Photo { rgb: small.into_raw(), width: tw, height: th, full_width: w, full_height: h, digit }
    }
}

/// Shortens `text` to at most `max` characters, ending in `...` when cut.
fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep: String = text.chars().rev().take(max.saturating_sub(3)).collect();
    format!("...{}", keep.chars().rev().collect::<String>())
}

/// Where things are in an explanation picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub width: usize,
    pub height: usize,
    /// Screen pixels per image pixel in the panels.
    pub scale: usize,
    /// Side of a (square) panel.
    pub panel: usize,
    /// Top of the panels.
    pub panels_y: usize,
    /// Panels before the digit's (1 when the user's image comes first).
    pub first: usize,
}

const MARGIN: usize = 16;
const GAP: usize = 16;

impl Layout {
    /// The layout for a model shape (832 × 392 for the seed model; one
    /// panel wider, 1072, with the user's image first).
    pub fn new(shape: Shape, with_photo: bool) -> Layout {
        let scale = panel_scale(shape, 224);
        let panel = shape.image_side as usize * scale;
        let panels = shape.heads as usize + 1 + with_photo as usize;
        let width = (MARGIN + panels * (panel + GAP) + 16 + 64 + MARGIN).max(720);
        let panels_y = MARGIN + 24 + 26;
        let first = with_photo as usize;
        Layout { width, height: panels_y + panel + 26 + 34 + 26 + MARGIN, scale, panel, panels_y, first }
    }

    /// Left edge of panel `k`: 0 is the plain digit, `1 + h` is head `h`
    /// (after the user's image, when there is one).
    pub fn panel_x(&self, k: usize) -> usize {
        MARGIN + (self.first + k) * (self.panel + GAP)
    }

    /// Left edge of the user's image.
    pub fn photo_x(&self) -> usize {
        MARGIN
    }
}

/// Draws the explanation picture of one image.
pub fn render(shape: Shape, subject: &Subject, e: &Explanation) -> Canvas {
    let layout = Layout::new(shape, subject.photo.is_some());
    let Layout { width, height, scale, panel: size, panels_y, .. } = layout;
    let vmax = e.patch_max();
    let panel = |patches, cell_labels| Panel { shape, scale, pixels: &subject.pixels, patches, vmax, cell_labels };
    let cell_label_scale = if shape.patch_side as usize * scale >= 40 { Some(2) } else { None };
    let mut canvas = Canvas::new(width, height, draw::PAPER);

    let title = draw::drawable(&fit(&subject.title, (width - 2 * MARGIN) / (2 * draw::ADVANCE)));
    canvas.text(MARGIN, MARGIN, &title, 2, draw::INK);

    if let Some(photo) = &subject.photo {
        let x = layout.photo_x();
        canvas.text_centred(x + size / 2, panels_y - 22, "your image", 2, draw::INK);
        // Centred in a square panel, with the box the digit was found in.
        let (px, py) = (x + (size - photo.width) / 2, panels_y + (size - photo.height) / 2);
        canvas.fill_rect(x, panels_y, size, size, [236, 236, 240]);
        for (i, rgb) in photo.rgb.chunks_exact(3).enumerate() {
            canvas.set(px + i % photo.width, py + i / photo.width, [rgb[0], rgb[1], rgb[2]]);
        }
        let (dx, dy, dw, dh) = photo.digit;
        canvas.stroke_rect(px + dx, py + dy, dw, dh, draw::RED);
        canvas.stroke_rect(x, panels_y, size, size, draw::MUTED);
        let label = format!("{}x{}, digit in red", photo.full_width, photo.full_height);
        canvas.text_centred(x + size / 2, panels_y + size + 8, &label, 2, draw::MUTED);
    }
    let x = layout.panel_x(0);
    canvas.text_centred(x + size / 2, panels_y - 22, "input", 2, draw::INK);
    panel(None, None).draw(&mut canvas, x, panels_y);
    let grid = format!("{}x{} patches", shape.grid(), shape.grid());
    canvas.text_centred(x + size / 2, panels_y + size + 8, &grid, 2, draw::MUTED);
    for h in 0..e.heads {
        let x = layout.panel_x(h + 1);
        canvas.text_centred(x + size / 2, panels_y - 22, &format!("head {h}"), 2, draw::INK);
        panel(Some(e.patches(h)), cell_label_scale).draw(&mut canvas, x, panels_y);
        let itself = format!("CLS itself {}", percent(e.row(h)[0]));
        canvas.text_centred(x + size / 2, panels_y + size + 8, &itself, 2, draw::MUTED);
    }
    colour_bar(&mut canvas, layout.panel_x(e.heads + 1), panels_y, 16, size, vmax, "attention");

    let verdict_y = panels_y + size + 26 + 8;
    let (pred, p) = (e.predicted, e.probs[e.predicted]);
    let wrong = subject.label.is_some_and(|l| l as usize != pred);
    let verdict = match subject.label {
        Some(l) if wrong => format!("predicted {pred} ({}), true {l}: wrong", percent(p)),
        Some(l) => format!("predicted {pred} ({}), true {l}", percent(p)),
        None => format!("predicted {pred} ({})", percent(p)),
    };
    canvas.text(MARGIN, verdict_y, &verdict, 3, if wrong { draw::RED } else { draw::INK });
    let top: Vec<String> = e.top(3).iter().map(|(c, p)| format!("{c}: {}", percent(*p))).collect();
    canvas.text(MARGIN, verdict_y + 34, &format!("top 3   {}", top.join("   ")), 2, draw::INK);
    canvas
}

/// What `microvit explain` was asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    /// The model file; `None` for the built-in int8 seed model.
    pub model: Option<PathBuf>,
    /// The built-in model's encoding, or a safetensors model's conversion ([`model_file::load`]).
    pub encoding: Option<microvit_engine::Encoding>,
    pub images: Vec<PathBuf>,
    /// Indices into the test set.
    pub test_digits: Vec<usize>,
    /// The test set's idx images and labels [default: the repository's MNIST test set].
    pub test_set: (Option<PathBuf>, Option<PathBuf>),
    pub out_dir: PathBuf,
    pub polarity: Polarity,
    /// Also write every CLS attention row as float32 `[N, heads, tokens]` .npy (files first, then test digits).
    pub attention_out: Option<PathBuf>,
}

/// A file name in `dir` that is not taken yet by this run: `base.explain.png`, `base-2.explain.png`, …
fn output_path(dir: &Path, base: &str, taken: &mut HashSet<String>) -> PathBuf {
    let mut name = format!("{base}.explain.png");
    let mut n = 2;
    while !taken.insert(name.clone()) {
        name = format!("{base}-{n}.explain.png");
        n += 1;
    }
    dir.join(name)
}

/// Runs `microvit explain`; `say` prints one line to stdout.
pub fn run(opts: &Options, say: &mut dyn FnMut(String) -> Result<(), String>) -> Result<(), String> {
    if opts.images.is_empty() && opts.test_digits.is_empty() {
        return Err("nothing to explain: give image files or --test-digits".into());
    }
    let model = model_file::load(opts.model.as_deref(), opts.encoding)?.model;
    let shape = model.shape();
    let side = shape.image_side as usize;
    let mut subjects: Vec<(Subject, String)> = Vec::new();
    let mut failures = 0;
    for path in &opts.images {
        let layout = Layout::new(shape, true);
        let prepared = image_input::load_image(path).map_err(|e| e.to_string()).and_then(|picture| {
            let mut ws = model.workspace();
            match model.preprocess(&picture.source(), opts.polarity, &mut ws) {
                Ok((digit, input)) => Ok((input.to_vec(), Photo::new(&picture, &digit, layout.panel))),
                Err(e) => Err(format!("{}: {e}", path.display())),
            }
        });
        match prepared {
            Ok((pixels, photo)) => {
                let base = path.file_stem().map_or("image".into(), |s| s.to_string_lossy().into_owned());
                subjects.push((
                    Subject { title: path.display().to_string(), pixels, label: None, photo: Some(photo) },
                    base,
                ));
            }
            Err(e) => {
                eprintln!("microvit: error: {e}");
                failures += 1;
            }
        }
    }
    if !opts.test_digits.is_empty() {
        let (images_path, labels_path) = model_file::test_set(opts.test_set.0.as_deref(), opts.test_set.1.as_deref())?;
        let (images, labels) =
            microvit_dataset::idx::read_labelled(&images_path, &labels_path).map_err(|e| e.to_string())?;
        if images.side != side {
            return Err(format!("the test digits are {s}x{s}, the model takes {side}x{side}", s = images.side));
        }
        for &i in &opts.test_digits {
            if i >= images.len() {
                return Err(format!(
                    "test digit {i} does not exist: the test set has {} digits (0..={})",
                    images.len(),
                    images.len() - 1
                ));
            }
            let title = format!("MNIST test digit {i}");
            let subject = Subject { title, pixels: images.get(i).to_vec(), label: Some(labels[i]), photo: None };
            subjects.push((subject, format!("test-digit-{i}")));
        }
    }

    std::fs::create_dir_all(&opts.out_dir).map_err(|e| format!("cannot create {}: {e}", opts.out_dir.display()))?;
    let mut ws = model.workspace();
    let mut taken = HashSet::new();
    let mut all_attention = Vec::new();
    for (subject, base) in &subjects {
        let e = explain(&model, &mut ws, &subject.pixels)?;
        let out = output_path(&opts.out_dir, base, &mut taken);
        render(shape, subject, &e).save_png(&out)?;
        all_attention.extend_from_slice(&e.attention);
        let looks: Vec<String> = (0..e.heads)
            .map(|h| {
                let (r, c, w) = e.hottest_patch(h, shape.grid());
                format!("head {h} ({r}, {c}) {}", percent(w))
            })
            .collect();
        let truth = subject.label.map_or(String::new(), |l| format!(", true {l}"));
        say(format!(
            "{}: {} ({}){truth}; most attended patch (row, column): {} -> {}",
            subject.title,
            e.predicted,
            percent(e.probs[e.predicted]),
            looks.join(", "),
            out.display()
        ))?;
    }
    if let Some(path) = &opts.attention_out {
        let dims = [subjects.len(), shape.heads as usize, shape.tokens() as usize];
        let npy = microvit_dataset::npy::encode_f32(&dims, &all_attention);
        std::fs::write(path, npy).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        say(format!("attention {} (float32 [{}, {}, {}])", path.display(), dims[0], dims[1], dims[2]))?;
    }
    match failures {
        0 => Ok(()),
        n => Err(format!("{n} of {} images could not be read", opts.images.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explanation() -> Explanation {
        let mut attention = vec![0.0; 2 * 17];
        attention[0] = 0.2;
        attention[1 + 5] = 0.8;
        attention[17] = 0.04;
        for a in &mut attention[18..] {
            *a = 0.06;
        }
        let probs = vec![0.05, 0.6, 0.0, 0.3, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0];
        Explanation { heads: 2, tokens: 17, probs, predicted: 1, attention }
    }

    #[test]
    fn explanation_accessors() {
        let e = explanation();
        assert_eq!(e.patches(0).len(), 16);
        assert_eq!(e.row(1)[0], 0.04);
        assert_eq!(e.patch_max(), 0.8);
        assert_eq!(e.top(3), vec![(1, 0.6), (3, 0.3), (0, 0.05)]);
        assert_eq!(e.hottest_patch(0, 4), (1, 1, 0.8));
    }

    #[test]
    fn percent_labels() {
        assert_eq!(percent(0.998), "99.8%");
        assert_eq!(percent(0.0), "0.0%");
        assert_eq!(percent(0.0001), "<0.1%");
        assert_eq!(percent(1.0), "100.0%");
    }

    #[test]
    fn render_has_the_documented_size_and_every_label_glyph() {
        let e = explanation();
        let subject = Subject { title: "digit.png".into(), pixels: vec![128; 784], label: Some(3), photo: None };
        let canvas = render(Shape::SEED, &subject, &e);
        let layout = Layout::new(Shape::SEED, false);
        assert_eq!((canvas.width, canvas.height), (layout.width, layout.height));
        assert_eq!((layout.width, layout.height, layout.scale, layout.panel), (832, 392, 8, 224));
        assert_eq!(Layout::new(Shape::SEED, true).width, 832 + 224 + 16);
        // The heat map follows the grid: the hottest patch (row 1, column 1) of head 0 has the top colour
        // (the digit is a uniform 128 here, lightening every patch alike), sampled away from the labels.
        let (x0, y0) = (layout.panel_x(1), layout.panels_y);
        let at = |col: usize, row: usize| canvas.get(x0 + col * 56 + 40, y0 + row * 56 + 40);
        let ink = 0.7 * 128.0 / 255.0;
        assert_eq!(at(1, 1), draw::mix(draw::viridis(1.0), draw::WHITE, ink));
        assert_eq!(at(2, 1), draw::mix(draw::viridis(0.0), draw::WHITE, ink));
        assert_eq!(canvas.missing_glyphs_drawn(), 0);
        // A file name the font cannot draw is shown with `?` rather than boxes.
        let odd = Subject { title: "Zahl_fünf.png".into(), ..subject };
        assert_eq!(render(Shape::SEED, &odd, &e).missing_glyphs_drawn(), 0);
    }

    #[test]
    fn photos_are_shrunk_to_the_panel_with_the_digit_box() {
        let picture = image_input::Picture {
            width: 448,
            height: 224,
            format: PixelFormat::Rgba8,
            pixels: [0u8, 0, 0, 0].repeat(448 * 224), // transparent black: shown as white
        };
        let digit = Digit { polarity: Polarity::DarkOnLight, x: 100, y: 50, width: 41, height: 100, contrast: 200 };
        let photo = Photo::new(&picture, &digit, 224);
        assert_eq!((photo.width, photo.height, photo.full_width, photo.full_height), (224, 112, 448, 224));
        assert_eq!(photo.digit, (50, 25, 21, 50));
        assert!(photo.rgb.iter().all(|&v| v == 255));
        // Small images are not enlarged.
        let small = image_input::Picture { width: 30, height: 20, format: PixelFormat::Gray8, pixels: vec![9; 600] };
        let photo = Photo::new(&small, &Digit { x: 0, y: 0, width: 30, height: 20, ..digit }, 224);
        assert_eq!((photo.width, photo.height, photo.digit), (30, 20, (0, 0, 30, 20)));
        // Drawn first, framed in red.
        let e = explanation();
        let subject = Subject { title: "x.png".into(), pixels: vec![0; 784], label: None, photo: Some(photo) };
        let canvas = render(Shape::SEED, &subject, &e);
        let layout = Layout::new(Shape::SEED, true);
        let (px, py) = (layout.photo_x() + (224 - 30) / 2, layout.panels_y + (224 - 20) / 2);
        assert_eq!(canvas.get(px, py), draw::RED);
        assert_eq!(canvas.get(px + 5, py + 5), [9, 9, 9]);
    }

    #[test]
    fn fit_keeps_the_end_of_long_names() {
        assert_eq!(fit("short.png", 20), "short.png");
        assert_eq!(fit("/a/very/long/path/digit.png", 13), ".../digit.png");
        assert_eq!(fit("/a/very/long/path/digit.png", 12), "...digit.png");
    }

    #[test]
    fn output_names_do_not_collide() {
        let mut taken = HashSet::new();
        let dir = Path::new("out");
        assert_eq!(output_path(dir, "seven", &mut taken), dir.join("seven.explain.png"));
        assert_eq!(output_path(dir, "seven", &mut taken), dir.join("seven-2.explain.png"));
        assert_eq!(output_path(dir, "seven", &mut taken), dir.join("seven-3.explain.png"));
    }
}
