//! Aligned face chips from 5 landmarks, reproducing dlib's `get_face_chip_details` and
//! `extract_image_chips` (dlib 20.0.1, `dlib/image_transforms/interpolation.h`).
//!
//! dlib places the chip by fitting the least-squares similarity from five template points (its
//! mean 5-point face, padded and scaled to the chip) onto the landmarks. It does not sample
//! with that similarity directly: it turns it into a rotated rectangle (`chip_details`) whose
//! corners map to the chip's corner pixels, which stretches the map by
//! `(size·s − 1)/((size − 1)·s)` about the chip's centre and moves it by half a pixel. The
//! [`Similarity`] returned by [`face_chip_transform`] is that effective map, so
//! `t.apply(chip pixel)` is where dlib samples the image for that pixel.
//!
//! Sampling is bilinear as dlib does it: the four neighbours weighted in `f64`, the result
//! truncated to an integer, and 0 (black) wherever the 2 × 2 neighbourhood is not entirely
//! inside the image (so the chip is black past the image's edge and along its last row and
//! column). When the face is more than about twice the chip's size, dlib first shrinks the
//! region around the face with its 2:1 pyramid (`pyramid_down<2>`: a 5-tap [1 4 6 4 1] filter in
//! integers, every other row and column) as many times as the size calls for, and samples the
//! shrunk image; [`extract_chip`] does the same, including dlib's choice of sub-window and its
//! pyramid coordinate map (`p/2 − (1.25, 0.75)`).

use super::landmarks::fit_similarity;
use super::{FaceError, Point};
use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

/// dlib's mean 5-point face (`get_face_chip_details`), in the unit square of an unpadded chip:
/// the outer and inner corner of the eye on the image's right, the outer and inner corner of
/// the eye on the image's left, the base of the nose; the same order as the 5-point model's
/// landmarks.
pub const FIVE_POINT_TEMPLATE: [[f64; 2]; 5] = [
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
];

/// Size and margin of an aligned face chip.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChipSpec {
    /// Side of the square chip, in pixels (dlib's face recognition network takes 150).
    pub size: u32,
    /// Margin around the template face on each side, as a fraction of the template's extent:
    /// template point `p` lands at `(padding + p)/(1 + 2·padding) · size` in the chip. dlib's
    /// face recognition uses 0.25.
    pub padding: f32,
}

impl Default for ChipSpec {
    /// 150 × 150 with padding 0.25: the chips dlib's face recognition network was trained on
    /// (`compute_face_descriptor`, `get_face_chip(img, shape, 150, 0.25)`).
    fn default() -> Self {
        Self {
            size: 150,
            padding: 0.25,
        }
    }
}

/// A similarity transform (uniform scale, rotation, translation) from chip pixel coordinates
/// to image pixel coordinates: `x' = a·x − b·y + tx`, `y' = b·x + a·y + ty`, where
/// `(a, b) = scale·(cos θ, sin θ)`. Kept in `f64`, as dlib computes it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Similarity {
    /// `scale·cos θ`.
    pub a: f64,
    /// `scale·sin θ`.
    pub b: f64,
    /// Translation along x (the image position of chip pixel (0, 0)).
    pub tx: f64,
    /// Translation along y.
    pub ty: f64,
}

impl Similarity {
    /// The identity map.
    pub const IDENTITY: Similarity = Similarity {
        a: 1.0,
        b: 0.0,
        tx: 0.0,
        ty: 0.0,
    };

    /// The map that scales by `scale`, turns by `angle` radians (from +x towards +y, i.e.
    /// clockwise on screen) and then translates by `(tx, ty)`.
    pub fn new(scale: f64, angle: f64, tx: f64, ty: f64) -> Self {
        Self {
            a: scale * angle.cos(),
            b: scale * angle.sin(),
            tx,
            ty,
        }
    }

    /// Maps a chip point to the image.
    pub fn apply(&self, p: Point) -> Point {
        let (x, y) = self.apply_f64(p.x as f64, p.y as f64);
        Point::new(x as f32, y as f32)
    }

    /// Maps a chip point to the image, in `f64`.
    pub fn apply_f64(&self, x: f64, y: f64) -> (f64, f64) {
        (
            self.a * x - self.b * y + self.tx,
            self.b * x + self.a * y + self.ty,
        )
    }

