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
mod pipeline;
mod regularizers;
mod scratch;
mod shape;
mod suggest;

use pipeline::expand_tokens;

/// Declares Keras-style sequential models; see the `kiln` crate for the reference.
#[proc_macro]
pub fn model(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    expand_tokens(input.into()).into()
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

#[cfg(test)]
mod robustness {
    //! Issue 13's "the macro never panics", as properties run by `cargo test -p kiln-macros`:
    //! - every `kiln::model! { ... }` body in `tests/*.rs`, `tests/ui/*.rs`,
    //!   `tests/keras_import/**` and `examples/**` (found at test time by scanning those
    //!   files, so new tests join the corpus by themselves), mutated: tokens swapped,
    //!   deleted, duplicated; numbers replaced by 0, -1, `u64::MAX`, 1e39, 1e-46 and huge
    //!   tuples; strings by unknown names, empty strings and Unicode; nodes wrapped in deep
    //!   nesting;
    //! - random token streams (any text that lexes);
    //! - nesting 10,000 deep, of every kind of group and of prefix operators.
    //!
    //! Each input runs on a thread of its own with a bounded stack ([`STACK`]; rustc runs a
    //! proc macro on its main thread, 8 MiB, part of it already used), under `catch_unwind`
    //! and a clock: a panic, a stack overflow (which aborts the test binary), more than
    //! [`TIME_LIMIT`], an output that is not Rust items, or a `compile_error!` whose span is
    //! not in the input (allowed only for a syntax error at its end, which rustc shows on
    //! the macro call) is a failure. `PROPTEST_CASES=N` runs N cases per property.

    use super::*;
    use proc_macro2::{Delimiter, Group, Spacing, TokenStream, TokenTree};
    use proptest::prelude::*;
    use std::path::{Path, PathBuf};
    use std::str::FromStr;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// The stack each input gets: half of rustc's main thread.
    const STACK: usize = 4 << 20;
    /// The most one input may take. Inputs take milliseconds; the limit is there to catch
    /// a hang or a blow-up, with room for a debug build on a machine loaded 10 deep (where
    /// a 1,000-item tuple took 0.15 s and a 10,000-item one 1.5 s).
    const TIME_LIMIT: Duration = Duration::from_secs(5);

    /// What went wrong with one input.
    enum Failure {
        Panic(String),
        Slow(Duration),
        NotItems(String),
        Unspanned(String),
    }

    impl std::fmt::Debug for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Failure::Panic(m) => write!(f, "panic: {m}"),
                Failure::Slow(t) => write!(f, "took {t:?}"),
                Failure::NotItems(m) => write!(f, "output not Rust items: {m}"),
                Failure::Unspanned(m) => write!(f, "error without a span: {m}"),
            }
        }
    }

    /// Expands `source` (if it lexes) on a fresh bounded-stack thread and checks the output.
    /// Returns whether the input lexed, and the output had a `compile_error!`.
    fn check_source(source: String) -> Result<Option<bool>, Failure> {
        check_with(move || TokenStream::from_str(&source).ok())
    }

    /// As [`check_source`], with the input built on the worker thread by `make` (tokens are
    /// not `Send`).
    fn check_with(
        make: impl FnOnce() -> Option<TokenStream> + Send + 'static,
    ) -> Result<Option<bool>, Failure> {
        // The verdict comes back through a channel, so that an input that never finishes
        // fails the test (its thread is left behind) instead of hanging it.
        let (send, receive) = std::sync::mpsc::channel();
        let start = Instant::now();
        std::thread::Builder::new()
            .stack_size(STACK)
            .spawn(move || {
                let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    check_on_this_thread(make)
                }))
                .unwrap_or_else(|p| Err(Failure::Panic(panic_text(&p))));
                let _ = send.send(verdict);
            })
            .expect("spawn a checker thread");
        receive
            .recv_timeout(TIME_LIMIT * 30)
            .unwrap_or_else(|_| Err(Failure::Slow(start.elapsed())))
    }

    fn check_on_this_thread(
        make: impl FnOnce() -> Option<TokenStream>,
    ) -> Result<Option<bool>, Failure> {
        let Some(tokens) = make() else {
            return Ok(None);
        };
        // Shown on failure only (printing recurses, as syn does, into groups).
        let input = tokens.clone();
        let shown = move || short(&input.to_string());
        // A syntax error at the end of the input is at the macro call (as rustc's
        // own "unexpected end of macro invocation"); every other error points into
        // the input.
        let parses = parse::too_deep(&tokens).is_none()
            && syn::parse2::<ast::Invocation>(tokens.clone()).is_ok();
        let start = Instant::now();
        let output = std::panic::catch_unwind(move || expand_tokens(tokens))
            .map_err(|p| Failure::Panic(format!("{}: {}", panic_text(&p), shown())))?;
        let took = start.elapsed();
        if took > TIME_LIMIT {
            return Err(Failure::Slow(took));
        }
        if let Err(e) = syn::parse2::<syn::File>(output.clone()) {
            return Err(Failure::NotItems(format!("{e}: {}", shown())));
        }
        let mut errors = false;
        for (span, message) in compile_errors(&output) {
            errors = true;
            if span.byte_range().is_empty() && parses {
                return Err(Failure::Unspanned(format!("{message}: {}", shown())));
            }
        }
        Ok(Some(errors))
    }

    fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    }

    fn short(s: &str) -> String {
        if s.len() <= 400 {
            return s.to_string();
        }
        let cut = (0..=400)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}... ({} bytes)", &s[..cut], s.len())
    }

    /// Each top-level `compile_error!("...")` of `output`: the span of its `compile_error`
    /// name and its message.
    fn compile_errors(output: &TokenStream) -> Vec<(proc_macro2::Span, String)> {
        let trees: Vec<TokenTree> = output.clone().into_iter().collect();
        let mut found = Vec::new();
        for (i, tree) in trees.iter().enumerate() {
            let TokenTree::Ident(name) = tree else {
                continue;
            };
            if name != "compile_error" {
                continue;
            }
            let message = match trees.get(i + 2) {
                Some(TokenTree::Group(g)) => syn::parse2::<syn::LitStr>(g.stream())
                    .map(|s| s.value())
                    .unwrap_or_default(),
                _ => String::new(),
            };
            found.push((name.span(), message));
        }
        found
    }

    // ---- the corpus: every model in the repository's tests and examples ----

    /// The bodies of every `model! { ... }` in the scanned files, as text, with the file
    /// each came from.
    fn corpus() -> &'static [(String, String)] {
        static CORPUS: OnceLock<Vec<(String, String)>> = OnceLock::new();
        CORPUS.get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let mut files = Vec::new();
            for (dir, recursive) in [
                ("tests", false),
                ("tests/ui", false),
                ("tests/keras_import", true),
                ("examples", true),
            ] {
                rust_files(&root.join(dir), recursive, &mut files);
            }
            files.sort();
            let mut bodies = Vec::new();
            for file in files {
                let Ok(text) = std::fs::read_to_string(&file) else {
                    continue;
                };
                let Ok(tokens) = TokenStream::from_str(&text) else {
                    continue;
                };
                let name = file
                    .strip_prefix(&root)
                    .unwrap_or(&file)
                    .display()
                    .to_string();
                model_bodies(tokens, &mut |body| bodies.push((name.clone(), body)));
            }
            bodies
        })
    }

    fn rust_files(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && recursive {
                rust_files(&path, true, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Calls `found` with the text of each declaration in each group that follows `model !`
    /// in `tokens`.
    fn model_bodies(tokens: TokenStream, found: &mut impl FnMut(String)) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, tree) in trees.iter().enumerate() {
            if let TokenTree::Group(group) = tree {
                let after_bang = i >= 2
                    && matches!(&trees[i - 1], TokenTree::Punct(p) if p.as_char() == '!')
                    && matches!(&trees[i - 2], TokenTree::Ident(m) if m == "model");
                if after_bang {
                    // One declaration per entry: they are checked independently anyway,
                    // and the time limit is per model.
                    let mut declaration = TokenStream::new();
                    for tree in group.stream() {
                        if matches!(&tree, TokenTree::Punct(p) if p.as_char() == ';') {
                            found(std::mem::take(&mut declaration).to_string());
                        } else {
                            declaration.extend([tree]);
                        }
                    }
                    if !declaration.is_empty() {
                        found(declaration.to_string());
                    }
                } else {
                    model_bodies(group.stream(), found);
                }
            }
        }
    }

    #[test]
    fn the_corpus_covers_the_tests_and_examples() {
        let corpus = corpus();
        let from = |prefix: &str| corpus.iter().filter(|(f, _)| f.starts_with(prefix)).count();
        assert!(corpus.len() >= 500, "only {} models found", corpus.len());
        assert!(from("tests/ui/") >= 50, "{}", from("tests/ui/"));
        assert!(from("tests/keras_import/") >= 3);
        assert!(from("examples/") >= 5);
    }

    #[test]
    fn every_corpus_model_as_written_expands_without_panicking() {
        for (file, body) in corpus() {
            if let Err(failure) = check_source(body.clone()) {
                panic!("{file}: {failure:?}");
            }
        }
    }

    /// Regression: `#[weights = "/dev/zero"]` read forever (until the compiler ran out of
    /// memory) and a FIFO blocked it; both are errors on the path now.
    #[test]
    fn weights_from_a_device_or_a_fifo_are_an_error_not_a_hang() {
        let fifo = std::env::temp_dir().join(format!("kiln-fifo-{}", std::process::id()));
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        let mut paths = vec!["/dev/zero".to_string()];
        if made.is_ok_and(|s| s.success()) {
            paths.push(fifo.display().to_string());
        }
        for path in paths {
            let source =
                format!("#[weights = {path:?}] Net = Sequential([Input(shape = (2,)), Dense(1)]);");
            match check_source(source.clone()) {
                Ok(Some(true)) => {}
                other => panic!("{source}: {other:?}"),
            }
            let output = expand_tokens(source.parse().expect("tokens")).to_string();
            assert!(output.contains("not a regular file"), "{output}");
        }
        let _ = std::fs::remove_file(&fifo);
    }

    /// The target's limit (one allocation at most `isize::MAX` bytes) is asserted in the
    /// generated code, where the target's pointer width is known.
    #[test]
    fn the_expansion_asserts_that_the_model_fits_the_target() {
        let source = "Net = Sequential([Input(shape = (4,)), Dense(3), Dense(50)]);";
        let output = expand_tokens(source.parse().expect("tokens")).to_string();
        // Weights: 4 * 3 + 3 + 3 * 50 + 50 = 215 values; largest tensor: 50 values.
        for bytes in ["860u64", "200u64"] {
            let assertion =
                format!("{bytes} as u128 <= :: core :: primitive :: isize :: MAX as u128");
            assert!(output.contains(&assertion), "{assertion} in {output}");
        }
    }

    /// Inputs the fuzzers found crashing, each now an error (see BENCHMARKS.md,
    /// "Reliability").
    #[test]
    fn inputs_that_once_panicked_are_errors() {
        for source in [
            // `units * timesteps` overflowed in the LSTM inside `Bidirectional`, whose
            // inner layer is built before any size check (AFL, `model_macro`).
            "Net = Sequential([Input(shape = (6, 3)), Masking(), Bidirectional(LSTM(6975222333333333333, return_sequences = True)), Dense(2)])",
            "Net = Sequential([Input(shape = (6, 3)), LSTM(6975222333333333333, return_sequences = True), Dense(2)])",
            "Net = Sequential([Input(shape = (6, 3)), GRU(18446744073709551615)])",
            "Net = Sequential([Input(shape = (6, 3)), SimpleRNN(4294967296, return_sequences = True)])",
        ] {
            match check_source(source.to_string()) {
                Ok(Some(true)) => {}
                other => panic!("{source}: {other:?}"),
            }
        }
    }

    // ---- mutations ----

    /// A token tree whose groups can be edited in place.
    #[derive(Clone)]
    enum Node {
        Leaf(TokenTree),
        Group(Group, Vec<Node>),
    }

    fn nodes(tokens: TokenStream) -> Vec<Node> {
        tokens
            .into_iter()
            .map(|tree| match tree {
                TokenTree::Group(g) => {
                    let children = nodes(g.stream());
                    Node::Group(g, children)
                }
                leaf => Node::Leaf(leaf),
            })
            .collect()
    }

    fn tokens(nodes: Vec<Node>) -> TokenStream {
        nodes
            .into_iter()
            .map(|node| match node {
                Node::Leaf(leaf) => leaf,
                Node::Group(g, children) => {
                    let mut new = Group::new(g.delimiter(), tokens(children));
                    new.set_span(g.span());
                    TokenTree::Group(new)
                }
            })
            .collect()
    }

    /// Numbers a mutation puts in place of a number literal.
    const NUMBERS: &[&str] = &[
        "0",
        "-1",
        "18446744073709551615",
        "-18446744073709551615",
        "340282366920938463463374607431768211456",
        "1e39",
        "1e-46",
        "-0.0",
        "1e308",
        "0.1",
        "4294967296",
        "16777217",
        "(1000000, 1000000, 1000000, 1000000)",
        "(18446744073709551615, 18446744073709551615)",
        "(65536, 65536, 65536)",
        "(0,)",
        "()",
        "[]",
    ];

    /// Strings a mutation puts in place of a string literal.
    const STRINGS: &[&str] = &[
        "\"\"",
        "\"nosuch\"",
        "\"RELU\"",
        "\"rel u\"",
        "\"ünïcødé\"",
        "\"😀\"",
        "\"\\u{202e}relu\"",
        "\"relu\\0\"",
        "\"channels_middle\"",
        "r#\"relu\"#",
        "b\"relu\"",
        "'r'",
        "\"weights.safetensors\"",
        "\"/dev/null\"",
    ];

    /// Names a mutation puts in place of an identifier.
    const NAMES: &[&str] = &[
        "Dense",
        "Conv2D",
        "Input",
        "LSTM",
        "Sequential",
        "Nosuch",
        "units",
        "shape",
        "activation",
        "None",
        "True",
        "r#type",
        "ñame",
        "_",
        "self",
        "pub",
    ];

    /// One edit of a token tree; `at` picks the node (modulo their number).
    #[derive(Debug, Clone)]
    enum Edit {
        Swap(usize),
        Delete(usize),
        Duplicate(usize),
        Number(usize, usize),
        Text(usize, usize),
        Name(usize, usize),
        /// Wraps a node in this many groups of one delimiter (0 parens, 1 brackets,
        /// 2 braces).
        Nest(usize, usize, u8),
        /// Replaces a number by a tuple of this many copies of it.
        LongTuple(usize, usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let at = any::<usize>();
        prop_oneof![
            3 => at.prop_map(Edit::Swap),
            3 => at.prop_map(Edit::Delete),
            3 => at.prop_map(Edit::Duplicate),
            4 => (at, 0..NUMBERS.len()).prop_map(|(a, k)| Edit::Number(a, k)),
            3 => (at, 0..STRINGS.len()).prop_map(|(a, k)| Edit::Text(a, k)),
            3 => (at, 0..NAMES.len()).prop_map(|(a, k)| Edit::Name(a, k)),
            1 => (at, prop_oneof![1usize..4, Just(64), Just(300)], 0u8..3)
                .prop_map(|(a, d, k)| Edit::Nest(a, d, k)),
            // Linear in the length (1,250 / 2,500 / 5,000 / 10,000 items of 39-digit numbers:
            // 0.17 / 0.36 / 0.73 / 1.5 s in debug on the loaded machine, one error each), so
            // 1,000 keeps the 1 s limit meaningful.
            1 => (at, prop_oneof![Just(5usize), Just(100), Just(1000)])
                .prop_map(|(a, n)| Edit::LongTuple(a, n)),
        ]
    }

    fn is_number(node: &Node) -> bool {
        matches!(node, Node::Leaf(TokenTree::Literal(l))
            if l.to_string().starts_with(|c: char| c.is_ascii_digit()))
    }

    fn is_string(node: &Node) -> bool {
        matches!(node, Node::Leaf(TokenTree::Literal(l)) if l.to_string().contains('"'))
    }

    fn is_ident(node: &Node) -> bool {
        matches!(node, Node::Leaf(TokenTree::Ident(_)))
    }

    /// The number of nodes (at any depth) that `matches`.
    fn count(nodes: &[Node], matches: &dyn Fn(&Node) -> bool) -> usize {
        nodes
            .iter()
            .map(|n| {
                usize::from(matches(n))
                    + match n {
                        Node::Group(_, children) => count(children, matches),
                        Node::Leaf(_) => 0,
                    }
            })
            .sum()
    }

    /// Calls `apply` with the list holding the `at`-th node that `matches` (pre-order) and
    /// its index there.
    fn visit(
        nodes: &mut Vec<Node>,
        at: &mut usize,
        matches: &dyn Fn(&Node) -> bool,
        apply: &mut dyn FnMut(&mut Vec<Node>, usize),
    ) -> bool {
        for i in 0..nodes.len() {
            if matches(&nodes[i]) {
                if *at == 0 {
                    apply(nodes, i);
                    return true;
                }
                *at -= 1;
            }
            if let Node::Group(_, children) = &mut nodes[i] {
                if visit(children, at, matches, apply) {
                    return true;
                }
            }
        }
        false
    }

    fn parsed(text: &str) -> Vec<Node> {
        nodes(TokenStream::from_str(text).unwrap_or_default())
    }

    /// Which nodes an edit may pick, and what it does to the picked one (in its list).
    type Matcher = dyn Fn(&Node) -> bool;
    type Change = Box<dyn FnMut(&mut Vec<Node>, usize)>;

    fn apply(nodes: &mut Vec<Node>, edit: &Edit) {
        let any = |_: &Node| true;
        let (at, matches, mut change): (usize, &Matcher, Change) = match *edit {
            Edit::Swap(at) => (
                at,
                &any,
                Box::new(|list: &mut Vec<Node>, i: usize| {
                    let j = (i + 1) % list.len();
                    list.swap(i, j);
                }),
            ),
            Edit::Delete(at) => (
                at,
                &any,
                Box::new(|list: &mut Vec<Node>, i: usize| {
                    list.remove(i);
                }),
            ),
            Edit::Duplicate(at) => (
                at,
                &any,
                Box::new(|list: &mut Vec<Node>, i: usize| {
                    let copy = list[i].clone();
                    list.insert(i, copy);
                }),
            ),
            Edit::Number(at, k) => (
                at,
                &is_number,
                Box::new(move |list: &mut Vec<Node>, i: usize| {
                    list.splice(i..=i, parsed(NUMBERS[k]));
                }),
            ),
            Edit::Text(at, k) => (
                at,
                &is_string,
                Box::new(move |list: &mut Vec<Node>, i: usize| {
                    list.splice(i..=i, parsed(STRINGS[k]));
                }),
            ),
            Edit::Name(at, k) => (
                at,
                &is_ident,
                Box::new(move |list: &mut Vec<Node>, i: usize| {
                    list.splice(i..=i, parsed(NAMES[k]));
                }),
            ),
            Edit::Nest(at, depth, kind) => (
                at,
                &any,
                Box::new(move |list: &mut Vec<Node>, i: usize| {
                    let delimiter = [Delimiter::Parenthesis, Delimiter::Bracket, Delimiter::Brace]
                        [usize::from(kind) % 3];
                    let mut node = list[i].clone();
                    let span = tokens(vec![node.clone()])
                        .into_iter()
                        .next()
                        .map(|t| t.span());
                    for _ in 0..depth {
                        let inner = vec![node];
                        let mut group = Group::new(delimiter, tokens(inner.clone()));
                        group.set_span(span.unwrap_or_else(proc_macro2::Span::call_site));
                        node = Node::Group(group, inner);
                    }
                    list[i] = node;
                }),
            ),
            Edit::LongTuple(at, n) => (
                at,
                &is_number,
                Box::new(move |list: &mut Vec<Node>, i: usize| {
                    let mut items = Vec::new();
                    for k in 0..n {
                        if k > 0 {
                            items.push(Node::Leaf(TokenTree::Punct(proc_macro2::Punct::new(
                                ',',
                                Spacing::Alone,
                            ))));
                        }
                        items.push(list[i].clone());
                    }
                    let mut group = Group::new(Delimiter::Parenthesis, tokens(items.clone()));
                    if let Some(first) = tokens(vec![list[i].clone()]).into_iter().next() {
                        group.set_span(first.span());
                    }
                    list[i] = Node::Group(group, items);
                }),
            ),
        };
        let total = count(nodes, matches);
        if total > 0 {
            let mut at = at % total;
            visit(nodes, &mut at, matches, &mut *change);
        }
    }

    fn mutated(body: &str, edits: &[Edit]) -> Option<TokenStream> {
        let mut tree = nodes(TokenStream::from_str(body).ok()?);
        for edit in edits {
            apply(&mut tree, edit);
        }
        Some(tokens(tree))
    }

    #[test]
    fn mutations_do_what_they_say() {
        let body = "Net = Sequential([Input(shape = (4,)), Dense(2, activation = \"relu\")]);";
        let run = |edits: &[Edit]| mutated(body, edits).unwrap().to_string();
        assert!(run(&[Edit::Number(1, 2)]).contains("Dense (18446744073709551615"));
        assert!(run(&[Edit::Text(0, 4)]).contains("\"ünïcødé\""));
        assert!(run(&[Edit::Nest(0, 3, 1)]).starts_with("[[[Net"));
        assert!(run(&[Edit::LongTuple(0, 3)]).contains("(4 , 4 , 4) ,"));
        assert!(!run(&[Edit::Delete(0)]).contains("Net"));
        assert!(run(&[Edit::Duplicate(0)]).starts_with("Net Net"));
        assert!(run(&[Edit::Swap(0)]).starts_with("= Net"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2000),
        ))]

        #[test]
        fn mutated_corpus_models_never_panic(
            which in any::<usize>(),
            edits in prop::collection::vec(edit(), 1..5),
        ) {
            let corpus = corpus();
            let (file, body) = &corpus[which % corpus.len()];
            let body = body.clone();
            let shown = edits.clone();
            if let Err(failure) = check_with(move || mutated(&body, &edits)) {
                panic!("{file} with {shown:?}: {failure:?}");
            }
        }

        #[test]
        fn random_text_never_panics(source in "[ -~\\n]{0,200}|\\PC{0,80}") {
            if let Err(failure) = check_source(source) {
                panic!("{failure:?}");
            }
        }
    }

    // ---- deep nesting ----

    /// `depth` nested copies of `open` `inner` `close`.
    fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
        format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
    }

    /// Every way to nest `depth` deep: groups, prefix and postfix operators, binary chains,
    /// closures, casts, assignments, qualified paths; each in a layer argument, an
    /// activation, the layer list, an attribute and alone.
    fn deep_inputs(depth: usize) -> Vec<String> {
        let values = [
            nested("(", "1", ")", depth),
            nested("[", "1", "]", depth),
            nested("{", "1", "}", depth),
            nested("(", "1", ",)", depth),
            nested("f(", "1", ")", depth),
            nested("-", "1", "", depth),
            nested("!", "x", "", depth),
            nested("*", "x", "", depth),
            nested("&", "x", "", depth),
            nested("|x| ", "x", "", depth),
            nested("", "1", " + 1", depth),
            nested("", "x", ".f()", depth),
            nested("", "x", "[0]", depth),
            nested("", "x", "?", depth),
            nested("", "x", " as T", depth),
            nested("a = ", "1", "", depth),
            nested("<", "T", ">", depth),
        ];
        values
            .iter()
            .flat_map(|value| {
                [
                    format!("Net = Sequential([Input(shape = (4,)), Dense({value})]);"),
                    format!(
                        "Net = Sequential([Input(shape = (4,)), Dense(2, activation = {value})]);"
                    ),
                    format!("Net = Sequential([{value}]);"),
                    format!("#[doc = {value}] Net = Sequential([Dense(1, input_dim = 2)]);"),
                    value.clone(),
                ]
            })
            .collect()
    }

    #[test]
    fn ten_thousand_deep_nesting_is_an_error_not_a_stack_overflow() {
        for source in deep_inputs(10_000) {
            match check_source(source.clone()) {
                Ok(Some(true)) => {}
                other => panic!("{}: {other:?}", short(&source)),
            }
        }
    }

    /// Up to the limit, the input reaches syn and kiln: neither may overflow the bounded
    /// stack there (the costliest level, a qualified path `<<..T>..>`, is about 27 KB).
    #[test]
    fn nesting_up_to_the_limit_fits_the_stack() {
        for depth in [
            parse::MAX_NESTING / 2 - 1,
            parse::MAX_NESTING / 2,
            parse::MAX_NESTING - 2,
            parse::MAX_NESTING,
        ] {
            for source in deep_inputs(depth) {
                if let Err(failure) = check_source(source.clone()) {
                    panic!("depth {depth}: {}: {failure:?}", short(&source));
                }
            }
        }
    }
}
