//! Weight initializers with Keras 3's names, defaults and formulas: [`Initializer`] and
//! [`Initializer::fill`], plus [`weight_rng`], the seeded generator every model uses.
//!
//! Keras computes fans from the weight's shape: `(fan_in, fan_out)` is `(d0, d1)` for a
//! matrix, `d * receptive_field` for convolution kernels, `(d, d)` for a vector.
//! Random draws are deterministic for a seed, and each weight of a model draws from its own
//! ChaCha stream, so adding a layer does not change the initial values of the others.

use alloc::vec::Vec;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// The seeded random generator behind initialisation and dropout.
pub type KilnRng = ChaCha8Rng;

/// The generator for weight number `weight_index` of a model created with `seed`.
pub fn weight_rng(seed: u64, weight_index: usize) -> KilnRng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(weight_index as u64);
    rng
}

/// How `VarianceScaling` measures a weight's size (Keras's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanMode {
    /// Number of inputs.
    FanIn,
    /// Number of outputs.
    FanOut,
    /// Mean of the two.
    FanAvg,
}

/// Distribution of `VarianceScaling` (Keras's `distribution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanDistribution {
    /// Normal truncated at two standard deviations, rescaled to keep the variance.
    TruncatedNormal,
    /// Plain normal.
    UntruncatedNormal,
    /// Uniform in `[-limit, limit]`.
    Uniform,
}

/// A Keras initializer with its arguments. Names in the DSL map onto these with Keras's
/// defaults (see [`Initializer::from_name`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Initializer {
    /// All zeros (Keras's default bias).
    Zeros,
    /// All ones.
    Ones,
    /// Every value equal to the constant.
    Constant(f32),
    /// Uniform in `[minval, maxval)` (Keras default -0.05, 0.05).
    RandomUniform {
        /// Lower bound.
        minval: f32,
        /// Upper bound.
        maxval: f32,
    },
    /// Normal (Keras default mean 0, stddev 0.05).
    RandomNormal {
        /// Mean.
        mean: f32,
        /// Standard deviation.
        stddev: f32,
    },
    /// Normal, redrawn outside two standard deviations (Keras default mean 0, stddev 0.05).
    TruncatedNormal {
        /// Mean.
        mean: f32,
        /// Standard deviation before truncation.
        stddev: f32,
    },
    /// Keras's `VarianceScaling`, the family behind glorot, he and lecun.
    VarianceScaling {
        /// Multiplier of the variance.
        scale: f32,
        /// Which fan divides it.
        mode: FanMode,
        /// Distribution drawn from.
        distribution: FanDistribution,
    },
    /// A (semi-)orthogonal matrix times `gain`, from the QR decomposition of a normal draw.
    Orthogonal {
        /// Multiplier.
        gain: f32,
    },
}

impl Initializer {
    /// Keras's default kernel initializer.
    pub const GLOROT_UNIFORM: Initializer = Initializer::VarianceScaling {
        scale: 1.0,
        mode: FanMode::FanAvg,
        distribution: FanDistribution::Uniform,
    };

    /// Every name `from_name` accepts.
    pub const NAMES: &'static [&'static str] = &[
        "zeros",
        "ones",
        "constant",
        "random_uniform",
        "random_normal",
        "truncated_normal",
        "glorot_uniform",
        "glorot_normal",
        "he_uniform",
        "he_normal",
        "lecun_uniform",
        "lecun_normal",
        "orthogonal",
    ];

    /// The initializer Keras means by `name`, with Keras's default arguments.
    pub fn from_name(name: &str) -> Option<Initializer> {
        use FanDistribution::*;
        use FanMode::*;
        let scaling = |scale, mode, distribution| Initializer::VarianceScaling {
            scale,
            mode,
            distribution,
        };
        Some(match name {
            "zeros" => Initializer::Zeros,
            "ones" => Initializer::Ones,
            "constant" => Initializer::Constant(0.0),
            "random_uniform" => Initializer::RandomUniform {
                minval: -0.05,
                maxval: 0.05,
            },
            "random_normal" => Initializer::RandomNormal {
                mean: 0.0,
                stddev: 0.05,
            },
            "truncated_normal" => Initializer::TruncatedNormal {
                mean: 0.0,
                stddev: 0.05,
            },
            "glorot_uniform" => scaling(1.0, FanAvg, Uniform),
            "glorot_normal" => scaling(1.0, FanAvg, TruncatedNormal),
            "he_uniform" => scaling(2.0, FanIn, Uniform),
            "he_normal" => scaling(2.0, FanIn, TruncatedNormal),
            "lecun_uniform" => scaling(1.0, FanIn, Uniform),
            "lecun_normal" => scaling(1.0, FanIn, TruncatedNormal),
            "orthogonal" => Initializer::Orthogonal { gain: 1.0 },
            _ => return None,
        })
    }

    /// Fills `values`, a weight of Keras shape `shape` in row-major order.
    pub fn fill(&self, values: &mut [f32], shape: &[usize], rng: &mut KilnRng) {
        match *self {
            Initializer::Zeros => values.fill(0.0),
            Initializer::Ones => values.fill(1.0),
            Initializer::Constant(c) => values.fill(c),
            Initializer::RandomUniform { minval, maxval } => {
                fill_uniform(values, minval, maxval, rng)
            }
            Initializer::RandomNormal { mean, stddev } => {
                for v in values {
                    *v = mean + stddev * normal(rng);
                }
            }
            Initializer::TruncatedNormal { mean, stddev } => {
                for v in values {
                    *v = mean + stddev * truncated_normal(rng);
                }
            }
            Initializer::VarianceScaling {
                scale,
                mode,
                distribution,
            } => {
                let (fan_in, fan_out) = compute_fans(shape);
                let n = match mode {
                    FanMode::FanIn => fan_in,
                    FanMode::FanOut => fan_out,
                    FanMode::FanAvg => (fan_in + fan_out) / 2.0,
                };
                let variance = scale / n.max(1.0);
                match distribution {
                    FanDistribution::Uniform => {
                        let limit = libm::sqrtf(3.0 * variance);
                        fill_uniform(values, -limit, limit, rng)
                    }
                    FanDistribution::TruncatedNormal => {
                        // Keras: the stddev of a unit normal truncated to [-2, 2].
                        let stddev = libm::sqrtf(variance) / 0.879_625_7;
                        for v in values {
                            *v = stddev * truncated_normal(rng);
                        }
                    }
                    FanDistribution::UntruncatedNormal => {
                        let stddev = libm::sqrtf(variance);
                        for v in values {
                            *v = stddev * normal(rng);
                        }
                    }
                }
            }
            Initializer::Orthogonal { gain } => fill_orthogonal(values, shape, gain, rng),
        }
    }
}

