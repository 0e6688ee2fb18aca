//! Runs every file of the given folders (a corpus, AFL's `crashes/` or `hangs/`) through
//! `kiln_fuzz::check` and prints what each load did, one line a file, then per outcome
//! kind the count and the smallest file.
//!
//! `cargo run --release --bin weight_file_triage -- DIR... [--copy-smallest OUT]`:
//! with `--copy-smallest`, the smallest file of each outcome kind is copied to OUT as
//! `KIND.safetensors` (how the regression inputs in `tests/data/fuzz/weight_file/` were
//! picked). A file that makes `check` panic is reported as `PANIC` and the run goes on.

use kiln_fuzz::{check, outcome_kind};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn main() {
    let mut dirs = Vec::new();
    let mut copy_to = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--copy-smallest" {
            copy_to = Some(PathBuf::from(args.next().expect("--copy-smallest OUT")));
        } else {
            dirs.push(PathBuf::from(arg));
        }
    }
    std::panic::set_hook(Box::new(|info| eprintln!("  panic: {info}")));
    let mut smallest: BTreeMap<String, (usize, PathBuf)> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for dir in &dirs {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("a readable folder")
            .map(|e| e.expect("a folder entry").path())
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path).expect("a readable file");
            let kind = match std::panic::catch_unwind(|| check(&bytes)) {
                Ok(result) => outcome_kind(&result),
                Err(_) => "PANIC".to_string(),
            };
            println!("{:>6} bytes  {kind:<40} {}", bytes.len(), path.display());
            *counts.entry(kind.clone()).or_default() += 1;
            let entry = smallest.entry(kind).or_insert((usize::MAX, PathBuf::new()));
            if bytes.len() < entry.0 {
                *entry = (bytes.len(), path.clone());
            }
        }
    }
    println!("\n{:<40} {:>6}  smallest", "outcome", "files");
    for (kind, (len, path)) in &smallest {
        println!(
            "{kind:<40} {:>6}  {len} bytes, {}",
            counts[kind],
            path.display()
        );
        if let Some(out) = &copy_to {
            std::fs::create_dir_all(out).expect("create the output folder");
            std::fs::copy(path, out.join(format!("{kind}.safetensors"))).expect("copy");
        }
    }
}
