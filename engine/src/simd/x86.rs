//! x86-64: the capability tokens (AVX2 with FMA, F16C and BMI1, which every
//! AVX2 CPU people use also has; AVX-512 with VNNI) and the helpers the
//! kernels share.

use core::arch::x86_64::{_mm256_cvtepu8_epi16, _mm256_setzero_si256, _mm256_storeu_si256, _mm_loadu_si128};

use crate::shape::Shape;

use super::round_up;

/// Run-time detection of every listed feature: std's where there is std,
/// else [`cpu::has`] (the C library), which makes the same tests; the test
/// `cpu::tests::same_answers_as_std` holds them to it.
#[cfg(feature = "std")]
macro_rules! detected {
    ($($feature:tt),+) => { $(std::arch::is_x86_feature_detected!($feature))&&+ };
}
#[cfg(all(feature = "hosted", not(feature = "std")))]
macro_rules! detected {
    ($($feature:tt),+) => { $(cpu::has(cpu::by_name!($feature)))&&+ };
}
/// Without `hosted` no kernel is built, and no extension is claimed.
#[cfg(not(feature = "hosted"))]
macro_rules! detected {
    ($($feature:tt),+) => {
        false
    };
}

/// Run-time detection without std, for the features the kernels enable:
/// CPUID says what the CPU has, XCR0 (XGETBV) whether the operating system
/// saves the YMM and ZMM registers, which an AVX or AVX-512 instruction
/// needs as much as the CPU does. The bits are Intel's SDM (vol. 2A,
/// CPUID; vol. 1, 13.3 for XCR0), the rules std's `is_x86_feature_detected!`
/// applies: AVX-family features only with the YMM state enabled, AVX-512
/// ones only with the ZMM states too.
#[cfg(feature = "hosted")]
#[cfg_attr(feature = "std", allow(dead_code))] // std builds use std's (and test this against it)
pub(crate) mod cpu {
    use core::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv, CpuidResult};
    use core::sync::atomic::{AtomicU32, Ordering};

    /// A feature the kernels enable: its bit in the detected set.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u32)]
    pub(crate) enum Feature {
        Avx2 = 1 << 0,
        Fma = 1 << 1,
        F16c = 1 << 2,
        AvxVnni = 1 << 3,
        Avx512F = 1 << 4,
        Avx512Bw = 1 << 5,
        Avx512Cd = 1 << 6,
        Avx512Dq = 1 << 7,
        Avx512Vl = 1 << 8,
        Avx512Vnni = 1 << 9,
        Avx512Vbmi = 1 << 10,
        Bmi1 = 1 << 11,
    }

    /// A feature by std's name (as `#[target_feature]` spells it).
    #[cfg_attr(feature = "std", allow(unused_macros))]
    macro_rules! by_name {
        ("avx2") => {
            $crate::simd::x86::cpu::Feature::Avx2
        };
        ("fma") => {
            $crate::simd::x86::cpu::Feature::Fma
        };
        ("f16c") => {
            $crate::simd::x86::cpu::Feature::F16c
        };
        ("avxvnni") => {
            $crate::simd::x86::cpu::Feature::AvxVnni
        };
        ("avx512f") => {
            $crate::simd::x86::cpu::Feature::Avx512F
        };
        ("avx512bw") => {
            $crate::simd::x86::cpu::Feature::Avx512Bw
        };
        ("avx512cd") => {
            $crate::simd::x86::cpu::Feature::Avx512Cd
        };
        ("avx512dq") => {
            $crate::simd::x86::cpu::Feature::Avx512Dq
        };
        ("avx512vl") => {
            $crate::simd::x86::cpu::Feature::Avx512Vl
        };
        ("avx512vnni") => {
            $crate::simd::x86::cpu::Feature::Avx512Vnni
        };
        ("avx512vbmi") => {
            $crate::simd::x86::cpu::Feature::Avx512Vbmi
        };
        ("bmi1") => {
            $crate::simd::x86::cpu::Feature::Bmi1
        };
    }
    #[cfg_attr(feature = "std", allow(unused_imports))]
    pub(crate) use by_name;

    /// Set once the CPU has been probed (so the cache is never 0 after).
    const PROBED: u32 = 1 << 31;
    static DETECTED: AtomicU32 = AtomicU32::new(0);

    /// Whether this CPU (and its operating system) can run `feature`.
    pub(crate) fn has(feature: Feature) -> bool {
        let mut set = DETECTED.load(Ordering::Relaxed);
        if set == 0 {
            // Racing threads compute the same set; any of them may store it.
            set = probe();
            DETECTED.store(set, Ordering::Relaxed);
        }
        set & feature as u32 != 0
    }

    fn bit(register: u32, n: u32) -> bool {
        register >> n & 1 == 1
    }

    /// Asks the CPU: the set of [`Feature`]s, with [`PROBED`].
    pub(crate) fn probe() -> u32 {
        let zero = CpuidResult { eax: 0, ebx: 0, ecx: 0, edx: 0 };
        // CPUID exists on every x86-64 CPU (the intrinsics are safe since
        // Rust 1.90, `unsafe` before). Leaf 0 gives the highest basic leaf,
        // and no leaf above it is asked for; sub-leaf 1 of leaf 7 only when
        // sub-leaf 0's EAX says it exists.
        // SAFETY: as above.
        #[allow(unused_unsafe)]
        let max_leaf = unsafe { __cpuid(0) }.eax;
        // SAFETY: as above.
        #[allow(unused_unsafe)]
        let leaf1 = if max_leaf >= 1 { unsafe { __cpuid(1) } } else { zero };
        let (leaf7, leaf7_1) = if max_leaf >= 7 {
            // SAFETY: as above.
            #[allow(unused_unsafe)]
            let leaf7 = unsafe { __cpuid_count(7, 0) };
            // SAFETY: as above.
            #[allow(unused_unsafe)]
            let sub1 = if leaf7.eax >= 1 { unsafe { __cpuid_count(7, 1) } } else { zero };
            (leaf7, sub1)
        } else {
            (zero, zero)
        };
        // XSAVE (ECX 26) and OSXSAVE (ECX 27): the OS turned XSAVE on, so
        // XGETBV runs and XCR0 says which register states it manages.
        let xcr0 = if bit(leaf1.ecx, 26) && bit(leaf1.ecx, 27) {
            // SAFETY: with CPUID.1:ECX.OSXSAVE set, CR4.OSXSAVE is set and
            // XGETBV of XCR0 is defined (it faults only when it is clear).
            unsafe { _xgetbv(0) }
        } else {
            0
        };
        let ymm = xcr0 & 0b110 == 0b110; // SSE and AVX state
        let zmm = ymm && xcr0 & 0b1110_0000 == 0b1110_0000; // opmask, ZMM0-15 upper halves, ZMM16-31
        let mut set = PROBED;
        let mut enable = |yes: bool, f: Feature| {
            if yes {
                set |= f as u32;
            }
        };
        enable(bit(leaf7.ebx, 3), Feature::Bmi1); // general-purpose registers: no OS state
        if ymm {
            enable(bit(leaf7.ebx, 5), Feature::Avx2);
            enable(bit(leaf1.ecx, 12), Feature::Fma);
            enable(bit(leaf1.ecx, 29), Feature::F16c);
            enable(bit(leaf7_1.eax, 4), Feature::AvxVnni);
        }
        if zmm {
            enable(bit(leaf7.ebx, 16), Feature::Avx512F);
            enable(bit(leaf7.ebx, 17), Feature::Avx512Dq);
            enable(bit(leaf7.ebx, 28), Feature::Avx512Cd);
            enable(bit(leaf7.ebx, 30), Feature::Avx512Bw);
            enable(bit(leaf7.ebx, 31), Feature::Avx512Vl);
            enable(bit(leaf7.ecx, 1), Feature::Avx512Vbmi);
            enable(bit(leaf7.ecx, 11), Feature::Avx512Vnni);
        }
        set
    }

    #[cfg(all(test, feature = "std"))]
    mod tests {
        use super::*;

        /// The C library (no std) detects what std does, feature by feature,
        /// on whatever CPU the tests run (valgrind's and qemu's included).
        /// Not under miri: CPUID and XGETBV are inline assembly to it, which
        /// it cannot run (it stops the whole test binary).
        #[test]
        #[cfg_attr(miri, ignore)]
        fn same_answers_as_std() {
            macro_rules! compare {
                ($($name:tt),+) => {$(
                    assert_eq!(
                        probe() & by_name!($name) as u32 != 0,
                        std::arch::is_x86_feature_detected!($name),
                        "{}",
                        $name
                    );
                )+};
            }
            compare!(
                "avx2",
                "fma",
                "f16c",
                "avxvnni",
                "avx512f",
                "avx512bw",
                "avx512cd",
                "avx512dq",
                "avx512vl",
                "avx512vnni",
                "avx512vbmi",
                "bmi1"
            );
            require!(has(Feature::Avx2) == std::arch::is_x86_feature_detected!("avx2"));
        }
    }
}

