//! The analysis grid: the image reduced by block means to at most
//! [`GRID`] pixels a side, where the paper, the polarity and the ink are
//! judged cheaply and with bounded memory (docs/PREPROCESSING.md, steps 3
//! to 5).

use core::ops::Range;

use super::source::Reader;
use super::stats::Histogram;
use super::{Polarity, GRID};

/// Cells along the grid's longer side for the background estimate.
pub(crate) const CELLS: usize = 4;
const MAX_CELLS: usize = CELLS * CELLS;

/// How the source maps onto the grid: blocks of `block × block` source
/// pixels (smaller at the right and bottom edges) become one grid pixel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub(crate) block: usize,
    pub(crate) width: usize,
    pub(crate) height: usize,
}

impl Geometry {
    pub(crate) fn of(width: usize, height: usize) -> Geometry {
        let block = width.max(height).div_ceil(GRID);
        Geometry { block, width: width.div_ceil(block), height: height.div_ceil(block) }
    }
}

/// Fills `grid` (row-major, `geometry.width` wide) with the rounded mean luma
/// of each block. `row` is scratch for one source row, `sums` for one row of
/// blocks.
pub(crate) fn reduce(reader: &Reader<'_>, geometry: Geometry, grid: &mut [u8], row: &mut [u8], sums: &mut [u32]) {
    let (w, h, k) = (reader.width(), reader.height(), geometry.block);
    let sums = &mut sums[..geometry.width];
    for gy in 0..geometry.height {
        sums.fill(0);
        let rows = gy * k..((gy + 1) * k).min(h);
        let block_rows = rows.len();
        for y in rows {
            reader.luma_row(y, 0, w, row);
            for (sum, block) in sums.iter_mut().zip(row[..w].chunks(k)) {
                *sum += block.iter().map(|&v| v as u32).sum::<u32>();
            }
        }
        for (gx, &sum) in sums.iter().enumerate() {
            let count = (block_rows * (((gx + 1) * k).min(w) - gx * k)) as u32;
            grid[gy * geometry.width + gx] = mean(sum, count);
        }
    }
}

/// `sum / count` rounded to nearest, ties towards mid-gray (127.5), so
/// that the negative of an image has exactly the negative grid (except for
/// a mean of exactly 127.5): the polarity only flips the scale.
fn mean(sum: u32, count: u32) -> u8 {
    let (q, r) = (sum / count, sum % count);
    let up = 2 * r > count || (2 * r == count && q <= 127);
    (q + up as u32) as u8
}

/// The grid cut into square cells of `side` grid pixels, at most
/// [`CELLS`] along the longer side.
#[derive(Clone, Copy, Debug)]
struct Cells {
    side: usize,
    across: usize,
    down: usize,
}

impl Cells {
    fn of(geometry: Geometry) -> Cells {
        let side = geometry.width.max(geometry.height).div_ceil(CELLS);
        Cells { side, across: geometry.width.div_ceil(side), down: geometry.height.div_ceil(side) }
    }

    /// Twice the centre of each cell along an axis of `len` grid pixels, in
    /// grid pixel indices (so that centres are whole numbers).
    fn centres(&self, len: usize, out: &mut [usize; CELLS]) -> usize {
        let n = len.div_ceil(self.side);
        for (i, c) in out.iter_mut().take(n).enumerate() {
            *c = i * self.side + ((i + 1) * self.side).min(len) - 1;
        }
        n
    }
}

/// The per-cell percentiles of the grid that the later steps need.
struct CellLevels {
    cells: Cells,
    /// The median of each cell's 3 × 3 neighbourhood of cells.
    around: [u8; MAX_CELLS],
}

impl CellLevels {
    fn of(grid: &[u8], geometry: Geometry) -> CellLevels {
        let cells = Cells::of(geometry);
        let mut levels = CellLevels { cells, around: [0; MAX_CELLS] };
        let mut h = Histogram::new();
        for cy in 0..cells.down {
            for cx in 0..cells.across {
                let c = cy * cells.across + cx;
                let (xs, ys) =
                    (cx.saturating_sub(1)..(cx + 2).min(cells.across), cy.saturating_sub(1)..(cy + 2).min(cells.down));
                cells.histogram(grid, geometry, xs, ys, &mut h);
                levels.around[c] = h.percentile(50);
            }
        }
        levels
    }

    fn cell_of(&self, x: usize, y: usize) -> usize {
        (y / self.cells.side) * self.cells.across + x / self.cells.side
    }
}

