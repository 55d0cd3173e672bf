//! The multiply-adds over i16 values after the patch embedding: the
//! LayerNorm's sum of squares, the dot products of the scores and the head, and the
//! probability-weighted sum of the tokens.
//! Portable, or on builds for ARMv7E-M (Cortex-M4/M7, the `arm_dsp` cfg of
//! build.rs) with its 16-bit multiply-adds (`SMLAD`: two per instruction;
//! `SMLABB`/`SMLABT`: one, from either half of a word). Both give the same
//! i32: every product and sum the int8 path forms fits i32
//! (docs/FIXED_POINT.md), and these instructions wrap, never saturate.

/// `Σ a[i] · b[i]` over the shorter of the two.
#[cfg(not(arm_dsp))]
#[inline]
pub(crate) fn dot_i16(a: &[i16], b: &[i16]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

#[cfg(arm_dsp)]
#[inline]
pub(crate) fn dot_i16(a: &[i16], b: &[i16]) -> i32 {
    let n = a.len().min(b.len());
    let (quads, mut sum) = (n / 4, 0i32);
    if quads > 0 {
        // SAFETY: reads `quads` × 2 words from each slice, 4·quads ≤ n
        // values (ARMv7-M loads words at any halfword alignment); writes
        // only its registers.
        unsafe {
            core::arch::asm!(
                "2:",
                "ldr {x}, [{a}], #4",
                "ldr {y}, [{b}], #4",
                "smlad {sum}, {x}, {y}, {sum}",
                "ldr {x}, [{a}], #4",
                "ldr {y}, [{b}], #4",
                "smlad {sum}, {x}, {y}, {sum}",
                "subs {n}, {n}, #1",
                "bne 2b",
                a = inout(reg) a.as_ptr() => _,
                b = inout(reg) b.as_ptr() => _,
                n = inout(reg) quads => _,
                x = out(reg) _,
                y = out(reg) _,
                sum = inout(reg) sum,
                options(nostack, readonly, pure),
            );
        }
    }
    for i in 4 * quads..n {
        sum += a[i] as i32 * b[i] as i32;
    }
    sum
}

/// `acc[c] += Σ_t p[t] · rows[t·d + c]` for `d = acc.len()`, one row per
/// value of `p`; every `p` is within ±2^15.
#[cfg(not(arm_dsp))]
#[inline]
pub(crate) fn weighted_sum(p: &[i32], rows: &[i16], acc: &mut [i32]) {
    for (&p, row) in p.iter().zip(rows.chunks_exact(acc.len())) {
        for (a, &n) in acc.iter_mut().zip(row) {
            *a += p * n as i32;
        }
    }
}

/// [`weighted_sum`] four channels at a time, their sums in registers: per
/// token one load of `p` and two words of the row, four multiply-adds.
#[cfg(arm_dsp)]
#[inline]
pub(crate) fn weighted_sum(p: &[i32], rows: &[i16], acc: &mut [i32]) {
    let d = acc.len();
    let tokens = p.len().min(rows.len() / d.max(1));
    if tokens == 0 {
        return;
    }
    for (group, acc) in acc.chunks_exact_mut(4).enumerate() {
        let [mut a0, mut a1, mut a2, mut a3] = [acc[0], acc[1], acc[2], acc[3]];
        // SAFETY: reads `tokens` values of `p` and, per token t, the four
        // i16 at rows[t·d + 4·group..][..4], within `rows` as 4·group + 4 ≤ d
        // and t < rows.len() / d (ARMv7-M loads words at any halfword
        // alignment); writes only its registers.
        unsafe {
            core::arch::asm!(
                "2:",
                "ldr {p}, [{probs}], #4",
                "ldr {w}, [{row}]",
                "smlabb {a0}, {p}, {w}, {a0}",
                "smlabt {a1}, {p}, {w}, {a1}",
                "ldr {w}, [{row}, #4]",
                "smlabb {a2}, {p}, {w}, {a2}",
                "smlabt {a3}, {p}, {w}, {a3}",
                "add {row}, {row}, {stride}",
                "subs {n}, {n}, #1",
                "bne 2b",
                probs = inout(reg) p.as_ptr() => _,
                row = inout(reg) rows.as_ptr().add(4 * group) => _,
                stride = in(reg) 2 * d,
                n = inout(reg) tokens => _,
                p = out(reg) _,
                w = out(reg) _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                options(nostack, readonly, pure),
            );
        }
        acc.copy_from_slice(&[a0, a1, a2, a3]);
    }
    let done = d / 4 * 4;
    for (&p, row) in p.iter().zip(rows.chunks_exact(d)).take(tokens) {
        for (a, &n) in acc[done..].iter_mut().zip(&row[done..]) {
            *a += p * n as i32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_products_of_odd_and_even_lengths_are_exact() {
        let a: Vec<i16> = (0..33).map(|i| (i * 997 % 4095 - 2047) as i16).collect();
        let b: Vec<i16> = (0..33).map(|i| (i * 7919 % 65535 - 32767) as i16).collect();
        for n in [0, 1, 2, 3, 4, 5, 31, 32, 33] {
            let want: i64 = (0..n).map(|i| a[i] as i64 * b[i] as i64).sum();
            assert_eq!(dot_i16(&a[..n], &b[..n]) as i64, want, "n = {n}");
        }
        assert_eq!(dot_i16(&a, &b[..3]), dot_i16(&a[..3], &b[..3]));
    }

    #[test]
    fn sums_of_squares_are_exact_at_the_extremes() {
        // LayerNorm's Σz² (dot_i16(z, z)) at D = 32, every value at -8191:
        // the largest sum the int8 path forms from z, below 2^31.
        assert_eq!(dot_i16(&[-8191; 32], &[-8191; 32]), 32 * 8191 * 8191);
        let z: Vec<i16> = (0..129).map(|i| (i * 7919 % 8191 - 4095) as i16).collect();
        for n in [0, 1, 2, 3, 32, 128, 129] {
            assert_eq!(dot_i16(&z[..n], &z[..n]), z[..n].iter().map(|&v| (v as i32).pow(2)).sum::<i32>(), "n = {n}");
        }
    }

    #[test]
    fn weighted_sums_are_exact_for_any_width() {
        let p: Vec<i32> = (0..17i32).map(|t| t * 1229 % 2001 - 1000).collect();
        let rows: Vec<i16> = (0..17 * 7).map(|i| (i * 7919 % 65535 - 32767) as i16).collect();
        for d in [1, 4, 6, 7] {
            let mut acc: Vec<i32> = (0..d).map(|c| c as i32 - 3).collect();
            let want: Vec<i64> = (0..d)
                .map(|c| c as i64 - 3 + (0..17).map(|t| p[t] as i64 * rows[t * d + c] as i64).sum::<i64>())
                .collect();
            weighted_sum(&p, &rows[..17 * d], &mut acc);
            assert_eq!(acc.iter().map(|&v| v as i64).collect::<Vec<_>>(), want, "d = {d}");
        }
    }
}
