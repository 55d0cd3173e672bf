//! The opaque objects C holds pointers to, and the thread-local workspace
//! cache.

use alloc::boxed::Box;
use core::cell::RefCell;

use microvit_engine as engine;

use crate::status::{bail, Status};

const MODEL_TAG: u64 = u64::from_le_bytes(*b"mvit.mdl");
const WORKSPACE_TAG: u64 = u64::from_le_bytes(*b"mvit.wks");
const FREED_TAG: u64 = u64::from_le_bytes(*b"mvit.rip");

/// A loaded model: immutable, and safe to use from any number of threads at
/// once. Load with a microvit_model_load* function, free with
/// microvit_model_free().
// Opaque: a `*mut Model` points to a `ModelBox`. A marker type rather than
// the box itself, so cbindgen declares it without fields.
pub struct Model {
    _opaque: [u8; 0],
}

/// Inference scratch memory for models of one shape, used by one thread at a
/// time. Make with microvit_workspace_create(), free with
/// microvit_workspace_free().
// Opaque: a `*mut Workspace` points to a `WorkspaceBox`.
pub struct Workspace {
    _opaque: [u8; 0],
}

/// What a `microvit_model *` points to. `repr(C)` with the tag first, so
/// checking the tag of any microvit object reads bytes it has.
// align(8): the tag's u64 is 4-aligned on 32-bit x86 (Android x86).
#[repr(C, align(8))]
pub(crate) struct ModelBox {
    /// Catches a workspace (or other pointer) passed where a model belongs.
    tag: u64,
    /// `'static` stands for "until `microvit_model_free`": a borrowed model
    /// relies on the caller keeping its buffer alive that long.
    pub(crate) inner: engine::Model<'static>,
    /// The backend chosen when the model was loaded, for good.
    pub(crate) backend: crate::Backend,
}

/// What a `microvit_workspace *` points to.
#[repr(C, align(8))]
pub(crate) struct WorkspaceBox {
    tag: u64,
    /// What the workspace was made for.
    kind: Kind,
    pub(crate) inner: engine::Workspace,
}

/// Which models a workspace fits: those of the shape and encoding of the
/// model it was made from. Recorded here rather than asked of the engine's
/// workspace so that the rule does not depend on which of the two the
/// engine's scratch layout happens to vary with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kind {
    shape: engine::Shape,
    encoding: engine::Encoding,
}

impl Kind {
    pub(crate) fn of(model: &engine::Model<'_>) -> Kind {
        Kind { shape: model.shape(), encoding: model.encoding() }
    }
}

impl core::fmt::Display for Kind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}, {}", self.shape, self.encoding)
    }
}

const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<ModelBox>();
    const fn sendable<T: Send>() {}
    sendable::<WorkspaceBox>();
    // `tag_at` reads a u64 at offset 0 of whatever object it is given.
    assert!(core::mem::offset_of!(ModelBox, tag) == 0 && core::mem::offset_of!(WorkspaceBox, tag) == 0);
    assert!(core::mem::align_of::<ModelBox>() >= 8 && core::mem::align_of::<WorkspaceBox>() >= 8);
};

/// The C pointer `ptr`, checked to be a live object of the type whose tag
/// is `tag`, as a raw pointer: the caller makes the reference only after
/// this succeeded.
///
/// The tag is read through a raw pointer, 8 bytes at offset 0. A reference
/// to the whole object must not be made first: `ptr` may point to a
/// microvit object of the other type, and a reference to a `ModelBox` made
/// from a smaller `WorkspaceBox` (or the reverse) would claim bytes past the
/// end of its allocation, which is undefined behaviour even if never read.
/// Every microvit object is `repr(C)` with its u64 tag first (asserted
/// above), so the read itself is in bounds for any of them.
///
/// # Safety
/// `ptr` is NULL or points to a live microvit object (of any type).
unsafe fn tag_at<T>(ptr: *const T, tag: u64) -> Result<*const T, NotThat> {
    if ptr.is_null() {
        return Err(NotThat::Null);
    }
    if !(ptr as usize).is_multiple_of(core::mem::align_of::<T>()) {
        return Err(NotThat::Misaligned);
    }
    // SAFETY: non-NULL and aligned for T, so for u64 (align ≥ 8, asserted);
    // by the contract a live microvit object, which starts with its u64 tag.
    let found = unsafe { ptr.cast::<u64>().read() };
    if found != tag {
        return Err(NotThat::OtherTag);
    }
    Ok(ptr)
}

