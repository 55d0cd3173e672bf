//! A tiny RGB raster for the pictures `microvit explain` and `microvit eval --report` write: filled
//! rectangles, nearest-neighbour upscaled grayscale images, text in an embedded 5×8 bitmap font, a
//! perceptual colormap, and PNG encoding with the `png` crate.
//!
//! Nothing here is clever on purpose: every picture is drawn from axis-aligned rectangles and glyph
//! pixels, so what you see is exactly the numbers (no smoothing between patches or pixels).

use std::path::Path;

/// An sRGB colour.
pub type Rgb = [u8; 3];

pub const BLACK: Rgb = [0, 0, 0];
pub const WHITE: Rgb = [255, 255, 255];
/// The page colour of every picture.
pub const PAPER: Rgb = [250, 250, 248];
/// Body text.
pub const INK: Rgb = [24, 24, 28];
/// Secondary text and rules.
pub const MUTED: Rgb = [110, 110, 118];
/// Mistakes.
pub const RED: Rgb = [200, 30, 30];

/// Glyph cell: 5 columns, 8 rows (rows 0..=6 hold capitals and digits, row 7 the descenders).
pub const GLYPH_WIDTH: usize = 5;
pub const GLYPH_HEIGHT: usize = 8;
/// Horizontal distance from one glyph to the next at scale 1 (one column of spacing).
pub const ADVANCE: usize = GLYPH_WIDTH + 1;