/// Keras's `compute_fans`.
pub fn compute_fans(shape: &[usize]) -> (f32, f32) {
    match shape {
        [] => (1.0, 1.0),
        [n] => (*n as f32, *n as f32),
        [a, b] => (*a as f32, *b as f32),
        [receptive @ .., inputs, outputs] => {
            let field: usize = receptive.iter().product();
            ((inputs * field) as f32, (outputs * field) as f32)
        }
    }
}

fn fill_uniform(values: &mut [f32], low: f32, high: f32, rng: &mut KilnRng) {
    for v in values {
        let u: f32 = rng.random();
        *v = low + (high - low) * u;
    }
}

fn normal(rng: &mut KilnRng) -> f32 {
    StandardNormal.sample(rng)
}

fn truncated_normal(rng: &mut KilnRng) -> f32 {
    loop {
        let z = normal(rng);
        if z.abs() <= 2.0 {
            return z;
        }
    }
}

/// Keras's `Orthogonal`: flatten to `(rows, cols)` = (product of all but the last dim, last
/// dim), take Q of a normal matrix's QR (sign-corrected by R's diagonal), transposed when
/// there are fewer rows than columns.
fn fill_orthogonal(values: &mut [f32], shape: &[usize], gain: f32, rng: &mut KilnRng) {
    let cols = shape.last().copied().unwrap_or(1).max(1);
    let rows = values.len() / cols;
    let (tall_rows, tall_cols) = (rows.max(cols), rows.min(cols));
    let draws: Vec<f32> = (0..tall_rows * tall_cols).map(|_| normal(rng)).collect();
    let a = nalgebra::DMatrix::from_row_slice(tall_rows, tall_cols, &draws);
    let qr = a.qr();
    let mut q = qr.q();
    let r = qr.r();
    for j in 0..tall_cols {
        let d = r[(j, j)];
        let sign = if d < 0.0 { -1.0 } else { 1.0 };
        q.column_mut(j).scale_mut(sign);
    }
    for i in 0..rows {
        for j in 0..cols {
            let q_ij = if rows < cols { q[(j, i)] } else { q[(i, j)] };
            values[i * cols + j] = gain * q_ij;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn glorot_uniform_stays_within_its_limit_and_is_deterministic() {
        let mut a = vec![0.0; 64 * 32];
        let mut b = vec![0.0; 64 * 32];
        Initializer::GLOROT_UNIFORM.fill(&mut a, &[64, 32], &mut weight_rng(7, 0));
        Initializer::GLOROT_UNIFORM.fill(&mut b, &[64, 32], &mut weight_rng(7, 0));
        assert_eq!(a, b);
        let limit = (6.0f32 / 96.0).sqrt();
        assert!(a.iter().all(|v| v.abs() <= limit));
        let mean: f32 = a.iter().sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 0.02);
        let mut c = vec![0.0; 64 * 32];
        Initializer::GLOROT_UNIFORM.fill(&mut c, &[64, 32], &mut weight_rng(7, 1));
        assert_ne!(a, c, "each weight draws from its own stream");
    }

    #[test]
    fn every_name_resolves() {
        for name in Initializer::NAMES {
            assert!(Initializer::from_name(name).is_some(), "{name}");
        }
    }

    #[test]
    fn orthogonal_columns_are_orthonormal() {
        let mut w = vec![0.0; 6 * 4];
        Initializer::Orthogonal { gain: 1.0 }.fill(&mut w, &[6, 4], &mut weight_rng(1, 0));
        let m = nalgebra::DMatrix::from_row_slice(6, 4, &w);
        let gram = m.transpose() * &m;
        assert!((gram - nalgebra::DMatrix::identity(4, 4)).abs().max() < 1e-5);
    }

    #[test]
    fn he_normal_has_the_expected_spread() {
        let mut w = vec![0.0; 200 * 100];
        Initializer::from_name("he_normal").unwrap().fill(
            &mut w,
            &[200, 100],
            &mut weight_rng(3, 0),
        );
        let var: f32 = w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        assert!((var - 2.0 / 200.0).abs() < 0.001, "{var}");
    }
}
