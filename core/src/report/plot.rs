//! PNG charts with plotters (bitmap backend, text drawn with ab_glyph and the bundled DejaVu
//! Sans font, so no system font libraries are needed).

use super::{ReportError, Table};
use crate::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn ensure_font() {
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Options of a chart drawn from a table (Rhai `plot_bars` / `plot_lines`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChartConfig {
    /// Category (bars) or x (lines) column; required.
    pub x: String,
    /// Value column; required.
    pub y: String,
    /// Series column (one bar colour or line per value); empty: one series.
    pub group: String,
    /// Title.
    pub title: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Lower y bound (none: 0 for bars, the data's minimum for lines).
    pub y_min: Option<f64>,
    /// Upper y bound (none: from the data).
    pub y_max: Option<f64>,
}

impl Default for ChartConfig {
    fn default() -> Self {
        Self {
            x: String::new(),
            y: String::new(),
            group: String::new(),
            title: String::new(),
            width: 800,
            height: 480,
            y_min: None,
            y_max: None,
        }
    }
}

impl crate::config::Primitive for ChartConfig {
    const NAME: &'static str = "plot";
    const OPTIONS: &'static [crate::config::OptionDoc] = {
        use crate::config::opt;
        &[
            opt("x", "category (bars) or x (lines) column; required"),
            opt("y", "value column; required"),
            opt(
                "group",
                "series column, one bar colour or line per value (none: one series)",
            ),
            opt("title", "chart title"),
            opt("width", "width in pixels"),
            opt("height", "height in pixels"),
            opt(
                "y_min",
                "lower y bound (none: 0 for bars, the data's minimum for lines)",
            ),
            opt("y_max", "upper y bound (none: from the data)"),
        ]
    };
}

impl ChartConfig {
    fn check(&self) -> Result<()> {
        if self.x.is_empty() || self.y.is_empty() {
            return Err(ReportError::Plot(
                "options `x` and `y` (column names) are required".into(),
            )
            .into());
        }
        Ok(())
    }

    /// A grouped bar chart of `t` as a PNG at `path`.
    pub fn bars(&self, t: &Table, path: &Path) -> Result<()> {
        self.check()?;
        let mut c = BarChart::from_table(t, &self.x, &self.y, &self.group, &self.title)?;
        c.y_range = (self.y_min, self.y_max);
        c.render(path, (self.width, self.height))
    }

    /// A line chart of `t` as a PNG at `path`.
    pub fn lines(&self, t: &Table, path: &Path) -> Result<()> {
        self.check()?;
        let mut c = LineChart::from_table(t, &self.x, &self.y, &self.group, &self.title)?;
        c.y_range = (self.y_min, self.y_max);
        c.render(path, (self.width, self.height))
    }
}

/// Grouped bar chart: one group of bars per category, one bar (colour) per series.
#[derive(Debug, Clone, Default)]
pub struct BarChart {
    /// Chart title.
    pub title: String,
    /// Y axis label.
    pub y_label: String,
    /// Categories along the x axis.
    pub categories: Vec<String>,
    /// `(series name, one value per category)`.
    pub series: Vec<(String, Vec<f64>)>,
    /// Y axis bounds; a missing bound is taken from the data (the lower one is 0 for bars, so
    /// give `y_min` to make small differences visible).
    pub y_range: (Option<f64>, Option<f64>),
}

/// Line chart: one line per series over numeric x.
#[derive(Debug, Clone, Default)]
pub struct LineChart {
    /// Chart title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// `(series name, points)`.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Y axis bounds; a missing bound is taken from the data.
    pub y_range: (Option<f64>, Option<f64>),
}

fn plot_err(e: impl std::fmt::Display) -> Error {
    ReportError::Plot(e.to_string()).into()
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo).abs() * 0.08).max(1e-9);
    (lo - pad, hi + pad)
}

/// A white canvas for `path` (parent directories created, the bundled font registered).
fn canvas(path: &Path, size: (u32, u32)) -> Result<DrawingArea<BitMapBackend<'_>, Shift>> {
    ensure_font();
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|e| Error::io("create directory", p, e))?;
    }
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    Ok(root)
}

