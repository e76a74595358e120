//! The face detector: dlib's CNN face detector (`mmod_human_face_detector`, CC0; Davis King's
//! max-margin object detection network) on burn. A fully convolutional network scores every
//! position of an image pyramid (each level 5/6 of the one before); a score above the threshold
//! is a face of the detector window's size centred at that position of its level. Overlapping
//! detections are suppressed as dlib does (keep the best, drop any that overlaps a kept one).
//!
//! dlib tiles the pyramid levels into one image; here each level runs on its own, padded with
//! black as dlib's tiles are, so scores agree with dlib's except where its tiles touch.

use std::path::Path;

use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use nhm_data::face::FaceBox;
use nhm_data::GrayImage;
use serde::{Deserialize, Serialize};

use super::backbone::FoldedConv;
use super::weights::TensorFile;
use crate::{compute_device, Error, Result};

const FORMAT: &str = "nhm-dlib-mmod/1";
/// dlib's mean RGB (`input_rgb_image_pyramid`), used when the metadata does not state it.
const DLIB_MEANS: [f32; 3] = [122.782, 117.001, 104.298];

/// One face found in an image, in that image's pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The face's box.
    pub rect: FaceBox,
    /// The network's score (dlib's detection confidence): above 0 is a face at dlib's own
    /// operating point.
    pub confidence: f32,
}

/// A detector window: the size of the faces the network scores, at each pyramid level.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
struct Window {
    width: f64,
    height: f64,
}

/// The layers (input side first): (conv, affine, shape [cout, cin, k, k], stride).
const LAYERS: [(&str, Option<&str>, [usize; 4], usize); 7] = [
    ("conv0", Some("affine0"), [16, 3, 5, 5], 2),
    ("conv1", Some("affine1"), [32, 16, 5, 5], 2),
    ("conv2", Some("affine2"), [32, 32, 5, 5], 2),
    ("conv3", Some("affine3"), [45, 32, 5, 5], 1),
    ("conv4", Some("affine4"), [45, 45, 5, 5], 1),
    ("conv5", Some("affine5"), [45, 45, 5, 5], 1),
    ("conv6", None, [1, 45, 9, 9], 1),
];

/// dlib's CNN face detector on burn (see the module docs).
#[derive(Debug, Clone)]
pub struct FaceDetector {
    convs: Vec<FoldedConv>,
    windows: Vec<Window>,
    means: [f32; 3],
    /// Pixels of black around each pyramid level (dlib's outer padding of its tiled pyramid).
    padding: usize,
    /// Two detections overlap (the lower is dropped) above this intersection over union...
    nms_iou: f64,
    /// ...or when this share of either is covered by the other.
    nms_covered: f64,
    /// Output position → input position: `scale · p + offset`.
    scale: f64,
    offset: f64,
    device: Device,
}

impl FaceDetector {
    /// Loads `detector.safetensors` as written by `scripts/convert-dlib-face.py`.
    ///
    /// Errors: [`Error::MissingFile`], [`Error::Weights`] for another format or unreadable
    /// options, [`Error::ConfigMismatch`] naming a missing or misshapen tensor.
    pub fn load(path: &Path) -> Result<Self> {
        let file = TensorFile::read(path)?;
        let bad = |reason: String| Error::Weights {
            path: path.into(),
            reason,
        };
        if file.meta("format") != Some(FORMAT) {
            return Err(bad(format!(
                "format tag {:?}, expected {FORMAT:?} (convert dlib's model with scripts/convert-dlib-face.py)",
                file.meta("format")
            )));
        }
        let device = compute_device();
        let convs = LAYERS
            .iter()
            .map(|(c, a, shape, stride)| FoldedConv::read(&file, c, *a, *shape, *stride, &device))
            .collect::<Result<Vec<_>>>()?;
        let options: serde_json::Value = serde_json::from_str(file.meta("loss_mmod").unwrap_or("null"))
            .map_err(|e| bad(format!("metadata loss_mmod: {e}")))?;
        let windows: Vec<Window> = serde_json::from_value(options["detector_windows"].clone())
            .map_err(|e| bad(format!("metadata loss_mmod.detector_windows: {e}")))?;
        if windows.is_empty() || windows.iter().any(|w| !(w.width >= 1.0 && w.height >= 1.0)) {
            return Err(bad(format!("implausible detector windows {windows:?}")));
        }
        let nms_iou = options["overlaps_nms"]["iou_thresh"].as_f64().unwrap_or(0.4);
        let nms_covered = options["overlaps_nms"]["percent_covered_thresh"]
            .as_f64()
            .unwrap_or(1.0);
        let input: serde_json::Value = serde_json::from_str(file.meta("input").unwrap_or("null"))
            .map_err(|e| bad(format!("metadata input: {e}")))?;
        let mean = |k: &str, i: usize| input[k].as_f64().map_or(DLIB_MEANS[i], |v| v as f32);
        let means = [mean("avg_red", 0), mean("avg_green", 1), mean("avg_blue", 2)];
        let padding = input["pyramid_outer_padding"].as_u64().unwrap_or(11) as usize;
        // dlib maps an output position back through each layer as p·stride − pad + k/2.
        let (mut scale, mut offset) = (1.0, 0.0);
        for (_, _, shape, stride) in LAYERS.iter().rev() {
            let k = shape[2];
            let pad = if *stride == 1 { k / 2 } else { 0 };
            // p_in = stride·p + (k/2 − pad), composed from the output backwards.
            offset = offset * *stride as f64 + (k / 2) as f64 - pad as f64;
            scale *= *stride as f64;
        }
        Ok(FaceDetector {
            convs,
            windows,
            means,
            padding,
            nms_iou,
            nms_covered,
            scale,
            offset,
            device,
        })
    }