    /// The scale factor (image pixels per chip pixel).
    pub fn scale(&self) -> f64 {
        self.a.hypot(self.b)
    }

    /// The rotation angle in radians, in `(-π, π]`.
    pub fn angle(&self) -> f64 {
        self.b.atan2(self.a)
    }

    /// The inverse map (image to chip), or `None` when the scale is zero or not finite.
    pub fn inverse(&self) -> Option<Similarity> {
        let d = self.a * self.a + self.b * self.b;
        if !(d.is_finite() && d > 0.0) {
            return None;
        }
        let (a, b) = (self.a / d, -self.b / d);
        Some(Similarity {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        })
    }

    /// Whether all four parameters are finite.
    pub fn is_finite(&self) -> bool {
        self.a.is_finite() && self.b.is_finite() && self.tx.is_finite() && self.ty.is_finite()
    }
}

/// Where dlib cuts the face chip for these 5-point landmarks (`get_face_chip_details(det,
/// size, padding)` followed by the chip-to-image map `extract_image_chips` samples with): the
/// map from chip pixels to image pixels.
///
/// Give the landmarks as [`LandmarkModel::predict`](super::LandmarkModel::predict) returns
/// them (whole pixels, as dlib's) to get dlib's chip. The padding is widened to `f64` (exact
/// for 0.25).
pub fn face_chip_transform(landmarks: &[Point], spec: &ChipSpec) -> Result<Similarity, FaceError> {
    if landmarks.len() != FIVE_POINT_TEMPLATE.len() {
        return Err(FaceError::WrongLandmarkCount {
            expected: FIVE_POINT_TEMPLATE.len(),
            actual: landmarks.len(),
        });
    }
    if spec.size < 2 || !spec.padding.is_finite() || spec.padding < 0.0 {
        return Err(FaceError::BadChipSpec {
            size: spec.size,
            padding: spec.padding,
        });
    }
    if landmarks.iter().any(|p| !(p.x.is_finite() && p.y.is_finite())) {
        return Err(FaceError::DegenerateLandmarks);
    }
    let padding = spec.padding as f64;
    let size = spec.size as f64;
    let chip_points = FIVE_POINT_TEMPLATE.map(|[x, y]| {
        (
            (padding + x) / (2.0 * padding + 1.0) * size,
            (padding + y) / (2.0 * padding + 1.0) * size,
        )
    });
    let (a, b, tx, ty) = fit_similarity(
        chip_points.iter().copied(),
        landmarks.iter().map(|p| (p.x as f64, p.y as f64)),
    );
    let fitted = Similarity { a, b, tx, ty };
    let scale = fitted.scale();
    if !(scale.is_finite() && scale > 0.0) {
        return Err(FaceError::DegenerateLandmarks);
    }
    // chip_details(chip_points, img_points, dims): angle and scale of the fit, and a rectangle
    // of side size·scale (dlib's drectangle, right - left = size·scale - 1) centred on the image
    // of the chip point (size/2, size/2).
    let angle = fitted.angle();
    let (cx, cy) = fitted.apply_f64(size / 2.0, size / 2.0);
    let rect = DRect::centred(cx, cy, size * scale - 1.0);
    Ok(rect_map(&rect, angle, spec.size))
}

/// Cuts the `size` × `size` chip whose pixel `(x, y)` shows the image at `t.apply((x, y))`,
/// exactly as dlib's `extract_image_chips` with bilinear interpolation does for the
/// `chip_details` that `t` stands for (see the module documentation): bilinear weights in
/// `f64`, truncated; black where the 2 × 2 neighbourhood leaves the image; and, when `t` shrinks
/// the image by more than about 2, sampled from dlib's 2:1 image pyramid.
pub fn extract_chip(img: &RgbImage, t: &Similarity, size: u32) -> RgbImage {
    let data = extract::<3>(img.as_raw(), img.width(), img.height(), t, size);
    RgbImage::from_raw(size, size, data).unwrap_or_else(|| RgbImage::new(size, size))
}

