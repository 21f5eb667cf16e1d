//! Listing an image's directory tree.

use std::ffi::{c_int, c_void};

use wimlib_sys as sys;

use super::{c_str, Wim, WimError};

/// One file or directory of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Path from the image root, with `/` separators and no leading slash.
    pub path: String,
    pub is_dir: bool,
    pub size: u64,
    pub links: u32,
    /// SHA-1 of the unnamed data stream, all zeros when the file is empty.
    pub sha1: [u8; 20],
}

unsafe extern "C" fn collect(entry: *const sys::wimlib_dir_entry, ctx: *mut c_void) -> c_int {
    // SAFETY: ctx is the Vec passed by `list`; entry is valid for the duration of the call.
    let out = unsafe { &mut *(ctx as *mut Vec<TreeEntry>) };
    let e = unsafe { &*entry };
    if e.full_path.is_null() {
        return 0;
    }
    let full = super::tchar::image_path(unsafe { super::tchar::to_string(e.full_path) });
    let path = full.trim_start_matches('/').to_string();
    // The unnamed stream is first in the trailing array.
    let stream = unsafe { &*e.streams.as_ptr() };
    out.push(TreeEntry {
        path,
        is_dir: e.attributes & sys::WIMLIB_FILE_ATTRIBUTE_DIRECTORY != 0,
        size: stream.resource.uncompressed_size,
        links: e.num_links,
        sha1: stream.resource.sha1_hash,
    });
    0
}

unsafe extern "C" fn count(_: *const sys::wimlib_dir_entry, ctx: *mut c_void) -> c_int {
    // SAFETY: ctx is the u64 passed by `loaded_entries`.
    unsafe { *(ctx as *mut u64) += 1 };
    0
}

/// Entries of the tree wimlib loaded for an image, the root included.
pub(super) fn loaded_entries(wim: &Wim, index: u32) -> Result<u64, WimError> {
    let mut n = 0u64;
    walk(
        wim,
        "reading the metadata of",
        index,
        "/",
        sys::WIMLIB_ITERATE_DIR_TREE_FLAG_RECURSIVE,
        count,
        &mut n,
    )?;
    Ok(n)
}

pub(super) fn list(
    wim: &Wim,
    index: u32,
    path: &str,
    recursive: bool,
) -> Result<Vec<TreeEntry>, WimError> {
    let mut out: Vec<TreeEntry> = Vec::new();
    let flags = if recursive {
        sys::WIMLIB_ITERATE_DIR_TREE_FLAG_RECURSIVE
    } else {
        sys::WIMLIB_ITERATE_DIR_TREE_FLAG_CHILDREN
    };
    walk(
        wim,
        "listing files of",
        index,
        path,
        flags,
        collect,
        &mut out,
    )?;
    Ok(out)
}

/// The entry at `path` itself; None when the image has no such path.
pub(super) fn entry(wim: &Wim, index: u32, path: &str) -> Result<Option<TreeEntry>, WimError> {
    let mut out: Vec<TreeEntry> = Vec::new();
    match walk(wim, "reading a file of", index, path, 0, collect, &mut out) {
        Ok(()) => Ok(out.pop()),
        Err(e) if e.is_missing_path() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Calls `visit` for the entries of an image below `path` (as `flags` say), with `state` as
/// its context; loads the image's metadata first if it is not loaded.
pub(super) fn walk<T>(
    wim: &Wim,
    operation: &'static str,
    index: u32,
    path: &str,
    flags: u32,
    visit: unsafe extern "C" fn(*const sys::wimlib_dir_entry, *mut c_void) -> c_int,
    state: &mut T,
) -> Result<(), WimError> {
    let cpath = c_str(path);
    // SAFETY: `state` outlives the call and is what `visit` casts its context back to.
    let rc = unsafe {
        sys::wimlib_iterate_dir_tree(
            wim.raw(),
            index as c_int,
            cpath.as_ptr(),
            flags as c_int,
            Some(visit),
            state as *mut T as *mut c_void,
        )
    };
    if rc != 0 {
        return Err(WimError::new(wim.path(), operation, rc));
    }
    Ok(())
}