/// The embedded font: each glyph is 8 rows of 5 bits, bit 4 the leftmost column. Drawn for this
/// project; covers printable ASCII and `→ ↔ ×`.
#[rustfmt::skip]
const FONT: &[(char, [u8; GLYPH_HEIGHT])] = &[
    ('0', [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110, 0b00000]),
    ('1', [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110, 0b00000]),
    ('2', [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111, 0b00000]),
    ('3', [0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110, 0b00000]),
    ('4', [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010, 0b00000]),
    ('5', [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110, 0b00000]),
    ('6', [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110, 0b00000]),
    ('7', [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00000]),
    ('8', [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110, 0b00000]),
    ('9', [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100, 0b00000]),
    ('A', [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001, 0b00000]),
    ('B', [0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110, 0b00000]),
    ('C', [0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110, 0b00000]),
    ('D', [0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100, 0b00000]),
    ('E', [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111, 0b00000]),
    ('F', [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000, 0b00000]),
    ('G', [0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111, 0b00000]),
    ('H', [0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001, 0b00000]),
    ('I', [0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110, 0b00000]),
    ('J', [0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100, 0b00000]),
    ('K', [0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001, 0b00000]),
    ('L', [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111, 0b00000]),
    ('M', [0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001, 0b00000]),
    ('N', [0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001, 0b00000]),
    ('O', [0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110, 0b00000]),
    ('P', [0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000, 0b00000]),
    ('Q', [0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101, 0b00000]),
    ('R', [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001, 0b00000]),
    ('S', [0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110, 0b00000]),
    ('T', [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00000]),
    ('U', [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110, 0b00000]),
    ('V', [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0b00000]),
    ('W', [0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010, 0b00000]),
    ('X', [0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001, 0b00000]),
    ('Y', [0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100, 0b00000]),
    ('Z', [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111, 0b00000]),
    ('a', [0b00000, 0b00000, 0b01110, 0b00001, 0b01111, 0b10001, 0b01111, 0b00000]),
    ('b', [0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b11110, 0b00000]),
    ('c', [0b00000, 0b00000, 0b01110, 0b10000, 0b10000, 0b10001, 0b01110, 0b00000]),
    ('d', [0b00001, 0b00001, 0b01101, 0b10011, 0b10001, 0b10001, 0b01111, 0b00000]),
    ('e', [0b00000, 0b00000, 0b01110, 0b10001, 0b11111, 0b10000, 0b01110, 0b00000]),
    ('f', [0b00110, 0b01001, 0b01000, 0b11100, 0b01000, 0b01000, 0b01000, 0b00000]),
    ('g', [0b00000, 0b00000, 0b01111, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110]),
    ('h', [0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001, 0b00000]),
    ('i', [0b00100, 0b00000, 0b01100, 0b00100, 0b00100, 0b00100, 0b01110, 0b00000]),
    ('j', [0b00010, 0b00000, 0b00110, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100]),
    ('k', [0b10000, 0b10000, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b00000]),
    ('l', [0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110, 0b00000]),
    ('m', [0b00000, 0b00000, 0b11010, 0b10101, 0b10101, 0b10101, 0b10101, 0b00000]),
    ('n', [0b00000, 0b00000, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001, 0b00000]),
    ('o', [0b00000, 0b00000, 0b01110, 0b10001, 0b10001, 0b10001, 0b01110, 0b00000]),
    ('p', [0b00000, 0b00000, 0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000]),
    ('q', [0b00000, 0b00000, 0b01111, 0b10001, 0b10001, 0b01111, 0b00001, 0b00001]),
    ('r', [0b00000, 0b00000, 0b10110, 0b11001, 0b10000, 0b10000, 0b10000, 0b00000]),
    ('s', [0b00000, 0b00000, 0b01111, 0b10000, 0b01110, 0b00001, 0b11110, 0b00000]),
    ('t', [0b01000, 0b01000, 0b11100, 0b01000, 0b01000, 0b01001, 0b00110, 0b00000]),
    ('u', [0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b10011, 0b01101, 0b00000]),
    ('v', [0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0b00000]),
    ('w', [0b00000, 0b00000, 0b10001, 0b10001, 0b10101, 0b10101, 0b01010, 0b00000]),
    ('x', [0b00000, 0b00000, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b00000]),
    ('y', [0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110]),
    ('z', [0b00000, 0b00000, 0b11111, 0b00010, 0b00100, 0b01000, 0b11111, 0b00000]),
    (' ', [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000]),
    ('.', [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b01100, 0b00000]),
    (',', [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b00100, 0b01000]),
    (':', [0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0b00000, 0b00000]),
    ('%', [0b11000, 0b11001, 0b00010, 0b00100, 0b01000, 0b10011, 0b00011, 0b00000]),
    ('(', [0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010, 0b00000]),
    (')', [0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000, 0b00000]),
    ('-', [0b00000, 0b00000, 0b00000, 0b11111, 0b00000, 0b00000, 0b00000, 0b00000]),
    ('[', [0b01110, 0b01000, 0b01000, 0b01000, 0b01000, 0b01000, 0b01110, 0b00000]),
    (']', [0b01110, 0b00010, 0b00010, 0b00010, 0b00010, 0b00010, 0b01110, 0b00000]),
    ('+', [0b00000, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0b00000, 0b00000]),
    ('=', [0b00000, 0b00000, 0b11111, 0b00000, 0b11111, 0b00000, 0b00000, 0b00000]),
    ('>', [0b01000, 0b00100, 0b00010, 0b00001, 0b00010, 0b00100, 0b01000, 0b00000]),
    ('<', [0b00010, 0b00100, 0b01000, 0b10000, 0b01000, 0b00100, 0b00010, 0b00000]),
    ('/', [0b00000, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b00000, 0b00000]),
    ('#', [0b01010, 0b01010, 0b11111, 0b01010, 0b11111, 0b01010, 0b01010, 0b00000]),
    ('_', [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b11111]),
    ('!', [0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00000, 0b00100, 0b00000]),
    ('?', [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b00000, 0b00100, 0b00000]),
    ('\'', [0b00100, 0b00100, 0b01000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000]),
    ('|', [0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00000]),
    ('→', [0b00000, 0b00100, 0b00010, 0b11111, 0b00010, 0b00100, 0b00000, 0b00000]),
    ('↔', [0b00000, 0b01010, 0b11111, 0b01010, 0b00000, 0b00000, 0b00000, 0b00000]),
    ('×', [0b00000, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b00000, 0b00000]),
    (';', [0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0b00100, 0b01000]),
    ('*', [0b00000, 0b00100, 0b10101, 0b01110, 0b10101, 0b00100, 0b00000, 0b00000]),
    ('&', [0b01100, 0b10010, 0b10100, 0b01000, 0b10101, 0b10010, 0b01101, 0b00000]),
    ('@', [0b01110, 0b10001, 0b10111, 0b10101, 0b10111, 0b10000, 0b01111, 0b00000]),
    ('~', [0b00000, 0b00000, 0b01000, 0b10101, 0b00010, 0b00000, 0b00000, 0b00000]),
    ('"', [0b01010, 0b01010, 0b01010, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000]),
    ('\\', [0b00000, 0b10000, 0b01000, 0b00100, 0b00010, 0b00001, 0b00000, 0b00000]),
    ('$', [0b00100, 0b01111, 0b10100, 0b01110, 0b00101, 0b11110, 0b00100, 0b00000]),
    ('^', [0b00100, 0b01010, 0b10001, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000]),
    ('`', [0b01000, 0b00100, 0b00010, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000]),
    ('{', [0b00011, 0b00100, 0b00100, 0b01000, 0b00100, 0b00100, 0b00011, 0b00000]),
    ('}', [0b11000, 0b00100, 0b00100, 0b00010, 0b00100, 0b00100, 0b11000, 0b00000]),
];

