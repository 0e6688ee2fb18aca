//! `History::to_svg` / `plot_svg` (the `plot` feature): the picture is well-formed SVG
//! with one polyline per curve, a point per logged value at its epoch, the history's names
//! in the legend, and a typed error (never a panic) for what cannot be drawn.
//!
//! Run with `cargo test --features plot --test history_plot`.

mod common;

use kiln::callbacks::LogValues;
use kiln::{Adam, Error, FitOptions, History, Loss, Metric, Model};

/// A history of `epochs` epochs from `(name, values)` columns (`None`: not logged that
/// epoch, as `val_*` between validations).
fn history(columns: &[(&'static str, &[Option<f32>])]) -> History {
    let epochs = columns.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    let mut history = History::default();
    for epoch in 0..epochs {
        let mut logs = LogValues::new();
        for (name, values) in columns {
            if let Some(Some(v)) = values.get(epoch) {
                logs.set(*name, *v);
            }
        }
        history.record(epoch, &logs);
    }
    history
}

fn all(values: &[f32]) -> Vec<Option<f32>> {
    values.iter().copied().map(Some).collect()
}

/// Checks the text is one `<svg>` element whose tags nest (every opened tag closed in
/// order, quotes balanced inside tags) and returns the tags, `(name, attributes text)`.
fn parse_svg(svg: &str) -> Vec<(String, String)> {
    let svg = svg.trim();
    assert!(
        svg.starts_with("<svg"),
        "not an SVG: {}",
        &svg[..svg.len().min(80)]
    );
    assert!(svg.ends_with("</svg>"), "the SVG does not end with </svg>");
    let mut tags = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let text = &rest[..start];
        assert!(!text.contains('>'), "a stray `>` in text {text:?}");
        let end = rest[start..].find('>').expect("an unclosed tag") + start;
        let tag = &rest[start + 1..end];
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes in <{tag}>"
        );
        assert!(!tag.contains('<'), "a `<` inside a tag: <{tag}>");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "</{name}> closes nothing open"
            );
        } else if !tag.starts_with('?') && !tag.starts_with('!') {
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let (name, attrs) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
            tags.push((name.to_string(), attrs.to_string()));
            if !self_closing {
                stack.push(name.to_string());
            }
        }
        rest = &rest[end + 1..];
    }
    assert!(stack.is_empty(), "tags left open: {stack:?}");
    assert!(rest.trim().is_empty(), "text after </svg>");
    tags
}

/// `name="value"` in a tag's attribute text.
fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    let start = attrs
        .find(&format!(" {name}=\""))
        .map(|i| i + name.len() + 3)
        .or_else(|| {
            attrs
                .starts_with(&format!("{name}=\""))
                .then_some(name.len() + 2)
        })?;
    let len = attrs[start..].find('"')?;
    Some(&attrs[start..start + len])
}

/// Each polyline's points (pixels), in document order.
fn polylines(svg: &str) -> Vec<Vec<(f64, f64)>> {
    parse_svg(svg)
        .into_iter()
        .filter(|(name, _)| name == "polyline")
        .map(|(_, attrs)| {
            attr(&attrs, "points")
                .expect("a polyline without points")
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').expect("a point `x,y`");
                    (x.parse().expect("x"), y.parse().expect("y"))
                })
                .collect()
        })
        .collect()
}

/// The text of every `<text>` element.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

/// Asserts the pixel heights follow the values: higher value, higher on the page (smaller
/// y), through one linear map per chart (within a pixel of rounding).
fn assert_drawn_linearly(points: &[(f64, f64)], values: &[f32]) {
    assert_eq!(points.len(), values.len());
    let (i, j) = (0, values.len() - 1);
    let scale = (points[j].1 - points[i].1) / f64::from(values[j] - values[i]);
    assert!(
        scale < 0.0,
        "larger values must be drawn higher: {points:?} for {values:?}"
    );
    for (p, &v) in points.iter().zip(values) {
        let expected = points[i].1 + scale * f64::from(v - values[i]);
        assert!(
            (p.1 - expected).abs() <= 1.5,
            "value {v} drawn at y {} not {expected}",
            p.1
        );
    }
}

