//! Passes the target triple the host is built for to `mtp --version` (cargo gives it to build scripts
//! only, as `TARGET`).

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=MTP_BUILD_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