/// Why [`tag_at`] refused a pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NotThat {
    Null,
    Misaligned,
    /// A microvit object of another type, or a freed one.
    OtherTag,
}

/// Moves `model` to the heap for C, with the backend it runs on.
pub(crate) fn into_raw_model(model: engine::Model<'static>, backend: crate::Backend) -> *mut Model {
    Box::into_raw(Box::new(ModelBox { tag: MODEL_TAG, inner: model, backend })).cast()
}

/// A new workspace for `model`, on the heap for C.
pub(crate) fn new_raw_workspace(model: &engine::Model<'_>) -> *mut Workspace {
    let ws = WorkspaceBox { tag: WORKSPACE_TAG, kind: Kind::of(model), inner: model.workspace() };
    Box::into_raw(Box::new(ws)).cast()
}

/// The model behind a C pointer.
///
/// # Safety
/// `ptr` is NULL or was returned by a `microvit_model_load*` function and not
/// freed yet. (A pointer to another microvit object is detected by its tag.)
pub(crate) unsafe fn model<'a>(name: &'static str, ptr: *const Model) -> Result<&'a ModelBox, Status> {
    // SAFETY: forwarded from the caller (any live microvit object).
    match unsafe { tag_at(ptr.cast::<ModelBox>(), MODEL_TAG) } {
        // SAFETY: checked to be a live ModelBox; shared, as models are.
        Ok(model) => Ok(unsafe { &*model }),
        Err(NotThat::Null) => bail!(Status::NullArgument, "{name} is NULL"),
        Err(NotThat::Misaligned) => {
            bail!(Status::InvalidArgument, "{name} is not a microvit_model pointer (misaligned)")
        }
        Err(NotThat::OtherTag) => bail!(Status::InvalidArgument, "{name} does not point to a live microvit_model"),
    }
}

/// The workspace behind a C pointer (not NULL: the caller handles NULL).
///
/// # Safety
/// `ptr` was returned by `microvit_workspace_create`, is not freed yet, and
/// no other thread is using it.
pub(crate) unsafe fn workspace<'a>(ptr: *mut Workspace) -> Result<&'a mut WorkspaceBox, Status> {
    // SAFETY: forwarded from the caller (any live microvit object).
    match unsafe { tag_at(ptr.cast_const().cast::<WorkspaceBox>(), WORKSPACE_TAG) } {
        // SAFETY: checked to be a live WorkspaceBox, used by this thread
        // only by the caller's contract; `ptr` is the caller's `*mut`.
        Ok(_) => Ok(unsafe { &mut *ptr.cast::<WorkspaceBox>() }),
        Err(NotThat::Null) => bail!(Status::NullArgument, "workspace is NULL"),
        Err(NotThat::Misaligned) => {
            bail!(Status::InvalidArgument, "workspace is not a microvit_workspace pointer (misaligned)")
        }
        Err(NotThat::OtherTag) => {
            bail!(Status::InvalidArgument, "workspace does not point to a live microvit_workspace")
        }
    }
}

/// Frees a model made by [`into_raw_model`]. Anything else that carries a
/// microvit tag (a workspace passed by mistake) is left alone: freeing it
/// with a model's layout would corrupt the heap.
///
/// # Safety
/// `ptr` is NULL or a live microvit object that no other thread is using.
pub(crate) unsafe fn free_model(ptr: *mut Model) {
    // SAFETY: forwarded from the caller. The tag is checked before the box
    // is made, for the reason given at `tag_at`.
    if unsafe { tag_at(ptr.cast_const().cast::<ModelBox>(), MODEL_TAG) }.is_err() {
        return;
    }
    // SAFETY: a live model from `into_raw_model` (checked by its tag).
    let mut model = unsafe { Box::from_raw(ptr.cast::<ModelBox>()) };
    // A volatile store survives the deallocation that follows, so a
    // use-after-free is more likely to be reported than to run.
    // SAFETY: `model.tag` is a valid, aligned, owned place.
    unsafe { core::ptr::write_volatile(&mut model.tag, FREED_TAG) };
    drop(model);
}

