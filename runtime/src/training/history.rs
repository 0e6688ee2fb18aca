//! [`History`]'s exports: CSV and JSON text, and (with the `plot` feature) its curves drawn
//! to an SVG file.

use super::callbacks::pyformat::repr;
use super::History;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

impl History {
    /// The cells of `name` (index `k` of the history) in `epoch`: its values there.
    fn cells(&self, k: usize, epoch: usize) -> Vec<f32> {
        let (_, values) = &self.history[k];
        self.epochs_of[k]
            .iter()
            .zip(values)
            .filter(|(e, _)| **e == epoch)
            .map(|(_, v)| *v)
            .collect()
    }

    /// Values per epoch of each name (the most in any epoch: several for a vector-valued
    /// metric).
    fn widths(&self) -> Vec<usize> {
        (0..self.history.len())
            .map(|k| {
                self.epoch
                    .iter()
                    .map(|&e| self.cells(k, e).len())
                    .max()
                    .unwrap_or(0)
                    .max(1)
            })
            .collect()
    }

    /// The history as CSV, one row per epoch: `epoch` then each name in logging order
    /// (`name[i]` columns for a metric with several values), values as Python prints
    /// floats, an empty cell where a name has no value that epoch (`val_*` between
    /// validations). Lines end in `\n`.
    pub fn to_csv(&self) -> String {
        let widths = self.widths();
        let mut out = String::from("epoch");
        for ((name, _), &w) in self.history.iter().zip(&widths) {
            for i in 0..w {
                if w == 1 {
                    let _ = write!(out, ",{name}");
                } else {
                    let _ = write!(out, ",{name}[{i}]");
                }
            }
        }
        out.push('\n');
        for &epoch in &self.epoch {
            let _ = write!(out, "{epoch}");
            for (k, &w) in widths.iter().enumerate() {
                let cells = self.cells(k, epoch);
                for i in 0..w {
                    out.push(',');
                    if let Some(v) = cells.get(i) {
                        out.push_str(&repr(f64::from(*v)));
                    }
                }
            }
            out.push('\n');
        }
        out
    }

    /// The history as JSON, in the shape of Keras's `history.history` (plus `epoch`):
    /// `{"epoch": [0, 1], "loss": [0.5, 0.25], ...}`, values as Python prints floats
    /// (`NaN` and `Infinity` as Python's `json` writes them).
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"epoch\": [");
        for (i, e) in self.epoch.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{e}");
        }
        out.push(']');
        for (name, values) in &self.history {
            out.push_str(", \"");
            for c in name.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c if (c as u32) < 0x20 => {
                        let _ = write!(out, "\\u{:04x}", c as u32);
                    }
                    c => out.push(c),
                }
            }
            out.push_str("\": [");
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let v = f64::from(*v);
                if v.is_nan() {
                    out.push_str("NaN");
                } else if v.is_infinite() {
                    out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
                } else {
                    out.push_str(&repr(v));
                }
            }
            out.push(']');
        }
        out.push('}');
        out
    }
}

/// The `plot` feature's drawing: [`History::to_svg`] and [`History::plot_svg`].
#[cfg(feature = "plot")]
mod plot {
    use super::History;
    use crate::error::Error;
    use alloc::format;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;
    use plotters::coord::ranged1d::Ranged;
    use plotters::coord::types::RangedCoordf64;
    use plotters::prelude::*;

    /// Pixels of one chart; the charts sit two to a row.
    const CHART: (u32, u32) = (480, 340);

    /// Most ticks on the y axis.
    const Y_LABELS: usize = 10;