impl Cells {
    /// The histogram of the grid pixels in cells `xs × ys`.
    fn histogram(&self, grid: &[u8], geometry: Geometry, xs: Range<usize>, ys: Range<usize>, h: &mut Histogram) {
        self.histogram_of(grid, geometry, xs, ys, h, |v| v);
    }

    /// The histogram of `f` of the grid pixels in cells `xs × ys`.
    fn histogram_of(
        &self,
        grid: &[u8],
        geometry: Geometry,
        xs: Range<usize>,
        ys: Range<usize>,
        h: &mut Histogram,
        f: impl Fn(u8) -> u8,
    ) {
        h.clear();
        let columns = xs.start * self.side..(xs.end * self.side).min(geometry.width);
        for y in ys.start * self.side..(ys.end * self.side).min(geometry.height) {
            for &v in &grid[y * geometry.width..][columns.clone()] {
                h.add(f(v));
            }
        }
    }
}

/// Which way the ink goes, decided (step 4) or given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ink {
    Dark,
    Light,
}

impl Ink {
    /// A luma on the ink scale before the background is removed: higher is
    /// more ink-like.
    #[inline]
    pub(crate) fn up(self, luma: u8) -> u8 {
        match self {
            Ink::Dark => 255 - luma,
            Ink::Light => luma,
        }
    }
}

/// Steps 4 and 5: decides the polarity (when `polarity` is `Auto`), writes
/// the background surface on the ink scale to `background` and replaces
/// each grid pixel by its ink above that background.
pub(crate) fn flatten(grid: &mut [u8], background: &mut [u8], geometry: Geometry, polarity: Polarity) -> Ink {
    let n = geometry.width * geometry.height;
    let (grid, background) = (&mut grid[..n], &mut background[..n]);
    let levels = CellLevels::of(grid, geometry);
    let ink = match polarity {
        Polarity::DarkOnLight => Ink::Dark,
        Polarity::LightOnDark => Ink::Light,
        Polarity::Auto => auto_polarity(grid, geometry, &levels),
    };
    let cell_background = cell_backgrounds(grid, geometry, levels.cells, ink);
    surface(&cell_background, levels.cells, geometry, background);
    for (g, &b) in grid.iter_mut().zip(background.iter()) {
        *g = ink.up(*g).saturating_sub(b);
    }
    ink
}

/// The ink is what departs from the paper: compare how far pixels fall
/// below the median of their neighbourhood (their cell and the eight
/// around it: wide enough that strokes are a minority) with how far they
/// rise above it. Dark ink on light paper pulls pixels down; the paper
/// itself, lit unevenly or noisy, deviates about as much either way.
fn auto_polarity(grid: &[u8], geometry: Geometry, levels: &CellLevels) -> Ink {
    let (mut below, mut above) = (0u64, 0u64);
    for y in 0..geometry.height {
        for x in 0..geometry.width {
            let (v, median) = (grid[y * geometry.width + x], levels.around[levels.cell_of(x, y)]);
            below += median.saturating_sub(v) as u64;
            above += v.saturating_sub(median) as u64;
        }
    }
    if below > above {
        Ink::Dark
    } else {
        Ink::Light
    }
}

/// Each cell's paper on the ink scale: its 20th percentile of ink (robust to
/// ink covering up to 80 % of the cell), capped by the median of its 3 × 3
/// neighbourhood (the upper one of an even count, so that at the image's
/// edges a lighting gradient is not mistaken for ink) so that a cell the
/// digit fills does not lift the paper.
fn cell_backgrounds(grid: &[u8], geometry: Geometry, cells: Cells, ink: Ink) -> [u8; MAX_CELLS] {
    let mut raw = [0u8; MAX_CELLS];
    let mut h = Histogram::new();
    for cy in 0..cells.down {
        for cx in 0..cells.across {
            cells.histogram_of(grid, geometry, cx..cx + 1, cy..cy + 1, &mut h, |v| ink.up(v));
            raw[cy * cells.across + cx] = h.percentile(20);
        }
    }
    let mut out = [0u8; MAX_CELLS];
    for cy in 0..cells.down {
        for cx in 0..cells.across {
            let mut neighbourhood = [0u8; 9];
            let mut n = 0;
            for y in cy.saturating_sub(1)..(cy + 2).min(cells.down) {
                for x in cx.saturating_sub(1)..(cx + 2).min(cells.across) {
                    neighbourhood[n] = raw[y * cells.across + x];
                    n += 1;
                }
            }
            let neighbourhood = &mut neighbourhood[..n];
            neighbourhood.sort_unstable();
            let c = cy * cells.across + cx;
            out[c] = raw[c].min(neighbourhood[n / 2]);
        }
    }
    out
}