/// Proof that this CPU has AVX2, FMA, F16C and BMI1 (every AVX2 CPU has
/// the last: Intel since Haswell, AMD since Excavator; a VM that hides it
/// gets the scalar kernels, f16's too): only [`Avx2::detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2(());

impl Avx2 {
    pub(crate) fn detect() -> Option<Avx2> {
        let yes = detected!("avx2", "fma", "f16c", "bmi1");
        yes.then_some(Avx2(()))
    }
}

/// Proof that this CPU has AVX-512 F, BW, CD, DQ, VL, VNNI and VBMI (Ice
/// Lake and later Intel server and client parts, AMD Zen 4 and later):
/// only [`Avx512Vnni::detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512Vnni(());

impl Avx512Vnni {
    pub(crate) fn detect() -> Option<Avx512Vnni> {
        let yes = detected!("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx512vnni", "avx512vbmi");
        yes.then_some(Avx512Vnni(()))
    }
}

/// Proof that this CPU has AVX-VNNI (the VEX `vpdpbusd` of Intel client
/// CPUs since Alder Lake, and AMD Zen 5) with AVX2, FMA and BMI1: only
/// [`AvxVnni::detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AvxVnni(());

impl AvxVnni {
    pub(crate) fn detect() -> Option<AvxVnni> {
        let yes = detected!("avx2", "fma", "bmi1", "avxvnni");
        yes.then_some(AvxVnni(()))
    }
}

