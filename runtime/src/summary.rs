//! `render`: the text of `Model::summary()`, laid out like Keras 3's `model.summary()`.

use crate::error::write_shape;
use crate::model::LayerInfo;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// The summary table of a model called `name` with `layers`, of whose weights' values
/// `trainable` are trainable, then the memory `predict` needs: the weights' bytes and an
/// upper bound on its stack.
pub fn render(
    name: &str,
    layers: &[LayerInfo],
    trainable: usize,
    predict_stack_bytes: usize,
) -> String {
    let rows: Vec<[String; 3]> = layers
        .iter()
        .map(|l| {
            let mut shape = String::new();
            let _ = write_shape(&mut shape, Some("None"), l.output_shape);
            [
                format!("{} ({})", l.name, l.class),
                shape,
                group_thousands(l.params),
            ]
        })
        .collect();
    let headers = ["Layer (type)", "Output Shape", "Param #"];
    let mut widths = headers.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let widths = widths.map(|w| w + 2);
    let line = |left: &str, fill: &str, mid: &str, right: &str| {
        let parts: Vec<String> = widths.iter().map(|w| fill.repeat(*w)).collect();
        format!("{left}{}{right}\n", parts.join(mid))
    };
    let cells = |edge: &str, cells: [&str; 3]| {
        let mut s = String::from(edge);
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w - 2 - cell.chars().count();
            if i == 2 {
                let _ = write!(s, " {}{} {edge}", " ".repeat(pad), cell);
            } else {
                let _ = write!(s, " {}{} {edge}", cell, " ".repeat(pad));
            }
        }
        s.push('\n');
        s
    };

    let total: usize = layers.iter().map(|l| l.params).sum();
    let mut out = format!("Model: \"{name}\"\n");
    out += &line("┏", "━", "┳", "┓");
    out += &cells("┃", headers);
    out += &line("┡", "━", "╇", "┩");
    for (i, row) in rows.iter().enumerate() {
        out += &cells("│", [&row[0], &row[1], &row[2]]);
        if i + 1 < rows.len() {
            out += &line("├", "─", "┼", "┤");
        }
    }
    out += &line("└", "─", "┴", "┘");
    let _ = writeln!(
        out,
        " Total params: {} ({})",
        group_thousands(total),
        bytes(total)
    );
    let _ = writeln!(
        out,
        " Trainable params: {} ({})",
        group_thousands(trainable),
        bytes(trainable)
    );
    let frozen = total.saturating_sub(trainable);
    let _ = writeln!(
        out,
        " Non-trainable params: {} ({})",
        group_thousands(frozen),
        bytes(frozen)
    );
    let _ = writeln!(out, " Weights: {}", bytes(total));
    let _ = writeln!(out, " Predict stack: at most {predict_stack_bytes} B");
    out
}

fn group_thousands(n: usize) -> String {
    let digits = format!("{n}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Size of `params` f32 values, the way Keras prints it.
fn bytes(params: usize) -> String {
    let b = (params * 4) as f64;
    if b < 1024.0 {
        format!("{b:.2} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2} KB", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} MB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GB", b / (1024.0 * 1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_layers_and_totals() {
        let layers = [
            LayerInfo {
                name: "dense",
                class: "Dense",
                output_shape: &[128],
                params: 8320,
            },
            LayerInfo {
                name: "dense_1",
                class: "Dense",
                output_shape: &[10],
                params: 1290,
            },
        ];
        let s = render("Digits", &layers, 9610, 4096);
        assert!(s.contains("│ dense (Dense)"), "{s}");
        assert!(s.contains("(None, 128)"), "{s}");
        assert!(s.contains("8,320 │"), "{s}");
        assert!(s.contains(" Total params: 9,610 (37.54 KB)"), "{s}");
        assert!(s.contains(" Trainable params: 9,610 (37.54 KB)"), "{s}");
        assert!(s.contains(" Non-trainable params: 0 (0.00 B)"), "{s}");
        assert!(s.contains(" Weights: 37.54 KB"), "{s}");
        assert!(s.contains(" Predict stack: at most 4096 B"), "{s}");
    }

    /// Keras 3's summary of Dense(4) -> BatchNormalization -> Dense(2) on 3 inputs.
    #[test]
    fn non_trainable_weights_are_counted_apart() {
        let layers = [
            LayerInfo {
                name: "dense",
                class: "Dense",
                output_shape: &[4],
                params: 16,
            },
            LayerInfo {
                name: "conv1-BN",
                class: "BatchNormalization",
                output_shape: &[4],
                params: 16,
            },
            LayerInfo {
                name: "dense_1",
                class: "Dense",
                output_shape: &[2],
                params: 10,
            },
        ];
        let s = render("Net", &layers, 34, 4096);
        assert!(s.contains("│ conv1-BN (BatchNormalization)"), "{s}");
        assert!(s.contains(" Total params: 42 (168.00 B)\n"), "{s}");
        assert!(s.contains(" Trainable params: 34 (136.00 B)\n"), "{s}");
        assert!(s.contains(" Non-trainable params: 8 (32.00 B)\n"), "{s}");
    }
}
