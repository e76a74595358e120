//! Singular points from the orientation field: where a print's ridges turn around (a core) or
//! meet from three directions (a delta), found by the Poincaré index (Kawagoe & Tojo 1984;
//! Maltoni et al., Handbook of Fingerprint Recognition, §3.6).
//!
//! The index of a block is the total turn of the ridge orientation along the closed path through
//! its eight neighbours, each step taken as the smallest turn (orientations are modulo π), over
//! 2π: +½ at a core, −½ at a delta, 0 elsewhere. It is a topological quantity, so it does not
//! depend on whether y grows up or down as long as angles and the path use the same axes.

use std::f32::consts::{FRAC_PI_2, PI};

use super::BlockMap;

/// The eight neighbours of a block in the order of increasing angle `atan2(dy, dx)`.
const RING: [(i64, i64); 8] = [
    (1, 0),
    (1, 1),
    (0, 1),
    (-1, 1),
    (-1, 0),
    (-1, -1),
    (0, -1),
    (1, -1),
];

/// The two kinds of singular point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ridges turn around it (Poincaré index +½): the centre of a loop or whorl.
    Core,
    /// Ridges meet from three directions (index −½).
    Delta,
}

/// A singular point: where, and which kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SingularPoint {
    /// Centre of the block, in pixels.
    pub x: f32,
    /// Centre of the block, in pixels.
    pub y: f32,
    /// Core or delta.
    pub kind: Kind,
}

/// The singular points of an orientation field whose eight-neighbourhood lies on the print
/// (`mask`); adjacent blocks of the same kind are merged into their mean position.
pub fn singular_points(orientation: &BlockMap<f32>, mask: &BlockMap<bool>) -> Vec<SingularPoint> {
    let mut raw: Vec<(usize, usize, Kind)> = Vec::new();
    for r in 1..orientation.rows.saturating_sub(1) {
        for c in 1..orientation.cols.saturating_sub(1) {
            let on_print = RING
                .iter()
                .chain(&[(0, 0)])
                .all(|&(dx, dy)| mask.get(offset(c, dx), offset(r, dy)).copied().unwrap_or(false));
            if !on_print {
                continue;
            }
            let angle = |i: usize| {
                let (dx, dy) = RING[i % 8];
                orientation
                    .get(offset(c, dx), offset(r, dy))
                    .copied()
                    .unwrap_or(0.0)
            };
            let mut total = 0.0f32;
            for i in 0..8 {
                let mut d = angle(i + 1) - angle(i);
                if d > FRAC_PI_2 {
                    d -= PI;
                } else if d < -FRAC_PI_2 {
                    d += PI;
                }
                total += d;
            }
            if (total - PI).abs() < FRAC_PI_2 {
                raw.push((c, r, Kind::Core));
            } else if (total + PI).abs() < FRAC_PI_2 {
                raw.push((c, r, Kind::Delta));
            }
        }
    }
    // Merge 8-connected blocks of one kind.
    let mut seen = vec![false; raw.len()];
    let mut out = Vec::new();
    for i in 0..raw.len() {
        if seen[i] {
            continue;
        }
        seen[i] = true;
        let mut members = vec![i];
        let mut k = 0;
        while k < members.len() {
            let (c, r, kind) = raw[members[k]];
            for (j, &(c2, r2, kind2)) in raw.iter().enumerate() {
                if !seen[j] && kind2 == kind && c.abs_diff(c2) <= 1 && r.abs_diff(r2) <= 1 {
                    seen[j] = true;
                    members.push(j);
                }
            }
            k += 1;
        }
        let n = members.len() as f32;
        let (sx, sy) = members.iter().fold((0.0, 0.0), |(sx, sy), &m| {
            let (x, y) = orientation.centre(raw[m].0, raw[m].1);
            (sx + x, sy + y)
        });
        out.push(SingularPoint {
            x: sx / n,
            y: sy / n,
            kind: raw[i].2,
        });
    }
    out
}

/// The reference point a crop centres on: the core nearest `near` (the print's centre), or
/// `None` when the field shows no core (arches, or a print too noisy to say).
pub fn reference_core(points: &[SingularPoint], near: (f32, f32)) -> Option<(f32, f32)> {
    points
        .iter()
        .filter(|p| p.kind == Kind::Core)
        .min_by(|a, b| {
            let d = |p: &SingularPoint| (p.x - near.0).powi(2) + (p.y - near.1).powi(2);
            d(a).total_cmp(&d(b))
        })
        .map(|p| (p.x, p.y))
}

fn offset(v: usize, d: i64) -> usize {
    (v as i64 + d).max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A field of blocks whose ridge direction is `f(x, y)` at each block centre.
    fn field(cols: usize, rows: usize, f: impl Fn(f32, f32) -> f32) -> (BlockMap<f32>, BlockMap<bool>) {
        let mut o = BlockMap::new(cols as u32 * 16, rows as u32 * 16, 16, 0.0f32);
        for r in 0..rows {
            for c in 0..cols {
                let (x, y) = o.centre(c, r);
                o.data[r * cols + c] = f(x, y).rem_euclid(PI);
            }
        }
        let mask = o.like(true);
        (o, mask)
    }

    #[test]
    fn a_half_turn_field_has_one_core_and_its_mirror_one_delta() {
        let (cx, cy) = (5.3 * 16.0, 4.6 * 16.0);
        let (o, m) = field(11, 9, |x, y| 0.5 * (y - cy).atan2(x - cx));
        let pts = singular_points(&o, &m);
        assert_eq!(pts.len(), 1, "{pts:?}");
        assert_eq!(pts[0].kind, Kind::Core);
        assert!(
            (pts[0].x - cx).abs() < 16.0 && (pts[0].y - cy).abs() < 16.0,
            "{pts:?}"
        );
        assert_eq!(reference_core(&pts, (0.0, 0.0)), Some((pts[0].x, pts[0].y)));
        let (o, m) = field(11, 9, |x, y| -0.5 * (y - cy).atan2(x - cx));
        let pts = singular_points(&o, &m);
        assert_eq!(pts.len(), 1, "{pts:?}");
        assert_eq!(pts[0].kind, Kind::Delta);
        assert_eq!(reference_core(&pts, (0.0, 0.0)), None);
    }

    #[test]
    fn parallel_ridges_and_masked_fields_have_none() {
        let (o, m) = field(8, 8, |_, _| 0.3);
        assert!(singular_points(&o, &m).is_empty());
        let (o, _) = field(8, 8, |x, y| 0.5 * (y - 60.0).atan2(x - 60.0));
        let off = o.like(false);
        assert!(singular_points(&o, &off).is_empty());
        let tiny = BlockMap::new(16, 16, 16, 0.0f32);
        assert!(singular_points(&tiny, &tiny.like(true)).is_empty());
    }
}