#[test]
fn one_polyline_per_curve_with_a_point_per_epoch() {
    let loss = [0.9, 0.6, 0.45, 0.4, 0.38, 0.37];
    let val_loss = [1.0, 0.7, 0.55, 0.52, 0.53, 0.56];
    let accuracy = [0.5, 0.7, 0.8, 0.85, 0.87, 0.88];
    let val_accuracy = [0.45, 0.66, 0.75, 0.78, 0.78, 0.77];
    let h = history(&[
        ("loss", &all(&loss)),
        ("accuracy", &all(&accuracy)),
        ("val_loss", &all(&val_loss)),
        ("val_accuracy", &all(&val_accuracy)),
    ]);
    let svg = h.to_svg().expect("a picture");
    let lines = polylines(&svg);
    assert_eq!(lines.len(), 4, "one polyline per curve");
    // Charts in logging order (loss, then accuracy), each name then its val_ twin.
    for (line, values) in lines
        .iter()
        .zip([&loss, &val_loss, &accuracy, &val_accuracy])
    {
        assert_eq!(line.len(), 6, "one point per epoch");
        assert_drawn_linearly(line, values);
    }
    // Epochs on x, evenly spaced, the same columns for a curve and its val_ twin.
    for line in &lines {
        let steps: Vec<f64> = line.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert!(
            steps
                .iter()
                .all(|s| *s > 0.0 && (s - steps[0]).abs() <= 1.0),
            "{steps:?}"
        );
    }
    assert_eq!(
        lines[0].iter().map(|p| p.0).collect::<Vec<_>>(),
        lines[1].iter().map(|p| p.0).collect::<Vec<_>>()
    );
    // The loss chart is left of the accuracy chart.
    assert!(lines[2][0].0 > lines[0][5].0);

    let texts = texts(&svg);
    for name in ["loss", "val_loss", "accuracy", "val_accuracy", "epoch"] {
        assert!(
            texts.iter().any(|t| t == name),
            "no text `{name}` in {texts:?}"
        );
    }
    // Epochs counted from 1 on the axis, as Keras's progress bar prints them.
    assert!(
        texts.iter().any(|t| t == "1") && texts.iter().any(|t| t == "6"),
        "{texts:?}"
    );
    assert!(!texts.iter().any(|t| t == "0" || t == "7"), "{texts:?}");
}

/// Keras's own history for `fit(..., epochs = 5, validation_freq = 2)`
/// (tests/golden/callbacks.json): `val_loss` holds 2 values against `loss`'s 5, logged in
/// epochs 2 and 4 (Keras's `_should_eval`: `(epoch + 1) % validation_freq == 0`).
#[test]
fn validation_every_other_epoch_draws_points_at_those_epochs_only() {
    let cases = common::golden("callbacks");
    let case = cases["history"]
        .as_array()
        .expect("history cases")
        .iter()
        .find(|c| c["name"] == "validation_freq_2")
        .expect("the validation_freq_2 case");
    let loss = common::floats(&case["history"]["loss"]);
    let mut val_loss = common::floats(&case["history"]["val_loss"]).into_iter();
    let mut h = History::default();
    for (epoch, &l) in loss.iter().enumerate() {
        let mut logs = LogValues::new();
        logs.set("loss", l);
        if (epoch + 1) % 2 == 0 {
            logs.set(
                "val_loss",
                val_loss.next().expect("a val_loss per validation"),
            );
        }
        h.record(epoch, &logs);
    }
    assert_eq!(val_loss.next(), None);
    let lines = polylines(&h.to_svg().expect("a picture"));
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].len(), 5);
    assert_eq!(lines[1].len(), 2);
    assert_eq!(
        lines[1][0].0, lines[0][1].0,
        "the first validation is at epoch 2"
    );
    assert_eq!(lines[1][1].0, lines[0][3].0, "the second at epoch 4");
}

#[test]
fn a_trained_history_draws_every_logged_curve() {
    kiln::model! {
        Net = Sequential([
            Input(shape = (2,)),
            Dense(4, activation = "tanh"),
            Dense(1, activation = "sigmoid"),
        ]);
    }
    let x = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
    let y = [0.0, 1.0, 1.0, 0.0];
    let mut trainer = Net::new(3)
        .compile(
            Adam::default(),
            Loss::BinaryCrossentropy { from_logits: false },
        )
        .with_metrics(&[Metric::Accuracy]);
    let options = FitOptions {
        epochs: 7,
        batch_size: 2,
        validation_data: Some((&x, &y)),
        verbose: false,
        ..FitOptions::default()
    };
    let h = trainer.fit(&x, &y, &options).expect("fit");
    let svg = h.to_svg().expect("a picture");
    let lines = polylines(&svg);
    assert_eq!(lines.len(), h.history.len());
    assert!(lines.iter().all(|l| l.len() == 7));
    let texts = texts(&svg);
    for (name, _) in &h.history {
        assert!(texts.contains(name), "no legend entry `{name}`");
    }
}

#[test]
fn a_vector_valued_metric_draws_a_curve_per_value() {
    let mut h = History::default();
    for epoch in 0..4 {
        let mut logs = LogValues::new();
        logs.set("loss", 1.0 / (epoch as f32 + 1.0));
        for class in 0..3 {
            logs.push("f1_score", 0.2 * class as f32 + 0.1 * epoch as f32);
        }
        h.record(epoch, &logs);
    }
    let svg = h.to_svg().expect("a picture");
    let lines = polylines(&svg);
    assert_eq!(lines.len(), 4);
    assert!(lines.iter().all(|l| l.len() == 4));
    // Class c's curve is 0.2 * c above class 0's: each value drawn from its own column.
    for class in 0..3 {
        let values: Vec<f32> = (0..4)
            .map(|e| 0.2 * class as f32 + 0.1 * e as f32)
            .collect();
        assert_drawn_linearly(&lines[1 + class], &values);
    }
    assert!(lines[1][0].1 > lines[2][0].1 && lines[2][0].1 > lines[3][0].1);
    let texts = texts(&svg);
    for name in ["f1_score[0]", "f1_score[1]", "f1_score[2]"] {
        assert!(texts.iter().any(|t| t == name), "no `{name}` in {texts:?}");
    }
}