/// [`extract_chip`] for a grey image: the same sampling and pyramid (dlib's grey and RGB paths
/// use the same integer arithmetic, channel by channel).
pub fn extract_chip_grey(img: &GrayImage, t: &Similarity, size: u32) -> GrayImage {
    let data = extract::<1>(img.as_raw(), img.width(), img.height(), t, size);
    GrayImage::from_raw(size, size, data).unwrap_or_else(|| GrayImage::new(size, size))
}

/// dlib's `drectangle`: `right` and `bottom` inclusive, width `right - left + 1`.
#[derive(Debug, Clone, Copy)]
struct DRect {
    l: f64,
    t: f64,
    r: f64,
    b: f64,
}

impl DRect {
    /// dlib's `centered_drect(p, side, side)` with `side - 1 = extent`.
    fn centred(cx: f64, cy: f64, extent: f64) -> Self {
        DRect {
            l: cx - extent / 2.0,
            t: cy - extent / 2.0,
            r: cx + extent / 2.0,
            b: cy + extent / 2.0,
        }
    }

    fn is_empty(&self) -> bool {
        self.t > self.b || self.l > self.r
    }

    fn area(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            (self.r - self.l + 1.0) * (self.b - self.t + 1.0)
        }
    }

    fn centre(&self) -> (f64, f64) {
        ((self.l + self.r) / 2.0, (self.t + self.b) / 2.0)
    }

    /// `pyramid_down<2>::rect_down`: each corner to `p/2 − (1.25, 0.75)`.
    fn down(&self) -> Self {
        DRect {
            l: self.l / 2.0 - 1.25,
            t: self.t / 2.0 - 0.75,
            r: self.r / 2.0 - 1.25,
            b: self.b / 2.0 - 0.75,
        }
    }

    fn translate(&self, dx: f64, dy: f64) -> Self {
        DRect {
            l: self.l + dx,
            t: self.t + dy,
            r: self.r + dx,
            b: self.b + dy,
        }
    }
}

/// `rotate_point(centre, p, angle)`.
fn rotate(centre: (f64, f64), p: (f64, f64), sin: f64, cos: f64) -> (f64, f64) {
    let (x, y) = (p.0 - centre.0, p.1 - centre.1);
    (cos * x - sin * y + centre.0, sin * x + cos * y + centre.1)
}

/// The chip-to-image map `extract_image_chips` builds from the rotated rectangle: chip corners
/// (0, 0), (size − 1, 0), (0, size − 1) to the rectangle's top-left, top-right and bottom-left
/// corners turned by `angle` about its centre.
fn rect_map(rect: &DRect, angle: f64, size: u32) -> Similarity {
    let (sin, cos) = angle.sin_cos();
    let c = rect.centre();
    let tl = rotate(c, (rect.l, rect.t), sin, cos);
    let tr = rotate(c, (rect.r, rect.t), sin, cos);
    let n = (size.max(2) - 1) as f64;
    let (a, b) = ((tr.0 - tl.0) / n, (tr.1 - tl.1) / n);
    Similarity {
        a,
        b,
        tx: tl.0,
        ty: tl.1,
    }
}

/// A read-only `CH`-channel 8-bit image window (`sub_image`), or an owned pyramid level.
struct View<'a> {
    data: &'a [u8],
    /// Bytes per row of `data`.
    stride: usize,
    /// Window origin inside `data`.
    x0: usize,
    y0: usize,
    width: usize,
    height: usize,
}

impl View<'_> {
    /// dlib's `interpolate_bilinear` at (x, y); false (and black) when the 2 × 2 neighbourhood
    /// is not inside the window.
    fn bilinear<const CH: usize>(&self, x: f64, y: f64, out: &mut [u8]) {
        let (fl, ft) = (x.floor(), y.floor());
        // Comparisons in f64 first: no overflow for huge or NaN coordinates (NaN fails them).
        if !(fl >= 0.0 && ft >= 0.0 && fl + 1.0 < self.width as f64 && ft + 1.0 < self.height as f64) {
            out.fill(0);
            return;
        }
        let (left, top) = (fl as usize, ft as usize);
        let (lr, tb) = (x - fl, y - ft);
        let row0 = (self.y0 + top) * self.stride + (self.x0 + left) * CH;
        let row1 = row0 + self.stride;
        for (ch, o) in out.iter_mut().enumerate().take(CH) {
            let tl = self.data[row0 + ch] as f64;
            let tr = self.data[row0 + CH + ch] as f64;
            let bl = self.data[row1 + ch] as f64;
            let br = self.data[row1 + CH + ch] as f64;
            let v = (1.0 - tb) * ((1.0 - lr) * tl + lr * tr) + tb * ((1.0 - lr) * bl + lr * br);
            *o = v as u8; // dlib's static_cast<unsigned char>: truncation
        }
    }
}

