//! AFL++ target: arbitrary bytes into `load_weights_from_bytes` (see `kiln_fuzz::check`).
//!
//! Built with `cargo afl build --release`, run with `cargo afl fuzz` (see README.md).
//! A panic anywhere, kiln's or the check's own assertions, aborts: AFL records a crash.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = kiln_fuzz::check(data);
    });
}
