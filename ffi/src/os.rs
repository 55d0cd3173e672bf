//! What the C library takes from the platform's C library instead of the
//! Rust standard library, when it is built without std (`ffi/install.sh`,
//! `ffi/mobile.sh`; docs/C_API.md, "Sizes"): per-thread values over
//! pthread keys, an environment variable, reading a file, and, in
//! [`runtime`], the global allocator over malloc and the panic handler.
//!
//! Built on Unix targets whether or not std is on, so that the tests (which
//! need std) run this code too; the std build itself uses std's.

#![cfg_attr(feature = "std", allow(dead_code))]

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ffi::{c_int, c_void, CStr};
use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// A value per thread, made on first use (`init`), dropped when its thread
/// exits: std's `thread_local!` over a pthread key. As with std's, a thread
/// that runs library code from another key's destructor after this one's
/// ran gets [`AccessError`] rather than a new value.
pub(crate) struct PerThread<T: 'static> {
    /// 0 until the key is made, then the key + 1.
    key: AtomicUsize,
    init: fn() -> T,
    _values: PhantomData<fn() -> T>,
}

/// The value of a thread whose slot was destroyed (its thread is exiting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AccessError;

/// What a key's value points to: the key too, so the destructor can mark the
/// slot destroyed.
struct Slot<T> {
    key: libc::pthread_key_t,
    value: T,
}

/// The marker a destroyed slot holds: never an address of a `Slot` (they
/// are aligned to at least 4 bytes).
fn destroyed() -> *mut c_void {
    ptr::without_provenance_mut(1)
}

/// The key's destructor, run by the exiting thread with its value (non-NULL;
/// pthread has already set the thread's value to NULL).
unsafe extern "C" fn destroy<T>(value: *mut c_void) {
    if value == destroyed() {
        return;
    }
    let slot = value.cast::<Slot<T>>();
    // SAFETY: a non-marker value of this key is a `Box<Slot<T>>` made by
    // `try_with` in this thread and freed only here, once (the slot is
    // marked first, so neither `try_with` nor this runs on it again).
    unsafe {
        libc::pthread_setspecific((*slot).key, destroyed());
        drop(Box::from_raw(slot));
    }
}

impl<T: 'static> PerThread<T> {
    pub(crate) const fn new(init: fn() -> T) -> PerThread<T> {
        PerThread { key: AtomicUsize::new(0), init, _values: PhantomData }
    }

    /// The pthread key, made by the first caller (racing callers keep the
    /// first key published and delete theirs).
    fn key(&self) -> Option<libc::pthread_key_t> {
        let published = self.key.load(Ordering::Acquire);
        if published != 0 {
            return Some((published - 1) as libc::pthread_key_t);
        }
        let mut key = MaybeUninit::<libc::pthread_key_t>::uninit();
        // SAFETY: a valid out-pointer, and a destructor for the values this
        // key holds (`Slot<T>`, or the marker).
        if unsafe { libc::pthread_key_create(key.as_mut_ptr(), Some(destroy::<T>)) } != 0 {
            return None;
        }
        // SAFETY: pthread_key_create succeeded, so it wrote the key.
        let key = unsafe { key.assume_init() };
        let Some(encoded) = (key as usize).checked_add(1) else {
            // SAFETY: our own key, unused.
            unsafe { libc::pthread_key_delete(key) };
            return None;
        };
        match self.key.compare_exchange(0, encoded, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Some(key),
            Err(winner) => {
                // SAFETY: our own key, never published, so unused.
                unsafe { libc::pthread_key_delete(key) };
                Some((winner - 1) as libc::pthread_key_t)
            }
        }
    }

    /// This thread's value, if it has one and it is not destroyed.
    fn current(&self, create: bool) -> Result<Option<*const T>, AccessError> {
        let key = self.key().ok_or(AccessError)?;
        // SAFETY: a key made by pthread_key_create and never deleted.
        let value = unsafe { libc::pthread_getspecific(key) };
        if value == destroyed() {
            return Err(AccessError);
        }
        if !value.is_null() {
            // SAFETY: a non-NULL, non-marker value is this thread's live
            // `Box<Slot<T>>` (see `destroy`).
            return Ok(Some(unsafe { &raw const (*value.cast::<Slot<T>>()).value }));
        }
        if !create {
            return Ok(None);
        }
        let slot = Box::into_raw(Box::new(Slot { key, value: (self.init)() }));
        // SAFETY: the key is valid; the value is ours to hand over.
        if unsafe { libc::pthread_setspecific(key, slot.cast()) } != 0 {
            // SAFETY: not handed over, still ours.
            drop(unsafe { Box::from_raw(slot) });
            return Err(AccessError);
        }
        // SAFETY: just made, live until this thread's destructor runs.
        Ok(Some(unsafe { &raw const (*slot).value }))
    }

    /// Runs `f` with this thread's value, made now if the thread has none.
    pub(crate) fn try_with<R>(&'static self, f: impl FnOnce(&T) -> R) -> Result<R, AccessError> {
        let value = self.current(true)?.ok_or(AccessError)?;
        // SAFETY: this thread's value, which only this thread ever reaches
        // (through its own key slot) and which is freed only by this
        // thread's exit, so it outlives `f`; shared, as `f` gets it.
        Ok(f(unsafe { &*value }))
    }

    /// Runs `f` with this thread's value if it has one (without making one).
    pub(crate) fn with_existing<R>(&'static self, f: impl FnOnce(&T) -> R) -> Option<R> {
        let value = self.current(false).ok()??;
        // SAFETY: as in `try_with`.
        Some(f(unsafe { &*value }))
    }

    /// As `thread_local!`'s `with` (tests).
    pub(crate) fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        self.try_with(f).expect("the thread's value is destroyed")
    }
}

