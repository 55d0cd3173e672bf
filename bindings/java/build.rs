//! Link settings of libmicrovit_jni.so: an ELF `DT_SONAME`, as Android's
//! loader expects (`ffi/build.rs` does the same for libmicrovit.so, but a
//! dependency's cdylib arguments do not reach this crate's), and on Android
//! 16 KB page alignment, which Android 15+ devices may use.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    match std::env::var("CARGO_CFG_TARGET_OS").as_deref() {
        Ok("android") => {
            println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmicrovit_jni.so");
            println!("cargo:rustc-cdylib-link-arg=-Wl,-z,max-page-size=16384");
        }
        Ok("linux" | "freebsd" | "netbsd" | "openbsd") => {
            println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmicrovit_jni.so");
        }
        Ok("macos") => {
            println!("cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/libmicrovit_jni.dylib");
        }
        _ => {}
    }
}
