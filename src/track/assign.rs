//! Optimal assignment (the Hungarian problem) on a rectangular cost matrix. Pure.
//!
//! The solver is the shortest-augmenting-path form of Kuhn-Munkres with row and column
//! potentials (as in Jonker-Volgenant): rows are added one at a time, and each addition grows
//! a Dijkstra-like tree over the columns on reduced costs until it reaches a free column, then
//! flips the path. O(rows² · cols) time, O(cols) extra memory per row.
//!
//! Tracking needs one more thing than the textbook problem: a pair may simply be too poor to
//! match (IoU under the threshold, other class). [`match_below`] handles that the way ByteTrack's
//! `lapjv(..., cost_limit)` does, without growing the matrix: see its doc.

/// A row-major cost matrix: `costs[r * cols + c]` is the cost of giving row `r` column `c`.
/// Non-finite entries (NaN, ±∞) mark a forbidden pair.
#[derive(Debug, Clone, PartialEq)]
pub struct CostMatrix {
    pub rows: usize,
    pub cols: usize,
    pub costs: Vec<f64>,
}

impl CostMatrix {
    /// A `rows` × `cols` matrix filled by `f(row, col)`.
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> f64) -> Self {
        let mut costs = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for c in 0..cols {
                costs.push(f(r, c));
            }
        }
        CostMatrix { rows, cols, costs }
    }

    /// The cost of `(row, col)`; forbidden (∞) when out of range or when `costs` is short.
    pub fn get(&self, row: usize, col: usize) -> f64 {
        if row >= self.rows || col >= self.cols {
            return f64::INFINITY;
        }
        self.costs.get(row * self.cols + col).copied().unwrap_or(f64::INFINITY)
    }
}

