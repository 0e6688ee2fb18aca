//! Syntax only: turns the macro's tokens into [`crate::ast`]. Whether layers, arguments and
//! shapes make sense is `check.rs`'s job.
//!
//! Layer calls and argument values are read with syn's expression parser (a Keras layer
//! list is also valid Rust expression syntax), then sorted into [`Value`]s.

use crate::args::Errors;
use crate::ast::{Arg, Invocation, LayerCall, ModelDef, Value};
use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{token, Attribute, Expr, ExprCall, Ident, Lit, Token, UnOp, Visibility};

mod kw {
    syn::custom_keyword!(Sequential);
}

impl Parse for Invocation {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut models = Vec::new();
        while !input.is_empty() {
            models.push(input.parse()?);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![;]>()?;
        }
        if models.is_empty() {
            return Err(input.error(NO_MODEL));
        }
        Ok(Invocation { models })
    }
}

/// One model declaration parsed on its own, or why it failed to parse, with a layer-less
/// [`ModelDef`] when at least its head (`pub Name = ...`) could be read: enough for a
/// fallback stub, so code using the model shows no follow-on "cannot find type" errors.
pub type Parsed = Result<ModelDef, (syn::Error, Option<Box<ModelDef>>)>;

/// Splits a `model!` invocation at its top-level `;` and parses each declaration apart, so
/// a syntax error in one model neither hides the others' errors nor their types.
pub fn parse_models(tokens: TokenStream) -> Vec<Parsed> {
    let mut declarations = Vec::new();
    let mut current = TokenStream::new();
    for tree in tokens {
        match &tree {
            TokenTree::Punct(p) if p.as_char() == ';' => {
                declarations.push(std::mem::take(&mut current));
            }
            _ => current.extend([tree]),
        }
    }
    declarations.push(current);
    let parsed: Vec<Parsed> = declarations
        .into_iter()
        .filter(|tokens| !tokens.is_empty())
        .map(|tokens| syn::parse2::<ModelDef>(tokens.clone()).map_err(|e| (e, head(tokens))))
        .collect();
    if parsed.is_empty() {
        return vec![Err((syn::Error::new(Span::call_site(), NO_MODEL), None))];
    }
    parsed
}

const NO_MODEL: &str =
    "expected a model declaration like `pub Net = Sequential([Input(shape = (4,)), Dense(1)]);`";

/// The head of a declaration that failed to parse: attributes, visibility and name.
fn head(tokens: TokenStream) -> Option<Box<ModelDef>> {
    let parser = |input: ParseStream| {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let name: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        input.parse::<TokenStream>()?;
        Ok(ModelDef {
            attrs,
            vis,
            list_span: name.span(),
            name,
            layers: Vec::new(),
        })
    };
    Parser::parse2(parser, tokens).ok().map(Box::new)
}

/// How deep `model!` input may nest (see [`too_deep`]). syn parses and kiln walks the tree
/// recursively, and rustc runs a macro on its own thread's stack (8 MiB) with the macro
/// built without optimisation, where one level of syn's expression parser takes up to
/// about 27 KB: this keeps the deepest input to about 3.5 MB. Real models need about 20.
pub const MAX_NESTING: usize = 128;

/// An error on the first token nested deeper than [`MAX_NESTING`], before syn sees the
/// input (which would overflow the stack instead). A token's depth is the number of groups
/// around it plus, in each of them, the operators and keywords before it since the last `,`
/// or `;` there (each can open one more level of syn's recursion: `- - 1`, `x.f().g()`,
/// `1 + 1 + 1`, `|x| |y| ..`, `return return ..`). A group right after a name (a call's
/// arguments) adds only its own level. Walks with its own stack, not recursion.
pub fn too_deep(tokens: &TokenStream) -> Option<syn::Error> {
    // Per open group: its remaining tokens, the depth at its start, the operators since the
    // last separator, and whether the previous token was a name.
    let mut levels = vec![(tokens.clone().into_iter(), 0usize, 0usize, false)];
    while let Some(level) = levels.last_mut() {
        let Some(tree) = level.0.next() else {
            levels.pop();
            continue;
        };
        let (base, run, after_name) = (level.1, &mut level.2, level.3);
        let mut inner = None;
        match &tree {
            TokenTree::Punct(p) => match p.as_char() {
                ',' | ';' => *run = 0,
                '#' | ':' | '\'' => {}
                _ => *run += 1,
            },
            TokenTree::Ident(i) => {
                if OPERATOR_KEYWORDS.iter().any(|k| i == k) {
                    *run += 1;
                }
            }
            TokenTree::Group(g) => {
                if !after_name {
                    *run += 1;
                }
                inner = Some(g.stream());
            }
            TokenTree::Literal(_) => {}
        }
        let depth = base + *run;
        level.3 = matches!(tree, TokenTree::Ident(_));
        if depth > MAX_NESTING {
            return Some(syn::Error::new(
                tree.span(),
                format!("`model!` input nested too deeply here: more than {MAX_NESTING} levels of brackets and operators (a model needs about 20)"),
            ));
        }
        if let Some(stream) = inner {
            levels.push((stream.into_iter(), depth + 1, 0, false));
        }
    }
    None
}

