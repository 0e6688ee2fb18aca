//! Writes the `model_macro` target's seeds and dictionary from the repository's models:
//! the body of every `kiln::model! { ... }` in `tests/*.rs`, `tests/ui/*.rs`,
//! `tests/keras_import/**` and `examples/**` becomes seed files, one per model declaration
//! (duplicates dropped), and
//! every distinct identifier, literal and punctuation token of those bodies an AFL
//! dictionary entry (the DSL's own vocabulary: layer classes, keywords, activations).
//!
//! `cargo run --release --bin model_macro_seeds [SEED_DIR [DICT]]` (defaults
//! `seeds/model_macro`, `model_macro.dict`), from `fuzz/`.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

fn main() {
    let mut args = std::env::args().skip(1);
    let seed_dir = PathBuf::from(args.next().unwrap_or_else(|| "seeds/model_macro".into()));
    let dict = PathBuf::from(args.next().unwrap_or_else(|| "model_macro.dict".into()));
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
    std::fs::create_dir_all(&seed_dir).expect("create the seed folder");
    let mut bodies = BTreeSet::new();
    let mut words = BTreeSet::new();
    let mut written = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a source file");
        let Ok(tokens) = TokenStream::from_str(&text) else {
            continue;
        };
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
        let mut n = 0;
        model_bodies(tokens, &mut |body: TokenStream| {
            vocabulary(&body, &mut words);
            // One seed per declaration (a body's models are checked one by one anyway;
            // AFL works best on small seeds).
            let mut declarations = vec![TokenStream::new()];
            for tree in body {
                match &tree {
                    TokenTree::Punct(p) if p.as_char() == ';' => {
                        declarations.push(TokenStream::new())
                    }
                    _ => declarations.last_mut().expect("one").extend([tree]),
                }
            }
            for declaration in declarations.into_iter().filter(|d| !d.is_empty()) {
                let text = declaration.to_string();
                if bodies.insert(text.clone()) {
                    let name = format!("{stem}-{n}.rs");
                    std::fs::write(seed_dir.join(name), text).expect("write a seed");
                    n += 1;
                    written += 1;
                }
            }
        });
    }
    let mut lines =
        String::from("# DSL tokens of every model in tests/ and examples/ (model_macro_seeds)\n");
    for word in &words {
        let escaped: String = word
            .bytes()
            .map(|b| match b {
                b'"' | b'\\' => format!("\\{}", b as char),
                0x20..=0x7e => (b as char).to_string(),
                _ => format!("\\x{b:02x}"),
            })
            .collect();
        lines.push_str(&format!("\"{escaped}\"\n"));
    }
    std::fs::write(&dict, lines).expect("write the dictionary");
    println!(
        "{written} seeds from {} files in {}, {} dictionary entries in {}",
        files.len(),
        seed_dir.display(),
        words.len(),
        dict.display()
    );
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

/// Calls `found` with each group that follows `model !` in `tokens`.
fn model_bodies(tokens: TokenStream, found: &mut impl FnMut(TokenStream)) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, tree) in trees.iter().enumerate() {
        if let TokenTree::Group(group) = tree {
            let after_bang = i >= 2
                && matches!(&trees[i - 1], TokenTree::Punct(p) if p.as_char() == '!')
                && matches!(&trees[i - 2], TokenTree::Ident(m) if m == "model");
            if after_bang {
                found(group.stream());
            } else {
                model_bodies(group.stream(), found);
            }
        }
    }
}

/// Every token of `tokens` as text (short literals only), and each group's delimiters.
fn vocabulary(tokens: &TokenStream, words: &mut BTreeSet<String>) {
    for tree in tokens.clone() {
        match tree {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::None => ("", ""),
                };
                words.insert(open.to_string());
                words.insert(close.to_string());
                vocabulary(&g.stream(), words);
            }
            // Doc comments and other prose are not DSL vocabulary.
            TokenTree::Literal(l) if l.to_string().len() > 40 || l.to_string().contains(' ') => {}
            other => {
                words.insert(other.to_string());
            }
        }
    }
    words.remove("");
}