#[test]
fn no_epoch_is_a_typed_error() {
    for h in [History::default(), history(&[("loss", &[])])] {
        match h.to_svg() {
            Err(Error::Plot { reason }) => assert_eq!(reason, "it holds no epoch"),
            other => panic!("expected Error::Plot, found {other:?}"),
        }
    }
    let path = std::env::temp_dir().join("kiln-history-plot-empty.svg");
    assert!(matches!(
        History::default().plot_svg(&path),
        Err(Error::Plot { .. })
    ));
    assert_eq!(
        Error::Plot {
            reason: "it holds no epoch".into()
        }
        .to_string(),
        "cannot plot the history: it holds no epoch"
    );
    // Epochs that logged nothing: nothing to draw either.
    let mut h = History::default();
    h.record(0, &LogValues::new());
    assert!(matches!(h.to_svg(), Err(Error::Plot { .. })));
}

#[test]
fn non_finite_values_break_the_curve_without_a_panic() {
    let nan = f32::NAN;
    let h = history(&[
        ("loss", &all(&[0.9, 0.7, nan, 0.5, f32::INFINITY, 0.3])),
        ("val_loss", &all(&[nan; 6])),
    ]);
    let svg = h.to_svg().expect("a picture");
    let lines = polylines(&svg);
    // loss: runs [0.9, 0.7], [0.5], [0.3]; val_loss: no finite value, no line.
    assert_eq!(lines.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1, 1]);
    assert!(
        texts(&svg).iter().any(|t| t == "val_loss"),
        "val_loss keeps its legend entry"
    );
    assert!(
        !svg.contains("NaN") && !svg.contains("inf"),
        "no non-finite coordinate"
    );

    let only_nan = history(&[("loss", &all(&[nan, nan]))]);
    assert!(polylines(&only_nan.to_svg().expect("a picture")).is_empty());
}

#[test]
fn flat_single_extreme_and_odd_names_draw() {
    let one_epoch = history(&[("loss", &all(&[0.5]))]);
    let lines = polylines(&one_epoch.to_svg().expect("a picture"));
    assert_eq!(lines.iter().map(Vec::len).collect::<Vec<_>>(), [1]);

    let flat = history(&[("loss", &all(&[0.0; 4])), ("val_loss", &all(&[2.0; 4]))]);
    assert_eq!(polylines(&flat.to_svg().expect("a picture")).len(), 2);

    let extreme = history(&[("loss", &all(&[f32::MAX, -f32::MAX, f32::MIN_POSITIVE, 0.0]))]);
    let lines = polylines(&extreme.to_svg().expect("a picture"));
    assert_eq!(lines[0].len(), 4);

    // Names are text: escaped, so the SVG stays well-formed.
    let odd = history(&[("a<b & \"c\">", &all(&[1.0, 2.0]))]);
    let svg = odd.to_svg().expect("a picture");
    parse_svg(&svg);
    assert!(svg.contains("a&lt;b &amp;"));

    // A history that starts late (`initial_epoch`) and five charts (three rows).
    let mut late = History::default();
    for epoch in 40..43 {
        let mut logs = LogValues::new();
        for name in ["loss", "a", "b", "c", "learning_rate"] {
            logs.set(name, epoch as f32);
        }
        late.record(epoch, &logs);
    }
    let svg = late.to_svg().expect("a picture");
    assert_eq!(polylines(&svg).len(), 5);
    assert!(texts(&svg).iter().any(|t| t == "41"), "epochs from 41");

    // Epoch numbers at the end of usize: drawn, no overflow.
    for epochs in [
        &[usize::MAX][..],
        &[0, usize::MAX],
        &[usize::MAX - 1, usize::MAX],
    ] {
        let mut h = History::default();
        for &epoch in epochs {
            let mut logs = LogValues::new();
            logs.set("loss", 0.5);
            h.record(epoch, &logs);
        }
        assert_eq!(polylines(&h.to_svg().expect("a picture")).len(), 1);
    }
}

#[test]
fn plot_svg_writes_the_picture_or_names_the_path() {
    let h = history(&[("loss", &all(&[0.9, 0.5]))]);
    let path = std::env::temp_dir().join(format!("kiln-history-plot-{}.svg", std::process::id()));
    h.plot_svg(&path).expect("written");
    let written = std::fs::read_to_string(&path).expect("the file");
    std::fs::remove_file(&path).expect("removed");
    assert_eq!(written, h.to_svg().expect("a picture"));

    let bad = std::env::temp_dir()
        .join("kiln-no-such-dir")
        .join("x")
        .join("curves.svg");
    match h.plot_svg(&bad) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("curves.svg")),
        other => panic!("expected Error::Io, found {other:?}"),
    }
}
