//! Weight regularizers, as `keras.regularizers`: [`Regularizer::loss`] is the penalty added
//! to the training loss, [`Regularizer::add_gradient`] its gradient.

/// A penalty on a weight's values, added (unscaled) to the loss being minimised.
///
/// ```
/// use kiln_runtime::Regularizer;
/// let l2 = Regularizer::L2(0.01);
/// assert_eq!(l2.loss(&[1.0, -2.0]), 0.01 * 5.0);
/// let mut grad = [0.0; 2];
/// l2.add_gradient(&[1.0, -2.0], &mut grad);
/// assert_eq!(grad, [0.02, -0.04]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Regularizer {
    /// `l1 * sum(|w|)`. Keras's default factor (the name `"l1"`) is 0.01.
    L1(f32),
    /// `l2 * sum(w^2)` (no 1/2). Keras's default factor (the name `"l2"`) is 0.01.
    L2(f32),
    /// `l1 * sum(|w|) + l2 * sum(w^2)`. Keras's defaults (the name `"l1_l2"`) are 0 and 0,
    /// which makes it a no-op unless given factors.
    L1L2 {
        /// The L1 factor.
        l1: f32,
        /// The L2 factor.
        l2: f32,
    },
}

impl Regularizer {
    /// The regularizer a Keras name resolves to, with Keras's default factors: `"l1"`,
    /// `"l2"`, `"l1_l2"` (and the class names `L1`, `L2`, `L1L2`).
    pub fn from_name(name: &str) -> Option<Regularizer> {
        Some(match name {
            "l1" | "L1" => Regularizer::L1(0.01),
            "l2" | "L2" => Regularizer::L2(0.01),
            "l1_l2" | "L1L2" => Regularizer::L1L2 { l1: 0.0, l2: 0.0 },
            _ => return None,
        })
    }

    /// The two factors, `(l1, l2)`.
    fn factors(&self) -> (f32, f32) {
        match *self {
            Regularizer::L1(l1) => (l1, 0.0),
            Regularizer::L2(l2) => (0.0, l2),
            Regularizer::L1L2 { l1, l2 } => (l1, l2),
        }
    }

    /// The penalty for weight values `w`.
    pub fn loss(&self, w: &[f32]) -> f32 {
        let (l1, l2) = self.factors();
        // Like Keras's L1L2, a zero factor adds nothing (not even 0 * inf = NaN).
        let mut total = 0.0;
        if l1 != 0.0 {
            total += l1 * w.iter().map(|x| x.abs()).sum::<f32>();
        }
        if l2 != 0.0 {
            total += l2 * w.iter().map(|x| x * x).sum::<f32>();
        }
        total
    }

    /// Adds `d loss / d w` to `grad`: `l1 * sign(w) + 2 * l2 * w`, where `sign(w)` is JAX's
    /// derivative of `abs`: 1 for `w >= 0` (zero included), -1 below.
    ///
    /// # Panics
    /// If `grad` and `w` differ in length.
    pub fn add_gradient(&self, w: &[f32], grad: &mut [f32]) {
        assert_eq!(w.len(), grad.len(), "regularizer gradient length");
        let (l1, l2) = self.factors();
        for (g, &x) in grad.iter_mut().zip(w) {
            if l1 != 0.0 {
                *g += l1 * crate::losses::abs_slope(x);
            }
            if l2 != 0.0 {
                *g += l2 * 2.0 * x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_have_keras_defaults() {
        assert_eq!(Regularizer::from_name("l1"), Some(Regularizer::L1(0.01)));
        assert_eq!(Regularizer::from_name("l2"), Some(Regularizer::L2(0.01)));
        assert_eq!(
            Regularizer::from_name("l1_l2"),
            Some(Regularizer::L1L2 { l1: 0.0, l2: 0.0 })
        );
        assert_eq!(Regularizer::from_name("l3"), None);
    }

    #[test]
    fn zero_factor_ignores_infinities() {
        let r = Regularizer::L1L2 { l1: 0.0, l2: 0.1 };
        assert_eq!(r.loss(&[1.0]), 0.1);
        assert!(Regularizer::L2(0.1).loss(&[f32::INFINITY]).is_infinite());
    }
}
