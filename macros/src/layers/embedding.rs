//! `Embedding(input_dim, output_dim, embeddings_initializer = "uniform",
//! embeddings_regularizer = None, embeddings_constraint = None, mask_zero = False)`: one
//! learned vector per integer id.
//!
//! Shape rule: ids of any shape `(d1, ..)` -> `(d1, .., output_dim)`; the layer must be the
//! model's first (its input is ids, given as `f32` values). Weight `embeddings`
//! `(input_dim, output_dim)`.
//!
//! Ids (Keras 3 on JAX: `cast(x, "int32")` then `jnp.take`): the typed `predict` truncates
//! towards zero, counts a negative id in `-input_dim..0` from the end and gives NaN outside
//! the table; the slice APIs refuse ids that are not whole numbers in `0..input_dim`.
//!
//! Masks: with `mask_zero = True` the layer produces a mask, `id != 0` per id (Keras's
//! `compute_mask`), which the layers after it pass on or use (`LSTM`, ...).
//!
//! Backward pass: each id's output gradient is added to its row (the gradient of `take`).
//! The layer is first, so it never computes an input gradient (ids have none).

use super::{Backward, Forward, Layer, LayerInput, LayerKind, MaskRule, SliceForward, Weight};
use crate::args::{Bound, Errors, Signature};
use crate::ast::{Arg, Value};
use crate::shape::{Mode, Shape};
use crate::{constraints, initializers, regularizers};
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "Embedding",
    signature: Signature {
        params: &[
            "input_dim",
            "output_dim",
            "embeddings_initializer",
            "embeddings_regularizer",
            "embeddings_constraint",
            "mask_zero",
        ],
        required: 2,
    },
    build,
};

struct Embedding {
    input: Shape,
    input_dim: usize,
    output_dim: usize,
    initializer: TokenStream,
    regularizer: Option<TokenStream>,
    constraint: Option<TokenStream>,
    mask_zero: bool,
}

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let mut errors = Errors::default();
    let input_dim = errors.ok(b.positive("input_dim"));
    let output_dim = errors.ok(b.positive("output_dim"));
    let initializer = match b.get("embeddings_initializer") {
        Some(arg) => errors.ok(initializers::resolve(arg)),
        None => errors.ok(initializers::resolve(&Arg {
            keyword: None,
            value: Value::Str("random_uniform".into()),
            expr: syn::parse_quote!("random_uniform"),
        })),
    };
    let regularizer = b
        .get("embeddings_regularizer")
        .and_then(|arg| errors.ok(regularizers::resolve(arg)))
        .flatten();
    let constraint = b
        .get("embeddings_constraint")
        .and_then(|arg| errors.ok(constraints::resolve(arg, 2)))
        .flatten();
    let mask_zero = errors.ok(b.boolean("mask_zero", false));
    if input.source.starts_with("layer") {
        errors.push(Error::new(
            b.call.class.span(),
            format!(
                "`Embedding` must be the first layer of the model (its input is integer ids), but it comes after {}\n  help: put it first, after `Input` if the model declares one",
                input.source
            ),
        ));
    }
    errors.into_result()?;
    let (Some(input_dim), Some(output_dim), Some(initializer), Some(mask_zero)) =
        (input_dim, output_dim, initializer, mask_zero)
    else {
        return Err(Error::new_spanned(
            &b.call.call,
            "invalid `Embedding` arguments",
        ));
    };
    Ok(Box::new(Embedding {
        input: input.shape.clone(),
        input_dim,
        output_dim,
        initializer,
        regularizer,
        constraint,
        mask_zero,
    }))
}

impl Layer for Embedding {
    fn output_shape(&self) -> Shape {
        let mut dims = self.input.0.clone();
        dims.push(self.output_dim);
        Shape(dims)
    }

    fn weights(&self) -> Vec<Weight> {
        let mut w = Weight::new("embeddings", Shape(vec![self.input_dim, self.output_dim]));
        w.regularizer = self.regularizer.clone();
        w.constraint = self.constraint.clone();
        vec![w]
    }

    fn input_ids(&self) -> Option<usize> {
        Some(self.input_dim)
    }

