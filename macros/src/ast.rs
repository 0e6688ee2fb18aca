//! The syntax tree of a `model!` invocation, before any checking: what `parse.rs` builds.

use proc_macro2::Span;
use syn::{Attribute, Expr, Ident, Visibility};

/// Everything inside `model! { ... }`: one or more model declarations.
pub struct Invocation {
    pub models: Vec<ModelDef>,
}

/// `/// docs  pub Name = Sequential([ layer, ... ]);`
pub struct ModelDef {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    /// The `[...]` of the layer list, for errors about the list as a whole.
    pub list_span: Span,
    pub layers: Vec<LayerCall>,
}

/// `Dense(10, activation = "relu")`: a layer class applied to arguments.
#[derive(Clone)]
pub struct LayerCall {
    pub class: Ident,
    pub args: Vec<Arg>,
    /// The whole call, for errors that concern the layer rather than one argument.
    pub call: Expr,
}

/// One argument, positional (`10`) or keyword (`activation = "relu"`).
#[derive(Clone)]
pub struct Arg {
    pub keyword: Option<Ident>,
    pub value: Value,
    /// The value's source, for spans and for arguments that are Rust code (closures).
    pub expr: Expr,
}

impl Arg {
    /// The argument as a layer call, when its value is one (`Bidirectional(LSTM(4))`):
    /// wrappers take the layer they wrap as an argument.
    pub fn layer_call(&self) -> Option<LayerCall> {
        match &self.value {
            Value::Call(class, args) => Some(LayerCall {
                class: class.clone(),
                args: args.clone(),
                call: self.expr.clone(),
            }),
            _ => None,
        }
    }
}

/// An argument value in the DSL's Python-like vocabulary.
#[derive(Clone)]
pub enum Value {
    Int(i128),
    Float(f64),
    Str(String),
    Bool(bool),
    None,
    /// `(a, b)` or `(a,)`.
    Tuple(Vec<Arg>),
    /// `[a, b]`.
    List(Vec<Arg>),
    /// `name(args...)`, e.g. `l2(0.01)` or `RandomNormal(stddev = 0.1)`.
    Call(Ident, Vec<Arg>),
    /// Any other Rust expression (closures, paths, blocks).
    Other,
}

impl Value {
    /// How an error message names a value of this kind: "the integer 3", "a string".
    pub fn describe(&self) -> String {
        match self {
            Value::Int(i) => format!("the integer `{i}`"),
            Value::Float(f) => format!("the float `{f:?}`"),
            Value::Str(s) => format!("the string `{s:?}`"),
            Value::Bool(b) => format!("`{}`", if *b { "True" } else { "False" }),
            Value::None => "`None`".to_string(),
            Value::Tuple(_) => "a tuple".to_string(),
            Value::List(_) => "a list".to_string(),
            Value::Call(name, _) => format!("a call to `{name}`"),
            Value::Other => "a Rust expression".to_string(),
        }
    }
}
