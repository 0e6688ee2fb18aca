//! The `model!` macro of kiln. Use it through the `kiln` crate, whose docs hold the DSL
//! reference (`kiln::model!`). Pipeline: `parse` (syntax) -> `check` (shapes and arguments,
//! all errors at once) -> `expand` (code, no error paths).

mod activations;
mod args;
mod ast;
mod baked;
mod callables;
mod check;
mod constraints;
mod expand;
mod initializers;
mod ir;
mod layers;
mod parse;
mod regularizers;
mod scratch;
mod shape;
mod suggest;

/// Declares Keras-style sequential models; see the `kiln` crate for the reference.
#[proc_macro]
pub fn model(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    expand_tokens(input.into()).into()
}

/// The whole macro on `proc_macro2` tokens (testable outside a compiler). Each model is
/// checked and expanded on its own; one that fails becomes its errors plus a stand-in type
/// of the same name. After a syntax error, the declarations are re-parsed one by one, so
/// the other models still get checked and every model still gets a type.
fn expand_tokens(input: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let parsed: Vec<parse::Parsed> = match syn::parse2::<ast::Invocation>(input.clone()) {
        Ok(invocation) => invocation.models.into_iter().map(Ok).collect(),
        Err(_) => parse::parse_models(input),
    };
    let mut output = proc_macro2::TokenStream::new();
    for parsed in parsed {
        match parsed {
            Ok(def) => match check::check(&def) {
                Ok(model) => output.extend(expand::expand(&model)),
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

#[cfg(test)]
mod tests {
    //! The macro must never panic, whatever it is given: a proc-macro panic is a compiler
    //! error without a span. These feed it many malformed invocations, built from the DSL's
    //! own vocabulary so that most get past the first token, and check that the output is
    //! always well-formed Rust items (a model, or `compile_error!` plus a stand-in).

    use super::*;
    use proptest::prelude::*;
    use proptest::sample::select;

    /// Layer classes and keywords: every registered one, plus near misses.
    fn classes() -> Vec<&'static str> {
        let mut v: Vec<&'static str> = layers::REGISTRY.iter().map(|k| k.class).collect();
        v.extend([
            "Input",
            "Input",
            "Dnese",
            "Conv2D",
            "Sequential",
            "r#Dense",
            "_",
        ]);
        v
    }

    fn keywords() -> Vec<&'static str> {
        let mut v: Vec<&'static str> = layers::REGISTRY
            .iter()
            .flat_map(|k| k.signature.params.iter().copied())
            .collect();
        v.extend(args::COMMON);
        v.extend([
            "shape",
            "activation",
            "kernel_initializer",
            "negative_slope",
            "stdev",
            "x",
        ]);
        v
    }

    /// Mostly one of `usual`, sometimes one of `odd`: most inputs should get past parsing
    /// to reach the checker, a few should not.
    fn mostly(
        usual: &'static [&'static str],
        odd: &'static [&'static str],
    ) -> BoxedStrategy<String> {
        prop_oneof![9 => select(usual), 1 => select(odd)]
            .prop_map(str::to_string)
            .boxed()
    }

    const LITERALS: &[&str] = &[
        "0",
        "1",
        "2",
        "3",
        "4",
        "64",
        "-1",
        "-3",
        "100000",
        "0.5",
        "-0.0",
        "\"relu\"",
        "\"rleu\"",
        "\"softmax\"",
        "\"\"",
        "\"channels_first\"",
        "\"channels_last\"",
        "\"glorot_uniform\"",
        "\"he_normel\"",
        "\"fan_inn\"",
        "True",
        "False",
        "None",
    ];

    const ODD_LITERALS: &[&str] = &[
        "100000000000000000000",
        "340282366920938463463374607431768211456",
        "1e39",
        "1e-50",
        "1u8",
        "2.0f32",
        "true",
        "'c'",
        "b\"x\"",
        "x",
        "relu",
        "|x| x",
        "{ 1 }",
        "a::b",
        "-x",
        "--1",
        "()",
        "[]",
        "(1)",
        "-\"a\"",
    ];

    const CALLEES: &[&str] = &[
        "relu",
        "leaky_relu",
        "elu",
        "gelu",
        "sigmoid",
        "sigmod",
        "RandomNormal",
        "VarianceScaling",
        "variance_scaling",
        "Constant",
        "Orthogonal",
        "l2",
        "Dense",
    ];

    const SOUP: &[&str] = &[
        "Dense",
        "Input",
        "Sequential",
        "shape",
        "=",
        ",",
        ";",
        "-",
        ":",
        "::",
        ".",
        "|",
        "#",
        "!",
        "?",
        "&",
        "*",
        "/",
        "+",
        "1",
        "-1",
        "\"relu\"",
        "None",
        "pub",
        "fn",
        "let",
        "'a",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "=>",
        "..",
        "@",
    ];

    fn value() -> impl Strategy<Value = String> {
        let leaf = mostly(LITERALS, ODD_LITERALS);
        leaf.prop_recursive(3, 32, 4, |inner| {
            let arg = (proptest::option::of(select(keywords())), inner.clone()).prop_map(
                |(k, v)| match k {
                    Some(k) => format!("{k} = {v}"),
                    None => v,
                },
            );
            prop_oneof![
                (prop::collection::vec(inner.clone(), 0..5), any::<bool>()).prop_map(
                    |(items, comma)| {
                        format!(
                            "({}{})",
                            items.join(", "),
                            if comma && !items.is_empty() { "," } else { "" }
                        )
                    }
                ),
                prop::collection::vec(inner, 0..5)
                    .prop_map(|items| format!("[{}]", items.join(", "))),
                (select(CALLEES), prop::collection::vec(arg, 0..3))
                    .prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
            ]
        })
    }

    fn arg() -> impl Strategy<Value = String> {
        (proptest::option::of(select(keywords())), value()).prop_map(|(k, v)| match k {
            Some(k) => format!("{k} = {v}"),
            None => v,
        })
    }

    fn soup(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(select(SOUP), 0..max).prop_map(|t| t.join(" "))
    }

    /// A value that is often right for some parameter: small sizes, shapes, axes, names.
    fn plausible() -> impl Strategy<Value = String> {
        prop_oneof![
            (1i64..9).prop_map(|i| i.to_string()),
            prop::collection::vec(prop_oneof![6 => 1i64..5, 1 => -1i64..1], 1..4).prop_map(|d| {
                let d: Vec<String> = d.iter().map(|i| i.to_string()).collect();
                format!("({},)", d.join(", "))
            }),
            select(
                &[
                    "\"relu\"",
                    "\"softmax\"",
                    "\"tanh\"",
                    "None",
                    "True",
                    "False",
                    "0.3",
                    "-0.5",
                    "\"zeros\"",
                    "\"he_normal\"",
                    "\"channels_last\"",
                    "-1",
                    "leaky_relu(0.1)",
                ][..]
            )
            .prop_map(str::to_string),
        ]
    }

    /// A call of a registered layer shaped by its signature: its required arguments in
    /// order, then a few of its keywords, so that many reach the layer's shape rule.
    fn registered_layer() -> impl Strategy<Value = String> {
        (0..layers::REGISTRY.len()).prop_flat_map(|k| {
            let kind = &layers::REGISTRY[k];
            let sig = &kind.signature;
            let optional: Vec<&'static str> =
                sig.params[sig.required.min(sig.params.len())..].to_vec();
            let n = optional.len();
            (
                prop::collection::vec(plausible(), sig.required..=sig.required),
                prop::sample::subsequence(optional, 0..=n.min(3)).prop_flat_map(|keys| {
                    let len = keys.len();
                    (Just(keys), prop::collection::vec(plausible(), len..=len))
                }),
            )
                .prop_map(move |(positional, (keys, values))| {
                    let keywords = keys.iter().zip(values).map(|(k, v)| format!("{k} = {v}"));
                    let args: Vec<String> = positional.into_iter().chain(keywords).collect();
                    format!("{}({})", kind.class, args.join(", "))
                })
        })
    }

    fn layer() -> impl Strategy<Value = String> {
        prop_oneof![
            20 => registered_layer(),
            10 => (select(classes()), prop::collection::vec(arg(), 0..4))
                .prop_map(|(c, args)| format!("{c}({})", args.join(", "))),
            1 => select(classes()).prop_map(str::to_string),
            1 => soup(6),
        ]
    }

    /// `Input(shape = (..))` with dimensions around the valid range, often first.
    fn input() -> impl Strategy<Value = String> {
        let dim = prop_oneof![9 => 1i64..6, 1 => -1i64..1];
        let dims = prop_oneof![
            9 => prop::collection::vec(dim, 1..5),
            1 => prop::collection::vec(0i64..9, 0..7),
        ];
        dims.prop_map(|dims| {
            let dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
            match dims.as_slice() {
                [] => "Input(shape = ())".to_string(),
                _ => format!("Input(shape = ({},))", dims.join(", ")),
            }
        })
    }

    fn model() -> impl Strategy<Value = String> {
        (
            mostly(&["", "/// docs\n"], &["#[derive(Debug)]", "#[", "#"]),
            mostly(&["", "pub"], &["pub(crate)", "fn"]),
            mostly(&["Net", "Other"], &["_", "r#type", "1"]),
            mostly(
                &["= Sequential("],
                &["= Functional(", "= Sequential", "Sequential(", "= ("],
            ),
            proptest::option::weighted(0.8, input()),
            prop::collection::vec(layer(), 0..5),
            mostly(&["])", ",])"], &["], 1)", ")", "] junk)"]),
        )
            .prop_map(|(attr, vis, name, head, input, layers, tail)| {
                let layers: Vec<String> = input.into_iter().chain(layers).collect();
                format!("{attr} {vis} {name} {head}[{} {tail}", layers.join(", "))
            })
    }

    /// Runs the macro on `source`; `None` when the text is not even a token stream.
    fn run(source: &str) -> Option<proc_macro2::TokenStream> {
        let tokens: proc_macro2::TokenStream = source.parse().ok()?;
        Some(expand_tokens(tokens))
    }

    fn assert_items(source: &str, output: proc_macro2::TokenStream) {
        if let Err(e) = syn::parse2::<syn::File>(output.clone()) {
            panic!("output for `{source}` is not Rust items ({e}):\n{output}");
        }
    }

    proptest! {
        // 2000 cases by default; `PROPTEST_CASES=100000` for a longer hunt.
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2000),
        ))]

        #[test]
        fn dsl_shaped_input_never_panics(
            models in prop::collection::vec(model(), 0..3),
            separator in select(&[";", ";;", ",", ""][..]),
        ) {
            let source = models.join(separator);
            if let Some(output) = run(&source) {
                assert_items(&source, output);
            }
        }

        #[test]
        fn token_soup_never_panics(head in soup(8), body in soup(24)) {
            let source = format!("{head} Net = Sequential([{body}]); {head}");
            if let Some(output) = run(&source) {
                assert_items(&source, output);
            }
        }
    }

    #[test]
    fn a_valid_model_expands_and_a_broken_one_gets_a_stand_in() {
        let ok = run("pub Net = Sequential([Input(shape = (4,)), Dense(2)]);").unwrap();
        assert!(!ok.to_string().contains("compile_error"), "{ok}");
        let bad = run("Bad = Sequential([Input(shape = (4,)), Dense]); Good = Sequential([Dense(1, input_dim = 2)])").unwrap();
        let text = bad.to_string();
        assert_eq!(text.matches("compile_error").count(), 1, "{text}");
        assert!(text.contains("struct Bad"), "{text}");
        assert!(text.contains("struct Good"), "{text}");
    }
}
