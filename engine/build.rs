//! `arm_dsp`: the target has the DSP extension (ARMv7E-M: Cortex-M4, M7),
//! so the scalar int8 pass may use its SIMD multiply-adds (int8/ink.rs).
//! Stable Rust does not expose `target_feature = "dsp"`, hence the name.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(arm_dsp)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em-") {
        println!("cargo::rustc-cfg=arm_dsp");
    }
}