/// A value computed once, by whichever thread gets there first: racing
/// threads each compute it and the first to publish wins (the others drop
/// theirs). For values whose computation has no side effects.
pub(crate) struct RaceOnce<T> {
    value: AtomicPtr<T>,
}

impl<T> RaceOnce<T> {
    pub(crate) const fn new() -> RaceOnce<T> {
        RaceOnce { value: AtomicPtr::new(ptr::null_mut()) }
    }

    pub(crate) fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
        let mut value = self.value.load(Ordering::Acquire);
        if value.is_null() {
            let mine = Box::into_raw(Box::new(init()));
            value = match self.value.compare_exchange(ptr::null_mut(), mine, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => mine,
                Err(theirs) => {
                    // SAFETY: ours, never published.
                    drop(unsafe { Box::from_raw(mine) });
                    theirs
                }
            };
        }
        // SAFETY: a published value is a leaked box, never freed or written
        // again: valid for as long as `self`.
        unsafe { &*value }
    }
}

// SAFETY: a `RaceOnce<T>` hands out `&T` to any thread (so T: Sync) and
// drops values made by other threads (so T: Send); the pointer itself is
// only ever read and written atomically.
unsafe impl<T: Send + Sync> Sync for RaceOnce<T> {}

/// An environment variable, as UTF-8 (`None` when unset or not UTF-8, as
/// `std::env::var` reads them).
pub(crate) fn env_var(name: &CStr) -> Option<&'static str> {
    // SAFETY: a NUL-terminated name. getenv's result is NULL or a
    // NUL-terminated string that stays valid until the environment is
    // changed, which the library never does; like std, it trusts the
    // application not to change it while a model loads.
    let value = unsafe { libc::getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: non-NULL, NUL-terminated (above).
    unsafe { CStr::from_ptr(value) }.to_str().ok()
}

/// Bytes (a file name) shown as UTF-8, with U+FFFD for what is not, as
/// `Path::display` does.
pub(crate) struct Lossy<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{FFFD}")?;
            }
        }
        Ok(())
    }
}

/// An `errno` value, shown as std shows an `io::Error`: "No such file or
/// directory (os error 2)".
pub(crate) struct OsError(pub(crate) c_int);