/// `(lo, hi)` with the given bounds replacing the data's; an empty or inverted range is an
/// error naming the bounds.
fn with_bounds((lo, hi): (f64, f64), (min, max): (Option<f64>, Option<f64>)) -> Result<(f64, f64)> {
    let (lo, hi) = (min.unwrap_or(lo), max.unwrap_or(hi));
    if lo.is_finite() && hi.is_finite() && lo < hi {
        Ok((lo, hi))
    } else {
        Err(plot_err(format!(
            "the y range {lo} .. {hi} is empty (check y_min / y_max)"
        )))
    }
}

/// Margin around a chart's plot, pixels.
const MARGIN: u32 = 12;

/// Width of the y axis' label area, pixels.
const Y_LABELS: u32 = 60;

/// Whether category labels `widths` pixels wide, centred in slots `slot` pixels apart, come
/// closer than 6 pixels to a neighbour.
fn labels_collide(widths: &[u32], slot: f64) -> bool {
    widths
        .windows(2)
        .any(|w| f64::from(w[0] + w[1]) / 2.0 + 6.0 > slot)
}

/// The y range of a bar chart: the data's (bars rise from 0, so it is included, and nothing
/// is padded below it when no value is negative), with the configured bounds replacing it.
fn bar_range(values: &[f64], bounds: (Option<f64>, Option<f64>)) -> Result<(f64, f64)> {
    if bounds.0.is_some() {
        return with_bounds(range(values.iter().copied()), bounds);
    }
    let (lo, hi) = range(values.iter().copied().chain([0.0]));
    let lo = if values.iter().any(|&v| v < 0.0) {
        lo
    } else {
        0.0
    };
    with_bounds((lo, hi), bounds)
}

/// The canvas split into the plot (left) and a legend column (right) wide enough for the
/// longest series name, so the legend never covers bars or lines.
fn split_legend<'a>(
    root: &DrawingArea<BitMapBackend<'a>, Shift>,
    names: &[&str],
) -> (
    DrawingArea<BitMapBackend<'a>, Shift>,
    DrawingArea<BitMapBackend<'a>, Shift>,
) {
    let (w, _) = root.dim_in_pixel();
    let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(0) as u32;
    let legend_w = (longest * 8 + 44).min(w / 3);
    root.split_horizontally(w - legend_w)
}

/// One legend entry per series in the legend column: a swatch (a bar or a line) and the name.
fn draw_legend(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    entries: &[(&str, RGBAColor)],
    lines: bool,
) -> Result<()> {
    for (i, (name, color)) in entries.iter().enumerate() {
        let y = 48 + i as i32 * 22;
        if lines {
            area.draw(&PathElement::new(
                vec![(6, y), (22, y)],
                color.stroke_width(2),
            ))
            .map_err(plot_err)?;
        } else {
            area.draw(&Rectangle::new([(8, y - 6), (20, y + 6)], color.filled()))
                .map_err(plot_err)?;
        }
        area.draw(&Text::new(
            name.to_string(),
            (28, y - 6),
            ("sans-serif", 14).into_font().color(&BLACK),
        ))
        .map_err(plot_err)?;
    }
    Ok(())
}