    fn mask_rule(&self) -> MaskRule {
        if self.mask_zero {
            MaskRule::Produce
        } else {
            MaskRule::Refuse
        }
    }

    fn state_type(&self) -> Option<TokenStream> {
        Some(quote!(::kiln::__private::layers::Embedding))
    }

    fn init(&self, seed: &TokenStream, first_weight: usize) -> TokenStream {
        let (i, o, init) = (self.input_dim, self.output_dim, &self.initializer);
        quote!(::kiln::__private::layers::Embedding::new(#i, #o, #init, #seed, #first_weight))
    }

    fn baked(&self, weights: &[TokenStream]) -> TokenStream {
        let (i, o, table) = (self.input_dim, self.output_dim, &weights[0]);
        quote!(::kiln::__private::layers::Embedding::baked(#i, #o, #table))
    }

    /// Streaming, on `(timesteps,)` ids: one id in, its vector out; with `mask_zero` the code
    /// evaluates to the timestep's `keep`, `id != 0`.
    fn step(&self, s: &super::Step) -> Option<super::StepCode> {
        let (w, d) = (&s.weights, self.output_dim);
        let lookup = quote!(#w.forward(&x[..1], &mut y[..#d], ::core::option::Option::None););
        let code = if self.mask_zero {
            quote!({ #lookup x[0] != 0.0 })
        } else {
            lookup
        };
        (self.input.rank() == 1).then(|| super::StepCode::stateless(SliceForward::Map(code)))
    }

    fn forward_slices(&self, f: &Forward) -> Option<SliceForward> {
        if self.mask_zero {
            // A mask-producing map: the stack copies of `forward` (ids are small).
            return None;
        }
        let state = &f.state;
        Some(SliceForward::Map(quote!(
            #state.forward(x, y, ::core::option::Option::None);
        )))
    }

    fn forward(&self, f: &Forward) -> TokenStream {
        let state = &f.state;
        let in_ty = self.input.tensor_type(f.mode);
        let (rows, ids) = (self.output_dim, self.input.len());
        let make_mask = match f.mode {
            Mode::Sample => quote!([false; #ids]),
            Mode::Batch => {
                quote!(::core::iter::repeat_n(false, n * #ids).collect::<::kiln::__private::Vec<bool>>())
            }
        };
        let (mask_decl, mask_arg, result) = if self.mask_zero {
            (
                quote!(let mut mask = #make_mask;),
                quote!(::core::option::Option::Some(&mut mask[..])),
                quote!((y, mask)),
            )
        } else {
            (quote!(), quote!(::core::option::Option::None), quote!(y))
        };
        quote!({
            let n = ::kiln::__private::Tensor::values(&x).len() / #ids.max(1);
            let mut y = <#in_ty as ::kiln::__private::Tensor>::zeros_shaped::<#rows, #ids>(n);
            #mask_decl
            #state.forward(
                ::kiln::__private::Tensor::values(&x),
                ::kiln::__private::Tensor::values_mut(&mut y),
                #mask_arg,
            );
            #result
        })
    }

    fn borrows_training_input(&self) -> bool {
        true
    }

    fn forward_train(&self, f: &Forward) -> TokenStream {
        let state = &f.state;
        let (rows, ids) = (self.output_dim, self.input.len());
        let (mask_decl, mask_arg, result) = if self.mask_zero {
            (
                quote!(let mut mask = pass.pool.take_mask(n * #ids);),
                quote!(::core::option::Option::Some(&mut mask[..])),
                quote!(((y, mask), ())),
            )
        } else {
            (
                quote!(),
                quote!(::core::option::Option::None),
                quote!((y, ())),
            )
        };
        quote!({
            let n = x.len() / #ids.max(1);
            let mut y = pass.pool.take_to_overwrite::<#rows>(n * #ids);
            #mask_decl
            #state.forward(x.as_slice(), y.as_mut_slice(), #mask_arg);
            #result
        })
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        let (state, k) = (&b.state, b.first_weight);
        Some(quote!({
            #state.backward(x.as_slice(), dy.as_slice(), grads.slot(#k));
            pass.pool.give(dy);
        }))
    }
}
