//! The digit's box at full resolution, scaled by area averaging so that its
//! longer side is 20/28 of the model's side, brightened so its brightest
//! pixel is 255, and placed with its centre of mass at the centre
//! (docs/PREPROCESSING.md, steps 8 to 10).

use crate::MAX_IMAGE_SIDE;

/// The longer side of the digit's box in a `side`-pixel input: 20/28 of it,
/// rounded (MNIST: 20 of 28).
pub(crate) const fn box_side(side: usize) -> usize {
    (side * 20 + 14) / 28
}

/// The largest box any model side needs.
pub(crate) const MAX_BOX: usize = box_side(MAX_IMAGE_SIDE as usize);

/// A `source_width × source_height` box of stretched ink (fed a row at a
/// time) averaged down (or up) to `width × height` output pixels, each the
/// mean of the source area it covers, weighted by exact overlap.
pub(crate) struct AreaAverage<'s> {
    source_width: usize,
    source_height: usize,
    width: usize,
    height: usize,
    sums: &'s mut [u64],
    row: &'s mut [u64],
}

impl<'s> AreaAverage<'s> {
    /// `sums` and `row` are scratch of at least `MAX_BOX²` and `MAX_BOX`.
    pub(crate) fn new(
        source_width: usize,
        source_height: usize,
        side: usize,
        sums: &'s mut [u64],
        row: &'s mut [u64],
    ) -> AreaAverage<'s> {
        let long = box_side(side).max(1);
        let short = |s: usize, l: usize| ((2 * s * long + l) / (2 * l)).clamp(1, long);
        let (width, height) = if source_width >= source_height {
            (long, short(source_height, source_width))
        } else {
            (short(source_width, source_height), long)
        };
        let sums = &mut sums[..width * height];
        sums.fill(0);
        AreaAverage { source_width, source_height, width, height, sums, row: &mut row[..width] }
    }

    #[cfg(test)]
    fn width(&self) -> usize {
        self.width
    }

    #[cfg(test)]
    fn height(&self) -> usize {
        self.height
    }

    /// Adds source row `y` (0-based within the box): `values` holds its
    /// `source_width` stretched pixels. In units where a source pixel is
    /// `width` (or `height`) long and an output pixel `source_width` (or
    /// `source_height`), the overlaps are whole numbers.
    pub(crate) fn add_row(&mut self, y: usize, values: &[u8]) {
        self.row.fill(0);
        // for_overlaps, walked incrementally: source pixel x covers
        // [x·width, (x+1)·width); output i ends at (i+1)·source_width.
        let (outputs, sources) = (self.width as u64, self.source_width as u64);
        let (mut i, mut boundary, mut at) = (0usize, sources, 0u64);
        for &v in &values[..self.source_width] {
            let end = at + outputs;
            while at < end {
                let stop = end.min(boundary);
                self.row[i] += (stop - at) * v as u64;
                at = stop;
                if at == boundary {
                    i += 1;
                    boundary += sources;
                }
            }
        }
        let (width, row, sums) = (self.width, &*self.row, &mut *self.sums);
        for_overlaps(y, self.height, self.source_height, |j, weight| {
            for (sum, &r) in sums[j * width..][..width].iter_mut().zip(row) {
                *sum += weight * r;
            }
        });
    }

    /// Writes the averaged box, brightened so that its maximum is 255, into
    /// `out` (`side × side`, cleared first) with its centre of mass at the
    /// centre (moved inwards if it would stick out). False if the box is
    /// all zero.
    pub(crate) fn place(&mut self, side: usize, out: &mut [u8]) -> bool {
        let area = (self.source_width * self.source_height) as u64;
        let mut max = 0;
        for s in self.sums.iter_mut() {
            *s = (*s + area / 2) / area;
            max = max.max(*s);
        }
        if max == 0 {
            return false;
        }
        let (mut mass, mut x_moment, mut y_moment) = (0i64, 0i64, 0i64);
        for (j, row) in self.sums.chunks_exact_mut(self.width).enumerate() {
            for (i, s) in row.iter_mut().enumerate() {
                *s = (*s * 255 + max / 2) / max;
                mass += *s as i64;
                x_moment += *s as i64 * (2 * i as i64 + 1);
                y_moment += *s as i64 * (2 * j as i64 + 1);
            }
        }
        let x0 = centre_offset(side, mass, x_moment).clamp(0, (side - self.width) as i64) as usize;
        let y0 = centre_offset(side, mass, y_moment).clamp(0, (side - self.height) as i64) as usize;
        out[..side * side].fill(0);
        for (j, row) in self.sums.chunks_exact(self.width).enumerate() {
            for (i, &s) in row.iter().enumerate() {
                out[(y0 + j) * side + x0 + i] = s as u8;
            }
        }
        true
    }
}

