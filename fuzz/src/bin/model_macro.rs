//! AFL++ target: any text as the body of `kiln::model! { ... }`, through the macro's own
//! `expand_tokens` (bytes -> UTF-8 -> `proc_macro2::TokenStream::from_str` -> expand).
//! Crashes when the macro panics, or when its output is not Rust items; AFL's `-t` turns a
//! slow input into a hang. See README.md for the commands.
//!
//! # How the macro gets in
//! A proc-macro crate can only be used as a macro, so this bin compiles the macro crate's
//! modules into itself, one `#[path = "../../../macros/src/<module>.rs"] mod <module>;` per
//! module that `macros/src/lib.rs` declares (serde_derive_internals does the same with
//! serde_derive's sources). The modules name each other as `crate::<module>`, which is this
//! bin's root here as it is `lib.rs` there. A file loaded by `#[path]` is treated as a
//! `mod.rs` file for its own child modules: `layers/mod.rs`'s `pub mod dense;` resolves to
//! `layers/dense.rs` as in the macro crate, and no other top-level module has out-of-line
//! children (the only nested ones, such as `parse.rs`'s `mod kw`, are inline). A module
//! added to `lib.rs` must be added here too: the bin then fails to compile until it is.
//! Nothing in them uses `proc_macro` (the compiler's crate), only `proc_macro2`, which
//! outside a compiler runs its own lexer.
//!
//! # Files
//! The only file access in the macro is `#[weights = "..."]`, a read. So that the fuzzer
//! reads nothing surprising, `CARGO_MANIFEST_DIR` (what relative paths resolve against) is
//! set to a sandbox folder holding a copy of one weight file (`tests/data/baked/
//! net.safetensors`, so the successful path is reachable), and an input with a string
//! literal that is an absolute path or climbs with `..` is skipped before expansion. The
//! macro writes no file.

#![allow(dead_code)] // the macro's modules hold items only its unit tests use

#[path = "../../../macros/src/activations.rs"]
mod activations;
#[path = "../../../macros/src/args.rs"]
mod args;
#[path = "../../../macros/src/ast.rs"]
mod ast;
#[path = "../../../macros/src/baked.rs"]
mod baked;
#[path = "../../../macros/src/callables.rs"]
mod callables;
#[path = "../../../macros/src/check.rs"]
mod check;
#[path = "../../../macros/src/constraints.rs"]
mod constraints;
#[path = "../../../macros/src/expand.rs"]
mod expand;
#[path = "../../../macros/src/initializers.rs"]
mod initializers;
#[path = "../../../macros/src/ir.rs"]
mod ir;
#[path = "../../../macros/src/layers/mod.rs"]
mod layers;
#[path = "../../../macros/src/parse.rs"]
mod parse;
#[path = "../../../macros/src/pipeline.rs"]
mod pipeline;
#[path = "../../../macros/src/regularizers.rs"]
mod regularizers;
#[path = "../../../macros/src/scratch.rs"]
mod scratch;
#[path = "../../../macros/src/shape.rs"]
mod shape;
#[path = "../../../macros/src/suggest.rs"]
mod suggest;

use proc_macro2::{TokenStream, TokenTree};
use std::path::{Component, Path};
use std::str::FromStr;

fn main() {
    sandbox();
    afl::fuzz!(|data: &[u8]| {
        check(data);
    });
}

/// Points `CARGO_MANIFEST_DIR` at a fresh folder with the one weight file the seeds name.
fn sandbox() {
    let dir = std::env::temp_dir().join(format!("kiln-fuzz-model-macro-{}", std::process::id()));
    let weights = dir.join("tests/data/baked");
    std::fs::create_dir_all(&weights).expect("create the sandbox");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/baked/net.safetensors");
    std::fs::copy(source, weights.join("net.safetensors")).expect("copy a weight file");
    // Set before any other thread exists (AFL's persistent loop runs on this one).
    std::env::set_var("CARGO_MANIFEST_DIR", &dir);
}

/// Expands `data` as a `model!` body; panics when the macro breaks its promise.
fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(tokens) = TokenStream::from_str(text) else {
        return;
    };
    if escapes_sandbox(&tokens) {
        return;
    }
    let output = pipeline::expand_tokens(tokens);
    if let Err(error) = syn::parse2::<syn::File>(output.clone()) {
        panic!("the output is not Rust items ({error}):\n{output}");
    }
}

/// Whether any string literal in `tokens` is a path outside the sandbox (absolute, or with
/// a `..`). Walks with its own stack: inputs may nest deeply.
fn escapes_sandbox(tokens: &TokenStream) -> bool {
    let mut stack = vec![tokens.clone()];
    while let Some(stream) = stack.pop() {
        for tree in stream {
            match tree {
                TokenTree::Group(g) => stack.push(g.stream()),
                TokenTree::Literal(lit) => {
                    let Ok(s) = syn::parse2::<syn::LitStr>(TokenTree::Literal(lit).into()) else {
                        continue;
                    };
                    let value = s.value();
                    let path = Path::new(&value);
                    let outside = path.components().any(|c| {
                        matches!(
                            c,
                            Component::ParentDir | Component::RootDir | Component::Prefix(_)
                        )
                    });
                    if outside || value.contains('\0') {
                        return true;
                    }
                }
                _ => {}
            }
        }
    }
    false
}
