//! The `netrunner-shepherd` binary: see the library crate for what it does.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(netrunner_shepherd::run::main());
}
