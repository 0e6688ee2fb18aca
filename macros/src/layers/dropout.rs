//! `Dropout(rate, noise_shape = None, seed = None)`: identity in every `predict*` call; in
//! training, inverted dropout: each value is kept with probability `1 - rate` and scaled by
//! `1 / (1 - rate)`, the others become 0, so the expected output equals the input.
//!
//! `noise_shape` is Keras's: the shape of the keep-mask *with the batch axis first*, one entry
//! per axis of the input; an entry of 1 shares one draw along that axis (broadcast), `None`
//! or the axis's length draws per index. The batch entry is `None` (a mask per sample) or `1`
//! (one mask for the whole batch); a fixed batch size such as Keras's `(32, 1, 8)` is refused,
//! since kiln's batches have any size. `Dropout(0.5, noise_shape = (None, 1, 8))` on `(10, 8)`
//! drops the same features at every timestep of a sample.
//!
//! Training draws from a ChaCha generator seeded with the run's seed (`FitOptions::seed`),
//! the training step and the layer's `seed` (or, without one, a hash of the name of the layer
//! before it, so two `Dropout`s of a model draw different masks): training is deterministic.
//! The backward pass multiplies the gradient by the same multipliers (`dx = dy * m`).
//!
//! Shape rule: output shape = input shape, any rank. No weights; the mask passes on.

use super::{Backward, Forward, Layer, LayerInput, LayerKind, MaskRule, SliceForward};
use crate::args::{Bound, Errors, Signature};
use crate::ast::{Arg, Value};
use crate::shape::Shape;
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "Dropout",
    signature: Signature {
        params: &["rate", "noise_shape", "seed"],
        required: 1,
    },
    build,
};

struct Dropout {
    rate: f32,
    shape: Shape,
    /// The per-sample part of the keep-mask's shape (each entry the axis's length or 1).
    noise: Vec<usize>,
    /// Whether each sample draws its own mask (batch entry `None`) or the batch shares one.
    per_sample: bool,
    seed: u64,
}

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let mut errors = Errors::default();
    let rate = errors.ok(rate(b));
    let noise = errors.ok(noise_shape(b, input));
    let seed = errors.ok(seed(b));
    errors.into_result()?;
    let (Some(rate), Some((noise, per_sample)), Some(seed)) = (rate, noise, seed) else {
        return Err(Error::new_spanned(
            &b.call.call,
            "invalid `Dropout` arguments",
        ));
    };
    Ok(Box::new(Dropout {
        rate,
        shape: input.shape.clone(),
        noise,
        per_sample,
        // Without a seed, the position in the model tells two Dropouts apart.
        seed: seed.unwrap_or_else(|| fnv1a(input.source)),
    }))
}

/// `rate`, in `[0, 1)`: a rate of 1 would scale kept values by `1 / 0`.
fn rate(b: &Bound) -> Result<f32, Error> {
    let value = b.float("rate", 0.0)?;
    if (0.0..1.0).contains(&value) {
        return Ok(value as f32);
    }
    let Some(arg) = b.get("rate") else {
        return Err(Error::new_spanned(
            &b.call.call,
            "`Dropout` is missing its required argument `rate`",
        ));
    };
    let shown = match arg.value {
        Value::Int(i) => i.to_string(),
        _ => format!("{value:?}"),
    };
    let help = if value == 1.0 {
        "\n  help: a rate of 1 drops every value; remove the layer or lower the rate"
    } else {
        ""
    };
    Err(Error::new_spanned(
        &arg.expr,
        format!("`rate` of `Dropout` must be at least 0 and below 1, found `{shown}`{help}"),
    ))
}

/// `seed`: `None` or a non-negative integer that fits a `u64`.
fn seed(b: &Bound) -> Result<Option<u64>, Error> {
    match b.get("seed") {
        None => Ok(None),
        Some(Arg {
            value: Value::None, ..
        }) => Ok(None),
        Some(arg) => {
            let value = b.int_at_least("seed", 0, 0)?;
            u64::try_from(value).map(Some).map_err(|_| {
                Error::new_spanned(
                    &arg.expr,
                    format!("`seed` of `Dropout` must fit a `u64`, found `{value}`"),
                )
            })
        }
    }
}