    /// The side of the smallest face the detector finds in an image enlarged `2^upsample` times
    /// (the smallest window side divided by the enlargement).
    pub fn min_face(&self, upsample: u32) -> f64 {
        let w = self
            .windows
            .iter()
            .map(|w| w.width.min(w.height))
            .fold(f64::INFINITY, f64::min);
        w / f64::from(1u32 << upsample.min(4))
    }

    /// Faces in `img`, best first, after non-maximum suppression; the image is first enlarged
    /// `2^upsample` times (dlib's `upsample_num_times`: smaller faces are found at higher cost).
    /// Only positions scoring above `threshold` count (dlib's default is 0). Boxes are dlib's:
    /// integer corners, right and bottom inclusive, possibly partly outside the image.
    pub fn detect(&self, img: &GrayImage, upsample: u32, threshold: f32) -> Result<Vec<Detection>> {
        let (w0, h0) = img.dimensions();
        if w0 == 0 || h0 == 0 {
            return Err(Error::invalid("image", "an empty image has no face"));
        }
        let mut pixels: Vec<f32> = img.as_raw().iter().map(|&v| f32::from(v)).collect();
        let (mut w, mut h) = (w0 as usize, h0 as usize);
        for _ in 0..upsample.min(4) {
            // dlib's pyramid_up: (2H + 1) × (2W + 2), bilinear, truncated to whole grey levels.
            let (nw, nh) = (2 * w + 2, 2 * h + 1);
            pixels = resize_bilinear(&pixels, w, h, nw, nh);
            pixels.iter_mut().for_each(|v| *v = v.trunc());
            (w, h) = (nw, nh);
        }
        let mut candidates = self.score_pyramid(&pixels, w, h, threshold, upsample.min(4))?;
        candidates.sort_by(|a: &Detection, b| b.confidence.total_cmp(&a.confidence));
        let mut kept: Vec<Detection> = Vec::new();
        for c in candidates {
            if !kept.iter().any(|k| self.overlaps(&k.rect, &c.rect)) {
                kept.push(c);
            }
        }
        Ok(kept)
    }

