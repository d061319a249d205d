//! Line charts of throughput against threads or nodes, and of ratios against a swept count, as
//! SVG (plotters' SVG backend only).

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::error::Error;
use std::path::Path;

/// One line of a chart: a contender's throughput at each x value of the sweep.
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// One value per x value, in the sweep's units.
    pub values: Vec<f64>,
}

/// What a chart shows; every label carries its unit.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    /// The swept values (thread or node counts), ascending.
    pub xs: &'a [usize],
    pub series: &'a [Series],
    /// Drawn as a dashed vertical line labelled with this text (the machine's CPU count).
    pub marker: Option<(usize, String)>,
}

/// Colours for lines that are not a contender (the cases of a ratio chart), by position.
const PALETTE: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// Writes `chart` to `path` as an 900×540 SVG ratio chart: one line per case, the swept counts
/// evenly spaced (they grow by powers of two), and a dashed line at 1 (parity). The chart's
/// marker is not drawn.
pub fn draw_ratios(path: &Path, chart: &Chart<'_>) -> Result<(), Box<dyn Error>> {
    if chart.xs.is_empty() {
        return Err(format!("chart `{}` has no x values", chart.title).into());
    }
    // Parity (1) is always on the chart.
    let y_top = highest(chart.series).max(1.0) * 1.4;
    let last = (chart.xs.len() - 1) as f64;
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    let mut c = canvas(&root, chart.title, -0.25..last + 0.25, y_top)?;
    let xs = chart.xs.to_vec();
    c.configure_mesh()
        .x_desc(chart.x_desc)
        .y_desc(chart.y_desc)
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 15))
        .x_labels(xs.len())
        .x_label_formatter(&move |v| {
            let r = v.round();
            if (v - r).abs() < 1e-6 && r >= 0.0 && (r as usize) < xs.len() {
                format!("{}", xs[r as usize])
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| format!("{v:.1}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let grey = RGBColor(120, 120, 120);
    c.draw_series(DashedLineSeries::new(
        vec![(-0.25, 1.0), (last + 0.25, 1.0)],
        6,
        4,
        grey.stroke_width(1),
    ))?;
    let lines = chart.series.iter().enumerate().map(|(i, s)| {
        // Position i is the i-th swept count.
        let points = s.values.iter().enumerate().map(|(x, &y)| (x as f64, y));
        (s, PALETTE[i % PALETTE.len()], points.collect())
    });
    draw_lines(&mut c, lines)?;
    root.present()?;
    Ok(())
}

/// The highest finite value of any series (0 if none).
fn highest(series: &[Series]) -> f64 {
    series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
}

/// A white 900×540 canvas on `root` with `title`, `x` across and 0 to `y_top` up.
fn canvas<'a, DB: DrawingBackend + 'a>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    x: std::ops::Range<f64>,
    y_top: f64,
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>, Box<dyn Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    Ok(ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(x, 0.0..y_top)?)
}

/// The lines of a chart, each with a dot per point and a legend entry.
fn draw_lines<'s, 'a, DB: DrawingBackend + 'a>(
    c: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    lines: impl Iterator<Item = (&'s Series, RGBColor, Vec<(f64, f64)>)>,
) -> Result<(), Box<dyn Error>>
where
    DB::ErrorType: 'static,
{
    for (s, col, points) in lines {
        c.draw_series(LineSeries::new(points.clone(), col.stroke_width(3)))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], col.stroke_width(3)));
        c.draw_series(points.into_iter().map(|p| Circle::new(p, 5, col.filled())))?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Fixed colours per contender, so a name has the same colour in every chart.
fn colour(name: &str) -> RGBColor {
    match name {
        n if n.starts_with("replicore") => RGBColor(214, 39, 40),
        n if n.starts_with("rayon") => RGBColor(31, 119, 180),
        n if n.starts_with("tokio") => RGBColor(44, 160, 44),
        n if n.starts_with("parking_lot") => RGBColor(31, 119, 180),
        n if n.starts_with("dashmap") => RGBColor(148, 103, 189),
        _ => RGBColor(90, 90, 90),
    }
}

/// Writes `chart` to `path` as an 900×540 SVG.
pub fn draw(path: &Path, chart: &Chart<'_>) -> Result<(), Box<dyn Error>> {
    let (Some(&x_min), Some(&x_max)) = (chart.xs.first(), chart.xs.last()) else {
        return Err(format!("chart `{}` has no x values", chart.title).into());
    };
    let y_max = highest(chart.series);
    // Head room above the highest point for the legend box.
    let y_top = if y_max > 0.0 { y_max * 1.3 } else { 1.0 };
    // Half a step of padding either side so the end points and their markers are not clipped.
    let x_range = (x_min as f64 - 0.25)..(x_max as f64 + 0.25);

    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    let mut c = canvas(&root, chart.title, x_range, y_top)?;
    let xs = chart.xs.to_vec();
    c.configure_mesh()
        .x_desc(chart.x_desc)
        .y_desc(chart.y_desc)
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 15))
        .x_labels(x_max - x_min + 1)
        // Only the swept values get a label; plotters' in-between ticks would be fractions.
        .x_label_formatter(&move |v| {
            let r = v.round();
            if (v - r).abs() < 1e-6 && xs.contains(&(r as usize)) {
                format!("{r}")
            } else {
                String::new()
            }
        })
        // Decimals only where they carry information.
        .y_label_formatter(&move |v| {
            if y_top >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        })
        .light_line_style(WHITE.mix(0.0))
        .draw()?;

    if let Some((x, label)) = &chart.marker {
        let x = *x as f64;
        let grey = RGBColor(120, 120, 120);
        c.draw_series(DashedLineSeries::new(
            vec![(x, 0.0), (x, y_max * 1.12)],
            6,
            4,
            grey.stroke_width(1),
        ))?;
        c.draw_series(std::iter::once(Text::new(
            label.clone(),
            // Just right of the line, so the text does not sit on it.
            (x + 0.03 * (x_max - x_min).max(1) as f64, y_max * 1.12),
            ("sans-serif", 14).into_font().color(&grey),
        )))?;
    }

    let lines = chart.series.iter().map(|s| {
        let points = chart.xs.iter().zip(&s.values).map(|(&x, &y)| (x as f64, y));
        (s, colour(&s.name), points.collect())
    });
    draw_lines(&mut c, lines)?;
    root.present()?;
    Ok(())
}
