//! Links the `yunmin` binary as a position-dependent executable: a PIE of this size carries
//! ~470k relative relocations that the loader applies at every start (copy-on-write faults on
//! every page holding pointers, ~60 ms), which dominates short runs.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