impl BarChart {
    /// Builds a chart from a table: `x` column → categories, `group` column → series, `y` → values.
    pub fn from_table(t: &Table, x: &str, y: &str, group: &str, title: &str) -> Result<Self> {
        let mut cats: Vec<String> = Vec::new();
        let mut groups: Vec<String> = Vec::new();
        let mut cells = Vec::new();
        for i in 0..t.height() {
            let row = t.row(i).unwrap_or_default();
            let get = |c: &str| -> Result<serde_json::Value> {
                row.get(c).cloned().ok_or_else(|| {
                    ReportError::NoColumn {
                        name: c.into(),
                        known: t.columns().join(", "),
                    }
                    .into()
                })
            };
            let label = |v: serde_json::Value| {
                v.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string())
            };
            let (c, g, v) = (
                label(get(x)?),
                label(get(group)?),
                get(y)?.as_f64().unwrap_or(f64::NAN),
            );
            if !cats.contains(&c) {
                cats.push(c.clone());
            }
            if !groups.contains(&g) {
                groups.push(g.clone());
            }
            cells.push((c, g, v));
        }
        let series = groups
            .iter()
            .map(|g| {
                let vals = cats
                    .iter()
                    .map(|c| {
                        cells
                            .iter()
                            .find(|(cc, gg, _)| cc == c && gg == g)
                            .map_or(f64::NAN, |x| x.2)
                    })
                    .collect();
                (g.clone(), vals)
            })
            .collect();
        Ok(Self {
            title: title.into(),
            y_label: y.into(),
            categories: cats,
            series,
            y_range: (None, None),
        })
    }

    /// Renders the chart to a PNG file.
    pub fn render(&self, path: &Path, size: (u32, u32)) -> Result<()> {
        let canvas = canvas(path, size)?;
        let names: Vec<&str> = self.series.iter().map(|(n, _)| n.as_str()).collect();
        let (root, legend) = split_legend(&canvas, &names);
        let values: Vec<f64> = self.series.iter().flat_map(|(_, v)| v.clone()).collect();
        let (lo, hi) = bar_range(&values, self.y_range)?;
        let n_cat = self.categories.len().max(1);
        let n_ser = self.series.len().max(1);
        let style = ("sans-serif", 14)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Top));
        let widths = self
            .categories
            .iter()
            .map(|c| root.estimate_text_size(c, &style).map(|(w, _)| w))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(plot_err)?;
        let (root_w, _) = root.dim_in_pixel();
        let slot = f64::from(root_w.saturating_sub(2 * MARGIN + Y_LABELS)) / n_cat as f64;
        let stagger = labels_collide(&widths, slot);
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(MARGIN)
            .x_label_area_size(if stagger { 58 } else { 40 })
            .y_label_area_size(Y_LABELS)
            .build_cartesian_2d(0f64..n_cat as f64, lo..hi)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc(self.y_label.as_str())
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(plot_err)?;
        // Category names centred under their bars, every other one a line lower when
        // neighbours would overlap.
        let (xs, ys) = chart.plotting_area().get_pixel_range();
        let step = f64::from(xs.end - xs.start) / n_cat as f64;
        for (i, name) in self.categories.iter().enumerate() {
            let x = xs.start + ((i as f64 + 0.5) * step) as i32;
            let y = ys.end + 6 + if stagger && i % 2 == 1 { 18 } else { 0 };
            root.draw(&Text::new(name.clone(), (x, y), style.clone()))
                .map_err(plot_err)?;
        }
        let width = 0.8 / n_ser as f64;
        let mut entries = Vec::new();
        for (s, (name, vals)) in self.series.iter().enumerate() {
            let color = Palette99::pick(s).to_rgba();
            let bars = vals
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(move |(c, v)| {
                    let x0 = c as f64 + 0.1 + s as f64 * width;
                    Rectangle::new(
                        [
                            (x0, 0f64.clamp(lo, hi)),
                            (x0 + width * 0.95, v.clamp(lo, hi)),
                        ],
                        color.filled(),
                    )
                });
            chart.draw_series(bars).map_err(plot_err)?;
            entries.push((name.as_str(), color));
        }
        draw_legend(&legend, &entries, false)?;
        canvas.present().map_err(plot_err)
    }
}

