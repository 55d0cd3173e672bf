//! Link settings for the shared library only (the staticlib and rlib are
//! unaffected): an ELF `DT_SONAME`, which Android's loader expects and which
//! makes `-lmicrovit` record `libmicrovit.so` as the dependency, and an
//! `@rpath` install name on Apple platforms.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    match std::env::var("CARGO_CFG_TARGET_OS").as_deref() {
        Ok("linux" | "android" | "freebsd" | "netbsd" | "openbsd") => {
            println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmicrovit.so");
        }
        Ok("macos" | "ios") => {
            println!("cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/libmicrovit.dylib");
        }
        _ => {}
    }
}
