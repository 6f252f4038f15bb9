//! The `sextant` binary. The server and client subcommands arrive with the node issue.
fn main() {
    println!("sextant {}", env!("CARGO_PKG_VERSION"));
}