/// Keywords that open an expression or type inside another (`return x`, `move |x| ..`,
/// `x as T`, `&mut T`), counted as operators by [`too_deep`].
const OPERATOR_KEYWORDS: &[&str] = &[
    "as", "async", "await", "box", "break", "const", "continue", "do", "dyn", "else", "for", "if",
    "impl", "in", "let", "loop", "match", "move", "mut", "ref", "return", "static", "unsafe",
    "while", "yield",
];

impl Parse for ModelDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let name: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        let lookahead = input.lookahead1();
        if !lookahead.peek(kw::Sequential) {
            return Err(match input.fork().call(Ident::parse_any) {
                Ok(found) => syn::Error::new(
                    found.span(),
                    format!("expected `Sequential`, found `{found}`; kiln builds sequential models only"),
                ),
                Err(_) => lookahead.error(),
            });
        }
        let sequential = input.parse::<kw::Sequential>()?;
        let outer;
        syn::parenthesized!(outer in input);
        if !outer.peek(token::Bracket) {
            return Err(syn::Error::new(
                if outer.is_empty() {
                    sequential.span
                } else {
                    outer.span()
                },
                "`Sequential` takes a list of layers: `Sequential([...])`",
            ));
        }
        let inner;
        let brackets = syn::bracketed!(inner in outer);
        let items = Punctuated::<Expr, Token![,]>::parse_terminated(&inner)?;
        if !outer.is_empty() {
            return Err(outer.error("`Sequential` takes one list of layers: `Sequential([...])`"));
        }
        let layers = all(items.into_iter().map(layer_call))?;
        Ok(ModelDef {
            attrs,
            vis,
            name,
            list_span: brackets.span.join(),
            layers,
        })
    }
}

/// Every item's value, or every item's error combined: independent mistakes show together.
fn all<T>(items: impl IntoIterator<Item = syn::Result<T>>) -> syn::Result<Vec<T>> {
    let mut errors = Errors::default();
    let values: Vec<T> = items.into_iter().filter_map(|r| errors.ok(r)).collect();
    errors.into_result()?;
    Ok(values)
}

