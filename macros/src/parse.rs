//! Syntax only: turns the macro's tokens into [`crate::ast`]. Whether layers, arguments and
//! shapes make sense is `check.rs`'s job.
//!
//! Layer calls and argument values are read with syn's expression parser (a Keras layer
//! list is also valid Rust expression syntax), then sorted into [`Value`]s.

use crate::ast::{Arg, Invocation, LayerCall, ModelDef, Value};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprCall, Ident, Lit, Token, UnOp, Visibility};

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
            return Err(input.error(
                "expected a model declaration like `pub Net = Sequential([Input(shape = (4,)), Dense(1)]);`",
            ));
        }
        Ok(Invocation { models })
    }
}

impl Parse for ModelDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let name: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        let lookahead = input.lookahead1();
        if !lookahead.peek(kw::Sequential) {
            return Err(lookahead.error());
        }
        input.parse::<kw::Sequential>()?;
        let outer;
        syn::parenthesized!(outer in input);
        let inner;
        let brackets = syn::bracketed!(inner in outer);
        let items = Punctuated::<Expr, Token![,]>::parse_terminated(&inner)?;
        if !outer.is_empty() {
            return Err(outer.error("`Sequential` takes one list of layers: `Sequential([...])`"));
        }
        let layers = items
            .into_iter()
            .map(layer_call)
            .collect::<syn::Result<Vec<_>>>()?;
        Ok(ModelDef {
            attrs,
            vis,
            name,
            list_span: brackets.span.join(),
            layers,
        })
    }
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
    let class = layer_class(call)?;
    let args = call
        .args
        .iter()
        .cloned()
        .map(arg)
        .collect::<syn::Result<Vec<_>>>()?;
    Ok(LayerCall { class, args, call: expr })
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
        other => Err(syn::Error::new_spanned(other, "expected a layer name like `Dense`")),
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
        Expr::Tuple(t) => Value::Tuple(t.elems.iter().cloned().map(arg).collect::<syn::Result<_>>()?),
        Expr::Array(a) => Value::List(a.elems.iter().cloned().map(arg).collect::<syn::Result<_>>()?),
        Expr::Call(call) => match &*call.func {
            Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                let name = p.path.get_ident().cloned().ok_or_else(|| {
                    syn::Error::new(call.func.span(), "expected a name")
                })?;
                let args = call.args.iter().cloned().map(arg).collect::<syn::Result<_>>()?;
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
    fn rejects_a_bare_layer_name() {
        let err = syn::parse2::<Invocation>(quote::quote! { M = Sequential([Flatten]) });
        assert!(err.is_err());
    }
}