/// Channels per pass of the AVX2 patch embeddings: four registers of eight
/// i32 or f32.
pub(crate) const GROUP: usize = 32;

/// Tokens padded to a multiple of 8 (one register of eight lanes), channels
/// to a multiple of [`GROUP`], as the AVX2 kernels lay them out.
pub(crate) fn patches_pad(shape: &Shape) -> usize {
    round_up(shape.patches(), 8)
}

pub(crate) fn dim_pad(shape: &Shape) -> usize {
    round_up(shape.dim as usize, GROUP)
}

/// The set bits of a mask, lowest first.
pub(crate) struct Bits(pub(crate) u64);

impl Iterator for Bits {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(bit)
    }
}

/// Zero-extends the image to i16, with zeros past the end, so a kernel can
/// read a whole patch row (up to 16 values) from anywhere in the image.
#[inline(never)]
#[target_feature(enable = "avx2")]
pub(crate) fn widen_image(image: &[u8], out: &mut [i16]) {
    require!(out.len() >= image.len() + 16);
    let chunks = image.len() / 16;
    for i in 0..chunks {
        // SAFETY: i·16 + 16 ≤ image.len() ≤ out.len(); unaligned loads and stores.
        unsafe {
            let bytes = _mm_loadu_si128(image.as_ptr().add(i * 16).cast());
            let wide = _mm256_cvtepu8_epi16(bytes);
            _mm256_storeu_si256(out.as_mut_ptr().add(i * 16).cast(), wide);
        }
    }
    for i in chunks * 16..image.len() {
        out[i] = image[i] as i16;
    }
    // The 16 values past the image: one store, not a call to memset.
    // SAFETY: out.len() ≥ image.len() + 16 (asserted); an unaligned store.
    unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(image.len()).cast(), _mm256_setzero_si256()) };
}
