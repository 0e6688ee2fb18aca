//! `LeakyReLU(negative_slope = 0.3)`: `f(x) = x` for `x >= 0`, `negative_slope * x`
//! otherwise.
//!
//! Keras 2 called the argument `alpha`; Keras 3 still accepts that name as a keyword (with a
//! deprecation warning), and so does kiln. Giving both is an error here (Keras would quietly
//! let `alpha` win). `negative_slope` must be at least 0, as Keras's constructor demands.
//! Note the layer's default slope is 0.3, while the `"leaky_relu"` activation's is 0.2.
//!
//! Shape rule: output shape = input shape, any rank. Masks pass through.

use super::relu::Elementwise;
use super::{Layer, LayerInput, LayerKind};
use crate::activations::f32_lit;
use crate::args::{Bound, Signature};
use quote::quote;
use syn::Error;

pub const KIND: LayerKind = LayerKind {
    class: "LeakyReLU",
    signature: Signature {
        // `alpha` is keyword-only in Keras (it arrives through `**kwargs`).
        params: &["negative_slope", "alpha"],
        required: 0,
    },
    build,
};

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let slope = match (b.get("negative_slope"), b.get("alpha")) {
        (_, Some(alpha)) if alpha.keyword.is_none() => {
            return Err(Error::new_spanned(
                &alpha.expr,
                "`LeakyReLU` takes 1 positional argument but 2 were given\n  help: `alpha` is the Keras 2 name of `negative_slope`; give one of them",
            ))
        }
        (Some(_), Some(alpha)) => {
            return Err(Error::new_spanned(
                &alpha.expr,
                "`LeakyReLU` takes `negative_slope` or its Keras 2 name `alpha`, not both",
            ))
        }
        (None, Some(_)) => b.non_negative_float("alpha", 0.3)?,
        _ => b.non_negative_float("negative_slope", 0.3)?,
    };
    let slope = f32_lit(slope as f32);
    Ok(Box::new(Elementwise::new(
        quote!(::kiln::__private::Activation::LeakyRelu { negative_slope: #slope }),
        input.shape,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::bind;
    use crate::ast::Invocation;
    use crate::shape::Shape;

    fn errors(inv: Invocation) -> String {
        let call = &inv.models[0].layers[0];
        let shape = Shape(vec![4]);
        let input = LayerInput {
            shape: &shape,
            source: "the model input",
        };
        match bind(call, &KIND.signature).and_then(|b| build(&b, &input)) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn alpha_is_a_keyword_only_alias() {
        assert_eq!(
            errors(syn::parse_quote!(M = Sequential([LeakyReLU(0.1)]))),
            ""
        );
        assert_eq!(
            errors(syn::parse_quote!(M = Sequential([LeakyReLU(alpha = 0.1)]))),
            ""
        );
        let e = errors(syn::parse_quote!(M = Sequential([LeakyReLU(0.1, 0.2)])));
        assert!(
            e.contains("takes 1 positional argument but 2 were given"),
            "{e}"
        );
        let e = errors(syn::parse_quote!(
            M = Sequential([LeakyReLU(0.1, alpha = 0.2)])
        ));
        assert!(e.contains("not both"), "{e}");
        let e = errors(syn::parse_quote!(M = Sequential([LeakyReLU(alpha = -1)])));
        assert!(
            e.contains("`alpha` of `LeakyReLU` must be at least 0, found `-1`"),
            "{e}"
        );
    }
}
