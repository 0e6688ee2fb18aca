//! `Lambda(function, output_shape = None, backward = None)`: a Rust function applied to each
//! sample.
//!
//! `function` is a non-capturing closure or a path to a `fn`, mapping one sample to one
//! sample: `fn(&kiln::Sample<R, C>) -> kiln::Sample<R2, C2>`, where `Sample<R, C>` is the
//! tensor type of the input shape (`R` = last axis, `C` = product of the others; see
//! `kiln::tensor`) and `Sample<R2, C2>` that of the output shape. The generated code coerces
//! `function` to exactly that type, so rustc checks it against the shapes and reports a
//! mismatch on the closure itself. A batch applies it to each sample in turn.
//!
//! `output_shape`: a tuple of positive dimensions, rank 1 to 4 (no batch axis); without it the
//! output has the input's shape. Keras 3 infers it by tracing the function; kiln cannot run
//! the function at compile time, so a shape-changing function must declare it.
//!
//! `backward` (kiln's addition; Keras differentiates automatically): the vector-Jacobian
//! product `fn(&Sample<in>, &Sample<out>) -> Sample<in>`, taking the sample's input and the
//! gradient with respect to its output and returning the gradient with respect to its input.
//! Without it the layer has no backward pass, so the model does not implement
//! `kiln::Trainable` and calling `compile` on it is a compile error.
//!
//! Shape rule: `output_shape` or the input shape. No weights; refuses a mask (a Keras `Lambda`
//! only passes one on when given `mask = ...`).

use super::{Backward, Forward, Layer, LayerInput, LayerKind};
use crate::args::{Bound, Errors, Signature};
use crate::ast::{Arg, Value};
use crate::shape::{Mode, Shape};
use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Error, Expr};

pub const KIND: LayerKind = LayerKind {
    class: "Lambda",
    signature: Signature {
        params: &["function", "output_shape", "backward"],
        required: 1,
    },
    build,
};

/// The largest rank of a declared output shape (as for `Input` and `Reshape`).
const MAX_RANK: usize = 4;

struct Lambda {
    function: Expr,
    backward: Option<Expr>,
    input: Shape,
    output: Shape,
}

fn build(b: &Bound, input: &LayerInput) -> Result<Box<dyn Layer>, Error> {
    let mut errors = Errors::default();
    let function = b
        .get("function")
        .and_then(|arg| errors.ok(code(arg, "function")));
    let backward = match b.get("backward") {
        None => Some(None),
        Some(Arg {
            value: Value::None, ..
        }) => Some(None),
        Some(arg) => errors.ok(code(arg, "backward")).map(Some),
    };
    let output = errors.ok(output_shape(b, input));
    errors.into_result()?;
    let (Some(function), Some(backward), Some(output)) = (function, backward, output) else {
        return Err(Error::new_spanned(
            &b.call.call,
            "invalid `Lambda` arguments",
        ));
    };
    Ok(Box::new(Lambda {
        function,
        backward,
        input: input.shape.clone(),
        output,
    }))
}

/// A function argument: any Rust expression except the DSL's literals, tuples and lists,
/// which cannot be functions (Keras's `Lambda` takes a Python callable).
fn code(arg: &Arg, name: &str) -> Result<Expr, Error> {
    match &arg.value {
        Value::Other | Value::Call(..) => Ok(arg.expr.clone()),
        other => Err(Error::new_spanned(
            &arg.expr,
            format!(
                "expected a Rust closure or function path for `{name}` of `Lambda`, found {}\n  help: write a closure such as `|x| x * 2.0`, or the name of a `fn`",
                other.describe()
            ),
        )),
    }
}

/// `output_shape`: positive dimensions, rank 1 to 4, or the input's shape when absent.
fn output_shape(b: &Bound, input: &LayerInput) -> Result<Shape, Error> {
    let (Some(dims), Some(arg)) = (b.int_tuple("output_shape", 1)?, b.get("output_shape")) else {
        return Ok(input.shape.clone());
    };
    if dims.is_empty() || dims.len() > MAX_RANK {
        return Err(Error::new_spanned(
            &arg.expr,
            format!(
                "`output_shape` of `Lambda` must have rank 1 to {MAX_RANK} (without the batch axis), found rank {}",
                dims.len()
            ),
        ));
    }
    dims.iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<usize>, _>>()
        .map(Shape)
        .map_err(|_| Error::new_spanned(&arg.expr, "`output_shape` of `Lambda` is too large"))
}

