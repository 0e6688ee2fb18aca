//! The progress bar of `fit`.

use super::History;

/// The progress bar of `fit` (indicatif), shown only when verbose and attached to a
/// terminal; without `std` it shows nothing.
pub(super) struct Progress {
    #[cfg(feature = "std")]
    bar: Option<indicatif::ProgressBar>,
    epochs: usize,
}

impl Progress {
    /// A bar of `steps` per epoch, or a counter when the count is unknown.
    pub(super) fn new(verbose: bool, epochs: usize, steps: Option<usize>) -> Progress {
        #[cfg(feature = "std")]
        {
            use std::io::IsTerminal;
            let bar = (verbose && std::io::stderr().is_terminal()).then(|| {
                let bar = match steps {
                    Some(steps) => indicatif::ProgressBar::new(steps as u64),
                    None => indicatif::ProgressBar::no_length(),
                };
                if let Ok(style) =
                    indicatif::ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} {msg}")
                {
                    bar.set_style(style);
                }
                bar
            });
            Progress { bar, epochs }
        }
        #[cfg(not(feature = "std"))]
        {
            let _ = (verbose, steps);
            Progress { epochs }
        }
    }

    /// Whether anything is drawn (the caller skips building messages otherwise).
    pub(super) fn visible(&self) -> bool {
        #[cfg(feature = "std")]
        {
            self.bar.is_some()
        }
        #[cfg(not(feature = "std"))]
        {
            false
        }
    }

    pub(super) fn start_epoch(&mut self, epoch: usize) {
        #[cfg(feature = "std")]
        if let Some(bar) = &self.bar {
            bar.reset();
            bar.set_prefix(alloc::format!("Epoch {}/{}", epoch + 1, self.epochs));
        }
        let _ = (epoch, self.epochs);
    }

    pub(super) fn step(&mut self, step: usize, loss: f32, metrics: &[(&'static str, f32)]) {
        #[cfg(feature = "std")]
        if let Some(bar) = &self.bar {
            use core::fmt::Write;
            bar.set_position(step as u64);
            let mut msg = alloc::format!("loss: {loss:.4}");
            for (name, value) in metrics {
                let _ = write!(msg, " - {name}: {value:.4}");
            }
            bar.set_message(msg);
        }
        let _ = (step, loss, metrics);
    }

    pub(super) fn end_epoch(&mut self, history: &History) {
        #[cfg(feature = "std")]
        if let Some(bar) = &self.bar {
            use core::fmt::Write;
            let mut msg = alloc::string::String::new();
            for (name, values) in &history.history {
                if let Some(v) = values.last() {
                    let _ = write!(msg, "{name}: {v:.4} ");
                }
            }
            bar.finish_with_message(msg);
            bar.println("");
        }
        let _ = history;
    }
}