/// The bitmap of `c`, if the font has it.
pub fn glyph(c: char) -> Option<&'static [u8; GLYPH_HEIGHT]> {
    FONT.iter().find(|(g, _)| *g == c).map(|(_, rows)| rows)
}

/// The characters of `text` the font cannot draw (they are drawn as a hollow box).
pub fn missing_glyphs(text: &str) -> Vec<char> {
    text.chars().filter(|&c| glyph(c).is_none()).collect()
}

/// `text` with every character the font lacks replaced by `?`: for text that comes from the user,
/// such as file names.
pub fn drawable(text: &str) -> String {
    text.chars().map(|c| if glyph(c).is_some() { c } else { '?' }).collect()
}

/// Width in pixels of `text` drawn at `scale` (no trailing spacing column).
pub fn text_width(text: &str, scale: usize) -> usize {
    (text.chars().count() * ADVANCE).saturating_sub(1) * scale
}

/// Anchor colours of matplotlib's viridis at 0, 1/9, …, 1 (R's `viridis(10)`): perceptually uniform,
/// readable in grayscale and by most colour-blind readers. Dark purple is low, yellow is high.
const VIRIDIS: [Rgb; 10] = [
    [0x44, 0x01, 0x54],
    [0x48, 0x28, 0x78],
    [0x3E, 0x4A, 0x89],
    [0x31, 0x68, 0x8E],
    [0x26, 0x82, 0x8E],
    [0x1F, 0x9E, 0x89],
    [0x35, 0xB7, 0x79],
    [0x6D, 0xCD, 0x59],
    [0xB4, 0xDE, 0x2C],
    [0xFD, 0xE7, 0x25],
];

/// Viridis at `t` in 0..=1 (clamped; NaN counts as 0), linearly interpolated between the anchors.
pub fn viridis(t: f32) -> Rgb {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let x = t * (VIRIDIS.len() - 1) as f32;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    mix(VIRIDIS[i], VIRIDIS[i + 1], x - i as f32)
}

/// `a` moved towards `b` by `t` (0 = `a`, 1 = `b`).
pub fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    let t = t.clamp(0.0, 1.0);
    let channel = |i: usize| (f32::from(a[i]) + (f32::from(b[i]) - f32::from(a[i])) * t).round() as u8;
    [channel(0), channel(1), channel(2)]
}

/// Relative luminance (BT.709 weights on the sRGB values; good enough to pick a text colour).
pub fn luminance(c: Rgb) -> f32 {
    (0.2126 * f32::from(c[0]) + 0.7152 * f32::from(c[1]) + 0.0722 * f32::from(c[2])) / 255.0
}

/// Black or white, whichever reads better on `background`.
pub fn text_colour_on(background: Rgb) -> Rgb {
    if luminance(background) > 0.5 {
        BLACK
    } else {
        WHITE
    }
}

/// A picture: `width × height` RGB pixels, row-major. Drawing outside it is clipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pixels: Vec<Rgb>,
    /// Characters drawn as a box because the font lacks them (tests keep this at zero).
    missing: usize,
}

impl Canvas {
    pub fn new(width: usize, height: usize, background: Rgb) -> Canvas {
        Canvas { width, height, pixels: vec![background; width * height], missing: 0 }
    }

    /// How many characters were drawn as a hollow box because the font lacks them.
    pub fn missing_glyphs_drawn(&self) -> usize {
        self.missing
    }

    pub fn get(&self, x: usize, y: usize) -> Rgb {
        self.pixels[y * self.width + x]
    }

