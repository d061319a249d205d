//! Line charts of throughput against threads or nodes, as SVG (plotters' SVG backend only).

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

/// A ratio chart: one line per case against a swept count, the counts evenly spaced (they
/// grow by powers of two), and a dashed line at 1 (parity).
pub struct RatioChart<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub xs: &'a [usize],
    pub series: &'a [Series],
}

/// Writes `chart` to `path` as an 900×540 SVG.
pub fn draw_ratios(path: &Path, chart: &RatioChart<'_>) -> Result<(), Box<dyn Error>> {
    if chart.xs.is_empty() {
        return Err(format!("chart `{}` has no x values", chart.title).into());
    }
    let y_max = chart
        .series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max);
    let y_top = y_max * 1.4;
    let last = (chart.xs.len() - 1) as f64;
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut c = ChartBuilder::on(&root)
        .caption(chart.title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.25..last + 0.25, 0.0..y_top)?;
    let xs = chart.xs.to_vec();
    c.configure_mesh()
        .x_desc(chart.x_desc)
        .y_desc(chart.y_desc)
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 15))
        .x_labels(xs.len())
        // Position i is the i-th swept count.
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
    for (i, s) in chart.series.iter().enumerate() {
        let col = PALETTE[i % PALETTE.len()];
        let points: Vec<(f64, f64)> = s
            .values
            .iter()
            .enumerate()
            .map(|(x, &y)| (x as f64, y))
            .collect();
        c.draw_series(LineSeries::new(points.clone(), col.stroke_width(3)))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], col.stroke_width(3)));
        c.draw_series(points.into_iter().map(|p| Circle::new(p, 5, col.filled())))?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
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
    let y_max = chart
        .series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    // Head room above the highest point for the legend box.
    let y_top = if y_max > 0.0 { y_max * 1.3 } else { 1.0 };
    // Half a step of padding either side so the end points and their markers are not clipped.
    let x_range = (x_min as f64 - 0.25)..(x_max as f64 + 0.25);

    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut c = ChartBuilder::on(&root)
        .caption(chart.title, ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(x_range, 0.0..y_top)?;
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

    for s in chart.series {
        let col = colour(&s.name);
        let points: Vec<(f64, f64)> = chart
            .xs
            .iter()
            .zip(&s.values)
            .map(|(&x, &y)| (x as f64, y))
            .collect();
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
    root.present()?;
    Ok(())
}
