//! `cargo bench -p netrunner-bench` (or `cargo xtask bench`): the side-by-side table.
#![forbid(unsafe_code)]

fn main() {
    // cargo passes `--bench`; `--quick` selects the smoke mode.
    let quick = std::env::args().any(|a| a == "--quick");
    netrunner_bench::run(quick);
}