/// Frees a workspace made by [`new_raw_workspace`]; like [`free_model`],
/// leaves an object of another type alone.
///
/// # Safety
/// `ptr` is NULL or a live microvit object that no other thread is using.
pub(crate) unsafe fn free_workspace(ptr: *mut Workspace) {
    // SAFETY: as in `free_model`.
    if unsafe { tag_at(ptr.cast_const().cast::<WorkspaceBox>(), WORKSPACE_TAG) }.is_err() {
        return;
    }
    // SAFETY: a live workspace from `new_raw_workspace` (checked by its tag).
    let mut ws = unsafe { Box::from_raw(ptr.cast::<WorkspaceBox>()) };
    // SAFETY: as in `free_model`.
    unsafe { core::ptr::write_volatile(&mut ws.tag, FREED_TAG) };
    drop(ws);
}

type Cache = RefCell<Option<(Kind, engine::Workspace)>>;

#[cfg(feature = "std")]
thread_local! {
    /// The workspace used when a classify call passes NULL: made on first
    /// use in the thread, replaced only when a model of another shape (or
    /// encoding) comes.
    static CACHED: Cache = const { RefCell::new(None) };
}

/// The same, without std: a pthread key's value.
#[cfg(not(feature = "std"))]
static CACHED: crate::os::PerThread<Cache> = crate::os::PerThread::new(|| RefCell::new(None));

/// The caller's workspace, checked to fit `model`.
///
/// # Safety
/// As for [`workspace`].
pub(crate) unsafe fn checked_workspace<'a>(
    model: &engine::Model<'_>,
    ws: *mut Workspace,
) -> Result<&'a mut WorkspaceBox, Status> {
    // SAFETY: forwarded from the caller.
    let ws = unsafe { workspace(ws) }?;
    let kind = Kind::of(model);
    if ws.kind != kind {
        bail!(
            Status::WorkspaceMismatch,
            "workspace was made for a model of another shape or encoding ({}), this model is {}",
            ws.kind,
            kind
        );
    }
    Ok(ws)
}

/// Runs `f` with the caller's workspace, or with this thread's cached one if
/// `ws` is NULL.
///
/// # Safety
/// As for [`workspace`] when `ws` is not NULL.
pub(crate) unsafe fn with_workspace<R>(
    model: &engine::Model<'_>,
    ws: *mut Workspace,
    f: impl FnOnce(&mut engine::Workspace) -> Result<R, Status>,
) -> Result<R, Status> {
    if !ws.is_null() {
        // SAFETY: forwarded from the caller.
        let ws = unsafe { checked_workspace(model, ws) }?;
        return f(&mut ws.inner);
    }
    let kind = Kind::of(model);
    let mut f = Some(f);
    let cached = CACHED.try_with(|cell| {
        // Busy only if `f` re-entered the library, which it does not.
        let mut slot = cell.try_borrow_mut().ok()?;
        if slot.as_ref().map(|(k, _)| *k) != Some(kind) {
            *slot = Some((kind, model.workspace()));
        }
        let f = f.take()?;
        slot.as_mut().map(|(_, ws)| f(ws))
    });
    match (cached, f) {
        (Ok(Some(result)), _) => result,
        // The thread-local is gone (a call from a thread-exit destructor):
        // use a workspace for this call only.
        (_, Some(f)) => f(&mut model.workspace()),
        (_, None) => unreachable!("the closure ran but returned no result"),
    }
}

/// Drops this thread's cached workspace, if any.
pub(crate) fn release_cache() {
    let release = |cell: &Cache| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            *slot = None;
        }
    };
    #[cfg(feature = "std")]
    let _ = CACHED.try_with(release);
    #[cfg(not(feature = "std"))]
    let _ = CACHED.with_existing(release);
}

/// Whether this thread holds a cached workspace, and for which shape (tests).
pub fn cached_workspace_shape() -> Option<engine::Shape> {
    CACHED.with(|cell| cell.borrow().as_ref().map(|(kind, _)| kind.shape))
}