/// Minimum-cost assignment: returns, for each row, the column it gets (`None` when it gets
/// none). Every pair returned is allowed (finite cost). Among all assignments the result first
/// maximises the number of allowed pairs, then minimises their total cost.
pub fn min_cost_assignment(m: &CostMatrix) -> Vec<Option<usize>> {
    let (rows, cols) = (m.rows, m.cols);
    let mut out = vec![None; rows];
    if rows == 0 || cols == 0 {
        return out;
    }
    // Forbidden pairs become one large finite cost, larger than any difference the allowed
    // pairs of a full assignment can make, so the solver never trades an allowed pair for a
    // forbidden one, and the arithmetic stays finite (no ∞ - ∞ in the potentials).
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for r in 0..rows {
        for c in 0..cols {
            let v = m.get(r, c);
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
    }
    if !lo.is_finite() {
        return out; // nothing allowed at all
    }
    let k = rows.min(cols) as f64;
    let forbidden = hi + (hi - lo + 1.0) * (k + 1.0);
    if !forbidden.is_finite() {
        // Costs so large that the padding overflows: refuse rather than produce garbage.
        return out;
    }
    // The solver wants rows <= cols; solve the transpose otherwise.
    let transpose = rows > cols;
    let (n, w) = if transpose { (cols, rows) } else { (rows, cols) };
    let cost = |i: usize, j: usize| {
        let v = if transpose { m.get(j, i) } else { m.get(i, j) };
        // Shift by `lo` so every cost is >= 0: keeps potentials small and well conditioned.
        if v.is_finite() { v - lo } else { forbidden - lo }
    };
    let owner = solve(n, w, cost);
    for (j, row) in owner.iter().enumerate() {
        if let Some(i) = *row {
            let (r, c) = if transpose { (j, i) } else { (i, j) };
            if m.get(r, c).is_finite() {
                out[r] = Some(c);
            }
        }
    }
    out
}

/// Matching with a cost limit, ByteTrack style: pairs costing more than `limit` (or forbidden)
/// are never matched, and the result minimises
/// `Σ matched cost + limit/2 · (unmatched rows + unmatched cols)`, which is what
/// `lapjv(cost, extend_cost=True, cost_limit=limit)` minimises. So a pair at the limit is worth
/// as much as leaving both sides free, and one good pair can beat two mediocre ones.
///
/// That objective equals `Σ matched (cost - limit)` plus a constant, so it is solved as a plain
/// assignment on `cost - limit` (≤ 0) with non-matchable pairs at 0 ("free"), dropping the
/// pairs that land on a 0 from a non-matchable entry. Returns `(row, col)` pairs sorted by row.
pub fn match_below(m: &CostMatrix, limit: f64) -> Vec<(usize, usize)> {
    if !limit.is_finite() {
        return Vec::new();
    }
    let matchable = |v: f64| v.is_finite() && v <= limit;
    let shifted = CostMatrix::from_fn(m.rows, m.cols, |r, c| {
        let v = m.get(r, c);
        if matchable(v) { v - limit } else { 0.0 }
    });
    min_cost_assignment(&shifted)
        .into_iter()
        .enumerate()
        .filter_map(|(r, c)| c.map(|c| (r, c)))
        .filter(|&(r, c)| matchable(m.get(r, c)))
        .collect()
}

/// Shortest augmenting path solver for `n <= w`, costs finite and >= 0. Returns, for each
/// column, the row that owns it.
fn solve(n: usize, w: usize, cost: impl Fn(usize, usize) -> f64) -> Vec<Option<usize>> {
    // Index 0 of the column arrays is a virtual column that holds the row being inserted;
    // real column j lives at j + 1. Row potentials are indexed by row, column potentials by
    // (shifted) column.
    let mut row_pot = vec![0.0f64; n];
    let mut col_pot = vec![0.0f64; w + 1];
    let mut owner: Vec<Option<usize>> = vec![None; w + 1];
    let mut back = vec![0usize; w + 1];
    let mut dist = vec![0.0f64; w + 1];
    let mut done = vec![false; w + 1];

    for new_row in 0..n {
        owner[0] = Some(new_row);
        dist.fill(f64::INFINITY);
        done.fill(false);
        let mut cur_col = 0usize;
        // Grow the tree until it reaches a free column.
        loop {
            done[cur_col] = true;
            let Some(i) = owner[cur_col] else { break };
            let mut best = f64::INFINITY;
            let mut best_col = None;
            for j in 1..=w {
                if done[j] {
                    continue;
                }
                let reduced = cost(i, j - 1) - row_pot[i] - col_pot[j];
                if reduced < dist[j] {
                    dist[j] = reduced;
                    back[j] = cur_col;
                }
                if dist[j] < best {
                    best = dist[j];
                    best_col = Some(j);
                }
            }
            // With n <= w and finite costs there is always an unvisited column; the guard
            // only keeps a logic error from looping forever.
            let Some(next) = best_col else { break };
            for j in 0..=w {
                if done[j] {
                    if let Some(r) = owner[j] {
                        row_pot[r] += best;
                    }
                    col_pot[j] -= best;
                } else {
                    dist[j] -= best;
                }
            }
            cur_col = next;
            if owner[cur_col].is_none() {
                break;
            }
        }
        // Flip the alternating path back to the virtual column.
        while cur_col != 0 {
            let prev = back[cur_col];
            owner[cur_col] = owner[prev];
            cur_col = prev;
        }
    }
    owner.split_off(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: &[&[f64]]) -> CostMatrix {
        let cols = rows.first().map_or(0, |r| r.len());
        CostMatrix::from_fn(rows.len(), cols, |r, c| rows[r][c])
    }

    fn total(m: &CostMatrix, a: &[Option<usize>]) -> f64 {
        a.iter().enumerate().filter_map(|(r, c)| c.map(|c| m.get(r, c))).sum()
    }

    /// Exhaustive search over all assignments of a small matrix: (allowed pairs, min cost).
    fn brute_force(m: &CostMatrix) -> (usize, f64) {
        fn go(m: &CostMatrix, r: usize, used: &mut Vec<bool>, pairs: usize, cost: f64, best: &mut (usize, f64)) {
            if r == m.rows {
                if pairs > best.0 || (pairs == best.0 && cost < best.1 - 1e-9) {
                    *best = (pairs, cost);
                }
                return;
            }
            go(m, r + 1, used, pairs, cost, best);
            for c in 0..m.cols {
                let v = m.get(r, c);
                if !used[c] && v.is_finite() {
                    used[c] = true;
                    go(m, r + 1, used, pairs + 1, cost + v, best);
                    used[c] = false;
                }
            }
        }
        let mut best = (0, f64::INFINITY);
        go(m, 0, &mut vec![false; m.cols], 0, 0.0, &mut best);
        if best.0 == 0 {
            best.1 = 0.0;
        }
        best
    }

    #[test]
    fn known_square_matrix() {
        // Optimum: 0→1 (1), 1→0 (2), 2→2 (2) = 5.
        let m = matrix(&[&[4.0, 1.0, 3.0], &[2.0, 0.0, 5.0], &[3.0, 2.0, 2.0]]);
        let a = min_cost_assignment(&m);
        assert_eq!(a, vec![Some(1), Some(0), Some(2)]);
        assert_eq!(total(&m, &a), 5.0);
    }

    #[test]
    fn beats_greedy() {
        // Greedy takes the global minimum (0,0)=1 first and is then forced into (1,1)=100:
        // 101. The optimum crosses: (0,1)=2 + (1,0)=2 = 4.
        let m = matrix(&[&[1.0, 2.0], &[2.0, 100.0]]);
        assert_eq!(min_cost_assignment(&m), vec![Some(1), Some(0)]);
    }

    #[test]
    fn rectangular_both_ways() {
        let wide = matrix(&[&[5.0, 1.0, 9.0, 3.0], &[1.0, 8.0, 2.0, 7.0]]);
        assert_eq!(min_cost_assignment(&wide), vec![Some(1), Some(0)]);
        let tall = matrix(&[&[5.0, 1.0], &[1.0, 8.0], &[9.0, 2.0], &[3.0, 7.0]]);
        assert_eq!(min_cost_assignment(&tall), vec![Some(1), Some(0), None, None]);
    }

    #[test]
    fn empty_inputs() {
        assert!(min_cost_assignment(&matrix(&[])).is_empty());
        let no_cols = CostMatrix { rows: 3, cols: 0, costs: vec![] };
        assert_eq!(min_cost_assignment(&no_cols), vec![None, None, None]);
        assert!(match_below(&no_cols, 0.5).is_empty());
        let no_rows = CostMatrix { rows: 0, cols: 3, costs: vec![] };
        assert!(min_cost_assignment(&no_rows).is_empty());
    }

    #[test]
    fn forbidden_pairs_are_never_returned_and_cardinality_wins() {
        let inf = f64::INFINITY;
        // Row 0 can only take column 0; the cheap (1,0) must give way so both rows match.
        let m = matrix(&[&[10.0, inf], &[0.0, 50.0]]);
        assert_eq!(min_cost_assignment(&m), vec![Some(0), Some(1)]);
        // Everything forbidden, including NaN.
        let m = matrix(&[&[inf, f64::NAN], &[f64::NEG_INFINITY, inf]]);
        assert_eq!(min_cost_assignment(&m), vec![None, None]);
        // A row with no allowed column stays unassigned.
        let m = matrix(&[&[inf, inf], &[1.0, 2.0], &[2.0, 1.0]]);
        assert_eq!(min_cost_assignment(&m), vec![None, Some(0), Some(1)]);
    }

    #[test]
    fn match_below_rejects_over_limit_and_prefers_one_good_pair() {
        // (0,1) is over the limit: never matched even though it is the only option for row 0.
        let m = matrix(&[&[0.9, 0.95], &[0.1, 0.85]]);
        assert_eq!(match_below(&m, 0.8), vec![(1, 0)]);
        // Two mediocre pairs (0.75 + 0.75 = 1.5) cost more than one perfect pair plus two free
        // sides (0 + 0.8): lapjv's cost_limit takes the single good pair, and so do we.
        let m = matrix(&[&[0.0, 0.75], &[0.75, 2.0]]);
        assert_eq!(match_below(&m, 0.8), vec![(0, 0)]);
        // At the limit a pair is still allowed.
        assert_eq!(match_below(&matrix(&[&[0.8]]), 0.8), vec![(0, 0)]);
        assert!(match_below(&matrix(&[&[0.1]]), f64::NAN).is_empty());
    }

    /// Property: on random small matrices with forbidden entries the solver matches the
    /// brute-force optimum (same number of allowed pairs, same cost).
    #[test]
    fn property_matches_brute_force() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f64) / ((1u64 << 31) as f64)
        };
        for _ in 0..500 {
            let rows = (next() * 6.0) as usize;
            let cols = (next() * 6.0) as usize;
            let m = CostMatrix::from_fn(rows, cols, |_, _| {
                if next() < 0.2 { f64::INFINITY } else { (next() * 20.0).floor() - 5.0 }
            });
            let a = min_cost_assignment(&m);
            let mut seen = vec![false; cols];
            for c in a.iter().flatten() {
                assert!(!seen[*c], "column used twice");
                seen[*c] = true;
            }
            let pairs = a.iter().flatten().count();
            let (best_pairs, best_cost) = brute_force(&m);
            assert_eq!(pairs, best_pairs, "{m:?}");
            assert!((total(&m, &a) - best_cost).abs() < 1e-9, "{m:?}: {a:?}");
        }
    }
}
