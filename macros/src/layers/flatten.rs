//! `Flatten(data_format = None)`: each sample becomes one vector, in row-major order.
//!
//! Shape rule: `(d1, ..., dn)` -> `(d1 * ... * dn,)`; a rank-1 input stays as it is. Only
//! channels-last data is supported (`data_format` omitted, `None` or `"channels_last"`).
//! No weights; refuses a mask (Keras drops it).
//!
//! kiln's memory is already row-major, so flattening only renames the matrix's shape
//! (`Tensor::reshaped`), never moves a value; its backward pass renames the gradient back
//! to the input's shape.

use super::{Backward, Forward, Layer, LayerInput, LayerKind, SliceForward};
use crate::args::{Bound, Signature};
use crate::ast::Value;
use crate::shape::tuple_text;
use crate::shape::Shape;
use proc_macro2::TokenStream;
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "Flatten",
    signature: Signature {
        params: &["data_format"],
        required: 0,
    },
    build,
};

struct Flatten {
    input: Shape,
    output: Shape,
}

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    if let Some(arg) = b.get("data_format") {
        match &arg.value {
            Value::None => {}
            Value::Str(s) if s == "channels_last" => {}
            Value::Str(s) if s == "channels_first" => {
                let rank = input.shape.rank();
                let order: Vec<i128> = std::iter::once(rank)
                    .chain(1..rank)
                    .map(|d| d as i128)
                    .collect();
                return Err(Error::new_spanned(
                    &arg.expr,
                    format!(
                        "`Flatten` supports only `data_format = \"channels_last\"`, found `\"channels_first\"`\n  help: to flatten channels first, put `Permute({})` before a channels-last `Flatten()` for {}",
                        tuple_text(&order),
                        input.phrase()
                    ),
                ));
            }
            other => {
                return Err(Error::new_spanned(
                    &arg.expr,
                    format!(
                        "expected `\"channels_last\"` for `data_format` of `Flatten`, found {}",
                        other.describe()
                    ),
                ))
            }
        }
    }
    Ok(Box::new(Flatten {
        input: input.shape.clone(),
        output: Shape(vec![input.shape.len()]),
    }))
}

impl Layer for Flatten {
    fn output_shape(&self) -> Shape {
        self.output.clone()
    }

    fn forward_slices(&self, _f: &Forward) -> Option<SliceForward> {
        Some(SliceForward::Same)
    }

    fn forward(&self, _f: &Forward) -> TokenStream {
        if self.input.rank() == 1 {
            return quote!(x);
        }
        let n = self.output.len();
        quote!(::kiln::__private::Tensor::reshaped::<#n, 1>(x))
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        Some(super::reshape::reshape_back(&self.input, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::bind;
    use crate::ast::Invocation;

    fn flatten(tokens: proc_macro2::TokenStream, input: &[usize]) -> Result<Shape, String> {
        let inv: Invocation = syn::parse2(tokens).map_err(|e| e.to_string())?;
        let call = &inv.models[0].layers[0];
        let b = bind(call, &KIND.signature).map_err(|e| e.to_string())?;
        let shape = Shape(input.to_vec());
        let input = LayerInput {
            shape: &shape,
            source: "layer `dense`",
        };
        build(&b, &input)
            .map(|l| l.output_shape())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn multiplies_every_dimension() {
        let m = quote!(M = Sequential([Flatten()]));
        assert_eq!(flatten(m.clone(), &[2, 3, 4]), Ok(Shape(vec![24])));
        assert_eq!(flatten(m, &[7]), Ok(Shape(vec![7])));
        let m = quote!(M = Sequential([Flatten(data_format = "channels_last")]));
        assert_eq!(flatten(m, &[3, 4]), Ok(Shape(vec![12])));
    }

    #[test]
    fn channels_first_is_refused_with_the_equivalent_permute() {
        let m = quote!(M = Sequential([Flatten(data_format = "channels_first")]));
        let e = flatten(m, &[2, 3, 4]).unwrap_err();
        assert!(e.contains("`Permute((3, 1, 2))`"), "{e}");
    }
}