/// `noise_shape`, resolved against the input: the per-sample entries (each the axis's length
/// or 1) and whether the mask is drawn per sample. Absent or `None`: the input's shape.
fn noise_shape(b: &Bound, input: &LayerInput) -> Result<(Vec<usize>, bool), Error> {
    let dims = &input.shape.0;
    let Some(arg) = b.get("noise_shape") else {
        return Ok((dims.clone(), true));
    };
    let items = match &arg.value {
        Value::None => return Ok((dims.clone(), true)),
        Value::Tuple(items) | Value::List(items) => items,
        other => {
            return Err(Error::new_spanned(
                &arg.expr,
                format!(
                    "expected a tuple for `noise_shape` of `Dropout`, found {}\n  help: Keras's `noise_shape` starts with the batch axis, e.g. `({})`",
                    other.describe(),
                    example(dims)
                ),
            ))
        }
    };
    let rank = dims.len();
    if items.len() != rank + 1 {
        return Err(Error::new_spanned(
            &arg.expr,
            format!(
                "`noise_shape` of `Dropout` has {} entries, but {} has rank {rank}, {} with the batch axis\n  help: Keras's `noise_shape` starts with the batch axis, e.g. `({})`",
                items.len(),
                input.phrase(),
                rank + 1,
                example(dims)
            ),
        ));
    }
    let mut errors = Errors::default();
    let per_sample = match &items[0].value {
        Value::None => true,
        Value::Int(1) => false,
        other => {
            errors.push(Error::new_spanned(
                &items[0].expr,
                format!(
                    "the batch entry of `noise_shape` of `Dropout` must be `None` (a mask per sample) or `1` (one mask for the whole batch), found {}\n  help: kiln's batches have any size, so a fixed batch size cannot be used",
                    other.describe()
                ),
            ));
            true
        }
    };
    let mut noise = Vec::with_capacity(rank);
    for (axis, (item, &dim)) in items[1..].iter().zip(dims).enumerate() {
        let entry = match item.value {
            Value::None => Some(dim),
            Value::Int(1) => Some(1),
            Value::Int(i) if i == dim as i128 => Some(dim),
            _ => None,
        };
        match entry {
            Some(n) => noise.push(n),
            None => {
                errors.push(Error::new_spanned(
                    &item.expr,
                    format!(
                        "entry {} of `noise_shape` of `Dropout` does not broadcast to axis {} of {}, which has {dim} values: expected `None`, `1` or `{dim}`, found {}",
                        axis + 1,
                        axis + 1,
                        input.phrase(),
                        item.value.describe()
                    ),
                ));
                noise.push(dim);
            }
        }
    }
    errors.into_result()?;
    Ok((noise, per_sample))
}

/// `None, d1, ..., dn`: a noise shape that changes nothing, for help messages.
fn example(dims: &[usize]) -> String {
    let mut parts = vec!["None".to_string()];
    parts.extend(dims.iter().map(|d| d.to_string()));
    parts.join(", ")
}

/// FNV-1a: a stable hash (the macro's output must not depend on the process).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Dropout {
    /// The runtime description of this layer's dropout.
    fn kernel(&self) -> TokenStream {
        let (rate, shape, per_sample, seed) = (
            self.rate,
            self.shape.slice_tokens(),
            self.per_sample,
            self.seed,
        );
        let noise = &self.noise;
        quote!(::kiln::__private::layers::dropout::Dropout {
            rate: #rate,
            shape: #shape,
            noise_shape: &[#(#noise),*],
            per_sample: #per_sample,
            seed: #seed,
        })
    }
}

impl Layer for Dropout {
    fn output_shape(&self) -> Shape {
        self.shape.clone()
    }

