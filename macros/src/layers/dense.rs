//! `Dense(units, activation = None, use_bias = True, kernel_initializer = "glorot_uniform",
//! bias_initializer = "zeros")`: `activation(x · kernel + bias)` on the last axis.
//!
//! Shape rule: `(..., d)` -> `(..., units)`; any rank.

use super::{Forward, Layer, LayerInput, LayerKind, MaskRule, Weight};
use crate::activations::{self, Resolved};
use crate::args::{Bound, Errors, Signature};
use crate::initializers;
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
    output: crate::shape::Shape,
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
        output: input.shape.with_last(units),
    }))
}

impl Layer for Dense {
    fn output_shape(&self) -> crate::shape::Shape {
        self.output.clone()
    }

    fn weights(&self) -> Vec<Weight> {
        let shape = |dims: Vec<usize>| crate::shape::Shape(dims);
        let mut weights = vec![Weight {
            suffix: "kernel",
            shape: shape(vec![self.inputs, self.units]),
        }];
        if self.use_bias {
            weights.push(Weight {
                suffix: "bias",
                shape: shape(vec![self.units]),
            });
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

    fn forward(&self, f: &Forward) -> TokenStream {
        let state = &f.state;
        let apply = self.activation.apply(&quote!(y), self.units);
        quote!({
            let mut y = #state.forward(&x);
            #apply
            y
        })
    }
}
