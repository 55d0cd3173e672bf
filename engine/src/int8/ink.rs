//! The scalar patch embedding's inner work: a patch's inked (nonzero)
//! pixels gathered once, then each channel's dot product over them only.
//! A digit inks about a fifth of its pixels, and integer sums do not depend
//! on their order, so this is the plain dot product exactly.
//!
//! Pixels go in pairs, the layout of `SMLAD` (two 16-bit multiply-adds per
//! instruction), which builds for ARMv7E-M targets (Cortex-M4/M7, the
//! `arm_dsp` cfg of build.rs) use through `asm!`; everywhere else the same
//! pairs are summed in portable Rust.

/// A patch's inked pixels in pairs, each four u16: the two offsets in the
/// patch, then the two pixel values. An odd one out is paired with a zero
/// pixel at offset 0. Every offset is below `len`.
pub(crate) struct Ink<'a> {
    halves: &'a [u16],
    len: usize,
}

impl<'a> Ink<'a> {
    /// Gathers the nonzero pixels of the `p × p` patch whose top-left pixel
    /// is `origin` in an image `side` pixels wide into `buf` (at least
    /// `p² + 1` words).
    pub(crate) fn gather(image: &[u8], origin: usize, side: usize, p: usize, buf: &'a mut [u32]) -> Ink<'a> {
        let halves: &mut [u16] = bytemuck::cast_slice_mut(&mut buf[..(p * p).div_ceil(2) * 2]);
        let mut inked = 0;
        for y in 0..p {
            let pixels = &image[origin + y * side..][..p];
            for (x, &px) in pixels.iter().enumerate() {
                if px != 0 {
                    // Pixel `inked` goes to half `slot` of its pair's
                    // offsets and to `slot + 2` of its values.
                    let slot = 2 * inked - (inked & 1);
                    halves[slot] = (y * p + x) as u16;
                    halves[slot + 2] = px as u16;
                    inked += 1;
                }
            }
        }
        if inked % 2 == 1 {
            let slot = 2 * inked - 1;
            (halves[slot], halves[slot + 2]) = (0, 0);
            inked += 1;
        }
        Ink { halves: &halves[..2 * inked], len: p * p }
    }

    /// The dot products of two weight rows (each at least the patch long)
    /// with the inked pixels.
    #[cfg(not(arm_dsp))]
    #[inline]
    pub(crate) fn dot2(&self, a: &[i8], b: &[i8]) -> (i32, i32) {
        let (a, b) = (&a[..self.len], &b[..self.len]);
        let (mut sum_a, mut sum_b) = (0i32, 0i32);
        for pair in self.halves.chunks_exact(4) {
            for (&offset, &px) in pair[..2].iter().zip(&pair[2..]) {
                sum_a += a[offset as usize] as i32 * px as i32;
                sum_b += b[offset as usize] as i32 * px as i32;
            }
        }
        (sum_a, sum_b)
    }

    /// [`Ink::dot2`] with `SMLAD`: per pair, four byte loads, two packs and
    /// two dual multiply-adds for four products.
    #[cfg(arm_dsp)]
    #[inline]
    pub(crate) fn dot2(&self, a: &[i8], b: &[i8]) -> (i32, i32) {
        require!(a.len() >= self.len && b.len() >= self.len);
        let (mut sum_a, mut sum_b) = (0i32, 0i32);
        if self.halves.is_empty() {
            return (sum_a, sum_b);
        }
        // SAFETY: reads the pairs (two words each, 4-byte aligned as `buf`
        // was; `at` runs over them a pair a step up to their end, and there
        // is at least one) and
        // bytes of `a` and `b` at offsets below `self.len` (every offset
        // `gather` stores is, and both rows are at least that long); writes
        // only its registers. Pixels are below 2^8 and weights within ±127,
        // so the signed 16-bit products are the exact ones.
        unsafe {
            core::arch::asm!(
                "2:",
                "ldrd {off}, {px}, [{at}], #8",
                "uxth {lo}, {off}",
                "lsr {off}, {off}, #16",
                "ldrsb {wl}, [{a}, {lo}]",
                "ldrsb {wh}, [{a}, {off}]",
                "pkhbt {wl}, {wl}, {wh}, lsl #16",
                "smlad {sa}, {wl}, {px}, {sa}",
                "ldrsb {wl}, [{b}, {lo}]",
                "ldrsb {wh}, [{b}, {off}]",
                "pkhbt {wl}, {wl}, {wh}, lsl #16",
                "smlad {sb}, {wl}, {px}, {sb}",
                "cmp {at}, {end}",
                "bne 2b",
                at = inout(reg) self.halves.as_ptr() => _,
                end = in(reg) self.halves.as_ptr().add(self.halves.len()),
                a = in(reg) a.as_ptr(),
                b = in(reg) b.as_ptr(),
                off = out(reg) _,
                px = out(reg) _,
                lo = out(reg) _,
                wl = out(reg) _,
                wh = out(reg) _,
                sa = inout(reg) sum_a,
                sb = inout(reg) sum_b,
                options(nostack, readonly, pure),
            );
        }
        (sum_a, sum_b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_hold_every_inked_pixel_once_and_the_dot_products_are_exact() {
        // A 3 × 3 patch at (1, 1) of a 5-wide image, five pixels inked.
        #[rustfmt::skip]
        let image = [
            9, 9, 9, 9, 9,
            9, 0, 7, 0, 9,
            9, 255, 0, 1, 9,
            9, 0, 0, 3, 9,
        ];
        let mut buf = [u32::MAX; 10];
        let ink = Ink::gather(&image, 6, 5, 3, &mut buf);
        assert_eq!(ink.halves, &[1, 3, 7, 255, 5, 8, 1, 3]);
        let a: Vec<i8> = (0..9).map(|i| i * 10 - 40).collect();
        let b = [-127i8; 9];
        let want = |row: &[i8]| [(1, 7), (3, 255), (5, 1), (8, 3)].iter().map(|&(o, v)| row[o] as i32 * v).sum();
        assert_eq!(ink.dot2(&a, &b), (want(&a), want(&b)));
    }

    #[test]
    fn an_odd_pixel_pairs_with_zero_and_a_blank_patch_gives_nothing() {
        let image = [0, 0, 0, 200];
        let mut buf = [u32::MAX; 5];
        let ink = Ink::gather(&image, 0, 2, 2, &mut buf);
        assert_eq!(ink.halves, &[3, 0, 200, 0]);
        assert_eq!(ink.dot2(&[1, 2, 3, -4], &[0, 0, 0, 5]), (-800, 1000));
        let ink = Ink::gather(&[0; 4], 0, 2, 2, &mut buf);
        assert!(ink.halves.is_empty());
        assert_eq!(ink.dot2(&[1; 4], &[1; 4]), (0, 0));
    }
}