/// An owned image level of the pyramid.
struct Level {
    data: Vec<u8>,
    width: usize,
    height: usize,
}

impl Level {
    fn view<const CH: usize>(&self) -> View<'_> {
        View {
            data: &self.data,
            stride: self.width * CH,
            x0: 0,
            y0: 0,
            width: self.width,
            height: self.height,
        }
    }
}

/// `pyramid_down<2>` on a window: [1 4 6 4 1] along rows then columns in integers, every
/// other column and row, divided by 256 (truncating); `(w − 3)/2 × (h − 3)/2` out, nothing for
/// images 8 pixels or less on a side.
fn pyramid_down<const CH: usize>(src: &View<'_>) -> Level {
    let (w, h) = (src.width, src.height);
    if w <= 8 || h <= 8 {
        return Level {
            data: Vec::new(),
            width: 0,
            height: 0,
        };
    }
    let (ow, oh) = ((w - 3) / 2, (h - 3) / 2);
    // Row filter on every row, kept at even column steps.
    let mut temp = vec![0u32; h * ow * CH];
    for r in 0..h {
        let row = &src.data[(src.y0 + r) * src.stride + src.x0 * CH..];
        let trow = &mut temp[r * ow * CH..(r + 1) * ow * CH];
        for c in 0..ow {
            let oc = 2 * c * CH;
            for ch in 0..CH {
                let p = |k: usize| row[oc + k * CH + ch] as u32;
                trow[c * CH + ch] = p(0) + 4 * p(1) + 6 * p(2) + 4 * p(3) + p(4);
            }
        }
    }
    // Column filter on rows 2, 4, … while r < h − 2.
    let mut out = vec![0u8; oh * ow * CH];
    let rs = ow * CH;
    for (dr, r) in (2..h - 2).step_by(2).enumerate().take(oh) {
        for i in 0..rs {
            let t = |k: usize| temp[(r + k - 2) * rs + i];
            out[dr * rs + i] = ((t(0) + 4 * t(1) + 6 * t(2) + 4 * t(3) + t(4)) / 256) as u8;
        }
    }
    Level {
        data: out,
        width: ow,
        height: oh,
    }
}