    pub fn set(&mut self, x: usize, y: usize, colour: Rgb) {
        if x < self.width && y < self.height {
            self.pixels[y * self.width + x] = colour;
        }
    }

    pub fn fill_rect(&mut self, x: usize, y: usize, w: usize, h: usize, colour: Rgb) {
        let (x1, y1) = ((x + w).min(self.width), (y + h).min(self.height));
        for row in y.min(y1)..y1 {
            self.pixels[row * self.width + x.min(x1)..row * self.width + x1].fill(colour);
        }
    }

    /// A one-pixel outline just inside `x, y, w, h`.
    pub fn stroke_rect(&mut self, x: usize, y: usize, w: usize, h: usize, colour: Rgb) {
        if w == 0 || h == 0 {
            return;
        }
        self.fill_rect(x, y, w, 1, colour);
        self.fill_rect(x, y + h - 1, w, 1, colour);
        self.fill_rect(x, y, 1, h, colour);
        self.fill_rect(x + w - 1, y, 1, h, colour);
    }

    /// Draws `text` with its top-left corner at `x, y`, each font pixel a `scale × scale` square.
    /// Returns the x just after the last glyph. A character outside the font is a hollow box.
    pub fn text(&mut self, x: usize, y: usize, text: &str, scale: usize, colour: Rgb) -> usize {
        let mut pen = x;
        for c in text.chars() {
            match glyph(c) {
                Some(rows) => {
                    for (r, bits) in rows.iter().enumerate() {
                        for col in 0..GLYPH_WIDTH {
                            if bits >> (GLYPH_WIDTH - 1 - col) & 1 == 1 {
                                self.fill_rect(pen + col * scale, y + r * scale, scale, scale, colour);
                            }
                        }
                    }
                }
                None => {
                    self.missing += 1;
                    self.stroke_rect(pen, y, GLYPH_WIDTH * scale, (GLYPH_HEIGHT - 1) * scale, colour);
                }
            }
            pen += ADVANCE * scale;
        }
        pen
    }

    /// Draws `text` horizontally centred on `centre_x`.
    pub fn text_centred(&mut self, centre_x: usize, y: usize, text: &str, scale: usize, colour: Rgb) {
        let x = centre_x.saturating_sub(text_width(text, scale) / 2);
        self.text(x, y, text, scale, colour);
    }

    /// Draws `text` ending at `right_x`.
    pub fn text_right(&mut self, right_x: usize, y: usize, text: &str, scale: usize, colour: Rgb) {
        self.text(right_x.saturating_sub(text_width(text, scale)), y, text, scale, colour);
    }

    /// Draws a `side × side` grayscale image (0 = black) at `x, y`, each pixel a `scale × scale` square,
    /// coloured by `colour(pixel index, gray value)`.
    pub fn image(
        &mut self,
        x: usize,
        y: usize,
        side: usize,
        scale: usize,
        gray: &[u8],
        mut colour: impl FnMut(usize, u8) -> Rgb,
    ) {
        for (i, &v) in gray.iter().enumerate().take(side * side) {
            self.fill_rect(x + (i % side) * scale, y + (i / side) * scale, scale, scale, colour(i, v));
        }
    }

