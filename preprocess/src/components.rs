//! Finding the digit among the ink of the analysis grid: 8-connected
//! components, the heaviest one, and the pieces near it that belong to it
//! (docs/PREPROCESSING.md, step 6).

use super::GRID;

/// Most components an analysis grid can have: component seeds cannot touch,
/// so at most every other pixel of every other row starts one.
pub(crate) const MAX_COMPONENTS: usize = GRID.div_ceil(2) * GRID.div_ceil(2);

/// A box of grid (or source) pixels, inclusive bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Zeroable)]
pub(crate) struct Bounds {
    pub(crate) x0: u16,
    pub(crate) y0: u16,
    pub(crate) x1: u16,
    pub(crate) y1: u16,
}

impl Bounds {
    const EMPTY: Bounds = Bounds { x0: u16::MAX, y0: u16::MAX, x1: 0, y1: 0 };

    fn add(&mut self, x: u16, y: u16) {
        self.x0 = self.x0.min(x);
        self.y0 = self.y0.min(y);
        self.x1 = self.x1.max(x);
        self.y1 = self.y1.max(y);
    }

    fn union(&mut self, other: Bounds) {
        self.x0 = self.x0.min(other.x0);
        self.y0 = self.y0.min(other.y0);
        self.x1 = self.x1.max(other.x1);
        self.y1 = self.y1.max(other.y1);
    }

    pub(crate) fn width(&self) -> usize {
        (self.x1 - self.x0) as usize + 1
    }

    pub(crate) fn height(&self) -> usize {
        (self.y1 - self.y0) as usize + 1
    }

    pub(crate) fn longer_side(&self) -> usize {
        self.width().max(self.height())
    }

    /// Empty pixels between two boxes along the axis where they are farthest
    /// apart (0 when they touch or overlap).
    fn gap(&self, other: &Bounds) -> usize {
        let apart = |a0: u16, a1: u16, b0: u16, b1: u16| {
            (b0 as i32 - a1 as i32 - 1).max(a0 as i32 - b1 as i32 - 1).max(0) as usize
        };
        apart(self.x0, self.x1, other.x0, other.x1).max(apart(self.y0, self.y1, other.y0, other.y1))
    }
}

/// Union-find over component labels, with each root's ink mass and bounds.
/// All zeros is a valid empty state.
#[derive(Clone, bytemuck::Zeroable)]
pub(crate) struct Components {
    parent: [u16; MAX_COMPONENTS],
    mass: [u32; MAX_COMPONENTS],
    bounds: [Bounds; MAX_COMPONENTS],
    /// Labels of the previous and the current grid row (0 = no ink;
    /// otherwise label + 1).
    rows: [[u16; GRID]; 2],
    count: usize,
}

/// The digit: the heaviest component and the pieces absorbed into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) bounds: Bounds,
    pub(crate) mass: u32,
    /// Components left out that hold at least 1/16 of the heaviest's mass:
    /// other marks of about the digit's weight.
    pub(crate) rivals: usize,
}

impl Components {
    pub(crate) const fn new() -> Components {
        Components {
            parent: [0; MAX_COMPONENTS],
            mass: [0; MAX_COMPONENTS],
            bounds: [Bounds::EMPTY; MAX_COMPONENTS],
            rows: [[0; GRID]; 2],
            count: 0,
        }
    }

