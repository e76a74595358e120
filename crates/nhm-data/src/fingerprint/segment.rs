//! Foreground segmentation: which blocks of the image hold the print.
//!
//! A block is a candidate when (a) its intensity contrast reaches both an absolute floor and a
//! fraction of the image's 90th-percentile block contrast, so that flat white or grey
//! backgrounds fail whatever the sensor's gain, and (b) it shows ridges: coherent gradients or a
//! clear ridge period, so that noisy or textured dark backgrounds fail although their contrast
//! is high. The candidates are then cleaned in the spirit of SourceAFIS: a 3×3 majority vote
//! (twice), removal of islands smaller than [`FrontEndParams::mask_min_island`] of the largest
//! region, filling of enclosed holes (cores and deltas have low coherence but are print), and an
//! optional erosion of [`FrontEndParams::mask_erode`] blocks.

use image::{GrayImage, Luma};

use super::{BlockMap, Features, FrontEndParams, Result};

/// Foreground mask of `img` at pixel resolution: 255 on the print, 0 elsewhere.
///
/// Fails like [`super::analyse`] (too small, nothing print-like, bad parameters).
pub fn segment(img: &GrayImage, params: &FrontEndParams) -> Result<GrayImage> {
    let Features { mask, .. } = super::features(img, params)?;
    Ok(mask)
}

/// Blocks whose contrast passes the absolute and relative floors (see the module docs).
pub(crate) fn contrasted(contrast: &BlockMap<f32>, params: &FrontEndParams) -> BlockMap<bool> {
    let mut sorted = contrast.data.clone();
    sorted.sort_by(f32::total_cmp);
    let p90 = sorted.get(sorted.len() * 9 / 10).copied().unwrap_or(0.0);
    let min_contrast = params.mask_min_contrast.max(params.mask_relative_contrast * p90);
    BlockMap {
        data: contrast
            .data
            .iter()
            .map(|&c| c > 0.0 && c >= min_contrast)
            .collect(),
        ..contrast.like(false)
    }
}

/// Classifies and cleans blocks (see the module docs).
pub(crate) fn block_mask(
    contrasted: &BlockMap<bool>,
    coherence: &BlockMap<f32>,
    quality: &BlockMap<f32>,
    params: &FrontEndParams,
) -> BlockMap<bool> {
    let mut mask = contrasted.like(false);
    for i in 0..mask.data.len() {
        // A clear period alone is enough; coherent gradients need some periodicity too, or a
        // smooth ramp or vignette would pass.
        let (coh, q) = (coherence.data[i], quality.data[i]);
        let ridges = q >= params.mask_min_quality
            || (coh >= params.mask_min_coherence && q >= 0.5 * params.mask_min_quality);
        mask.data[i] = contrasted.data[i] && ridges;
    }
    for _ in 0..2 {
        mask = majority(&mask);
    }
    mask = drop_islands(&mask, params.mask_min_island);
    mask = fill_holes(&mask);
    for _ in 0..params.mask_erode {
        mask = erode(&mask);
    }
    mask
}

/// 3×3 majority vote; blocks outside the grid count as background.
fn majority(m: &BlockMap<bool>) -> BlockMap<bool> {
    let mut out = m.like(false);
    for row in 0..m.rows {
        for col in 0..m.cols {
            let mut n = 0;
            for dr in -1i64..=1 {
                for dc in -1i64..=1 {
                    let (r, c) = (row as i64 + dr, col as i64 + dc);
                    if r >= 0 && c >= 0 && m.get(c as usize, r as usize).copied().unwrap_or(false) {
                        n += 1;
                    }
                }
            }
            // On the image border fewer neighbours exist: keep a block that is set and has
            // at least half of its in-grid neighbourhood set too.
            let inside =
                (row.min(1) + 1 + (m.rows - 1 - row).min(1)) * (col.min(1) + 1 + (m.cols - 1 - col).min(1));
            out.data[row * m.cols + col] = 2 * n > inside;
        }
    }
    out
}

/// 4-connected components of `value` blocks: a label per block (`usize::MAX` for others) and
/// the size of each component.
fn components(m: &BlockMap<bool>, value: bool) -> (Vec<usize>, Vec<usize>) {
    let mut label = vec![usize::MAX; m.data.len()];
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..m.data.len() {
        if m.data[start] != value || label[start] != usize::MAX {
            continue;
        }
        let id = sizes.len();
        let mut size = 0;
        label[start] = id;
        stack.push(start);
        while let Some(i) = stack.pop() {
            size += 1;
            let (row, col) = (i / m.cols, i % m.cols);
            let mut visit = |j: usize| {
                if m.data[j] == value && label[j] == usize::MAX {
                    label[j] = id;
                    stack.push(j);
                }
            };
            if row > 0 {
                visit(i - m.cols);
            }
            if row + 1 < m.rows {
                visit(i + m.cols);
            }
            if col > 0 {
                visit(i - 1);
            }
            if col + 1 < m.cols {
                visit(i + 1);
            }
        }
        sizes.push(size);
    }
    (label, sizes)
}

/// Drops foreground regions smaller than `fraction` of the largest one.
fn drop_islands(m: &BlockMap<bool>, fraction: f32) -> BlockMap<bool> {
    let (label, sizes) = components(m, true);
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let keep = |i: usize| label[i] != usize::MAX && sizes[label[i]] as f32 >= fraction * largest as f32;
    BlockMap {
        data: (0..m.data.len()).map(keep).collect(),
        ..m.like(false)
    }
}

/// Sets background regions that do not touch the grid border (holes in the print).
fn fill_holes(m: &BlockMap<bool>) -> BlockMap<bool> {
    let (label, sizes) = components(m, false);
    let mut touches = vec![false; sizes.len()];
    for (i, &l) in label.iter().enumerate() {
        let (row, col) = (i / m.cols, i % m.cols);
        if l != usize::MAX && (row == 0 || col == 0 || row + 1 == m.rows || col + 1 == m.cols) {
            touches[l] = true;
        }
    }
    BlockMap {
        data: (0..m.data.len())
            .map(|i| m.data[i] || (label[i] != usize::MAX && !touches[label[i]]))
            .collect(),
        ..m.like(false)
    }
}

/// Removes blocks with a 4-neighbour in the background (the grid border does not count).
fn erode(m: &BlockMap<bool>) -> BlockMap<bool> {
    let mut out = m.clone();
    for row in 0..m.rows {
        for col in 0..m.cols {
            let bg = |c: i64, r: i64| {
                r >= 0
                    && c >= 0
                    && (r as usize) < m.rows
                    && (c as usize) < m.cols
                    && !m.data[r as usize * m.cols + c as usize]
            };
            let (r, c) = (row as i64, col as i64);
            if bg(c - 1, r) || bg(c + 1, r) || bg(c, r - 1) || bg(c, r + 1) {
                out.data[row * m.cols + col] = false;
            }
        }
    }
    out
}

/// The block mask at pixel resolution, with edges smoothed by interpolating between block
/// centres and thresholding at one half.
pub(crate) fn pixel_mask(m: &BlockMap<bool>, width: u32, height: u32) -> GrayImage {
    let soft = BlockMap {
        data: m.data.iter().map(|&v| if v { 1.0f32 } else { 0.0 }).collect(),
        ..m.like(0.0f32)
    };
    GrayImage::from_fn(width, height, |x, y| {
        Luma([if soft.sample(x as f32, y as f32) >= 0.5 {
            255
        } else {
            0
        }])
    })
}
