//! Keras's `MonitorCallback`: the direction (`mode`) of a monitored value and whether a new
//! value improves on a reference, shared by `EarlyStopping`, `ModelCheckpoint` and
//! `ReduceLROnPlateau`.

use super::Training;
use crate::error::Error;

/// Whether the monitored value should fall or rise (Keras's `mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// From the name, as Keras: `loss` falls, a compiled metric goes its own way
    /// ([`Training::higher_is_better`]); any other name is an error at the first epoch end
    /// (Keras raises a `ValueError`).
    #[default]
    Auto,
    /// Lower is better.
    Min,
    /// Higher is better.
    Max,
}

impl Mode {
    /// Keras's spelling: `"auto"`, `"min"`, `"max"` (Keras falls back to auto, with a
    /// warning, on anything else; kiln refuses it).
    pub fn from_name(name: &str) -> Option<Mode> {
        match name {
            "auto" => Some(Mode::Auto),
            "min" => Some(Mode::Min),
            "max" => Some(Mode::Max),
            _ => None,
        }
    }

    /// Whether higher is better for `monitor` (`_set_monitor_op`).
    pub(crate) fn higher_is_better(
        self,
        monitor: &str,
        training: &Training<'_>,
        callback: &'static str,
    ) -> Result<bool, Error> {
        match self {
            Mode::Min => Ok(false),
            Mode::Max => Ok(true),
            Mode::Auto => training
                .higher_is_better(monitor)
                .ok_or_else(|| Error::Callback {
                    callback,
                    reason: alloc::format!(
                        "cannot tell whether `{monitor}` should be maximized or minimized \
                     (it is neither `loss` nor a compiled metric); set `mode` to \
                     `Mode::Max` or `Mode::Min`"
                    ),
                }),
        }
    }
}

/// `MonitorCallback._is_improvement`: `current - min_delta` (signed by the direction,
/// formed in double precision as Python does) compared with `reference` in float32, as
/// `ops.less` / `ops.greater` convert both. No reference yet is an improvement.
pub(crate) fn is_improvement(
    higher: bool,
    min_delta: f64,
    current: f32,
    reference: Option<f64>,
) -> bool {
    let Some(reference) = reference else {
        return true;
    };
    let delta = if higher {
        min_delta.abs()
    } else {
        -min_delta.abs()
    };
    let shifted = (f64::from(current) - delta) as f32;
    let reference = reference as f32;
    if higher {
        shifted > reference
    } else {
        shifted < reference
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_and_deltas_follow_keras() {
        assert!(is_improvement(false, 0.0, 1.0, None));
        assert!(!is_improvement(false, 0.0, 0.8, Some(0.8)));
        assert!(is_improvement(false, 0.0, 0.79, Some(0.8)));
        assert!(!is_improvement(false, 0.02, 0.79, Some(0.8)));
        assert!(is_improvement(true, 0.0, 0.6, Some(0.5)));
        assert!(!is_improvement(true, 0.0, f32::NAN, Some(0.5)));
    }
}