    /// Matplotlib's default colour cycle (`tab10`), so the picture reads like the
    /// `plt.plot(history.history[...])` one Keras users know: training blue, validation
    /// orange.
    const COLORS: [RGBColor; 10] = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
        RGBColor(0xe3, 0x77, 0xc2),
        RGBColor(0x7f, 0x7f, 0x7f),
        RGBColor(0xbc, 0xbd, 0x22),
        RGBColor(0x17, 0xbe, 0xcf),
    ];

    /// One curve: a history name (`name[i]` for one value of a vector-valued metric) and
    /// its `(epoch from 1, value)` points, non-finite values left out.
    struct Series {
        label: String,
        points: Vec<Vec<(f64, f64)>>,
    }

    /// One chart: a name and its `val_` twin.
    struct Chart {
        title: String,
        series: Vec<Series>,
    }

    fn plot_error(reason: impl core::fmt::Display) -> Error {
        Error::Plot {
            reason: reason.to_string(),
        }
    }

    /// The x coordinate of `epoch` (from 0 in the history): counted from 1, as Keras's
    /// progress bar prints epochs.
    fn x_of(epoch: usize) -> f64 {
        epoch as f64 + 1.0
    }

    /// `lo..hi` widened by 5 % (matplotlib's margins), never empty: a flat curve gets room
    /// around it.
    fn padded(lo: f64, hi: f64) -> (f64, f64) {
        let span = hi - lo;
        let pad = if span > 0.0 {
            span * 0.05
        } else {
            f64::max(lo.abs() * 0.05, 0.5)
        };
        (lo - pad, hi + pad)
    }

    /// The y axis's number format for the `labels` ticks plotters puts on `lo..hi`: as many
    /// decimals as their spacing needs, the same on every tick (matplotlib's way), and
    /// scientific notation past 1e5 or below 1e-3 (`3.0e38`, `1.2e-7`).
    fn tick_format(lo: f64, hi: f64, labels: usize) -> impl Fn(&f64) -> String {
        let ticks = RangedCoordf64::from(lo..hi).key_points(labels);
        let step = match ticks.as_slice() {
            [a, b, ..] => b - a,
            _ => hi - lo,
        };
        let magnitude = f64::max(lo.abs(), hi.abs());
        let scientific = magnitude >= 1e5 || (magnitude > 0.0 && magnitude < 1e-3);
        // Decimals that tell ticks `step` apart (in units of the largest value's power of
        // ten for scientific notation); the slack absorbs log10's rounding at 0.1, 0.01...
        let digits = if scientific {
            magnitude.log10().floor() - step.log10()
        } else {
            -step.log10()
        };
        let digits = (digits - 1e-9).ceil();
        let digits = if digits.is_finite() {
            digits.clamp(0.0, 6.0) as usize
        } else {
            1
        };
        // A tick at zero computed as -1e-17 prints as `0`, not `-0.0`.
        move |v: &f64| match (scientific, v.abs() < step * 1e-6) {
            (true, true) => String::from("0"),
            (true, false) => format!("{v:.digits$e}"),
            (false, true) => format!("{:.digits$}", 0.0),
            (false, false) => format!("{v:.digits$}"),
        }
    }

    /// Splits `points` (None for a non-finite value) into runs of finite values: the line
    /// breaks at a NaN or infinity, as matplotlib draws one.
    fn runs(points: impl Iterator<Item = (f64, Option<f64>)>) -> Vec<Vec<(f64, f64)>> {
        let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut open = false;
        for (x, y) in points {
            match y {
                Some(y) => {
                    if !open {
                        runs.push(Vec::new());
                        open = true;
                    }
                    if let Some(run) = runs.last_mut() {
                        run.push((x, y));
                    }
                }
                None => open = false,
            }
        }
        runs
    }

    impl History {
        /// The charts in the order their first name was logged: `loss` with `val_loss`,
        /// then each metric with its `val_` twin.
        fn charts(&self) -> Vec<Chart> {
            let widths = self.widths();
            let mut charts: Vec<Chart> = Vec::new();
            for (k, ((name, _), &width)) in self.history.iter().zip(&widths).enumerate() {
                let family = name.strip_prefix("val_").unwrap_or(name);
                let index = match charts.iter().position(|c| c.title == family) {
                    Some(index) => index,
                    None => {
                        charts.push(Chart {
                            title: family.into(),
                            series: Vec::new(),
                        });
                        charts.len() - 1
                    }
                };
                for i in 0..width {
                    let label = if width == 1 {
                        name.clone()
                    } else {
                        format!("{name}[{i}]")
                    };
                    let values = self.epoch.iter().filter_map(|&epoch| {
                        let value = *self.cells(k, epoch).get(i)?;
                        let value = f64::from(value);
                        Some((x_of(epoch), value.is_finite().then_some(value)))
                    });
                    charts[index].series.push(Series {
                        label,
                        points: runs(values),
                    });
                }
            }
            charts
        }

        /// The training curves as an SVG picture: one chart per quantity — `loss` with
        /// `val_loss`, each metric with its `val_` twin, anything else logged (a
        /// `learning_rate`) on its own — two charts to a row, epochs on the x axis
        /// (counted from 1, as Keras's progress bar prints them), with a title, axis names
        /// and a legend naming each curve as the history does. Each curve is one SVG
        /// `<polyline>` with a dot at every value; a vector-valued metric draws one curve
        /// per value (`f1_score[0]`, `f1_score[1]`, ...), and `val_*` logged only in some
        /// epochs (`validation_freq`) has points at those epochs only.
        ///
        /// A NaN or infinite value is left out and its curve breaks there (so the curve
        /// is several polylines), as matplotlib draws it; a curve with no finite value
        /// keeps its legend entry and draws nothing. Text is plain SVG `<text>` in the
        /// viewer's sans-serif font (no font is embedded or needed to draw it).
        ///
        /// The `plot` feature (`kiln = { features = ["plot"] }`) brings it in.
        ///
        /// # Errors
        ///
        /// [`Error::Plot`] when the history holds no epoch (nothing to draw), or if the
        /// plotting library fails.
        ///
        /// # Example
        ///
        /// ```
        /// use kiln_runtime::callbacks::LogValues;
        /// use kiln_runtime::History;
        ///
        /// let mut history = History::default(); // what `Trainer::fit` returns
        /// for (epoch, (loss, val_loss)) in [(0.9, 1.0), (0.5, 0.7), (0.3, 0.6)].into_iter().enumerate() {
        ///     let mut logs = LogValues::new();
        ///     logs.set("loss", loss);
        ///     logs.set("val_loss", val_loss);
        ///     history.record(epoch, &logs);
        /// }
        /// let svg = history.to_svg()?;
        /// assert!(svg.starts_with("<svg") && svg.contains("val_loss"));
        /// assert_eq!(svg.matches("<polyline").count(), 2); // loss and val_loss
        /// history.plot_svg(std::env::temp_dir().join("kiln-doc-curves.svg"))?;
        /// # Ok::<(), kiln_runtime::Error>(())
        /// ```
        pub fn to_svg(&self) -> Result<String, Error> {
            let (Some(&first), Some(&last)) = (self.epoch.iter().min(), self.epoch.iter().max())
            else {
                return Err(plot_error("it holds no epoch"));
            };
            let charts = self.charts();
            if charts.is_empty() {
                return Err(plot_error("it holds no logged value"));
            }
            let columns = charts.len().min(2);
            let rows = charts.len().div_ceil(2);
            let height = u32::try_from(rows)
                .ok()
                .and_then(|rows| rows.checked_mul(CHART.1))
                .ok_or_else(|| {
                    plot_error(format!("{} charts do not fit one picture", charts.len()))
                })?;
            let size = (CHART.0 * columns as u32, height);
            let (x_lo, x_hi) = padded(x_of(first), x_of(last));
            // At most one label per epoch, so the ticks fall on whole epochs.
            let x_labels = (last - first).saturating_add(1).min(10);
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
                root.fill(&WHITE).map_err(plot_error)?;
                let areas = root.split_evenly((rows, columns));
                for (area, chart) in areas.iter().zip(&charts) {
                    draw_chart(area, chart, (x_lo, x_hi), x_labels)?;
                }
                root.present().map_err(plot_error)?;
            }
            Ok(svg)
        }

        /// Writes [`History::to_svg`]'s picture to `path` (the `plot` feature).
        ///
        /// # Errors
        ///
        /// [`Error::Plot`] as [`History::to_svg`], and [`Error::Io`] when the file cannot
        /// be written.
        pub fn plot_svg(&self, path: impl AsRef<std::path::Path>) -> Result<(), Error> {
            let path = path.as_ref();
            let svg = self.to_svg()?;
            std::fs::write(path, svg).map_err(|e| Error::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            })
        }
    }

    /// Draws `chart` in `area`: axes, grid, its curves and their legend.
    fn draw_chart<DB: DrawingBackend>(
        area: &DrawingArea<DB, plotters::coord::Shift>,
        chart: &Chart,
        x: (f64, f64),
        x_labels: usize,
    ) -> Result<(), Error> {
        let finite = chart.series.iter().flat_map(|s| s.points.iter().flatten());
        let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, y)| {
            (lo.min(y), hi.max(y))
        });
        let (y_lo, y_hi) = if lo <= hi { padded(lo, hi) } else { (0.0, 1.0) };
        let mut plot = ChartBuilder::on(area)
            .caption(&chart.title, ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(38)
            .y_label_area_size(76)
            .build_cartesian_2d(x.0..x.1, y_lo..y_hi)
            .map_err(plot_error)?;
        plot.configure_mesh()
            .x_labels(x_labels)
            .x_desc("epoch")
            .y_desc(&chart.title)
            .x_label_formatter(&|x| format!("{x}"))
            .y_labels(Y_LABELS)
            .y_label_formatter(&tick_format(y_lo, y_hi, Y_LABELS))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.1))
            // plotters draws axes and ticks as polylines; a frame (a `<rect>`, as
            // matplotlib's spines) leaves polylines to the curves alone.
            .axis_style(TRANSPARENT)
            .draw()
            .map_err(plot_error)?;
        plot.plotting_area()
            .draw(&Rectangle::new([(x.0, y_lo), (x.1, y_hi)], BLACK.mix(0.6)))
            .map_err(plot_error)?;
        for (series, color) in chart.series.iter().zip(COLORS.iter().cycle()) {
            let color = *color;
            // The legend entry hangs on the first run drawn (an empty one for a curve with
            // no finite value); it is a short bar, so every polyline is a curve.
            let mut runs = series.points.iter();
            let first = runs.next().map(Vec::as_slice).unwrap_or_default();
            plot.draw_series(LineSeries::new(
                first.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label(series.label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 1), (x + 18, y + 1)], color.filled()));
            for run in runs {
                plot.draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(2)))
                    .map_err(plot_error)?;
            }
            let dots = series.points.iter().flatten();
            plot.draw_series(dots.map(|&p| Circle::new(p, 2, color.filled())))
                .map_err(plot_error)?;
        }
        // Falling curves (a loss) leave the upper right free, rising ones (an accuracy)
        // the lower right.
        let falling = chart
            .series
            .first()
            .and_then(|s| Some((s.points.first()?.first()?.1, s.points.last()?.last()?.1)))
            .is_some_and(|(start, end)| end < start);
        plot.configure_series_labels()
            .position(if falling {
                SeriesLabelPosition::UpperRight
            } else {
                SeriesLabelPosition::LowerRight
            })
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    }
}