impl LineChart {
    /// Builds a chart from a table: one line per distinct `group` value (or one line when
    /// `group` is empty), points `(x, y)` in row order.
    pub fn from_table(t: &Table, x: &str, y: &str, group: &str, title: &str) -> Result<Self> {
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for i in 0..t.height() {
            let row = t.row(i).unwrap_or_default();
            let num = |c: &str| -> Result<f64> {
                row.get(c)
                    .map(|v| v.as_f64().unwrap_or(f64::NAN))
                    .ok_or_else(|| {
                        ReportError::NoColumn {
                            name: c.into(),
                            known: t.columns().join(", "),
                        }
                        .into()
                    })
            };
            let g = if group.is_empty() {
                y.to_string()
            } else {
                let v = row.get(group).cloned().unwrap_or_default();
                v.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string())
            };
            let p = (num(x)?, num(y)?);
            match series.iter_mut().find(|(n, _)| *n == g) {
                Some((_, pts)) => pts.push(p),
                None => series.push((g, vec![p])),
            }
        }
        Ok(Self {
            title: title.into(),
            x_label: x.into(),
            y_label: y.into(),
            series,
            y_range: (None, None),
        })
    }

    /// Renders the chart to a PNG file.
    pub fn render(&self, path: &Path, size: (u32, u32)) -> Result<()> {
        let canvas = canvas(path, size)?;
        let names: Vec<&str> = self.series.iter().map(|(n, _)| n.as_str()).collect();
        let (root, legend) = split_legend(&canvas, &names);
        let (x0, x1) = range(self.series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)));
        let (y0, y1) = with_bounds(
            range(self.series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1))),
            self.y_range,
        )?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(plot_err)?;
        let mut entries = Vec::new();
        for (s, (name, pts)) in self.series.iter().enumerate() {
            let color = Palette99::pick(s).to_rgba();
            let pts: Vec<(f64, f64)> = pts
                .iter()
                .copied()
                .filter(|p| p.0.is_finite() && p.1.is_finite() && p.1 >= y0 && p.1 <= y1)
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(plot_err)?;
            entries.push((name.as_str(), color));
            chart
                .draw_series(
                    pts.into_iter()
                        .map(move |p| Circle::new(p, 3, color.filled())),
                )
                .map_err(plot_err)?;
        }
        draw_legend(&legend, &entries, true)?;
        canvas.present().map_err(plot_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn charts_render_png_files_from_tables() {
        let rows = json!([
            {"model": "base", "domain": "law", "ppl": 30.5},
            {"model": "merged", "domain": "law", "ppl": 22.0},
            {"model": "base", "domain": "news", "ppl": 41.0},
            {"model": "merged", "domain": "news", "ppl": 35.5},
        ]);
        let t = Table::from_rows(
            rows.as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_object().unwrap()),
        )
        .unwrap();
        let bar = BarChart::from_table(&t, "domain", "ppl", "model", "Perplexity").unwrap();
        assert_eq!(bar.categories, ["law", "news"]);
        assert_eq!(bar.series[1], ("merged".to_string(), vec![22.0, 35.5]));
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bars.png");
        bar.render(&p, (640, 400)).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let line = LineChart::from_table(&t, "ppl", "ppl", "model", "x").unwrap();
        assert_eq!(line.series.len(), 2);
        line.render(&d.path().join("l.png"), (320, 200)).unwrap();
        assert!(BarChart::from_table(&t, "nope", "ppl", "model", "x").is_err());
        // A y range: bars start at y_min; an empty range is an error naming it.
        let mut zoomed = bar.clone();
        zoomed.y_range = (Some(20.0), None);
        zoomed.render(&d.path().join("z.png"), (640, 400)).unwrap();
        zoomed.y_range = (Some(50.0), Some(40.0));
        let e = zoomed
            .render(&d.path().join("e.png"), (640, 400))
            .unwrap_err();
        assert!(e.to_string().contains("y_min"), "{e}");
    }

    #[test]
    fn bars_rise_from_zero_and_long_category_names_are_staggered() {
        // Non-negative data: the axis starts at 0 (no padding below the bars' base).
        let (lo, hi) = bar_range(&[30.0, 480.0], (None, None)).unwrap();
        assert_eq!(lo, 0.0);
        assert!(hi > 480.0);
        // A negative value is shown below 0 with room; a y_min replaces the data's bottom.
        assert!(bar_range(&[-10.0, 5.0], (None, None)).unwrap().0 < -10.0);
        assert_eq!(
            bar_range(&[30.0, 40.0], (Some(20.0), None)).unwrap().0,
            20.0
        );
        // Seven domains on a 560-pixel plot: "law_precedents" next to "law_statutes" (≈ 100
        // pixels each at 14 px) do not fit 69-pixel slots; short names do.
        assert!(labels_collide(&[60, 104, 92, 108], 69.0));
        assert!(!labels_collide(&[40, 30, 52], 69.0));
        assert!(!labels_collide(&[300], 10.0));
    }
}
