//! The `model!` macro of kiln. Use it through the `kiln` crate, whose docs hold the DSL
//! reference (`kiln::model!`). Pipeline: `parse` (syntax) -> `check` (shapes and arguments,
//! all errors at once) -> `expand` (code, no error paths).

mod activations;
mod args;
mod ast;
mod check;
mod expand;
mod initializers;
mod ir;
mod layers;
mod parse;
mod shape;
mod suggest;

use proc_macro::TokenStream;

/// Declares Keras-style sequential models; see the `kiln` crate for the reference.
#[proc_macro]
pub fn model(input: TokenStream) -> TokenStream {
    let invocation = syn::parse_macro_input!(input as ast::Invocation);
    let mut output = proc_macro2::TokenStream::new();
    for def in &invocation.models {
        match check::check(def) {
            Ok(model) => output.extend(expand::expand(&model)),
            Err(error) => {
                output.extend(error.to_compile_error());
                output.extend(expand::fallback(def));
            }
        }
    }
    output.into()
}
