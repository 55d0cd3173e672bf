//! aarch64: Advanced SIMD (NEON), part of the baseline of every aarch64
//! CPU, so its token is always there; the Armv8.2 dot product (`sdot`,
//! `udot`), detected at run time.

/// Proof that Advanced SIMD is available: always, on aarch64.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Neon(());

impl Neon {
    pub(crate) fn detect() -> Option<Neon> {
        Some(Neon(()))
    }
}

/// Proof that the CPU has the Armv8.2 dot product instructions (`sdot`,
/// `udot`), with Advanced SIMD.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dotprod(());

impl Dotprod {
    pub(crate) fn detect() -> Option<Dotprod> {
        // std's detection where there is std, else the same question to
        // the operating system (the C library).
        #[cfg(feature = "std")]
        let yes = std::arch::is_aarch64_feature_detected!("dotprod");
        #[cfg(all(feature = "hosted", not(feature = "std")))]
        let yes = os::dotprod();
        // Without `hosted` no kernel is built, and no extension is claimed.
        #[cfg(not(feature = "hosted"))]
        let yes = false;
        yes.then_some(Dotprod(()))
    }
}

/// `value`, which the optimiser cannot see through: an empty `asm!` that
/// may have changed it, so loads through it stay where they are written.
#[cfg(feature = "hosted")]
#[inline]
pub(crate) fn opaque<T>(value: &T) -> &T {
    let mut at: *const T = value;
    // SAFETY: the template is empty (no instruction): `at` keeps the
    // address of `value`, valid for the returned lifetime.
    unsafe {
        core::arch::asm!("/* {0} */", inout(reg) at, options(readonly, nostack, preserves_flags));
        &*at
    }
}

/// Run-time detection without std: user space cannot read the ID registers
/// on every system, so ask the kernel, as std does. Linux and Android:
/// `AT_HWCAP`'s ASIMDDP bit (with ASIMD and FP: the dot product is an
/// Advanced SIMD instruction); Apple: the `hw.optional.arm.FEAT_DotProd`
/// sysctl. Elsewhere: not claimed.
#[cfg(feature = "hosted")]
#[cfg_attr(feature = "std", allow(dead_code))] // std builds use std's (and test this against it)
pub(crate) mod os {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn dotprod() -> bool {
        // SAFETY: getauxval has no preconditions; an absent entry reads 0.
        let hwcap = unsafe { libc::getauxval(libc::AT_HWCAP) };
        let all = libc::HWCAP_FP | libc::HWCAP_ASIMD | libc::HWCAP_ASIMDDP;
        hwcap & all == all
    }

    #[cfg(target_vendor = "apple")]
    pub(crate) fn dotprod() -> bool {
        let mut value: u32 = 0;
        let mut size = core::mem::size_of::<u32>();
        // SAFETY: a NUL-terminated name; `value` and `size` are valid,
        // aligned and writable, and `size` is `value`'s size; no new value
        // is set (NULL, 0).
        let status = unsafe {
            libc::sysctlbyname(
                c"hw.optional.arm.FEAT_DotProd".as_ptr(),
                (&raw mut value).cast(),
                &raw mut size,
                core::ptr::null_mut(),
                0,
            )
        };
        status == 0 && value != 0
    }

    #[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
    pub(crate) fn dotprod() -> bool {
        false
    }

    #[cfg(all(test, feature = "std"))]
    #[test]
    fn same_answer_as_std() {
        assert_eq!(dotprod(), std::arch::is_aarch64_feature_detected!("dotprod"));
    }
}