    /// Tiles the pyramid of a `w`×`h` image into one tensor as dlib does, runs the network
    /// once, and returns every position above `threshold` as a candidate in the coordinates of
    /// the image before its `upsample` enlargements.
    fn score_pyramid(
        &self,
        pixels: &[f32],
        w: usize,
        h: usize,
        threshold: f32,
        upsample: u32,
    ) -> Result<Vec<Detection>> {
        let tiles = Tiling::new(w as i64, h as i64, PYRAMID_PADDING, self.padding as i64);
        let (tw, th) = (tiles.width as usize, tiles.height as usize);
        // Everything outside the levels is 0 after normalisation, as in dlib's tensor.
        let mut grey = vec![f32::NAN; tw * th];
        let mut level = pixels.to_vec();
        let (mut lw, mut lh) = (w, h);
        for (i, r) in tiles.rects.iter().enumerate() {
            if i > 0 {
                let (nw, nh) = (r.width() as usize, r.height() as usize);
                level = resize_bilinear(&level, lw, lh, nw, nh);
                (lw, lh) = (nw, nh);
            }
            for y in 0..lh {
                let row = (r.top as usize + y) * tw + r.left as usize;
                grey[row..row + lw].copy_from_slice(&level[y * lw..(y + 1) * lw]);
            }
        }
        let mut planar = vec![0f32; 3 * th * tw];
        for c in 0..3 {
            for (o, v) in planar[c * th * tw..(c + 1) * th * tw].iter_mut().zip(&grey) {
                if !v.is_nan() {
                    *o = (v - self.means[c]) / 256.0;
                }
            }
        }
        let mut x = Tensor::<4>::from_data(TensorData::new(planar, [1, 3, th, tw]), &self.device);
        let last = self.convs.len() - 1;
        for (i, conv) in self.convs.iter().enumerate() {
            x = conv.forward(x);
            if i < last {
                x = relu(x);
            }
        }
        let [_, k, oh, ow] = x.dims();
        let scores = crate::encoder::read_f32(x)?;
        let mut out = Vec::new();
        for (wi, win) in self.windows.iter().enumerate().take(k) {
            for r in 0..oh {
                for c in 0..ow {
                    let s = scores[wi * oh * ow + r * ow + c];
                    if s <= threshold {
                        continue;
                    }
                    let cx = self.scale * c as f64 + self.offset;
                    let cy = self.scale * r as f64 + self.offset;
                    let (hw, hh) = ((win.width - 1.0) / 2.0, (win.height - 1.0) / 2.0);
                    let rect = tiles.to_image([cx - hw, cy - hh, cx + hw, cy + hh]);
                    // dlib's rect_down for each enlargement: q/2 − (1.25, 0.75), rounded.
                    let mut q = rect.map(|v| v as f64);
                    for _ in 0..upsample {
                        q = [
                            q[0] / 2.0 - 1.25,
                            q[1] / 2.0 - 0.75,
                            q[2] / 2.0 - 1.25,
                            q[3] / 2.0 - 0.75,
                        ];
                        q = q.map(f64::round);
                    }
                    out.push(Detection {
                        rect: FaceBox {
                            left: q[0] as f32,
                            top: q[1] as f32,
                            right: q[2] as f32,
                            bottom: q[3] as f32,
                        },
                        confidence: s,
                    });
                }
            }
        }
        Ok(out)
    }

    /// dlib's `test_box_overlap` on inclusive integer boxes: the intersection over the area of
    /// the two boxes' bounding box above the NMS threshold, or either box covered by the other
    /// beyond the covered threshold.
    fn overlaps(&self, a: &FaceBox, b: &FaceBox) -> bool {
        let side = |lo: f32, hi: f32| f64::from((hi - lo + 1.0).max(0.0));
        let inner =
            side(a.left.max(b.left), a.right.min(b.right)) * side(a.top.max(b.top), a.bottom.min(b.bottom));
        if inner <= 0.0 {
            return false;
        }
        let outer =
            side(a.left.min(b.left), a.right.max(b.right)) * side(a.top.min(b.top), a.bottom.max(b.bottom));
        let area = |r: &FaceBox| side(r.left, r.right) * side(r.top, r.bottom);
        inner / outer > self.nms_iou
            || inner / area(a) > self.nms_covered
            || inner / area(b) > self.nms_covered
    }
}

/// Pixels between the tiled pyramid's levels (dlib's `pyramid_padding` default).
const PYRAMID_PADDING: i64 = 10;

/// An inclusive integer rectangle (dlib's `rectangle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rect {
    left: i64,
    top: i64,
    right: i64,
    bottom: i64,
}

impl Rect {
    fn sized(w: i64, h: i64) -> Rect {
        Rect {
            left: 0,
            top: 0,
            right: w - 1,
            bottom: h - 1,
        }
    }

    fn width(&self) -> i64 {
        self.right - self.left + 1
    }

    fn height(&self) -> i64 {
        self.bottom - self.top + 1
    }

    fn contains(&self, x: i64, y: i64) -> bool {
        (self.left..=self.right).contains(&x) && (self.top..=self.bottom).contains(&y)
    }

    fn intersects(&self, o: &Rect) -> bool {
        self.left.max(o.left) <= self.right.min(o.right) && self.top.max(o.top) <= self.bottom.min(o.bottom)
    }

    /// Squared distance from the point to the rectangle (0 inside).
    fn distance2(&self, x: i64, y: i64) -> i64 {
        let dx = (self.left - x).max(0).max(x - self.right);
        let dy = (self.top - y).max(0).max(y - self.bottom);
        dx * dx + dy * dy
    }
}

/// dlib's tiled image pyramid (`compute_tiled_image_pyramid_details` for `pyramid_down<6>`):
/// level 0 on the left, the next levels down a first column beside nothing, then up a second
/// column along the right edge, `padding` apart and `outer` from the border.
struct Tiling {
    rects: Vec<Rect>,
    width: i64,
    height: i64,
}