/// Calls `f(output index, overlap)` for every output pixel that source pixel
/// `x` overlaps, when `outputs` output pixels cover `sources` source pixels.
#[inline]
fn for_overlaps(x: usize, outputs: usize, sources: usize, mut f: impl FnMut(usize, u64)) {
    // Source pixel x spans [x·outputs, (x+1)·outputs); output pixel i spans
    // [i·sources, (i+1)·sources).
    let (start, end) = (x * outputs, (x + 1) * outputs);
    let mut i = start / sources;
    while i < outputs && i * sources < end {
        let overlap = end.min((i + 1) * sources) - start.max(i * sources);
        f(i, overlap as u64);
        i += 1;
    }
}

/// Where the box must start so that its centre of mass lands on pixel
/// `side / 2` (MNIST's convention: the mean of the pixel indices weighted
/// by value is 14 in a 28-pixel frame); rounded half up. The centre of mass
/// in pixel indices is `(moment − mass) / (2 · mass)`.
fn centre_offset(side: usize, mass: i64, moment: i64) -> i64 {
    // side/2 − (moment − mass)/(2·mass) = (side·mass − moment + mass) / (2·mass).
    let (num, den) = (side as i64 * mass - moment + mass, 2 * mass);
    (2 * num + den).div_euclid(2 * den)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(source: &[&[u8]], side: usize) -> (usize, usize, Vec<u8>) {
        let (mut sums, mut row) = (vec![0; MAX_BOX * MAX_BOX], vec![0; MAX_BOX]);
        let mut avg = AreaAverage::new(source[0].len(), source.len(), side, &mut sums, &mut row);
        for (y, r) in source.iter().enumerate() {
            avg.add_row(y, r);
        }
        let mut out = vec![0; side * side];
        assert!(avg.place(side, &mut out));
        (avg.width(), avg.height(), out)
    }

    #[test]
    fn box_sides() {
        assert_eq!(box_side(28), 20);
        assert_eq!(box_side(64), 46);
        assert_eq!(box_side(7), 5);
        assert_eq!(box_side(1), 1);
        assert_eq!(MAX_BOX, 46);
    }

    #[test]
    fn overlaps_cover_each_source_pixel_once() {
        for (outputs, sources) in [(20, 40), (20, 7), (20, 20), (3, 7), (46, 8191)] {
            for x in 0..sources {
                let mut total = 0;
                for_overlaps(x, outputs, sources, |i, w| {
                    assert!(i < outputs);
                    total += w;
                });
                assert_eq!(total, outputs as u64, "pixel {x} of {sources} into {outputs}");
            }
        }
    }

    #[test]
    fn a_block_halves_to_its_mean_and_is_centred() {
        // 40×40 source, left half 200, right half 100: a 20×20 box, then
        // brightened so 200 → 255 and 100 → 128.
        let row: Vec<u8> = (0..40).map(|x| if x < 20 { 200 } else { 100 }).collect();
        let rows: Vec<&[u8]> = (0..40).map(|_| row.as_slice()).collect();
        let (w, h, out) = run(&rows, 28);
        assert_eq!((w, h), (20, 20));
        // Centre of mass: column (255·45 + 128·145) / (10·255 + 10·128) = 7.84
        // of the box, so the box starts at 14 − 7.84 → 6; row 9.5 → 4.5 → 5.
        assert_eq!(&out[14 * 28..14 * 28 + 28][..7], &[0, 0, 0, 0, 0, 0, 255]);
        assert_eq!(out[14 * 28 + 25], 128);
        assert_eq!(out[14 * 28 + 26], 0);
        let nonzero_rows: Vec<usize> = (0..28).filter(|&y| out[y * 28..][..28].iter().any(|&v| v > 0)).collect();
        assert_eq!(nonzero_rows, (5..25).collect::<Vec<_>>());
    }

    #[test]
    fn aspect_ratio_is_kept() {
        // 10 wide, 40 tall → 5 × 20.
        let row = [255u8; 10];
        let rows: Vec<&[u8]> = (0..40).map(|_| &row[..]).collect();
        let (w, h, out) = run(&rows, 28);
        assert_eq!((w, h), (5, 20));
        // Centre of mass at column 2 of the box, so it starts at column 12.
        let cols: Vec<usize> = (0..28).filter(|&x| out[14 * 28 + x] > 0).collect();
        assert_eq!(cols, (12..17).collect::<Vec<_>>());
    }

    #[test]
    fn small_boxes_are_scaled_up() {
        let rows: [&[u8]; 2] = [&[255, 0], &[0, 255]];
        let (w, h, out) = run(&rows, 28);
        assert_eq!((w, h), (20, 20));
        assert_eq!(out.iter().filter(|&&v| v == 255).count(), 200);
        assert_eq!(out.iter().filter(|&&v| v > 0).count(), 200);
    }
}