impl OsError {
    /// The calling thread's `errno`.
    pub(crate) fn last() -> OsError {
        #[cfg(any(target_os = "linux", target_os = "emscripten", target_os = "hurd"))]
        // SAFETY: returns this thread's errno location; always valid.
        let errno = unsafe { *libc::__errno_location() };
        #[cfg(any(target_os = "android", target_os = "netbsd", target_os = "openbsd"))]
        // SAFETY: as above.
        let errno = unsafe { *libc::__errno() };
        #[cfg(any(target_vendor = "apple", target_os = "freebsd", target_os = "dragonfly"))]
        // SAFETY: as above.
        let errno = unsafe { *libc::__error() };
        OsError(errno)
    }
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 128];
        // SAFETY: a writable buffer of its length. The XSI strerror_r
        // (libc binds it on every Unix) NUL-terminates what it writes.
        let ok = unsafe { libc::strerror_r(self.0, buf.as_mut_ptr().cast(), buf.len()) } == 0;
        let text = if ok { CStr::from_bytes_until_nul(&buf).ok().and_then(|s| s.to_str().ok()) } else { None };
        write!(f, "{} (os error {})", text.unwrap_or("unknown error"), self.0)
    }
}

/// Why [`read_file`] failed.
pub(crate) enum ReadError {
    Os(OsError),
    /// Not a regular file: what it is.
    NotAFile(&'static str),
    /// Larger than the limit: its size.
    TooLarge(u64),
    /// Grew past the limit while read.
    Grew,
}

/// An open file descriptor, closed on drop.
struct Fd(c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: our own open descriptor, closed once.
        unsafe { libc::close(self.0) };
    }
}

/// What a mode says a file is, unless it is a regular file.
// `mode_t` is u16 on some targets (32-bit Android), u32 on others, and
// `st_mode` is not always a `mode_t`: compared as u32.
#[allow(clippy::useless_conversion)]
fn not_a_file(mode: u32) -> Option<&'static str> {
    let kind = mode & u32::from(libc::S_IFMT);
    if kind == u32::from(libc::S_IFREG) {
        None
    } else if kind == u32::from(libc::S_IFDIR) {
        Some("a directory")
    } else {
        Some("not a regular file (a FIFO, socket or device)")
    }
}

/// Reads a whole regular file of at most `limit` bytes. Its kind and size
/// are checked from `stat` before it is opened (a FIFO with no writer would
/// block the open; a 10 GiB file is refused unread), again on the open file
/// (opened non-blocking, in case it was swapped for a FIFO in between), and
/// reading stops past `limit` if it grows meanwhile.
pub(crate) fn read_file(path: &CStr, limit: u64) -> Result<Vec<u8>, ReadError> {
    #[allow(clippy::useless_conversion)] // see `not_a_file`
    let check = |st: &libc::stat| match not_a_file(u32::from(st.st_mode)) {
        Some(what) => Err(ReadError::NotAFile(what)),
        None if st.st_size as u64 > limit => Err(ReadError::TooLarge(st.st_size as u64)),
        None => Ok(st.st_size as u64),
    };
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a NUL-terminated path and a writable `stat`.
    if unsafe { libc::stat(path.as_ptr(), st.as_mut_ptr()) } != 0 {
        return Err(ReadError::Os(OsError::last()));
    }
    // SAFETY: stat succeeded, so it filled `st`.
    check(unsafe { st.assume_init_ref() })?;
    // SAFETY: a NUL-terminated path; the flags need no mode argument.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK) };
    if fd < 0 {
        return Err(ReadError::Os(OsError::last()));
    }
    let fd = Fd(fd);
    // SAFETY: an open descriptor and a writable `stat`.
    if unsafe { libc::fstat(fd.0, st.as_mut_ptr()) } != 0 {
        return Err(ReadError::Os(OsError::last()));
    }
    // SAFETY: fstat succeeded, so it filled `st`.
    let size = check(unsafe { st.assume_init_ref() })?;
    // One byte more than the size, so that the end is seen in one read.
    let mut blob = Vec::<u8>::with_capacity(size as usize + 1);
    loop {
        if blob.len() as u64 > limit {
            return Err(ReadError::Grew);
        }
        if blob.len() == blob.capacity() {
            blob.reserve(blob.len().max(4096));
        }
        let room = (blob.capacity() - blob.len()).min((limit + 1 - blob.len() as u64) as usize);
        // SAFETY: `room` bytes of the vector's spare capacity, writable.
        let n = unsafe { libc::read(fd.0, blob.as_mut_ptr().add(blob.len()).cast(), room) };
        match n {
            0 => return Ok(blob),
            n if n > 0 => {
                // SAFETY: read initialised these `n <= room` bytes.
                unsafe { blob.set_len(blob.len() + n as usize) };
            }
            _ => {
                let e = OsError::last();
                if e.0 != libc::EINTR {
                    return Err(ReadError::Os(e));
                }
            }
        }
    }
}