impl Lambda {
    /// `fn(&Sample<in>) -> Sample<out>`.
    fn function_type(&self) -> TokenStream {
        let (input, output) = (
            self.input.tensor_type(Mode::Sample),
            self.output.tensor_type(Mode::Sample),
        );
        quote!(fn(&#input) -> #output)
    }

    /// `fn(&Sample<in>, &Sample<out>) -> Sample<in>`, or `()` without a backward function.
    fn backward_type(&self) -> TokenStream {
        if self.backward.is_none() {
            return quote!(());
        }
        let (input, output) = (
            self.input.tensor_type(Mode::Sample),
            self.output.tensor_type(Mode::Sample),
        );
        quote!(fn(&#input, &#output) -> #input)
    }
}

/// `tokens` with every span set to `span`: the `fn` type the user's function is coerced to
/// then belongs to the function, so rustc's "expected due to this" points at it too rather
/// than at the whole `model!` call.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Group(g) => {
                let mut group = Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                TokenTree::Group(group)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

impl Layer for Lambda {
    fn output_shape(&self) -> Shape {
        self.output.clone()
    }

    // The functions live in the model as `fn` pointers, coerced once in `new`: the user's
    // code appears once in the expansion, so each type error is reported once.
    fn state_type(&self) -> Option<TokenStream> {
        let (function, backward) = (self.function_type(), self.backward_type());
        Some(quote!(::kiln::__private::layers::lambda::Lambda<#function, #backward>))
    }

    fn init(&self, _seed: &TokenStream, _first_weight: usize) -> TokenStream {
        let f = &self.function;
        let function_type = respan(self.function_type(), f.span());
        // Spanned on the user's function, so rustc's "expected due to this" points at it.
        let function = quote_spanned!(f.span()=> {
            let function: #function_type = #f;
            function
        });
        let backward = match &self.backward {
            Some(b) => {
                let backward_type = respan(self.backward_type(), b.span());
                quote_spanned!(b.span()=> {
                    let backward: #backward_type = #b;
                    backward
                })
            }
            None => quote!(()),
        };
        quote!(::kiln::__private::layers::lambda::Lambda {
            function: #function,
            backward: #backward,
        })
    }

    fn forward(&self, f: &Forward) -> TokenStream {
        let state = &f.state;
        match f.mode {
            Mode::Sample => quote!((#state.function)(&x)),
            Mode::Batch => {
                quote!(::kiln::__private::layers::lambda::map_samples(&x, #state.function))
            }
        }
    }

    // Training maps into the step's pool and returns the input copy to it.
    fn forward_train(&self, f: &Forward) -> TokenStream {
        let state = &f.state;
        quote!({
            let y = ::kiln::__private::layers::lambda::map_samples_pooled(
                &mut pass.pool,
                &x,
                #state.function,
            );
            pass.pool.give(x);
            (y, ())
        })
    }

    fn backward(&self, b: &Backward) -> Option<TokenStream> {
        self.backward.as_ref()?;
        if !b.need_input_grad {
            return Some(quote!({
                pass.pool.give(dy);
            }));
        }
        let state = &b.state;
        Some(quote!({
            let dx = ::kiln::__private::layers::lambda::map_gradients_pooled(
                &mut pass.pool,
                x,
                &dy,
                #state.backward,
            );
            pass.pool.give(dy);
            dx
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::bind;
    use crate::ast::Invocation;

    fn lambda(inv: Invocation) -> Result<Shape, String> {
        let b = bind(&inv.models[0].layers[0], &KIND.signature).map_err(|e| e.to_string())?;
        let shape = Shape(vec![3, 4]);
        let input = LayerInput {
            shape: &shape,
            source: "the model input",
        };
        build(&b, &input).map(|l| l.output_shape()).map_err(|e| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        })
    }

    #[test]
    fn output_shape_defaults_to_the_input() {
        assert_eq!(
            lambda(syn::parse_quote!(M = Sequential([Lambda(|x| x * 2.0)]))),
            Ok(Shape(vec![3, 4]))
        );
        assert_eq!(
            lambda(syn::parse_quote!(
                M = Sequential([Lambda(double, output_shape = (3, 8), backward = None)])
            )),
            Ok(Shape(vec![3, 8]))
        );
    }

    #[test]
    fn refuses_non_functions_and_bad_shapes_together() {
        let e = lambda(syn::parse_quote!(
            M = Sequential([Lambda(
                "x * 2",
                output_shape = (1, 2, 3, 4, 5),
                backward = 3
            )])
        ))
        .unwrap_err();
        assert!(
            e.contains("expected a Rust closure or function path for `function` of `Lambda`, found the string"),
            "{e}"
        );
        assert!(
            e.contains("for `backward` of `Lambda`, found the integer `3`"),
            "{e}"
        );
        assert!(e.contains("must have rank 1 to 4"), "{e}");
        let e = lambda(syn::parse_quote!(
            M = Sequential([Lambda(f, output_shape = (0, 2))])
        ))
        .unwrap_err();
        assert!(
            e.contains("each value in `output_shape` of `Lambda` must be a positive integer"),
            "{e}"
        );
    }
}