    fn mask_rule(&self) -> MaskRule {
        MaskRule::Propagate
    }

    fn forward_slices(&self, _f: &Forward) -> Option<SliceForward> {
        Some(SliceForward::Same)
    }

    fn step(&self, _s: &super::Step) -> Option<super::StepCode> {
        Some(super::StepCode::stateless(SliceForward::Same))
    }

    fn forward(&self, _f: &Forward) -> TokenStream {
        quote!(x)
    }

    fn forward_train(&self, _f: &Forward) -> TokenStream {
        let kernel = self.kernel();
        quote!({
            let mut x = x;
            let cache = #kernel.train(pass, ::kiln::__private::Tensor::values_mut(&mut x));
            (x, cache)
        })
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        if !b.need_input_grad {
            return Some(quote!({
                pass.pool.give(dy);
                if let ::core::option::Option::Some(multipliers) = cache {
                    pass.pool.give_vec(multipliers);
                }
            }));
        }
        Some(quote!({
            let mut dx = dy;
            ::kiln::__private::layers::dropout::backward(
                cache.as_deref(),
                ::kiln::__private::Tensor::values_mut(&mut dx),
            );
            if let ::core::option::Option::Some(multipliers) = cache {
                pass.pool.give_vec(multipliers);
            }
            dx
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::bind;
    use crate::ast::Invocation;

    fn dropout(tokens: TokenStream, input: &[usize]) -> Result<(Vec<usize>, bool, f32), String> {
        let inv: Invocation = syn::parse2(tokens).map_err(|e| e.to_string())?;
        let b = bind(&inv.models[0].layers[0], &KIND.signature).map_err(|e| e.to_string())?;
        let shape = Shape(input.to_vec());
        let input = LayerInput {
            shape: &shape,
            source: "layer `dense`",
        };
        let rate = rate(&b).map_err(|e| e.to_string())?;
        noise_shape(&b, &input)
            .map(|(n, p)| (n, p, rate))
            .map_err(|e| {
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
    }

    #[test]
    fn noise_shape_follows_keras_with_the_batch_first() {
        assert_eq!(
            dropout(quote!(M = Sequential([Dropout(0.5)])), &[10, 8]),
            Ok((vec![10, 8], true, 0.5))
        );
        assert_eq!(
            dropout(
                quote!(M = Sequential([Dropout(0.25, noise_shape = (None, 1, 8))])),
                &[10, 8]
            ),
            Ok((vec![1, 8], true, 0.25))
        );
        assert_eq!(
            dropout(
                quote!(M = Sequential([Dropout(0, noise_shape = [1, None, 1])])),
                &[10, 8]
            ),
            Ok((vec![10, 1], false, 0.0))
        );
    }

    #[test]
    fn refuses_what_does_not_broadcast() {
        let e = dropout(
            quote!(M = Sequential([Dropout(0.5, noise_shape = (32, 2, 8))])),
            &[10, 8],
        )
        .unwrap_err();
        assert!(e.contains("the batch entry of `noise_shape`"), "{e}");
        assert!(
            e.contains("entry 1 of `noise_shape` of `Dropout` does not broadcast to axis 1 of its input (10, 8) from layer `dense`, which has 10 values"),
            "{e}"
        );
        let e = dropout(
            quote!(M = Sequential([Dropout(0.5, noise_shape = (1, 8))])),
            &[10, 8],
        )
        .unwrap_err();
        assert!(e.contains("has 2 entries, but its input (10, 8)"), "{e}");
        assert!(e.contains("e.g. `(None, 10, 8)`"), "{e}");
        let e = dropout(quote!(M = Sequential([Dropout(1.0)])), &[3]).unwrap_err();
        assert!(
            e.contains("must be at least 0 and below 1, found `1.0`"),
            "{e}"
        );
    }

    #[test]
    fn default_seeds_differ_by_position() {
        assert_ne!(fnv1a("layer `dropout`"), fnv1a("layer `dense`"));
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
    }
}
