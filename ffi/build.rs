//! Link settings for the shared library only (the staticlib and rlib are
//! unaffected): an ELF `DT_SONAME`, and an `@rpath` install name on Apple
//! platforms. The SONAME is `libmicrovit.so`, as Android's loader expects,
//! unless `MICROVIT_SONAME` names another: `ffi/install.sh` sets the
//! versioned `libmicrovit.so.0` that installed Unix libraries carry.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MICROVIT_SONAME");
    match std::env::var("CARGO_CFG_TARGET_OS").as_deref() {
        Ok("linux" | "android" | "freebsd" | "netbsd" | "openbsd") => {
            let soname = std::env::var("MICROVIT_SONAME").unwrap_or_else(|_| "libmicrovit.so".into());
            // rustc-link-arg, not rustc-cdylib-link-arg: cargo passes the
            // latter on to the cdylibs of dependent packages too (cargo
            // #9562), where this SONAME would override their own
            // (bindings/java's libmicrovit_jni.so). This one applies to this
            // package's targets only; on its test executables the SONAME
            // is inert.
            println!("cargo:rustc-link-arg=-Wl,-soname,{soname}");
        }
        Ok("macos" | "ios") => {
            println!("cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/libmicrovit.dylib");
        }
        _ => {}
    }
}
