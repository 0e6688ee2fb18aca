//! [`expand_tokens`]: the whole macro on `proc_macro2` tokens, so that unit tests and the
//! fuzz target (`fuzz/src/bin/model_macro.rs`, which compiles these modules in by path)
//! call exactly what the `#[proc_macro]` entry calls.

use crate::{check, expand, parse};
use proc_macro2::TokenStream;
use quote::quote_spanned;

/// The whole macro on `proc_macro2` tokens (testable outside a compiler). Each model is
/// checked and expanded on its own; one that fails becomes its errors plus a stand-in type
/// of the same name. After a syntax error, the declarations are re-parsed one by one, so
/// the other models still get checked and every model still gets a type.
///
/// Input nested deeper than [`parse::MAX_NESTING`] is refused first, with one error and no
/// stand-in (reading even the model's name could overflow the stack).
pub fn expand_tokens(input: TokenStream) -> TokenStream {
    if let Some(error) = parse::too_deep(&input) {
        return error.to_compile_error();
    }
    let parsed: Vec<parse::Parsed> = match syn::parse2::<crate::ast::Invocation>(input.clone()) {
        Ok(invocation) => invocation.models.into_iter().map(Ok).collect(),
        Err(_) => parse::parse_models(input),
    };
    let mut output = TokenStream::new();
    for parsed in parsed {
        match parsed {
            Ok(def) => match check::check(&def) {
                Ok(model) => {
                    output.extend(expand::expand(&model));
                    output.extend(fits_the_target(&model));
                }
                Err(error) => {
                    output.extend(error.to_compile_error());
                    output.extend(expand::fallback(&def));
                }
            },
            Err((error, head)) => {
                output.extend(error.to_compile_error());
                if let Some(def) = head {
                    output.extend(expand::fallback(&def));
                }
            }
        }
    }
    output
}

/// A compile-time assertion, in the generated code, that the model's weights and its
/// largest per-sample tensor each fit in `isize::MAX` bytes, the most one allocation may
/// take on the target. The macro runs on the host and cannot know the target's pointer
/// width; the compiled constant does. On 64-bit targets it always holds (the checker caps
/// a model at 2^31 values, 8 GiB); on a 32-bit target a model over 2 GiB fails here, on its
/// name, instead of at run time.
fn fits_the_target(model: &crate::ir::Model) -> TokenStream {
    let values: u64 = model
        .layers
        .iter()
        .flat_map(|l| &l.weights)
        .map(|w| w.shape.len() as u64)
        .sum();
    let largest: u64 = model
        .layers
        .iter()
        .flat_map(|l| [l.input.len(), l.output.len()])
        .max()
        .unwrap_or(0) as u64;
    let (weight_bytes, tensor_bytes) = (values.saturating_mul(4), largest.saturating_mul(4));
    let name = &model.name;
    let weights_message = format!(
        "model `{name}` is too large for this target: its weights take {weight_bytes} bytes, more than one allocation can hold here (isize::MAX)"
    );
    let tensor_message = format!(
        "model `{name}` is too large for this target: its largest tensor takes {tensor_bytes} bytes, more than one allocation can hold here (isize::MAX)"
    );
    quote_spanned! {name.span()=>
        const _: () = ::core::assert!(#weight_bytes as u128 <= ::core::primitive::isize::MAX as u128, #weights_message);
        const _: () = ::core::assert!(#tensor_bytes as u128 <= ::core::primitive::isize::MAX as u128, #tensor_message);
    }
}