impl Tiling {
    fn new(w: i64, h: i64, padding: i64, outer: i64) -> Tiling {
        let mut rects = vec![Rect::sized(w, h)];
        let (mut nr, mut nc) = (h, w);
        loop {
            nr = (5.0 / 6.0 * nr as f64).floor() as i64;
            nc = (5.0 / 6.0 * nc as f64).floor() as i64;
            if nr * nc == 0 || nr < 5 {
                break;
            }
            rects.push(Rect::sized(nc, nr));
        }
        let total_height: i64 = rects.iter().map(|r| r.height() + padding).sum::<i64>() - 2 * padding;
        let (mut height, mut prev_width) = (0i64, 0i64);
        let (w0, h0) = (rects[0].width(), rects[0].height());
        for r in &rects {
            if r.width() <= w0 - prev_width - padding && (height - h0) * 2 >= total_height - h0 {
                break;
            }
            height += r.height() + padding;
            prev_width = r.width();
        }
        height -= padding;
        let mut y = outer;
        let mut i = 0;
        while y < height + outer && i < rects.len() {
            let r = rects[i];
            rects[i] = Rect {
                left: outer,
                top: y,
                right: outer + r.width() - 1,
                bottom: y + r.height() - 1,
            };
            y += r.height() + padding;
            i += 1;
        }
        y -= padding;
        while i < rects.len() {
            let (px, py) = (outer + w0 - 1, y - 1);
            let r = Rect {
                left: px - (rects[i].width() - 1),
                top: py - (rects[i].height() - 1),
                right: px,
                bottom: py,
            };
            if rects[0].intersects(&r) {
                break;
            }
            rects[i] = r;
            y -= r.height() + padding;
            i += 1;
        }
        rects.truncate(i);
        Tiling {
            rects,
            width: w0 + 2 * outer,
            height: height + 2 * outer,
        }
    }

    /// dlib's `tensor_space_to_image_space` for a rectangle `[left, top, right, bottom]` of
    /// the tiled image: the level nearest its centre, that level's origin removed, then
    /// `q·6/5 + 0.3` once per level, rounded half away from zero.
    fn to_image(&self, r: [f64; 4]) -> [i64; 4] {
        let cx = ((r[0] + r[2]) / 2.0 + 0.5).floor() as i64;
        let cy = ((r[1] + r[3]) / 2.0 + 0.5).floor() as i64;
        let level = self
            .rects
            .iter()
            .position(|l| l.contains(cx, cy))
            .unwrap_or_else(|| {
                let mut best = 0;
                for (i, l) in self.rects.iter().enumerate() {
                    if l.distance2(cx, cy) < self.rects[best].distance2(cx, cy) {
                        best = i;
                    }
                }
                best
            });
        let o = self.rects[level];
        let mut q = [
            r[0] - o.left as f64,
            r[1] - o.top as f64,
            r[2] - o.left as f64,
            r[3] - o.top as f64,
        ];
        for _ in 0..level {
            q = q.map(|v| v * 1.2 + 0.3);
        }
        q.map(|v| v.round() as i64)
    }
}

/// dlib's bilinear `resize_image`: output `(c, r)` samples the source at `(c·(iw−1)/(ow−1),
/// r·(ih−1)/(oh−1))`.
fn resize_bilinear(src: &[f32], iw: usize, ih: usize, ow: usize, oh: usize) -> Vec<f32> {
    let xs = if ow > 1 {
        (iw as f64 - 1.0) / (ow as f64 - 1.0)
    } else {
        0.0
    };
    let ys = if oh > 1 {
        (ih as f64 - 1.0) / (oh as f64 - 1.0)
    } else {
        0.0
    };
    let mut out = vec![0f32; ow * oh];
    for r in 0..oh {
        let y = r as f64 * ys;
        let top = (y.floor() as usize).min(ih - 1);
        let bottom = (top + 1).min(ih - 1);
        let ty = (y - top as f64) as f32;
        for c in 0..ow {
            let x = c as f64 * xs;
            let left = (x.floor() as usize).min(iw - 1);
            let right = (left + 1).min(iw - 1);
            let tx = (x - left as f64) as f32;
            let tl = src[top * iw + left];
            let tr = src[top * iw + right];
            let bl = src[bottom * iw + left];
            let br = src[bottom * iw + right];
            let t = tl + (tr - tl) * tx;
            let b = bl + (br - bl) * tx;
            out[r * ow + c] = t + (b - t) * ty;
        }
    }
    out
}
