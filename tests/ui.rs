//! Compile-fail tests of the `model!` DSL: every file in `tests/ui/` must fail to compile
//! with exactly the messages in its `.stderr` snapshot. One `#[test]` runs the whole folder
//! so trybuild builds its scratch crate once.
//!
//! Regenerate snapshots with `TRYBUILD=overwrite cargo test --test ui`, then review the diff.

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