/// Bilinear interpolation of the cell backgrounds between cell centres
/// (constant beyond the outermost centres), rounded, for every grid pixel.
fn surface(cell_background: &[u8; MAX_CELLS], cells: Cells, geometry: Geometry, out: &mut [u8]) {
    let (mut xs, mut ys) = ([0usize; CELLS], [0usize; CELLS]);
    let across = cells.centres(geometry.width, &mut xs);
    let down = cells.centres(geometry.height, &mut ys);
    for y in 0..geometry.height {
        let (y0, y1, wy0, wy1) = span(&ys[..down], 2 * y);
        for x in 0..geometry.width {
            let (x0, x1, wx0, wx1) = span(&xs[..across], 2 * x);
            let b = |cx: usize, cy: usize| cell_background[cy * cells.across + cx] as usize;
            let total = (wx0 + wx1) * (wy0 + wy1);
            let sum = wy0 * (wx0 * b(x0, y0) + wx1 * b(x1, y0)) + wy1 * (wx0 * b(x0, y1) + wx1 * b(x1, y1));
            out[y * geometry.width + x] = ((sum + total / 2) / total) as u8;
        }
    }
}

/// The two centres around `pos` (both doubled) and their weights.
fn span(centres: &[usize], pos: usize) -> (usize, usize, usize, usize) {
    let last = centres.len() - 1;
    if pos <= centres[0] {
        return (0, 0, 1, 0);
    }
    if pos >= centres[last] {
        return (last, last, 1, 0);
    }
    let i = centres.iter().rposition(|&c| c <= pos).unwrap_or(0);
    (i, i + 1, centres[i + 1] - pos, pos - centres[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_keeps_the_longer_side_within_the_grid() {
        let g = Geometry::of(28, 28);
        assert_eq!((g.block, g.width, g.height), (1, 28, 28));
        let g = Geometry::of(4032, 3024);
        assert_eq!((g.block, g.width, g.height), (32, 126, 95));
        let g = Geometry::of(129, 1);
        assert_eq!((g.block, g.width, g.height), (2, 65, 1));
    }

    #[test]
    fn means_round_symmetrically() {
        assert_eq!(mean(21, 2), 11); // 10.5 → towards 127.5
        assert_eq!(mean(2 * 255 - 21, 2), 244); // 244.5 → towards 127.5, 255 − 11
        assert_eq!(mean(255, 2), 128); // 127.5 itself cannot round both ways
        assert_eq!(mean(10, 4), 3); // 2.5 → 3
        assert_eq!(mean(11, 4), 3); // 2.75
        assert_eq!(mean(9, 4), 2); // 2.25
        for count in 1..=16u32 {
            for sum in 0..=255 * count {
                let (a, b) = (mean(sum, count), mean(255 * count - sum, count));
                if 2 * sum != 255 * count {
                    assert_eq!(a as u32 + b as u32, 255, "{sum}/{count}");
                }
            }
        }
    }

    #[test]
    fn span_weights_between_centres() {
        let centres = [3, 11, 19];
        assert_eq!(span(&centres, 0), (0, 0, 1, 0));
        assert_eq!(span(&centres, 3), (0, 0, 1, 0));
        assert_eq!(span(&centres, 4), (0, 1, 7, 1));
        assert_eq!(span(&centres, 11), (1, 2, 8, 0));
        assert_eq!(span(&centres, 30), (2, 2, 1, 0));
    }

    /// A gradient of paper with a dark stroke: the polarity is dark, the
    /// paper flattens to (near) zero and the stroke keeps its contrast.
    #[test]
    fn flatten_removes_a_lighting_gradient() {
        let geometry = Geometry { block: 1, width: 64, height: 48 };
        let mut grid = [0u8; 64 * 48];
        for y in 0..48 {
            for x in 0..64 {
                let paper = 120 + 2 * x as u8; // 120..=246
                let stroke = (30..34).contains(&x) && (10..40).contains(&y);
                grid[y * 64 + x] = if stroke { paper - 90 } else { paper };
            }
        }
        let mut background = [0u8; 64 * 48];
        let ink = flatten(&mut grid, &mut background, geometry, Polarity::Auto);
        assert_eq!(ink, Ink::Dark);
        for y in 0..48 {
            for x in 0..64 {
                let n = grid[y * 64 + x];
                let stroke = (30..34).contains(&x) && (10..40).contains(&y);
                if stroke {
                    assert!((80..=100).contains(&n), "stroke at ({x}, {y}) is {n}");
                } else {
                    // At most the gradient across one 16-pixel cell.
                    assert!(n <= 32, "paper at ({x}, {y}) is {n}");
                }
            }
        }
    }
}