    /// Encodes the canvas as an 8-bit RGB PNG.
    pub fn to_png(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::High);
        let mut writer = encoder.write_header().map_err(|e| format!("PNG encoding failed: {e}"))?;
        writer.write_image_data(self.pixels.as_flattened()).map_err(|e| format!("PNG encoding failed: {e}"))?;
        writer.finish().map_err(|e| format!("PNG encoding failed: {e}"))?;
        Ok(out)
    }

    /// Writes the canvas to `path` as a PNG.
    pub fn save_png(&self, path: &Path) -> Result<(), String> {
        let png = self.to_png()?;
        std::fs::write(path, png).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_endpoints_and_midpoint() {
        assert_eq!(viridis(0.0), [0x44, 0x01, 0x54]);
        assert_eq!(viridis(1.0), [0xFD, 0xE7, 0x25]);
        // Out of range and NaN clamp to the ends.
        assert_eq!(viridis(-3.0), viridis(0.0));
        assert_eq!(viridis(7.0), viridis(1.0));
        assert_eq!(viridis(f32::NAN), viridis(0.0));
        // Anchors are hit exactly, and halfway between two anchors is their mean.
        assert_eq!(viridis(5.0 / 9.0), [0x1F, 0x9E, 0x89]);
        assert_eq!(viridis(0.5), mix([0x26, 0x82, 0x8E], [0x1F, 0x9E, 0x89], 0.5));
    }

    #[test]
    fn viridis_gets_lighter_monotonically() {
        let mut last = -1.0;
        for i in 0..=100 {
            let l = luminance(viridis(i as f32 / 100.0));
            assert!(l > last, "luminance falls at {i}: {l} after {last}");
            last = l;
        }
    }

    #[test]
    fn text_colour_contrasts_with_the_colormap_ends() {
        assert_eq!(text_colour_on(viridis(0.0)), WHITE);
        assert_eq!(text_colour_on(viridis(1.0)), BLACK);
    }

    #[test]
    fn font_covers_printable_ascii_and_the_arrows() {
        let ascii: String = (' '..='~').collect();
        assert_eq!(missing_glyphs(&ascii), Vec::<char>::new());
        assert_eq!(missing_glyphs("→↔×"), Vec::<char>::new());
        assert_eq!(FONT.len(), 95 + 3);
        assert_eq!(drawable("7→9 ä\u{263A}.png"), "7→9 ??.png");
        // Glyphs fit the 5-column cell, and only letters with descenders use the last row.
        for (c, rows) in FONT {
            assert!(rows.iter().all(|r| r >> GLYPH_WIDTH == 0), "{c:?} is wider than {GLYPH_WIDTH}");
            let descends = rows[GLYPH_HEIGHT - 1] != 0;
            assert_eq!(descends, "gjpqy,;_".contains(*c), "{c:?} descender row");
        }
        // No duplicates, and every visible glyph has some ink.
        for (i, (c, rows)) in FONT.iter().enumerate() {
            assert!(FONT[i + 1..].iter().all(|(d, _)| d != c), "{c:?} appears twice");
            assert_eq!(rows.iter().all(|&r| r == 0), *c == ' ', "{c:?}");
        }
    }

    #[test]
    fn text_draws_glyph_pixels_and_boxes_unknown_characters() {
        let mut canvas = Canvas::new(20, 10, BLACK);
        let end = canvas.text(1, 1, "1", 1, WHITE);
        assert_eq!(end, 1 + ADVANCE);
        // '1' is 0b00100 in its first row: only column 2 lit.
        assert_eq!((canvas.get(3, 1), canvas.get(2, 1), canvas.get(4, 1)), (WHITE, BLACK, BLACK));
        // Its bottom row 0b01110.
        assert_eq!(
            (canvas.get(2, 7), canvas.get(3, 7), canvas.get(4, 7), canvas.get(5, 7)),
            (WHITE, WHITE, WHITE, BLACK)
        );
        assert_eq!(canvas.missing_glyphs_drawn(), 0);
        let mut boxed = Canvas::new(20, 10, BLACK);
        boxed.text(0, 0, "\u{263A}", 1, WHITE);
        assert_eq!((boxed.get(0, 0), boxed.get(2, 3), boxed.get(4, 6)), (WHITE, BLACK, WHITE));
        assert_eq!(boxed.missing_glyphs_drawn(), 1);
        assert_eq!(text_width("ab", 2), 22);
        assert_eq!(text_width("", 2), 0);
    }

    #[test]
    fn drawing_is_clipped_to_the_canvas() {
        let mut canvas = Canvas::new(4, 4, BLACK);
        canvas.fill_rect(2, 2, 10, 10, WHITE);
        canvas.fill_rect(9, 9, 3, 3, WHITE);
        canvas.text(3, 3, "WW", 3, WHITE);
        assert_eq!(canvas.get(3, 3), WHITE);
        assert_eq!(canvas.get(1, 1), BLACK);
    }

    #[test]
    fn png_round_trips_through_the_decoder() {
        let mut canvas = Canvas::new(3, 2, PAPER);
        canvas.set(2, 1, [1, 2, 3]);
        let png = canvas.to_png().unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height, info.color_type), (3, 2, png::ColorType::Rgb));
        assert_eq!(&buf[15..18], &[1, 2, 3]);
        assert_eq!(&buf[..3], &PAPER);
    }
}