fn layer_call(expr: Expr) -> syn::Result<LayerCall> {
    let call = match &expr {
        Expr::Call(call) => call,
        Expr::Path(p) if p.path.get_ident().is_some() => {
            return Err(syn::Error::new_spanned(
                &expr,
                format!(
                    "expected a layer call like `{}()`, found a bare name",
                    quote::ToTokens::to_token_stream(&p.path)
                ),
            ))
        }
        _ => {
            return Err(syn::Error::new_spanned(
                &expr,
                "expected a layer call like `Dense(10, activation = \"relu\")`",
            ))
        }
    };
    let class = layer_class(call);
    let args = all(call.args.iter().cloned().map(arg));
    match (class, args) {
        (Ok(class), Ok(args)) => Ok(LayerCall {
            class,
            args,
            call: expr,
        }),
        (Err(mut e), Err(more)) => {
            e.combine(more);
            Err(e)
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

fn layer_class(call: &ExprCall) -> syn::Result<Ident> {
    match &*call.func {
        Expr::Path(p) if p.qself.is_none() => match p.path.get_ident() {
            Some(ident) => Ok(ident.clone()),
            None => Err(syn::Error::new_spanned(
                &p.path,
                "expected a layer name like `Dense`, without a path",
            )),
        },
        other => Err(syn::Error::new_spanned(
            other,
            "expected a layer name like `Dense`",
        )),
    }
}

/// An argument: `keyword = value` or a bare value.
fn arg(expr: Expr) -> syn::Result<Arg> {
    if let Expr::Assign(assign) = &expr {
        if let Expr::Path(p) = &*assign.left {
            if let Some(keyword) = p.path.get_ident() {
                let value_expr = (*assign.right).clone();
                return Ok(Arg {
                    keyword: Some(keyword.clone()),
                    value: value(&value_expr)?,
                    expr: value_expr,
                });
            }
        }
        return Err(syn::Error::new_spanned(
            &assign.left,
            "expected an argument name before `=`",
        ));
    }
    Ok(Arg {
        keyword: None,
        value: value(&expr)?,
        expr,
    })
}

/// Sorts an expression into the DSL's value kinds; anything else is `Value::Other`.
fn value(expr: &Expr) -> syn::Result<Value> {
    Ok(match expr {
        Expr::Lit(lit) => literal(&lit.lit)?,
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => match value(&u.expr)? {
            Value::Int(i) => Value::Int(-i),
            Value::Float(f) => Value::Float(-f),
            _ => Value::Other,
        },
        Expr::Path(p) if p.qself.is_none() => match p.path.get_ident().map(|i| i.to_string()) {
            Some(name) if name == "True" => Value::Bool(true),
            Some(name) if name == "False" => Value::Bool(false),
            Some(name) if name == "None" => Value::None,
            _ => Value::Other,
        },
        Expr::Paren(p) => value(&p.expr)?,
        Expr::Group(g) => value(&g.expr)?,
        Expr::Tuple(t) => Value::Tuple(all(t.elems.iter().cloned().map(arg))?),
        Expr::Array(a) => Value::List(all(a.elems.iter().cloned().map(arg))?),
        Expr::Call(call) => match &*call.func {
            Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                let name = p
                    .path
                    .get_ident()
                    .cloned()
                    .ok_or_else(|| syn::Error::new(call.func.span(), "expected a name"))?;
                let args = all(call.args.iter().cloned().map(arg))?;
                Value::Call(name, args)
            }
            _ => Value::Other,
        },
        _ => Value::Other,
    })
}

fn literal(lit: &Lit) -> syn::Result<Value> {
    Ok(match lit {
        Lit::Int(i) => Value::Int(i.base10_parse::<i128>()?),
        Lit::Float(f) => Value::Float(f.base10_parse::<f64>()?),
        Lit::Str(s) => Value::Str(s.value()),
        Lit::Bool(b) => Value::Bool(b.value),
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "expected a number, a string, `True`, `False` or `None`",
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keras_style_layer_lists() {
        let inv: Invocation = syn::parse_quote! {
            /// docs
            pub Net = Sequential([
                Input(shape = (64,)),
                Dense(128, activation = "relu", use_bias = True),
                Reshape((-1, 2)),
            ]);
            Other = Sequential([Dense(1, input_dim = 3)])
        };
        assert_eq!(inv.models.len(), 2);
        let net = &inv.models[0];
        assert_eq!(net.name, "Net");
        assert_eq!(net.layers.len(), 3);
        let dense = &net.layers[1];
        assert_eq!(dense.class, "Dense");
        assert!(matches!(dense.args[0].value, Value::Int(128)));
        assert_eq!(dense.args[1].keyword.as_ref().unwrap(), "activation");
        assert!(matches!(dense.args[2].value, Value::Bool(true)));
        match &net.layers[2].args[0].value {
            Value::Tuple(items) => assert!(matches!(items[0].value, Value::Int(-1))),
            _ => panic!("expected a tuple"),
        }
    }

    #[test]
    fn each_declaration_parses_alone_and_reports_every_bad_entry() {
        let parsed = parse_models(quote::quote! {
            pub Bad = Sequential([Flatten, Dense(1), 3]);
            Good = Sequential([Dense(1, input_dim = 2)]);
            Other = Functional([]);
            ;
        });
        assert_eq!(parsed.len(), 3);
        let (error, head) = parsed[0].as_ref().err().unwrap();
        assert_eq!(error.clone().into_iter().count(), 2, "{error}");
        assert_eq!(head.as_ref().unwrap().name, "Bad");
        assert!(parsed[1].is_ok());
        let (error, head) = parsed[2].as_ref().err().unwrap();
        assert!(error.to_string().contains("found `Functional`"), "{error}");
        assert_eq!(head.as_ref().unwrap().name, "Other");
        assert!(parse_models(quote::quote!(;))[0].is_err());
    }

    #[test]
    fn rejects_a_bare_layer_name() {
        let err = syn::parse2::<Invocation>(quote::quote! { M = Sequential([Flatten]) });
        assert!(err.is_err());
    }
}