/// `extract_image_chips` for one chip of a `CH`-channel image (interleaved rows).
fn extract<const CH: usize>(data: &[u8], width: u32, height: u32, t: &Similarity, size: u32) -> Vec<u8> {
    let n = size as usize;
    let mut chip = vec![0u8; n * n * CH];
    if n == 0 || !t.is_finite() {
        return chip;
    }
    let full = View {
        data,
        stride: width as usize * CH,
        x0: 0,
        y0: 0,
        width: width as usize,
        height: height as usize,
    };
    if n == 1 {
        full.bilinear::<CH>(t.tx, t.ty, &mut chip);
        return chip;
    }

    // Recover dlib's chip_details (rectangle and angle) from the map.
    let angle = t.angle();
    let extent = t.scale() * (n - 1) as f64;
    let (cx, cy) = t.apply_f64((n - 1) as f64 / 2.0, (n - 1) as f64 / 2.0);
    if !(extent.is_finite() && cx.is_finite() && cy.is_finite()) {
        return chip; // a map this large shows nothing of any image
    }
    let rect = DRect::centred(cx, cy, extent);
    let chip_area = (n * n) as f64;

    // No rotation and no scaling: dlib copies the rectangle's pixels (black outside).
    if angle == 0.0 && extent + 1.0 == n as f64 {
        let (left, top) = (rect.l.round(), rect.t.round()); // lround
        for r in 0..n {
            for c in 0..n {
                let (x, y) = (left + c as f64, top + r as f64);
                if x >= 0.0 && y >= 0.0 && x < width as f64 && y < height as f64 {
                    let src = (y as usize * width as usize + x as usize) * CH;
                    let dst = (r * n + c) * CH;
                    chip[dst..dst + CH].copy_from_slice(&data[src..src + CH]);
                }
            }
        }
        return chip;
    }

    // Pyramid depth, and the margin dlib keeps around the face for the pyramid's filter.
    let mut depth = 0usize;
    let mut grow = 2.0f64;
    let mut down = rect.down();
    while down.area() > chip_area {
        down = down.down();
        depth += 1;
        grow = grow * 2.0 + 2.0;
    }
    let (sin, cos) = angle.sin_cos();
    let c = rect.centre();
    let corners = [
        (rect.l, rect.t),
        (rect.r, rect.t),
        (rect.l, rect.b),
        (rect.r, rect.b),
    ]
    .map(|p| rotate(c, p, sin, cos));
    let rot = corners.iter().skip(1).fold(
        DRect {
            l: corners[0].0,
            t: corners[0].1,
            r: corners[0].0,
            b: corners[0].1,
        },
        |acc, p| DRect {
            l: acc.l.min(p.0),
            t: acc.t.min(p.1),
            r: acc.r.max(p.0),
            b: acc.b.max(p.1),
        },
    );
    // grow_rect(rot, grow).intersect(get_rect(img)), then to an integer rectangle with lround.
    let clipped = DRect {
        l: (rot.l - grow).max(0.0),
        t: (rot.t - grow).max(0.0),
        r: (rot.r + grow).min(width as f64 - 1.0),
        b: (rot.b + grow).min(height as f64 - 1.0),
    };
    let (bl, bt, br, bb) = (
        clipped.l.round(),
        clipped.t.round(),
        clipped.r.round(),
        clipped.b.round(),
    );
    let (bx, by, bw, bh) = if bl > br || bt > bb {
        (0.0, 0.0, 0usize, 0usize) // empty: dlib's rectangle() at (0, 0)
    } else {
        (bl, bt, (br - bl + 1.0) as usize, (bb - bt + 1.0) as usize)
    };
    let window = View {
        data,
        stride: width as usize * CH,
        x0: bx as usize,
        y0: by as usize,
        width: bw,
        height: bh,
    };

    // Which pyramid level to sample (-1: the window itself), in window coordinates.
    let mut local = rect.translate(-bx, -by);
    // dlib counts `level` from -1 and indexes the `depth` levels it built; here `level` is the
    // number of pyramid steps, at most `depth` (dlib would read past its levels otherwise).
    let mut level = 0usize;
    while level < depth && local.down().area() > chip_area {
        local = local.down();
        level += 1;
    }
    let mut levels: Vec<Level> = Vec::with_capacity(level);
    for _ in 0..level {
        let next = match levels.last() {
            None => pyramid_down::<CH>(&window),
            Some(prev) => pyramid_down::<CH>(&prev.view::<CH>()),
        };
        levels.push(next);
    }
    let source = match levels.last() {
        None => window,
        Some(l) => l.view::<CH>(),
    };

    let map = rect_map_full(&local, sin, cos, n);
    for r in 0..n {
        for c in 0..n {
            let (x, y) = map(c as f64, r as f64);
            let dst = (r * n + c) * CH;
            source.bilinear::<CH>(x, y, &mut chip[dst..dst + CH]);
        }
    }
    chip
}

