//! The source image at full resolution on the ink scale, read only around
//! the digit the analysis grid found: its levels (step 8), its exact box
//! and specks (step 9) and its rows for scaling (step 10).

use super::components::Bounds;
use super::grid::{Geometry, Ink};
use super::source::Reader;
use super::stats::{Histogram, Levels};
use super::MAX_SIDE;

/// A rectangle of source pixels: columns `x0..x1`, rows `y0..y1`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

/// The source read on the ink scale: luma, polarity applied, the grid's
/// background (of the pixel's block) subtracted.
pub(crate) struct FullResolution<'r, 'a> {
    pub(crate) reader: &'r Reader<'a>,
    pub(crate) geometry: Geometry,
    pub(crate) ink: Ink,
    pub(crate) background: &'r [u8],
}

impl FullResolution<'_, '_> {
    /// The source pixels of grid box `b`, widened on each side by
    /// `margin(extent in source pixels along that axis)`, within the image.
    pub(crate) fn window(&self, b: &Bounds, margin: impl Fn(usize) -> usize) -> Window {
        let k = self.geometry.block;
        let (w, h) = (self.reader.width(), self.reader.height());
        let (x0, x1) = (b.x0 as usize * k, ((b.x1 as usize + 1) * k).min(w));
        let (y0, y1) = (b.y0 as usize * k, ((b.y1 as usize + 1) * k).min(h));
        let (mx, my) = (margin(x1 - x0), margin(y1 - y0));
        Window { x0: x0.saturating_sub(mx), y0: y0.saturating_sub(my), x1: (x1 + mx).min(w), y1: (y1 + my).min(h) }
    }

    /// Writes the ink of pixels `x0..x1` of row `y` to `out[..x1 - x0]`.
    pub(crate) fn ink_row(&self, y: usize, x0: usize, x1: usize, out: &mut [u8]) {
        self.reader.luma_row(y, x0, x1, out);
        let k = self.geometry.block;
        let background = &self.background[(y / k) * self.geometry.width..][..self.geometry.width];
        // Block by block: one background value for up to k pixels.
        let mut x = x0;
        let mut out = &mut out[..x1 - x0];
        while !out.is_empty() {
            let b = background[x / k];
            let run = (k - x % k).min(out.len());
            let (now, rest) = out.split_at_mut(run);
            for v in now {
                *v = self.ink.up(*v).saturating_sub(b);
            }
            out = rest;
            x += run;
        }
    }

    pub(crate) fn levels(&self, window: Window, row: &mut [u8]) -> Option<Levels> {
        let mut h = Histogram::new();
        for y in window.y0..window.y1 {
            self.ink_row(y, window.x0, window.x1, row);
            h.add_all(&row[..window.x1 - window.x0]);
        }
        Levels::of(&h)
    }

    /// The ink pixels within `window`: their box, their count, and how many
    /// of them are isolated specks (no ink among their eight neighbours).
    pub(crate) fn marks(&self, window: Window, levels: Levels, rows: &mut [[u8; MAX_SIDE]; 3]) -> Marks {
        let width = window.x1 - window.x0;
        let mut found = Marks { bounds: None, pixels: 0, isolated: 0 };
        // Ring of ink flags: rows y − 1, y and y + 1 at (y + 2) % 3, y % 3 and
        // (y + 1) % 3 (relative to the window); a row outside it is no ink.
        let is_ink: [u8; 256] = core::array::from_fn(|n| levels.is_ink(n as u8) as u8);
        let flags = |rows: &mut [[u8; MAX_SIDE]; 3], slot: usize, y: usize| {
            let row = &mut rows[slot][..width + 2];
            if y < window.y1 {
                self.ink_row(y, window.x0, window.x1, &mut row[1..]);
                for v in row[1..=width].iter_mut() {
                    *v = is_ink[*v as usize];
                }
            } else {
                row.fill(0);
            }
            row[0] = 0;
            row[width + 1] = 0;
        };
        rows[2][..width + 2].fill(0);
        flags(rows, 0, window.y0);
        for y in window.y0..window.y1 {
            let i = y - window.y0;
            flags(rows, (i + 1) % 3, y + 1);
            let (above, here, below) = (&rows[(i + 2) % 3], &rows[i % 3], &rows[(i + 1) % 3]);
            for x in 1..=width {
                if here[x] == 0 {
                    continue;
                }
                found.pixels += 1;
                let neighbours = above[x - 1] + above[x] + above[x + 1] + here[x - 1] + here[x + 1];
                if neighbours + below[x - 1] + below[x] + below[x + 1] == 0 {
                    found.isolated += 1;
                }
                let (x, y) = ((window.x0 + x - 1) as u16, y as u16);
                let b = found.bounds.get_or_insert(Bounds { x0: x, y0: y, x1: x, y1: y });
                b.x0 = b.x0.min(x);
                b.x1 = b.x1.max(x);
                b.y1 = y;
            }
        }
        found
    }
}

/// What [`FullResolution::marks`] found.
pub(crate) struct Marks {
    pub(crate) bounds: Option<Bounds>,
    pub(crate) pixels: usize,
    pub(crate) isolated: usize,
}
