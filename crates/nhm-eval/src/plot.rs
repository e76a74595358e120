//! PNG plots: DET curves on normal-deviate axes, and genuine/impostor score distributions.
//!
//! Text is drawn with a subset of DejaVu Sans compiled into the crate (assets/), so plots look
//! the same on every machine and need no installed fonts.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::det::{probit, DetPoint};
use crate::unlinkability::Unlinkability;
use crate::{Error, Result, ScoreSet};

/// The embedded font (DejaVu Sans, Bitstream Vera licence: assets/LICENSE-DejaVu.txt).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";

/// Colours for successive systems: distinguishable, and readable for most colour-blind viewers
/// (Okabe–Ito palette).
const COLOURS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok =
        *REGISTERED.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::Plot {
            path: "<font>".into(),
            reason: "the embedded font could not be parsed".into(),
        })
    }
}

fn plot_err(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> Error + '_ {
    move |e| Error::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A rate formatted as a percentage with as many decimals as it needs: 0.0001 → "0.01%".
pub fn percent(p: f64) -> String {
    let v = p * 100.0;
    if v == 0.0 {
        return "0%".into();
    }
    let decimals = (-v.log10() - 1e-9).ceil().max(0.0) as usize;
    format!("{v:.decimals$}%")
}

/// A probability axis on the normal-deviate (probit) scale.
struct ProbitAxis {
    lo: f64,
    hi: f64,
}

impl ProbitAxis {
    fn position(&self, p: f64) -> f64 {
        probit(p.clamp(self.lo, self.hi))
    }
}

impl Ranged for ProbitAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let (a, b) = (self.position(self.lo), self.position(self.hi));
        let frac = (self.position(*value) - a) / (b - a);
        limit.0 + (frac * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        let in_range = |v: &f64| *v >= self.lo * (1.0 - 1e-9) && *v <= self.hi * (1.0 + 1e-9);
        if hint.weight().allow_light_points() {
            // Minor grid: the 1-2-5 sequence.
            let mut v = Vec::new();
            for e in -7..0 {
                for m in [1.0, 2.0, 5.0] {
                    v.push(m * 10f64.powi(e));
                }
            }
            v.retain(in_range);
            v.truncate(hint.max_num_points());
            return v;
        }
        let mut v: Vec<f64> = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.4]
            .into_iter()
            .filter(in_range)
            .collect();
        while v.len() > hint.max_num_points().max(2) {
            // Too little room: drop every other tick.
            v = v.into_iter().step_by(2).collect();
        }
        v
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for ProbitAxis {
    fn format(value: &f64) -> String {
        percent(*value)
    }
}

/// Draws DET curves (FNMR against FMR, both on normal-deviate axes labelled in %) for several
/// systems on one PNG, with a legend and each system's EER point marked.
///
/// Each axis spans from the smallest non-zero rate any curve reaches on it (rounded down to a
/// power of ten, between 1e-6 and 1e-2) to 50%; where a rate falls to zero the curve runs to the
/// axis edge and stops there.
pub fn plot_det(path: &Path, curves: &[(&str, &[DetPoint])], title: &str) -> Result<()> {
    register_font()?;
    let err = plot_err(path);
    // Each axis starts at the smallest non-zero rate any curve reaches on it.
    let floor = |rate: fn(&DetPoint) -> f64| {
        let smallest = curves
            .iter()
            .flat_map(|(_, c)| c.iter())
            .map(rate)
            .filter(|&v| v > 0.0)
            .fold(1e-2f64, f64::min);
        10f64.powf(smallest.log10().floor()).max(1e-6)
    };
    let (lo_x, lo_y) = (floor(|p| p.fmr), floor(|p| p.fnmr));
    let hi = 0.5;

    let root = BitMapBackend::new(path, (860, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 26))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(ProbitAxis { lo: lo_x, hi }, ProbitAxis { lo: lo_y, hi })
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("False match rate (FMR)")
        .y_desc("False non-match rate (FNMR)")
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 18))
        .bold_line_style(BLACK.mix(0.25))
        .light_line_style(BLACK.mix(0.07))
        .draw()
        .map_err(|e| err(&e))?;
    // The EER line: FMR = FNMR.
    chart
        .draw_series(DashedLineSeries::new(
            vec![(lo_x.max(lo_y), lo_x.max(lo_y)), (hi, hi)],
            6,
            6,
            BLACK.mix(0.4).stroke_width(1),
        ))
        .map_err(|e| err(&e))?;

    for (k, (name, curve)) in curves.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let points = visible_points(curve, lo_x, lo_y, hi);
        let eer = curve
            .iter()
            .map(|p| ((p.fmr - p.fnmr).abs(), (p.fmr + p.fnmr) / 2.0))
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)))
            .map(|(_, mean)| mean);
        let label = match eer {
            Some(e) => format!("{name} (EER {})", percent_2(e)),
            None => name.to_string(),
        };
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(3)))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3)));
        if let Some(e) = eer.filter(|&e| e >= lo_x.max(lo_y) && e <= hi) {
            chart
                .draw_series(std::iter::once(Circle::new((e, e), 5, colour.filled())))
                .map_err(|e| err(&e))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .label_font((FAMILY, 16))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// The part of a DET curve (ascending threshold: FMR falls, FNMR rises) inside the axes.
/// Points beyond 50% on either axis are off the chart. Rates below an axis's start (zero
/// included) are drawn on its edge, but only the one point next to the visible part, so the
/// curve runs to the edge without tracing along it.
fn visible_points(curve: &[DetPoint], lo_x: f64, lo_y: f64, hi: f64) -> Vec<(f64, f64)> {
    let inside: Vec<&DetPoint> = curve.iter().filter(|p| p.fmr <= hi && p.fnmr <= hi).collect();
    // FNMR below the axis happens at the low-threshold end, FMR below it at the high end.
    let first = inside.iter().rposition(|p| p.fnmr < lo_y).unwrap_or(0);
    let last = inside
        .iter()
        .position(|p| p.fmr < lo_x)
        .unwrap_or(inside.len().saturating_sub(1));
    if inside.is_empty() || first > last {
        return Vec::new();
    }
    inside[first..=last]
        .iter()
        .map(|p| (p.fmr.max(lo_x), p.fnmr.max(lo_y)))
        .collect()
}

/// A rate as a percentage with two significant decimals, for legends: 0.01234 → "1.23%".
pub(crate) fn percent_2(p: f64) -> String {
    let v = p * 100.0;
    if v >= 10.0 {
        format!("{v:.1}%")
    } else if v >= 0.1 || v == 0.0 {
        format!("{v:.2}%")
    } else {
        format!("{v:.3}%")
    }
}

/// Draws the genuine and impostor score distributions as normalised histograms (each integrates
/// to 1) over common bins, with the threshold, when given, as a vertical dashed line.
pub fn plot_score_distributions(
    path: &Path,
    s: &ScoreSet,
    title: &str,
    threshold: Option<f64>,
) -> Result<()> {
    let g = s.genuine();
    let i = s.impostor();
    let lo = g[0].min(i[0]);
    let hi = g[g.len() - 1].max(i[i.len() - 1]);
    let bins = ((g.len().min(i.len()) as f64).sqrt() as usize).clamp(10, 80);
    let series = [
        (format!("genuine (n = {})", g.len()), g, COLOURS[0]),
        (format!("impostor (n = {})", i.len()), i, COLOURS[1]),
    ];
    let densities: Vec<(String, Vec<f64>, RGBColor)> = series
        .into_iter()
        .map(|(name, xs, c)| (name, density(xs, lo, hi, bins), c))
        .collect();
    let axis_x = "Score (higher = more similar)";
    draw_histograms(
        path,
        title,
        axis_x,
        lo,
        hi,
        &densities,
        threshold.map(|t| (t, "threshold")),
    )
}

/// Draws the mated and non-mated score densities of an unlinkability analysis with D↔(s) over
/// them (right-hand axis scale 0–1 drawn on the same plot as a line), titled with D↔sys.
pub fn plot_unlinkability(path: &Path, u: &Unlinkability, title: &str) -> Result<()> {
    register_font()?;
    let err = plot_err(path);
    if u.local.is_empty() {
        return Err(Error::Plot {
            path: path.to_path_buf(),
            reason: "no bins to draw".into(),
        });
    }
    let width = if u.local.len() > 1 {
        u.local[1].0 - u.local[0].0
    } else {
        1.0
    };
    let lo = u.local[0].0 - width / 2.0;
    let hi = u.local[u.local.len() - 1].0 + width / 2.0;
    let ymax = u
        .mated_density
        .iter()
        .chain(&u.non_mated_density)
        .fold(0.0f64, |a, &b| a.max(b))
        * 1.1;
    let ymax = if ymax > 0.0 { ymax } else { 1.0 };

    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let caption = format!("{title}  (D↔sys = {:.3})", u.d_sys);
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, (FAMILY, 24))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(75)
        .right_y_label_area_size(65)
        .build_cartesian_2d(lo..hi, 0.0..ymax)
        .map_err(|e| err(&e))?
        .set_secondary_coord(lo..hi, 0.0..1.05);
    chart
        .configure_mesh()
        .x_desc("Score")
        .y_desc("Probability density")
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 17))
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .configure_secondary_axes()
        .y_desc("Local linkability D↔(s)")
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 17))
        .draw()
        .map_err(|e| err(&e))?;
    let edges: Vec<f64> = (0..=u.local.len()).map(|b| lo + b as f64 * width).collect();
    for (name, d, c) in [
        ("mated", &u.mated_density, COLOURS[0]),
        ("non-mated", &u.non_mated_density, COLOURS[1]),
    ] {
        chart
            .draw_series(
                AreaSeries::new(step_points(&edges, d), 0.0, c.mix(0.3)).border_style(c.stroke_width(2)),
            )
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], c.mix(0.5).filled()));
    }
    let black = RGBColor(0, 0, 0);
    chart
        .draw_secondary_series(LineSeries::new(u.local.iter().copied(), black.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("D↔(s)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], black.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FAMILY, 16))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Density of `xs` in `bins` equal bins over [lo, hi].
fn density(xs: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let width = if hi > lo { (hi - lo) / bins as f64 } else { 1.0 };
    let mut h = vec![0.0; bins];
    for &x in xs {
        let b = (((x - lo) / width) as usize).min(bins - 1);
        h[b] += 1.0;
    }
    h.iter().map(|c| c / (xs.len() as f64 * width)).collect()
}

/// The outline of a histogram as a step line: (edge, height) pairs.
fn step_points(edges: &[f64], heights: &[f64]) -> Vec<(f64, f64)> {
    let mut p = Vec::with_capacity(heights.len() * 2 + 2);
    p.push((edges[0], 0.0));
    for (b, &h) in heights.iter().enumerate() {
        p.push((edges[b], h));
        p.push((edges[b + 1], h));
    }
    p.push((edges[heights.len()], 0.0));
    p
}

fn draw_histograms(
    path: &Path,
    title: &str,
    x_desc: &str,
    lo: f64,
    hi: f64,
    densities: &[(String, Vec<f64>, RGBColor)],
    marker: Option<(f64, &str)>,
) -> Result<()> {
    register_font()?;
    let err = plot_err(path);
    let bins = densities.first().map_or(1, |d| d.1.len());
    // Constant scores: widen the range so the single bin has a width.
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5, hi + 0.5) };
    let width = (hi - lo) / bins as f64;
    let edges: Vec<f64> = (0..=bins).map(|b| lo + b as f64 * width).collect();
    let ymax = densities
        .iter()
        .flat_map(|d| d.1.iter())
        .fold(0.0f64, |a, &b| a.max(b))
        * 1.12;
    let ymax = if ymax > 0.0 { ymax } else { 1.0 };
    let pad = (hi - lo) * 0.03;

    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 24))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(75)
        .build_cartesian_2d((lo - pad)..(hi + pad), 0.0..ymax)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("Probability density")
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 17))
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(|e| err(&e))?;
    for (name, d, c) in densities {
        let c = *c;
        chart
            .draw_series(
                AreaSeries::new(step_points(&edges, d), 0.0, c.mix(0.3)).border_style(c.stroke_width(2)),
            )
            .map_err(|e| err(&e))?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], c.mix(0.5).filled()));
    }
    if let Some((t, name)) = marker {
        let black = RGBColor(0, 0, 0);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(t, 0.0), (t, ymax)],
                8,
                5,
                black.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(format!("{name} {t:.4}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], black.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FAMILY, 16))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Draws one line per series of `(x, y)` points (for example EER against training round), with
/// a legend; `y` is a rate drawn in percent on a linear axis from 0.
pub fn plot_rate_series(
    path: &Path,
    series: &[(&str, &[(f64, f64)])],
    title: &str,
    x_desc: &str,
    y_desc: &str,
) -> Result<()> {
    register_font()?;
    let err = plot_err(path);
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (mut xmax, mut ymax) = (1.0f64, 0.0f64);
    for &(x, y) in points {
        if x.is_finite() && y.is_finite() {
            xmax = xmax.max(x);
            ymax = ymax.max(y);
        }
    }
    let ymax = if ymax > 0.0 { ymax * 110.0 } else { 1.0 };
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 24))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(75)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 17))
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(|e| err(&e))?;
    for (k, (name, pts)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let line: Vec<(f64, f64)> = pts
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| (x, y * 100.0))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart
            .draw_series(line.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::coord::ranged1d::{BoldPoints, LightPoints};

    #[test]
    fn det_curves_stop_at_the_axis_edges() {
        let p = |fmr, fnmr| DetPoint {
            threshold: 0.0,
            fmr,
            fnmr,
        };
        let curve = [
            p(1.0, 0.0),
            p(0.4, 0.0),
            p(0.3, 0.0),
            p(0.1, 0.01),
            p(0.01, 0.1),
            p(0.0, 0.2),
            p(0.0, 1.0),
        ];
        let v = visible_points(&curve, 1e-3, 1e-3, 0.5);
        assert_eq!(v, vec![(0.3, 1e-3), (0.1, 0.01), (0.01, 0.1), (1e-3, 0.2)]);
        assert!(visible_points(&[], 1e-3, 1e-3, 0.5).is_empty());
    }

    #[test]
    fn percent_labels() {
        assert_eq!(percent(1e-4), "0.01%");
        assert_eq!(percent(1e-3), "0.1%");
        assert_eq!(percent(0.01), "1%");
        assert_eq!(percent(0.05), "5%");
        assert_eq!(percent(0.4), "40%");
        assert_eq!(percent(1e-6), "0.0001%");
        assert_eq!(percent(0.0), "0%");
    }

    #[test]
    fn probit_axis_is_monotonic_and_spans_the_limits() {
        let a = ProbitAxis { lo: 1e-4, hi: 0.5 };
        assert_eq!(a.map(&1e-4, (0, 1000)), 0);
        assert_eq!(a.map(&0.5, (0, 1000)), 1000);
        assert_eq!(a.map(&0.0, (0, 1000)), 0); // clamped onto the edge
        assert!(a.map(&1e-3, (0, 1000)) < a.map(&1e-2, (0, 1000)));
        assert_eq!(
            a.key_points(BoldPoints(10)),
            vec![1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.4]
        );
        assert_eq!(a.key_points(BoldPoints(3)), vec![1e-4, 1e-2, 0.2]);
        assert!(a.key_points(LightPoints::new(10, 100)).contains(&2e-3));
    }
}