    /// Labels the ink pixels (`is_ink`) of a `width × height` grid of ink
    /// values, weighting each by its value.
    pub(crate) fn label(&mut self, grid: &[u8], width: usize, height: usize, is_ink: impl Fn(u8) -> bool) {
        self.count = 0;
        self.rows = [[0; GRID]; 2];
        for y in 0..height {
            let (prev, cur) = if y % 2 == 0 { (1, 0) } else { (0, 1) };
            self.rows[cur][..width].fill(0);
            for x in 0..width {
                let v = grid[y * width + x];
                if !is_ink(v) {
                    continue;
                }
                // Already visited neighbours: west, north-west, north, north-east.
                let mut neighbours = [0u16; 4];
                if x > 0 {
                    neighbours[0] = self.rows[cur][x - 1];
                    neighbours[1] = self.rows[prev][x - 1];
                }
                neighbours[2] = self.rows[prev][x];
                if x + 1 < width {
                    neighbours[3] = self.rows[prev][x + 1];
                }
                let mut root = None;
                for &n in neighbours.iter().filter(|&&n| n != 0) {
                    let r = self.find(n - 1);
                    root = Some(match root {
                        None => r,
                        Some(other) => self.union(other, r),
                    });
                }
                let root = root.unwrap_or_else(|| self.make());
                self.mass[root as usize] += v as u32;
                self.bounds[root as usize].add(x as u16, y as u16);
                self.rows[cur][x] = root + 1;
            }
        }
    }

    fn make(&mut self) -> u16 {
        // MAX_COMPONENTS bounds the seeds of a GRID × GRID grid (see there).
        let label = self.count as u16;
        self.parent[self.count] = label;
        self.mass[self.count] = 0;
        self.bounds[self.count] = Bounds::EMPTY;
        self.count += 1;
        label
    }

    fn find(&mut self, mut label: u16) -> u16 {
        while self.parent[label as usize] != label {
            let grandparent = self.parent[self.parent[label as usize] as usize];
            self.parent[label as usize] = grandparent;
            label = grandparent;
        }
        label
    }

    /// Joins two roots under the older label, merging their statistics.
    fn union(&mut self, a: u16, b: u16) -> u16 {
        if a == b {
            return a;
        }
        let (root, child) = (a.min(b), a.max(b));
        self.parent[child as usize] = root;
        self.mass[root as usize] += self.mass[child as usize];
        let child_bounds = self.bounds[child as usize];
        self.bounds[root as usize].union(child_bounds);
        root
    }

    /// The total ink mass of all components.
    pub(crate) fn total_mass(&self) -> u64 {
        (0..self.count).filter(|&i| self.parent[i] as usize == i).map(|i| self.mass[i] as u64).sum()
    }

