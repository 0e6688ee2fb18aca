//! `Dense(units, activation = None, use_bias = True, kernel_initializer = "glorot_uniform",
//! bias_initializer = "zeros", kernel_regularizer = None, bias_regularizer = None,
//! activity_regularizer = None, kernel_constraint = None, bias_constraint = None)`:
//! `activation(x · kernel + bias)` on the last axis.
//!
//! Shape rule: `(..., d)` -> `(..., units)`; any rank. Weights: `kernel` `(d, units)`,
//! `bias` `(units,)`.

use super::{Backward, Forward, Layer, LayerInput, LayerKind, MaskRule, SliceForward, Weight};
use crate::activations::{self, Resolved};
use crate::args::{Bound, Errors, Signature};
use crate::shape::Shape;
use crate::{constraints, initializers, regularizers};
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "Dense",
    signature: Signature {
        params: &[
            "units",
            "activation",
            "use_bias",
            "kernel_initializer",
            "bias_initializer",
            "kernel_regularizer",
            "bias_regularizer",
            "activity_regularizer",
            "kernel_constraint",
            "bias_constraint",
        ],
        required: 1,
    },
    build,
};

struct Dense {
    inputs: usize,
    units: usize,
    activation: Resolved,
    use_bias: bool,
    kernel_initializer: TokenStream,
    bias_initializer: TokenStream,
    kernel_regularizer: Option<TokenStream>,
    bias_regularizer: Option<TokenStream>,
    activity_regularizer: Option<TokenStream>,
    kernel_constraint: Option<TokenStream>,
    bias_constraint: Option<TokenStream>,
    output: Shape,
}

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let mut errors = Errors::default();
    let units = errors.ok(b.positive("units"));
    let activation = match b.get("activation") {
        Some(arg) => errors.ok(activations::resolve(arg)),
        None => Some(Resolved::linear()),
    };
    let use_bias = errors.ok(b.boolean("use_bias", true));
    let init = |name: &str, default: &str| match b.get(name) {
        Some(arg) => initializers::resolve(arg),
        None => initializers::resolve(&crate::ast::Arg {
            keyword: None,
            value: crate::ast::Value::Str(default.into()),
            expr: syn::parse_quote!(#default),
        }),
    };
    let kernel_initializer = errors.ok(init("kernel_initializer", "glorot_uniform"));
    let bias_initializer = errors.ok(init("bias_initializer", "zeros"));
    let mut regularizer = |name: &str| {
        b.get(name)
            .and_then(|arg| errors.ok(regularizers::resolve(arg)))
            .flatten()
    };
    let kernel_regularizer = regularizer("kernel_regularizer");
    let bias_regularizer = regularizer("bias_regularizer");
    let activity_regularizer = regularizer("activity_regularizer");
    let mut constraint = |name: &str, rank: usize| {
        b.get(name)
            .and_then(|arg| errors.ok(constraints::resolve(arg, rank)))
            .flatten()
    };
    let kernel_constraint = constraint("kernel_constraint", 2);
    let bias_constraint = constraint("bias_constraint", 1);
    errors.into_result()?;
    let (
        Some(units),
        Some(activation),
        Some(use_bias),
        Some(kernel_initializer),
        Some(bias_initializer),
    ) = (
        units,
        activation,
        use_bias,
        kernel_initializer,
        bias_initializer,
    )
    else {
        return Err(Error::new_spanned(
            &b.call.call,
            "invalid `Dense` arguments",
        ));
    };
    Ok(Box::new(Dense {
        inputs: input.shape.last(),
        units,
        activation,
        use_bias,
        kernel_initializer,
        bias_initializer,
        kernel_regularizer,
        bias_regularizer,
        activity_regularizer,
        kernel_constraint,
        bias_constraint,
        output: input.shape.with_last(units),
    }))
}

impl Dense {
    /// Statements adding the activity regulariser's loss of `y` to `pass` (batch mode).
    fn activity_loss(&self) -> TokenStream {
        crate::regularizers::activity_loss(&self.activity_regularizer, self.output.len())
    }
}

impl Layer for Dense {
    fn output_shape(&self) -> Shape {
        self.output.clone()
    }

