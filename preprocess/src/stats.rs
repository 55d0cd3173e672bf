//! Histograms of 8-bit values and the two levels read from them: where the
//! paper's noise ends and how bright the ink is (docs/PREPROCESSING.md,
//! "Levels").

/// The smallest ink level above the noise floor that counts as ink: below
/// it an image is blank. 20 of 255 is about what faint pencil on grey paper
/// keeps after a JPEG round trip.
pub const MIN_CONTRAST: u8 = 20;

/// Counts of the values 0..=255.
#[derive(Clone, Copy)]
pub(crate) struct Histogram {
    counts: [u32; 256],
    total: u32,
}

impl Histogram {
    pub(crate) const fn new() -> Histogram {
        Histogram { counts: [0; 256], total: 0 }
    }

    pub(crate) fn clear(&mut self) {
        *self = Histogram::new();
    }

    #[inline]
    pub(crate) fn add(&mut self, value: u8) {
        self.counts[value as usize] += 1;
        self.total += 1;
    }

    pub(crate) fn add_all(&mut self, values: &[u8]) {
        for &v in values {
            self.add(v);
        }
    }

    /// The `percent`-th percentile: the smallest value `v` such that at least
    /// `ceil(total × percent / 100)` values (and at least one) are `≤ v`.
    /// 0 for an empty histogram.
    pub(crate) fn percentile(&self, percent: u32) -> u8 {
        percentile_of(&self.counts, self.total, percent)
    }

    /// The median absolute deviation from `center`, by the same rule.
    fn median_deviation(&self, center: u8) -> u8 {
        let c = center as usize;
        let mut deviations = [0u32; 256];
        for (value, &count) in self.counts.iter().enumerate() {
            deviations[value.abs_diff(c)] += count;
        }
        percentile_of(&deviations, self.total, 50)
    }
}

fn percentile_of(counts: &[u32; 256], total: u32, percent: u32) -> u8 {
    let rank = (total as u64 * percent as u64).div_ceil(100).max(1);
    let mut seen = 0u64;
    for (value, &count) in counts.iter().enumerate() {
        seen += count as u64;
        if seen >= rank {
            return value as u8;
        }
    }
    0
}

/// Otsu's threshold of `counts`: the value `t` that maximises the variance
/// between the classes `≤ t` and `> t` (the first one on ties).
fn otsu(counts: &[u32; 256]) -> u8 {
    let total: u64 = counts.iter().map(|&c| c as u64).sum();
    let sum: u64 = counts.iter().enumerate().map(|(v, &c)| v as u64 * c as u64).sum();
    let (mut below, mut below_sum, mut best, mut best_t) = (0u64, 0u64, 0u128, 0u8);
    for (t, &c) in counts.iter().enumerate().take(255) {
        below += c as u64;
        below_sum += t as u64 * c as u64;
        let above = total - below;
        if below == 0 || above == 0 {
            continue;
        }
        // Between-class variance × total², exact in integers:
        // (sum·below − below_sum·total)² / (below·above).
        let diff = (sum as i128 * below as i128 - below_sum as i128 * total as i128).unsigned_abs();
        let score = diff * diff / (below as u128 * above as u128);
        if score > best {
            (best, best_t) = (score, t as u8);
        }
    }
    best_t
}

/// The paper's noise floor and the ink's level on the ink scale (0 = the
/// local paper, higher = more ink), read from a histogram of that scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Levels {
    /// Values up to here are paper: the median plus four median absolute
    /// deviations plus 2 (about 2.7 standard deviations of Gaussian noise).
    pub(crate) floor: u8,
    /// The 75th percentile of the values above the floor: the ink of a
    /// stroke's core (its anti-aliased edges lie below).
    pub(crate) ink: u8,
}

impl Levels {
    /// The levels of `h`, or `None` when nothing rises [`MIN_CONTRAST`]
    /// above the noise floor (a blank image).
    pub(crate) fn of(h: &Histogram) -> Option<Levels> {
        let median = h.percentile(50);
        let mad = h.median_deviation(median);
        let floor = (median as u32 + 4 * mad as u32 + 2).min(255) as u8;
        let mut above = [0u32; 256];
        above[floor as usize + 1..].copy_from_slice(&h.counts[floor as usize + 1..]);
        let count: u32 = above.iter().sum();
        if count == 0 {
            return None;
        }
        let split = otsu(&above);
        let mut ink_part = [0u32; 256];
        ink_part[split as usize + 1..].copy_from_slice(&above[split as usize + 1..]);
        let ink_count: u32 = ink_part.iter().sum();
        let ink =
            if ink_count == 0 { percentile_of(&above, count, 75) } else { percentile_of(&ink_part, ink_count, 75) };
        (ink >= floor && ink - floor >= MIN_CONTRAST).then_some(Levels { floor, ink })
    }

    /// Whether `n` is ink for finding the digit: at least a quarter of the
    /// way from the floor to the ink level (strictly above the floor).
    #[inline]
    pub(crate) fn is_ink(&self, n: u8) -> bool {
        n > self.floor && 4 * (n - self.floor) as u32 >= (self.ink - self.floor) as u32
    }

    /// `n` stretched so that the floor becomes 0 and the ink level 255.
    #[inline]
    pub(crate) fn stretch(&self, n: u8) -> u8 {
        if n <= self.floor {
            return 0;
        }
        let range = (self.ink - self.floor) as u32;
        ((255 * (n - self.floor) as u32 + range / 2) / range).min(255) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(values: &[(u8, u32)]) -> Histogram {
        let mut h = Histogram::new();
        for &(v, n) in values {
            for _ in 0..n {
                h.add(v);
            }
        }
        h
    }

    #[test]
    fn percentiles_follow_the_rank_rule() {
        let h = histogram(&[(10, 1), (20, 1), (30, 1), (40, 1)]);
        assert_eq!(h.percentile(0), 10); // at least one value
        assert_eq!(h.percentile(25), 10);
        assert_eq!(h.percentile(26), 20);
        assert_eq!(h.percentile(50), 20);
        assert_eq!(h.percentile(100), 40);
        assert_eq!(Histogram::new().percentile(50), 0);
    }

    #[test]
    fn levels_of_clean_paper_and_ink() {
        // Paper at 0, ink at 200: floor 2 (no spread), ink 200.
        let levels = Levels::of(&histogram(&[(0, 900), (200, 100)])).unwrap();
        assert_eq!(levels, Levels { floor: 2, ink: 200 });
        assert!(!levels.is_ink(51) && levels.is_ink(52));
        assert_eq!(
            (levels.stretch(2), levels.stretch(101), levels.stretch(200), levels.stretch(255)),
            (0, 128, 255, 255)
        );
    }

    #[test]
    fn noise_floor_follows_the_spread() {
        // Paper spread over 0..=10 (median 5, MAD 3): floor 5 + 12 + 2 = 19.
        let paper: Vec<(u8, u32)> = (0..=10).map(|v| (v, 100)).collect();
        let mut values = paper.clone();
        values.push((120, 50));
        assert_eq!(Levels::of(&histogram(&values)).unwrap(), Levels { floor: 19, ink: 120 });
        // Only noise: blank.
        assert_eq!(Levels::of(&histogram(&paper)), None);
        // Ink that rises less than MIN_CONTRAST above the floor: blank.
        values.pop();
        values.push((19 + MIN_CONTRAST - 1, 50));
        assert_eq!(Levels::of(&histogram(&values)), None);
    }
}