/// The global allocator and the panic handler of the C library built
/// without std.
#[cfg(not(feature = "std"))]
mod runtime {
    use core::alloc::{GlobalAlloc, Layout};
    use core::fmt::Write as _;
    use core::ptr;

    /// malloc's alignment guarantee on the platforms the library is built
    /// for (what std's allocator assumes too): 16 bytes on 64-bit targets,
    /// 8 on 32-bit ones.
    const MIN_ALIGN: usize = if cfg!(target_pointer_width = "64") { 16 } else { 8 };

    /// Rust's heap over the C library's malloc, calloc, realloc and free (so
    /// an app's malloc replacement or leak checker sees microvit's memory
    /// too); larger alignments through posix_memalign.
    struct Malloc;

    /// Whether malloc's own alignment is enough for `layout` (an object
    /// smaller than the alignment may get less on some allocators).
    fn plain(align: usize, size: usize) -> bool {
        align <= MIN_ALIGN && align <= size
    }

    fn aligned(layout: Layout) -> *mut u8 {
        let mut out = ptr::null_mut();
        // posix_memalign wants a power of two multiple of sizeof(void *).
        let align = layout.align().max(size_of::<usize>());
        // SAFETY: a valid out-pointer and such an alignment.
        match unsafe { libc::posix_memalign(&mut out, align, layout.size()) } {
            0 => out.cast(),
            _ => ptr::null_mut(),
        }
    }

    // SAFETY: every block comes from malloc, calloc, realloc or
    // posix_memalign, aligned as `layout` asks (`plain`, or posix_memalign
    // with that alignment), of at least `layout.size()` bytes, and goes back
    // through free; NULL reports failure.
    unsafe impl GlobalAlloc for Malloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if plain(layout.align(), layout.size()) {
                // SAFETY: malloc has no preconditions.
                unsafe { libc::malloc(layout.size()) }.cast()
            } else {
                aligned(layout)
            }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if plain(layout.align(), layout.size()) {
                // SAFETY: calloc has no preconditions.
                unsafe { libc::calloc(1, layout.size()) }.cast()
            } else {
                let p = aligned(layout);
                if !p.is_null() {
                    // SAFETY: a fresh block of `layout.size()` bytes.
                    unsafe { p.write_bytes(0, layout.size()) };
                }
                p
            }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
            // SAFETY: a live block from this allocator (the caller's
            // contract), all of which free takes.
            unsafe { libc::free(ptr.cast()) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if plain(layout.align(), new_size) {
                // SAFETY: a live block from malloc or posix_memalign (the
                // caller's contract), which realloc takes; malloc's alignment
                // is enough for the new size (`plain`).
                unsafe { libc::realloc(ptr.cast(), new_size) }.cast()
            } else {
                // SAFETY: `layout.align()` with `new_size` is a valid layout
                // (the caller's contract).
                let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                let new = aligned(new_layout);
                if !new.is_null() {
                    // SAFETY: both blocks are live, distinct, and hold at
                    // least the smaller size; the old one is freed once.
                    unsafe {
                        ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        libc::free(ptr.cast());
                    }
                }
                new
            }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Malloc = Malloc;

    /// Standard error, written with write(2), for the panic message.
    struct Stderr;

    impl core::fmt::Write for Stderr {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let mut bytes = s.as_bytes();
            while !bytes.is_empty() {
                // SAFETY: a readable buffer of its length.
                let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
                if n <= 0 {
                    return Err(core::fmt::Error);
                }
                bytes = &bytes[n as usize..];
            }
            Ok(())
        }
    }