    /// The digit: the heaviest component (the first in raster order on
    /// ties) and every component holding at least 1/16 of its mass whose box
    /// lies within a quarter of the heaviest's longer side from the
    /// heaviest's box (a detached bar, a broken stroke). Measured from the
    /// heaviest alone, so that a texture of specks does not snowball into
    /// one "digit".
    pub(crate) fn digit(&self) -> Option<Found> {
        let roots = || (0..self.count).filter(|&i| self.parent[i] as usize == i);
        let main = roots().fold(None, |best: Option<usize>, i| match best {
            Some(b) if self.mass[b] >= self.mass[i] => Some(b),
            _ => Some(i),
        })?;
        let threshold = self.mass[main].div_ceil(16);
        let core = self.bounds[main];
        let reach = (core.longer_side() / 4).max(1);
        let mut found = Found { bounds: core, mass: self.mass[main], rivals: 0 };
        for i in roots().filter(|&i| i != main && self.mass[i] >= threshold) {
            if core.gap(&self.bounds[i]) <= reach {
                found.bounds.union(self.bounds[i]);
                found.mass += self.mass[i];
            } else {
                found.rivals += 1;
            }
        }
        Some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Components {
        /// The components' masses, sorted.
        fn masses(&self) -> Vec<u32> {
            let mut m: Vec<u32> =
                (0..self.count).filter(|&i| self.parent[i] as usize == i).map(|i| self.mass[i]).collect();
            m.sort();
            m
        }
    }

    fn components(rows: &[&str]) -> Components {
        let (w, h) = (rows[0].len(), rows.len());
        let value = |b| match b {
            b'#' => 100,
            b'+' => 10,
            _ => 0,
        };
        let grid: Vec<u8> = rows.iter().flat_map(|r| r.bytes().map(value)).collect();
        let mut c = Box::new(Components::new());
        c.label(&grid, w, h, |v| v > 0);
        *c
    }

    #[test]
    fn eight_connected_shapes_are_one_component() {
        let c = components(&[
            "#...#", //
            ".#.#.", //
            "..#..", //
            ".....", //
            "#....",
        ]);
        assert_eq!(c.masses(), [100, 500]);
        // The lone pixel is a component of its own, near enough to join the digit.
        let digit = c.digit().unwrap();
        assert_eq!(digit.mass, 600);
        assert_eq!(digit.bounds, Bounds { x0: 0, y0: 0, x1: 4, y1: 4 });
    }

    #[test]
    fn u_shapes_merge_when_their_arms_meet() {
        let c = components(&[
            "#.#.#", //
            "#.#.#", //
            "#####",
        ]);
        assert_eq!(c.masses(), [1100]);
    }

    #[test]
    fn near_heavy_pieces_join_and_far_specks_do_not() {
        let c = components(&[
            "###...........", // a detached bar one row above: joins
            "..............",
            "####..........",
            "#..#..........",
            "#..#.........#", // a speck far away: stays out
            "####..........",
            "..............",
            ".+............", // a faint piece just below, under 1/16 of the mass: stays out
        ]);
        assert_eq!(c.total_mass(), 1610);
        let digit = c.digit().unwrap();
        assert_eq!(digit.bounds, Bounds { x0: 0, y0: 0, x1: 3, y1: 5 });
        assert_eq!(digit.mass, 1500);
    }

    /// Component masses by flood fill, the slow obvious way.
    fn flood_masses(grid: &[u8], w: usize, h: usize) -> Vec<u32> {
        let mut seen = vec![false; w * h];
        let mut masses = Vec::new();
        for start in 0..w * h {
            if grid[start] == 0 || seen[start] {
                continue;
            }
            let (mut stack, mut mass) = (vec![start], 0u32);
            seen[start] = true;
            while let Some(i) = stack.pop() {
                mass += grid[i] as u32;
                let (x, y) = ((i % w) as isize, (i / w) as isize);
                for (dx, dy) in [(-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)] {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx >= 0 && ny >= 0 && (nx as usize) < w && (ny as usize) < h {
                        let j = ny as usize * w + nx as usize;
                        if grid[j] != 0 && !seen[j] {
                            seen[j] = true;
                            stack.push(j);
                        }
                    }
                }
            }
            masses.push(mass);
        }
        masses.sort();
        masses
    }

    #[test]
    fn labelling_agrees_with_a_flood_fill_on_random_grids() {
        let mut state = 12345u32;
        for density in [5u32, 20, 35, 45, 60] {
            for &(w, h) in &[(37usize, 23usize), (128, 128), (1, 50), (50, 1)] {
                let grid: Vec<u8> = (0..w * h)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 17;
                        state ^= state << 5;
                        if state % 100 < density {
                            (state >> 8) as u8 | 1
                        } else {
                            0
                        }
                    })
                    .collect();
                let mut c = Box::new(Components::new());
                c.label(&grid, w, h, |v| v > 0);
                assert_eq!(c.masses(), flood_masses(&grid, w, h), "{w}×{h} at {density} %");
            }
        }
    }

    #[test]
    fn the_worst_case_grid_fits() {
        // Every other pixel of every other row: the most components possible.
        let grid: Vec<u8> =
            (0..GRID * GRID).map(|i| ((i / GRID).is_multiple_of(2) && (i % GRID).is_multiple_of(2)) as u8).collect();
        let mut c = Box::new(Components::new());
        c.label(&grid, GRID, GRID, |v| v > 0);
        assert_eq!(c.count, MAX_COMPONENTS);
        assert_eq!(c.total_mass(), MAX_COMPONENTS as u64);
    }
}
