//! The `microvit_workspace` object: scratch memory for one thread's
//! inferences, and the thread's cached workspace used when none is given.

use crate::handles::{self, Model, Workspace};
use crate::status::{guard, guard_value, Status};
use crate::{reset_out, set_out};

/// Makes a workspace: the scratch memory of inferences with models of this
/// model's shape and encoding (a few KiB for the seed model), allocated once
/// here so that classify calls given it never allocate.
///
/// A workspace is used by one thread at a time (make one per thread); it
/// fits every model of the same shape and encoding, and may outlive the model
/// it was made from. Free it with microvit_workspace_free().
///
/// # Safety
/// model is NULL or a live model; out_workspace points to writable storage
/// for one pointer.
#[no_mangle]
pub unsafe extern "C" fn microvit_workspace_create(model: *const Model, out_workspace: *mut *mut Workspace) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        unsafe { reset_out("out_workspace", out_workspace) }?;
        // SAFETY: forwarded from the caller.
        let model = &unsafe { handles::model("model", model) }?.inner;
        // SAFETY: checked by `reset_out`.
        unsafe { set_out(out_workspace, handles::new_raw_workspace(model)) };
        Ok(())
    })
}

/// Frees a workspace. NULL is allowed and does nothing.
///
/// # Safety
/// workspace is NULL or from microvit_workspace_create(), not freed before,
/// and not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn microvit_workspace_free(workspace: *mut Workspace) {
    // SAFETY: forwarded from the caller.
    guard_value((), || unsafe { handles::free_workspace(workspace) })
}
/// Frees the calling thread's cached workspace (the one classify uses when
/// given a NULL workspace), if it has one. Call it before a thread that
/// used NULL workspaces returns to a pool for good; thread exit frees it
/// anyway. The next NULL-workspace call in the thread allocates a new one.
#[no_mangle]
pub extern "C" fn microvit_thread_cache_release() {
    guard_value((), handles::release_cache)
}