    /// A panic is a bug in microvit (every input-dependent failure returns
    /// a status): this build cannot unwind, so it says where on standard
    /// error and aborts the process (docs/C_API.md, "Status codes").
    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let _ = writeln!(Stderr, "microvit: internal error (please report it), aborting: {info}");
        // SAFETY: abort has no preconditions.
        unsafe { libc::abort() }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::ffi::CString;

    static COUNTER: PerThread<Cell<u32>> = PerThread::new(|| Cell::new(7));

    #[test]
    fn per_thread_values_are_per_thread() {
        assert_eq!(COUNTER.with_existing(|c| c.get()), None);
        COUNTER.with(|c| c.set(c.get() + 1));
        assert_eq!(COUNTER.with_existing(|c| c.get()), Some(8));
        std::thread::spawn(|| {
            assert_eq!(COUNTER.with_existing(|c| c.get()), None);
            assert_eq!(COUNTER.try_with(|c| c.get()), Ok(7));
        })
        .join()
        .unwrap();
        assert_eq!(COUNTER.with(|c| c.get()), 8);
    }

    #[test]
    fn race_once_keeps_the_first_value() {
        static ONCE: RaceOnce<u32> = RaceOnce::new();
        assert_eq!(*ONCE.get_or_init(|| 1), 1);
        assert_eq!(*ONCE.get_or_init(|| 2), 1);
    }

    #[test]
    fn lossy_shows_invalid_bytes_as_replacement_characters() {
        assert_eq!(Lossy(b"a\xffb\xc3\xa9").to_string(), "a\u{FFFD}b\u{e9}");
    }

    /// The C library's file reading: what std's gives, for every kind of
    /// file the ABI tests try (they run std's, as the Rust library does).
    #[cfg_attr(miri, ignore)] // stat of /dev and FIFOs
    #[test]
    fn read_file_refuses_what_it_must() {
        let read = |p: &str| read_file(&CString::new(p).unwrap(), 1 << 20);
        let missing = read("/nonexistent/model.mvit").err().unwrap();
        assert!(
            matches!(&missing, ReadError::Os(e) if e.to_string() == "No such file or directory (os error 2)"),
            "{}",
            match missing {
                ReadError::Os(e) => e.to_string(),
                _ => "another error".into(),
            }
        );
        assert!(matches!(read("/"), Err(ReadError::NotAFile("a directory"))));
        for device in ["/dev/null", "/dev/zero"] {
            assert!(matches!(read(device), Err(ReadError::NotAFile("not a regular file (a FIFO, socket or device)"))));
        }
        let fifo = std::env::temp_dir().join(format!("microvit-os-fifo-{}", std::process::id()));
        let _ = std::fs::remove_file(&fifo);
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert!(matches!(read(fifo.to_str().unwrap()), Err(ReadError::NotAFile(_))));
        std::fs::remove_file(&fifo).unwrap();

        let file = std::env::temp_dir().join(format!("microvit-os-file-{}", std::process::id()));
        let bytes: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        std::fs::write(&file, &bytes).unwrap();
        let path = CString::new(file.to_str().unwrap()).unwrap();
        assert_eq!(read_file(&path, 1 << 20).ok(), Some(bytes.clone()));
        assert!(matches!(read_file(&path, 9_999), Err(ReadError::TooLarge(10_000))));
        assert_eq!(read_file(&path, 10_000).ok(), Some(bytes));
        std::fs::write(&file, b"").unwrap();
        assert_eq!(read_file(&path, 10).ok(), Some(Vec::new()));
        std::fs::remove_file(&file).unwrap();
    }
}