/// The affine map `find_affine_transform` fits to chip tl → rotated tl, tr → rotated tr,
/// bl → rotated bl, applied as dlib's `point_transform_affine` (`m·p + b`).
fn rect_map_full(rect: &DRect, sin: f64, cos: f64, n: usize) -> impl Fn(f64, f64) -> (f64, f64) {
    let c = rect.centre();
    let tl = rotate(c, (rect.l, rect.t), sin, cos);
    let tr = rotate(c, (rect.r, rect.t), sin, cos);
    let bl = rotate(c, (rect.l, rect.b), sin, cos);
    let k = (n - 1) as f64;
    let (m00, m10) = ((tr.0 - tl.0) / k, (tr.1 - tl.1) / k);
    let (m01, m11) = ((bl.0 - tl.0) / k, (bl.1 - tl.1) / k);
    move |x, y| (m00 * x + m01 * y + tl.0, m10 * x + m11 * y + tl.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An image whose channels are the linear ramps of [`ramp_value`], stored truncated.
    fn ramp(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            let (x, y) = (x as f64, y as f64);
            image::Rgb([
                ramp_value(0, x, y) as u8,
                ramp_value(1, x, y) as u8,
                ramp_value(2, x, y) as u8,
            ])
        })
    }

    /// Gentle ramps that stay inside 0..=255 on a 400 × 400 image.
    fn ramp_value(ch: usize, x: f64, y: f64) -> f64 {
        match ch {
            0 => 20.0 + 0.375 * x + 0.125 * y,
            1 => 240.0 - 0.25 * x - 0.125 * y,
            _ => 10.0 + 0.125 * x + 0.375 * y,
        }
    }

    /// Whole-number ramps (exact at every pixel) for images up to 120 × 120.
    fn exact_ramp_value(ch: usize, x: f64, y: f64) -> f64 {
        match ch {
            0 => 10.0 + x,
            1 => 250.0 - y,
            _ => 5.0 + x + y,
        }
    }

    #[test]
    fn default_spec_is_dlibs_face_recognition_chip() {
        assert_eq!(
            ChipSpec::default(),
            ChipSpec {
                size: 150,
                padding: 0.25
            }
        );
    }

    #[test]
    fn template_landmarks_give_dlibs_rectangle_map() {
        // Landmarks exactly on the padded template: the fit is the identity, and dlib's
        // rectangle is centred on (75, 75) with right − left = 149, so chip pixel (0, 0) sits
        // at (0.5, 0.5) and the scale is 149/149.
        let spec = ChipSpec::default();
        let pts: Vec<Point> = FIVE_POINT_TEMPLATE
            .iter()
            .map(|[x, y]| {
                Point::new(
                    ((0.25 + x) / 1.5 * 150.0) as f32,
                    ((0.25 + y) / 1.5 * 150.0) as f32,
                )
            })
            .collect();
        let t = face_chip_transform(&pts, &spec).expect("placement");
        assert!((t.scale() - 1.0).abs() < 1e-6, "{t:?}");
        assert!(t.angle().abs() < 1e-6, "{t:?}");
        assert!((t.tx - 0.5).abs() < 1e-4 && (t.ty - 0.5).abs() < 1e-4, "{t:?}");
    }

    #[test]
    fn bad_inputs_are_refused() {
        let five = [Point::new(0.0, 0.0); 5];
        let spec = ChipSpec::default();
        assert!(matches!(
            face_chip_transform(&five[..4], &spec),
            Err(FaceError::WrongLandmarkCount {
                expected: 5,
                actual: 4
            })
        ));
        assert!(matches!(
            face_chip_transform(&five, &spec),
            Err(FaceError::DegenerateLandmarks)
        ));
        let mut nan = five;
        nan[2].x = f32::NAN;
        assert!(matches!(
            face_chip_transform(&nan, &spec),
            Err(FaceError::DegenerateLandmarks)
        ));
        let ok: Vec<Point> = (0..5)
            .map(|i| Point::new(i as f32 * 3.0, (i * i) as f32))
            .collect();
        for bad in [
            ChipSpec {
                size: 1,
                padding: 0.25,
            },
            ChipSpec {
                size: 150,
                padding: -0.1,
            },
            ChipSpec {
                size: 150,
                padding: f32::NAN,
            },
        ] {
            assert!(
                matches!(face_chip_transform(&ok, &bad), Err(FaceError::BadChipSpec { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn outside_the_image_is_black_and_odd_maps_do_not_panic() {
        let img = ramp(20, 20);
        let far = Similarity::new(1.0, 0.3, 1000.0, -1000.0);
        assert!(extract_chip(&img, &far, 16).as_raw().iter().all(|&v| v == 0));
        for t in [
            Similarity {
                a: f64::NAN,
                b: 0.0,
                tx: 0.0,
                ty: 0.0,
            },
            Similarity {
                a: f64::INFINITY,
                b: 0.0,
                tx: 0.0,
                ty: 0.0,
            },
            Similarity {
                a: 1e300,
                b: 1e300,
                tx: -1e300,
                ty: 1e300,
            },
            Similarity {
                a: 0.0,
                b: 0.0,
                tx: 5.0,
                ty: 5.0,
            },
        ] {
            let chip = extract_chip(&img, &t, 8);
            assert_eq!(chip.dimensions(), (8, 8));
        }
        assert_eq!(extract_chip(&img, &Similarity::IDENTITY, 0).dimensions(), (0, 0));
        let empty = RgbImage::new(0, 0);
        assert!(extract_chip(&empty, &Similarity::new(3.0, 0.5, 1.0, 1.0), 10)
            .as_raw()
            .iter()
            .all(|&v| v == 0));
    }

    #[test]
    fn unrotated_unscaled_chip_is_a_copy() {
        let img = ramp(30, 30);
        let t = Similarity {
            a: 1.0,
            b: 0.0,
            tx: 4.0,
            ty: 7.0,
        };
        let chip = extract_chip(&img, &t, 10);
        for (x, y, p) in chip.enumerate_pixels() {
            assert_eq!(p, img.get_pixel(x + 4, y + 7));
        }
    }

    #[test]
    fn grey_chip_matches_rgb_chip_channel() {
        let img = ramp(60, 50);
        let grey = GrayImage::from_fn(60, 50, |x, y| image::Luma([img.get_pixel(x, y)[1]]));
        for t in [
            Similarity::new(0.9, 0.4, 20.0, 5.0),
            Similarity::new(2.6, -0.2, 3.0, 4.0),
        ] {
            let c = extract_chip(&img, &t, 16);
            let g = extract_chip_grey(&grey, &t, 16);
            for (x, y, p) in g.enumerate_pixels() {
                assert_eq!(p[0], c.get_pixel(x, y)[1], "{t:?} at ({x}, {y})");
            }
        }
    }

    #[test]
    fn pyramid_down_filters_and_halves() {
        // A constant image stays constant (16·16·v / 256 = v); sizes follow dlib's (n − 3)/2.
        let data = vec![77u8; 13 * 11];
        let v = View {
            data: &data,
            stride: 13,
            x0: 0,
            y0: 0,
            width: 13,
            height: 11,
        };
        let l = pyramid_down::<1>(&v);
        assert_eq!((l.width, l.height), (5, 4));
        assert!(l.data.iter().all(|&p| p == 77));
        let small = pyramid_down::<1>(&View {
            data: &data,
            stride: 13,
            x0: 0,
            y0: 0,
            width: 8,
            height: 11,
        });
        assert_eq!((small.width, small.height), (0, 0));
        // An impulse spreads as [1 4 6 4 1]² / 256 (truncated) around its position (2c + 2).
        let mut data = vec![0u8; 15 * 15];
        data[6 * 15 + 6] = 255;
        let l = pyramid_down::<1>(&View {
            data: &data,
            stride: 15,
            x0: 0,
            y0: 0,
            width: 15,
            height: 15,
        });
        assert_eq!(l.data[2 * l.width + 2], (255 * 36 / 256) as u8);
        assert_eq!(l.data[2 * l.width + 1], (255 * 6 / 256) as u8);
        assert_eq!(l.data[l.width + 1], (255 / 256) as u8);
    }

    #[test]
    fn large_faces_are_sampled_from_the_pyramid() {
        // A chip 5× smaller than the face: dlib samples the second pyramid level. Its map
        // `p/2 − (1.25, 0.75)` per level is off the filter's true centre `2k + 2`, so two
        // levels down the chip shows the image 1.5 pixels left of and 1.5 below `t.apply(p)`;
        // the ramps survive the filter, less up to one unit per truncation (storage, two
        // levels, bilinear).
        let img = ramp(400, 400);
        let t0 = Similarity::new(5.0, 0.3, 0.0, 0.0);
        let (hx, hy) = t0.apply_f64(19.5, 19.5);
        let t = Similarity {
            tx: 200.0 - hx,
            ty: 200.0 - hy,
            ..t0
        };
        let chip = extract_chip(&img, &t, 40);
        for (x, y, p) in chip.enumerate_pixels() {
            let (ix, iy) = t.apply_f64(x as f64, y as f64);
            for ch in 0..3 {
                let diff = p[ch] as f64 - ramp_value(ch, ix - 1.5, iy + 1.5);
                assert!((-4.0..=1e-6).contains(&diff), "({x}, {y}) ch {ch}: {diff}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn similarity_round_trips(
            scale in 0.05f64..20.0, angle in -std::f64::consts::PI..std::f64::consts::PI,
            tx in -2000.0f64..2000.0, ty in -2000.0f64..2000.0,
            x in -500.0f64..500.0, y in -500.0f64..500.0,
        ) {
            let t = Similarity::new(scale, angle, tx, ty);
            let inv = t.inverse().expect("invertible");
            let (u, v) = t.apply_f64(x, y);
            let (bx, by) = inv.apply_f64(u, v);
            prop_assert!((bx - x).abs() < 1e-8 && (by - y).abs() < 1e-8);
            prop_assert!((t.scale() - scale).abs() < 1e-9 * scale.max(1.0));
            let p = inv.apply(t.apply(Point::new(x as f32, y as f32)));
            prop_assert!((p.x as f64 - x).abs() < 1e-2 && (p.y as f64 - y).abs() < 1e-2);
        }

        #[test]
        fn landmarks_placed_by_a_similarity_recover_it(
            scale in 0.3f64..6.0, angle in -1.0f64..1.0,
            tx in -100.0f64..400.0, ty in -100.0f64..400.0,
            size in 32u32..200, padding in 0.0f32..0.5,
        ) {
            // Put the template face into the image with a known chip-to-image similarity S;
            // the fit recovers S, and the chip map is dlib's rectangle version of it.
            let s = Similarity::new(scale, angle, tx, ty);
            let (p, n) = (padding as f64, size as f64);
            let landmarks: Vec<Point> = FIVE_POINT_TEMPLATE
                .iter()
                .map(|[x, y]| {
                    let (u, v) = s.apply_f64((p + x) / (2.0 * p + 1.0) * n, (p + y) / (2.0 * p + 1.0) * n);
                    Point::new(u as f32, v as f32)
                })
                .collect();
            let t = face_chip_transform(&landmarks, &ChipSpec { size, padding }).expect("placement");
            // Same angle; scale stretched to map the chip's corner pixels to the rectangle's.
            let want_scale = (n * scale - 1.0) / (n - 1.0);
            prop_assert!((t.angle() - angle).abs() < 1e-4, "{t:?}");
            prop_assert!((t.scale() - want_scale).abs() < 1e-4 * want_scale, "{t:?}");
            // Chip centre ((n-1)/2) goes where S sends the template's centre (n/2).
            let (cx, cy) = t.apply_f64((n - 1.0) / 2.0, (n - 1.0) / 2.0);
            let (sx, sy) = s.apply_f64(n / 2.0, n / 2.0);
            prop_assert!((cx - sx).abs() < 1e-2 && (cy - sy).abs() < 1e-2);
        }

        #[test]
        fn chip_of_a_ramp_samples_the_mapped_positions(
            scale in 0.4f64..1.8, angle in -std::f64::consts::PI..std::f64::consts::PI,
            dx in -10.0f64..10.0, dy in -10.0f64..10.0,
        ) {
            // A chip small enough to need no pyramid, inside an image of whole-number ramps:
            // each chip pixel is the ramp at t.apply(pixel), truncated (bilinear is exact on a
            // linear ramp; one unit of slack for rounding at whole values).
            let img = RgbImage::from_fn(120, 120, |x, y| {
                let (x, y) = (x as f64, y as f64);
                image::Rgb([0, 1, 2].map(|ch| exact_ramp_value(ch, x, y) as u8))
            });
            let size = 24u32;
            let half = (size - 1) as f64 / 2.0;
            let t0 = Similarity::new(scale, angle, 0.0, 0.0);
            let (hx, hy) = t0.apply_f64(half, half);
            let t = Similarity { tx: 60.0 + dx - hx, ty: 60.0 + dy - hy, ..t0 };
            let chip = extract_chip(&img, &t, size);
            for (x, y, p) in chip.enumerate_pixels() {
                let (ix, iy) = t.apply_f64(x as f64, y as f64);
                for ch in 0..3 {
                    let want = exact_ramp_value(ch, ix, iy).floor();
                    prop_assert!((p[ch] as f64 - want).abs() <= 1.0, "({},{}) ch {}: {} vs {}", x, y, ch, p[ch], want);
                }
            }
        }
    }
}
