//! Horizontal bar charts (median bar, min – max whisker) as SVG, with plotters.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::harness::rate;

/// One bar: a contender's median and range.
#[derive(Debug, Clone)]
pub struct Bar {
    /// The contender (legend entry; same colour in every group).
    pub series: String,
    /// Median.
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
}

/// Bars of one workload.
#[derive(Debug, Clone)]
pub struct Group {
    /// The workload.
    pub label: String,
    /// One bar per contender.
    pub bars: Vec<Bar>,
}

const COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Writes a chart of `groups` to `path`; `log` picks a logarithmic value axis.
///
/// # Errors
/// When the file cannot be written.
pub fn bars(
    path: &Path,
    title: &str,
    axis: &str,
    groups: &[Group],
    log: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut series: Vec<String> = Vec::new();
    for b in groups.iter().flat_map(|g| &g.bars) {
        if !series.contains(&b.series) {
            series.push(b.series.clone());
        }
    }
    let k = series.len().max(1);
    let slots = groups.len() * (k + 1);
    let height = 90 + slots as u32 * 16 + 40;
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let values = groups
        .iter()
        .flat_map(|g| &g.bars)
        .flat_map(|b| [b.min, b.max, b.median])
        .filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = values.fold((f64::MAX, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi <= 0.0 { (1.0, 10.0) } else { (lo, hi) };
    let top = slots as f64;
    if log {
        let lo = 10f64.powf(lo.log10().floor());
        let hi = 10f64.powf((hi * 1.5).log10().ceil());
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(170)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0..top)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(axis)
            .x_label_formatter(&|v| rate(*v))
            .draw()?;
        draw(&root, &mut chart, groups, &series, lo, top)?;
    } else {
        let hi = hi * 1.15;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(170)
            .build_cartesian_2d(0.0..hi, 0.0..top)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(axis)
            .x_label_formatter(&|v| rate(*v))
            .draw()?;
        draw(&root, &mut chart, groups, &series, 0.0, top)?;
    }
    root.present()?;
    Ok(())
}

fn draw<'a, X>(
    root: &DrawingArea<SVGBackend<'a>, Shift>,
    chart: &mut ChartContext<
        'a,
        SVGBackend<'a>,
        Cartesian2d<X, plotters::coord::types::RangedCoordf64>,
    >,
    groups: &[Group],
    series: &[String],
    base: f64,
    top: f64,
) -> Result<(), Box<dyn std::error::Error>>
where
    X: Ranged<ValueType = f64>,
{
    let k = series.len().max(1);
    for (si, name) in series.iter().enumerate() {
        let colour = COLOURS[si % COLOURS.len()];
        let mut rects = Vec::new();
        let mut whiskers = Vec::new();
        for (gi, g) in groups.iter().enumerate() {
            let Some(b) = g.bars.iter().find(|b| &b.series == name) else {
                continue;
            };
            // slots top-down: the group's bars, then a gap
            let y1 = top - (gi * (k + 1) + si) as f64 - 0.1;
            let y0 = y1 - 0.8;
            rects.push(Rectangle::new(
                [(base, y0), (b.median, y1)],
                colour.filled(),
            ));
            let yc = (y0 + y1) / 2.0;
            whiskers.push(PathElement::new(vec![(b.min, yc), (b.max, yc)], BLACK));
            whiskers.push(PathElement::new(
                vec![(b.min, yc - 0.25), (b.min, yc + 0.25)],
                BLACK,
            ));
            whiskers.push(PathElement::new(
                vec![(b.max, yc - 0.25), (b.max, yc + 0.25)],
                BLACK,
            ));
            let (px, py) = chart.backend_coord(&(b.max, yc));
            root.draw(&Text::new(
                rate(b.median),
                (px + 6, py),
                ("sans-serif", 11)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        chart
            .draw_series(rects)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
        chart.draw_series(whiskers)?;
    }
    for (gi, g) in groups.iter().enumerate() {
        let yc = top - (gi * (k + 1)) as f64 - k as f64 / 2.0;
        let (px, py) = chart.backend_coord(&(base, yc));
        root.draw(&Text::new(
            g.label.clone(),
            (px - 8, py),
            ("sans-serif", 12)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