    fn weights(&self) -> Vec<Weight> {
        let mut kernel = Weight::new("kernel", Shape(vec![self.inputs, self.units]));
        kernel.regularizer = self.kernel_regularizer.clone();
        kernel.constraint = self.kernel_constraint.clone();
        let mut weights = vec![kernel];
        if self.use_bias {
            let mut bias = Weight::new("bias", Shape(vec![self.units]));
            bias.regularizer = self.bias_regularizer.clone();
            bias.constraint = self.bias_constraint.clone();
            weights.push(bias);
        }
        weights
    }

    fn mask_rule(&self) -> MaskRule {
        MaskRule::Propagate
    }

    fn state_type(&self) -> Option<TokenStream> {
        let (i, u) = (self.inputs, self.units);
        Some(quote!(::kiln::__private::layers::Dense<#i, #u>))
    }

    fn init(&self, seed: &TokenStream, first_weight: usize) -> TokenStream {
        let (use_bias, k, b) = (
            self.use_bias,
            &self.kernel_initializer,
            &self.bias_initializer,
        );
        quote!(::kiln::__private::layers::Dense::new(#use_bias, #k, #b, #seed, #first_weight))
    }

    fn baked(&self, weights: &[TokenStream]) -> TokenStream {
        let kernel = &weights[0];
        let bias = match weights.get(1) {
            Some(bias) => quote!(::core::option::Option::Some(#bias)),
            None => quote!(::core::option::Option::None),
        };
        quote!(::kiln::__private::layers::Dense::baked(#kernel, #bias))
    }

    fn forward_slices(&self, f: &Forward) -> Option<SliceForward> {
        let state = &f.state;
        let apply = self.activation.apply_slice(&quote!(y), self.units);
        Some(SliceForward::Map(quote!(
            #state.forward_slices(x, y);
            #apply
        )))
    }

    fn step(&self, s: &super::Step) -> Option<super::StepCode> {
        let (w, i, u) = (&s.weights, self.inputs, self.units);
        let apply = self.activation.apply_slice(&quote!(y), u);
        (self.output.rank() <= 2).then(|| {
            super::StepCode::stateless(SliceForward::Map(quote!(
                ::kiln::gemm::vec_mat(&x[..#i], #w.kernel.as_slice(), #u, 0, false, &mut y[..#u]);
                if let ::core::option::Option::Some(bias) = &#w.bias {
                    for (v, b) in y.iter_mut().zip(bias.as_slice()) {
                        *v += b;
                    }
                }
                #apply
            )))
        })
    }

    fn forward(&self, f: &Forward) -> TokenStream {
        let state = &f.state;
        let apply = self.activation.apply(&quote!(y), self.units);
        let activity = match f.mode {
            crate::shape::Mode::Batch => self.activity_loss(),
            crate::shape::Mode::Sample => quote!(),
        };
        quote!({
            let mut y = #state.forward(&x);
            #apply
            #activity
            y
        })
    }

    fn borrows_training_input(&self) -> bool {
        true
    }

    fn forward_train(&self, f: &Forward) -> TokenStream {
        // Every tensor comes from and goes back to the step's pool: no allocation per step.
        let (state, units) = (&f.state, self.units);
        let activity = self.activity_loss();
        let affine = quote! {
            let mut z = pass.pool.take_to_overwrite::<#units>(x.ncols());
            #state.forward_into(x, &mut z);
        };
        if self.activation.name == "linear" {
            return quote!({
                #affine
                let y = z;
                #activity
                (y, ())
            });
        }
        let act = &self.activation.tokens;
        // The pre-activation `z` is the cache: the activation's derivative needs it.
        quote!({
            #affine
            let mut y = pass.pool.take_to_overwrite::<#units>(z.ncols());
            #act.apply_from(
                ::kiln::__private::Tensor::values(&z),
                ::kiln::__private::Tensor::values_mut(&mut y),
                #units,
            );
            #activity
            (y, z)
        })
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        let state = &b.state;
        let units = self.units;
        let activity = match &self.activity_regularizer {
            Some(reg) => {
                let per_sample = self.output.len();
                quote!(::kiln::__private::add_activity_gradient(&#reg, ::kiln::__private::Tensor::values(y), ::kiln::__private::Tensor::values_mut(&mut dz), #per_sample);)
            }
            None => quote!(),
        };
        let activation = if self.activation.name == "linear" {
            quote!()
        } else {
            let act = &self.activation.tokens;
            let guard = if b.last { quote!(if !fused) } else { quote!() };
            quote!(#guard {
                #act.backward(
                    ::kiln::__private::Tensor::values(&cache),
                    ::kiln::__private::Tensor::values(y),
                    ::kiln::__private::Tensor::values_mut(&mut dz),
                    #units,
                );
            })
        };
        let (k, use_bias) = (b.first_weight, self.use_bias);
        let inputs = self.inputs;
        let input_grad = if b.need_input_grad {
            quote! {
                let mut dx = pass.pool.take_to_overwrite::<#inputs>(dz.ncols());
                #state.input_gradient_into(&dz, &mut dx, &mut pass.pool);
                pass.pool.give(dz);
                dx
            }
        } else {
            quote!(pass.pool.give(dz);)
        };
        let give_cache = if self.activation.name == "linear" {
            quote!()
        } else {
            quote!(pass.pool.give(cache);)
        };
        let result = quote!({
            let (grad_kernel, grad_bias, stale) = grads.pair_to_overwrite(#k, #use_bias);
            if stale {
                #state.write_gradients(x, &dz, grad_kernel, grad_bias);
            } else {
                #state.accumulate_gradients(x, &dz, grad_kernel, grad_bias);
            }
            #give_cache
            #input_grad
        });
        Some(quote!({
            let mut dz = dy;
            #activity
            #activation
            #result
        }))
    }

    fn output_activation(&self) -> Option<TokenStream> {
        Some(self.activation.tokens.clone())
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::expand_tokens;
    use proc_macro2::{TokenStream, TokenTree};

    /// A model of `layers` `Dense(16, relu)` layers on 16 inputs.
    fn stack(layers: usize) -> TokenStream {
        let dense = vec!["Dense(16, activation = \"relu\")"; layers].join(", ");
        format!("Stack = Sequential([Input(shape = (16,)), {dense}]);")
            .parse()
            .unwrap_or_default()
    }

    /// Leaves of a token tree (identifiers, literals, punctuation), groups opened.
    fn tokens(stream: TokenStream) -> usize {
        stream
            .into_iter()
            .map(|tree| match tree {
                TokenTree::Group(group) => 1 + tokens(group.stream()),
                _ => 1,
            })
            .sum()
    }

    /// The generated code grows by the same number of tokens for every `Dense` layer: the
    /// layer calls a runtime kernel whatever its size, so there is no per-weight code.
    #[test]
    fn generated_code_per_dense_layer_is_constant() {
        let [t4, t16, t64] = [4, 16, 64].map(|n| tokens(expand_tokens(stack(n))));
        assert!(t4 < t16 && t16 < t64);
        assert_eq!(
            (t64 - t16) * 12,
            (t16 - t4) * 48,
            "{t4}, {t16}, {t64} tokens"
        );
    }

    /// Expansion time and size for 4, 16 and 64 layers (printed, not asserted: run with
    /// `cargo test -p kiln-macros expansion_cost -- --ignored --nocapture`, in the profile
    /// to measure; BENCHMARKS.md, "Performance (issue 11)").
    #[test]
    #[ignore]
    fn expansion_cost() {
        for layers in [4, 16, 64] {
            let input = stack(layers);
            let mut times: Vec<std::time::Duration> = (0..21)
                .map(|_| {
                    let start = std::time::Instant::now();
                    let out = expand_tokens(input.clone());
                    let elapsed = start.elapsed();
                    std::hint::black_box(out);
                    elapsed
                })
                .collect();
            times.sort();
            let out = expand_tokens(input);
            let size = out.to_string().len();
            println!(
                "{layers} Dense layers: expansion median {:?} (min {:?}), {} tokens, {} bytes of code",
                times[10],
                times[0],
                tokens(out),
                size
            );
        }
    }
}
