//! A small safe handle over wimlib's C API.
//!
//! The `wimlib` crate builds the library (bundled) and exposes the raw bindings; its safe layer
//! panics inside C callbacks on attribute bits or progress messages it does not know, which a
//! crafted WIM can trigger, so ois talks to `wimlib_sys` directly here and nowhere else.

mod assemble;
mod blob;
mod diagnostics;
mod metadata;
mod progress;
mod resource;
mod tchar;
mod tree;

use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::ptr::null_mut;
use std::sync::OnceLock;

use wimlib_sys as sys;

use tchar::TString;

pub use progress::{Progress, ProgressEvent};
pub use resource::{same_bytes, verify_blobs, verify_file, Blob, FileReader};
pub use tree::TreeEntry;

/// A failure reported by wimlib, with the file and the operation it concerned.
#[derive(Debug, thiserror::Error)]
#[error("{operation} {}: {message}{}", path.display(), detail_suffix(.details))]
pub struct WimError {
    pub path: PathBuf,
    pub operation: &'static str,
    pub code: i32,
    pub message: String,
    /// Messages wimlib printed while doing this operation.
    pub details: Vec<String>,
}

fn detail_suffix(details: &[String]) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" ({})", details.join("; "))
    }
}

impl WimError {
    fn new(path: &Path, operation: &'static str, code: c_int) -> Self {
        let message = error_string(code);
        WimError {
            path: path.to_path_buf(),
            operation,
            code,
            message,
            details: diagnostics::take(),
        }
    }

    /// The wimlib error code says the file itself is damaged (as opposed to I/O or usage).
    pub fn is_corruption(&self) -> bool {
        let c = self.code as u32;
        [
            sys::wimlib_error_code_WIMLIB_ERR_DECOMPRESSION,
            sys::wimlib_error_code_WIMLIB_ERR_IMAGE_COUNT,
            sys::wimlib_error_code_WIMLIB_ERR_INTEGRITY,
            sys::wimlib_error_code_WIMLIB_ERR_INVALID_CHUNK_SIZE,
            sys::wimlib_error_code_WIMLIB_ERR_INVALID_HEADER,
            sys::wimlib_error_code_WIMLIB_ERR_INVALID_INTEGRITY_TABLE,
            sys::wimlib_error_code_WIMLIB_ERR_INVALID_LOOKUP_TABLE_ENTRY,
            sys::wimlib_error_code_WIMLIB_ERR_INVALID_METADATA_RESOURCE,
            sys::wimlib_error_code_WIMLIB_ERR_INVALID_RESOURCE_HASH,
            sys::wimlib_error_code_WIMLIB_ERR_NOT_A_WIM_FILE,
            sys::wimlib_error_code_WIMLIB_ERR_UNEXPECTED_END_OF_FILE,
            sys::wimlib_error_code_WIMLIB_ERR_WIM_IS_INCOMPLETE,
            sys::wimlib_error_code_WIMLIB_ERR_XML,
            sys::wimlib_error_code_WIMLIB_ERR_METADATA_NOT_FOUND,
            sys::wimlib_error_code_WIMLIB_ERR_RESOURCE_NOT_FOUND,
        ]
        .contains(&c)
    }

    pub fn is_aborted(&self) -> bool {
        self.code as u32 == sys::wimlib_error_code_WIMLIB_ERR_ABORTED_BY_PROGRESS
    }

    pub fn is_missing_path(&self) -> bool {
        self.code as u32 == sys::wimlib_error_code_WIMLIB_ERR_PATH_DOES_NOT_EXIST
    }

    /// A filesystem error around a wimlib operation (such as preparing its target).
    pub fn io(path: &Path, operation: &'static str, err: std::io::Error) -> Self {
        WimError {
            path: path.to_path_buf(),
            operation,
            code: -1,
            message: err.to_string(),
            details: Vec::new(),
        }
    }

    pub fn is_out_of_space(&self) -> bool {
        self.details
            .iter()
            .any(|d| d.contains("No space left on device"))
    }
}

fn error_string(code: c_int) -> String {
    // SAFETY: wimlib returns a static string for every code, including unknown ones.
    unsafe { tchar::to_string(sys::wimlib_get_error_string(code as _)) }
}

/// Initialises wimlib once for the process: case-insensitive paths as on Windows, and its
/// messages captured so they can be attached to errors and logged.
pub fn init() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        // SAFETY: called once, before any other wimlib call made by ois.
        let rc = unsafe {
            sys::wimlib_global_init(sys::WIMLIB_INIT_FLAG_DEFAULT_CASE_INSENSITIVE as c_int)
        };
        if rc != 0 {
            tracing::error!("wimlib_global_init failed: {}", error_string(rc));
        }
        diagnostics::install();
    });
}

/// The level wimlib compresses with when it writes (1-100; 0 restores its default, 50). The
/// setting is process-wide in wimlib: a concurrent write picks up whichever was set last,
/// which changes only how small and how fast it compresses, never what it writes.
pub fn set_write_level(level: u32) {
    init();
    // SAFETY: plain setter; -1 applies to every compression type.
    unsafe { sys::wimlib_set_default_compression_level(-1, level) };
}

pub fn version() -> String {
    let v = unsafe { sys::wimlib_get_version() };
    format!("{}.{}.{}", v >> 20, (v >> 10) & 0x3ff, v & 0x3ff)
}

/// WIM compression types, as stored in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Xpress,
    Lzx,
    Lzms,
}

impl Compression {
    fn raw(self) -> sys::wimlib_compression_type {
        match self {
            Compression::None => sys::wimlib_compression_type_WIMLIB_COMPRESSION_TYPE_NONE,
            Compression::Xpress => sys::wimlib_compression_type_WIMLIB_COMPRESSION_TYPE_XPRESS,
            Compression::Lzx => sys::wimlib_compression_type_WIMLIB_COMPRESSION_TYPE_LZX,
            Compression::Lzms => sys::wimlib_compression_type_WIMLIB_COMPRESSION_TYPE_LZMS,
        }
    }

    fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw as u32 {
            sys::wimlib_compression_type_WIMLIB_COMPRESSION_TYPE_NONE => Compression::None,
            sys::wimlib_compression_type_WIMLIB_COMPRESSION_TYPE_XPRESS => Compression::Xpress,
            sys::wimlib_compression_type_WIMLIB_COMPRESSION_TYPE_LZX => Compression::Lzx,
            sys::wimlib_compression_type_WIMLIB_COMPRESSION_TYPE_LZMS => Compression::Lzms,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Xpress => "xpress",
            Compression::Lzx => "lzx",
            Compression::Lzms => "lzms",
        }
    }
}

/// What the WIM header says about the file as a whole.
#[derive(Debug, Clone)]
pub struct WimHeader {
    pub image_count: u32,
    pub compression: Option<Compression>,
    pub chunk_size: u32,
    pub has_integrity_table: bool,
    pub is_split: bool,
    /// Written with `--pipable`: wimlib keeps that layout when it writes the file again.
    pub is_pipable: bool,
    pub boot_index: u32,
}

/// One change to an image, in wimlib's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateCommand {
    /// Add a file or directory tree from the filesystem, replacing what is at `target`.
    Add {
        source: PathBuf,
        target: String,
    },
    Delete {
        path: String,
    },
    Rename {
        from: String,
        to: String,
    },
}

/// An open WIM file. wimlib handles are not thread-safe, so this type is neither Send nor Sync.
pub struct Wim {
    raw: *mut sys::WIMStruct,
    path: PathBuf,
    /// The images whose metadata is in `path` itself; images exported into this WIM after
    /// those keep theirs in the file they came from.
    images_in_file: u32,
}

impl Drop for Wim {
    fn drop(&mut self) {
        // SAFETY: raw came from wimlib_open_wim/create_new_wim and is freed once.
        unsafe { sys::wimlib_free(self.raw) };
    }
}

pub(crate) fn c_path(path: &Path) -> TString {
    TString::from_path(path)
}

pub(crate) fn c_str(s: &str) -> TString {
    TString::from_str(s)
}

impl Wim {
    /// Opens a WIM for reading. `check_integrity` verifies the integrity table when present.
    pub fn open(path: &Path, check_integrity: bool) -> Result<Wim, WimError> {
        let mut flags = sys::WIMLIB_OPEN_FLAG_ERROR_IF_SPLIT;
        if check_integrity {
            flags |= sys::WIMLIB_OPEN_FLAG_CHECK_INTEGRITY;
        }
        Self::open_with(path, flags)
    }

    fn open_with(path: &Path, flags: u32) -> Result<Wim, WimError> {
        init();
        let mut raw = null_mut();
        let cpath = c_path(path);
        diagnostics::take();
        // SAFETY: cpath outlives the call; raw receives an owned handle on success.
        let rc = unsafe { sys::wimlib_open_wim(cpath.as_ptr(), flags as c_int, &mut raw) };
        if rc != 0 {
            return Err(WimError::new(path, "opening", rc));
        }
        let mut wim = Wim {
            raw,
            path: path.to_path_buf(),
            images_in_file: 0,
        };
        wim.images_in_file = wim.header().image_count;
        Ok(wim)
    }

    /// Creates an empty in-memory WIM, written later with [`Wim::write`].
    pub fn create(compression: Compression) -> Result<Wim, WimError> {
        init();
        let mut raw = null_mut();
        let rc = unsafe { sys::wimlib_create_new_wim(compression.raw(), &mut raw) };
        if rc != 0 {
            return Err(WimError::new(Path::new("<new WIM>"), "creating", rc));
        }
        Ok(Wim {
            raw,
            path: PathBuf::from("<new WIM>"),
            images_in_file: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check(&self, operation: &'static str, rc: c_int) -> Result<(), WimError> {
        if rc == 0 {
            Ok(())
        } else {
            Err(WimError::new(&self.path, operation, rc))
        }
    }

    pub fn header(&self) -> WimHeader {
        // SAFETY: wimlib_wim_info is plain data; wimlib fills it completely.
        let info = unsafe {
            let mut info = std::mem::zeroed::<sys::wimlib_wim_info>();
            sys::wimlib_get_wim_info(self.raw, &mut info);
            info
        };
        WimHeader {
            image_count: info.image_count,
            compression: Compression::from_raw(info.compression_type),
            chunk_size: info.chunk_size,
            has_integrity_table: info.has_integrity_table() != 0,
            is_split: info.total_parts > 1,
            is_pipable: info.pipable() != 0,
            boot_index: info.boot_index,
        }
    }

    /// The WIM's XML document, decoded from UTF-16LE.
    pub fn xml(&self) -> Result<String, WimError> {
        let mut buf = null_mut();
        let mut len = 0usize;
        let rc = unsafe { sys::wimlib_get_xml_data(self.raw, &mut buf, &mut len) };
        self.check("reading the XML data of", rc)?;
        // SAFETY: wimlib returned a malloc'd buffer of `len` bytes that we now own.
        let units: Vec<u16> = unsafe {
            let bytes = std::slice::from_raw_parts(buf as *const u8, len);
            let v = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            libc_free(buf);
            v
        };
        Ok(String::from_utf16_lossy(&units)
            .trim_start_matches('\u{feff}')
            .to_string())
    }

    /// An image property such as `WINDOWS/EDITIONID` or `NAME`.
    pub fn property(&self, index: u32, name: &str) -> Option<String> {
        let cname = c_str(name);
        let ptr =
            unsafe { sys::wimlib_get_image_property(self.raw, index as c_int, cname.as_ptr()) };
        if ptr.is_null() {
            None
        } else {
            // SAFETY: a non-null property value is a NUL-terminated string wimlib owns.
            Some(unsafe { tchar::to_string(ptr) })
        }
    }

    pub fn set_property(
        &self,
        index: u32,
        name: &str,
        value: Option<&str>,
    ) -> Result<(), WimError> {
        let cname = c_str(name);
        let cvalue = value.map(c_str);
        let rc = unsafe {
            sys::wimlib_set_image_property(
                self.raw,
                index as c_int,
                cname.as_ptr(),
                cvalue.as_ref().map_or(std::ptr::null(), |v| v.as_ptr()),
            )
        };
        self.check("setting an image property of", rc)
    }

    /// Loads an image's metadata and returns what wimlib dropped while reading it: the entries
    /// its metadata resource stores but the loaded tree lacks (names such as `..`, duplicate
    /// names...), with wimlib's own warnings. Servicing refuses such images rather than write
    /// them back without those entries.
    pub fn load_image_checked(&self, index: u32) -> Result<Vec<String>, WimError> {
        let _guard = diagnostics::exclusive();
        diagnostics::take();
        let loaded = tree::loaded_entries(self, index)?;
        let printed = diagnostics::take();
        let Some(stored) = self.stored_metadata(index)? else {
            return Ok(Vec::new());
        };
        let counted = metadata::stored_entries(&stored, loaded, false);
        if counted.entries == loaded && counted.unreadable.is_empty() {
            return Ok(Vec::new());
        }
        let mut problems = self.dropped_entries(index, &stored, loaded)?;
        problems.extend(printed);
        Ok(problems)
    }

    /// What the stored tree holds beyond the loaded one, path by path (the first few).
    fn dropped_entries(
        &self,
        index: u32,
        stored: &[u8],
        loaded: u64,
    ) -> Result<Vec<String>, WimError> {
        const SHOWN: usize = 10;
        let walked = metadata::stored_entries(stored, loaded + SHOWN as u64 * 100, true);
        let mut missing: std::collections::HashMap<&str, i64> = Default::default();
        for p in &walked.paths {
            *missing.entry(p.as_str()).or_default() += 1;
        }
        for e in tree::list(self, index, "/", true)? {
            if let Some(n) = missing.get_mut(e.path.as_str()) {
                *n -= 1;
            }
        }
        let mut dropped: Vec<&str> = walked
            .paths
            .iter()
            .map(String::as_str)
            .filter(|p| missing.get(p).is_some_and(|n| *n > 0))
            .collect();
        dropped.dedup();
        let mut problems = vec![format!(
            "its metadata stores {}{} entries, wimlib loads {loaded}",
            walked.entries,
            if walked.entries > loaded + SHOWN as u64 * 100 {
                " or more"
            } else {
                ""
            }
        )];
        problems.extend(
            dropped
                .iter()
                .take(SHOWN)
                .map(|p| format!("entry \"/{p}\" is not loaded")),
        );
        problems.extend(
            walked
                .unreadable
                .iter()
                .take(SHOWN)
                .map(|p| format!("the entries below \"/{p}\" cannot be read")),
        );
        Ok(problems)
    }

    /// Applies wimlib update commands to one image in memory. wimlib rolls back every
    /// command of the call when one fails, so a call is all-or-nothing.
    pub fn update(&self, index: u32, commands: &[UpdateCommand]) -> Result<(), WimError> {
        let mut strings: Vec<(TString, TString)> = Vec::with_capacity(commands.len());
        for c in commands {
            strings.push(match c {
                UpdateCommand::Add { source, target } => (c_path(source), c_str(target)),
                UpdateCommand::Delete { path } => (c_str(path), TString::default()),
                UpdateCommand::Rename { from, to } => (c_str(from), c_str(to)),
            });
        }
        let raw: Vec<sys::wimlib_update_command> = commands
            .iter()
            .zip(&strings)
            .map(|(c, (a, b))| raw_command(c, a, b))
            .collect();
        let rc = unsafe {
            sys::wimlib_update_image(self.raw, index as c_int, raw.as_ptr(), raw.len(), 0)
        };
        self.check("updating", rc)
    }

    /// Makes the blobs of other WIM files available to this one, so that writing copies those
    /// blobs raw from them (same compression type and chunk size) instead of compressing them.
    pub fn reference(&self, paths: &[&Path]) -> Result<(), WimError> {
        if paths.is_empty() {
            return Ok(());
        }
        let cpaths: Vec<TString> = paths.iter().map(|p| c_path(p)).collect();
        let ptrs: Vec<*const sys::wimlib_tchar> = cpaths.iter().map(|p| p.as_ptr()).collect();
        let rc = unsafe {
            sys::wimlib_reference_resource_files(
                self.raw,
                ptrs.as_ptr() as *mut _,
                ptrs.len() as u32,
                0,
                0,
            )
        };
        self.check("referencing other WIM files from", rc)
    }

    /// Hashes the data of files added by [`Wim::update`] now rather than while writing, so
    /// that data already present in a referenced WIM resolves to it before wimlib decides what
    /// to copy raw (it decides before hashing, and would otherwise recompress such data).
    /// wimlib exposes this step only through an export, here of `index` (every image's added
    /// data is hashed; a changed index is already loaded, so no other tree is read) into a
    /// throwaway WIM.
    pub fn hash_added_data(&self, index: u32) -> Result<(), WimError> {
        if self.header().image_count == 0 {
            return Ok(());
        }
        let scratch = Wim::create(Compression::None)?;
        let rc = unsafe {
            sys::wimlib_export_image(
                self.raw,
                index as c_int,
                scratch.raw,
                std::ptr::null(),
                std::ptr::null(),
                (sys::WIMLIB_EXPORT_FLAG_NO_NAMES | sys::WIMLIB_EXPORT_FLAG_NO_DESCRIPTIONS)
                    as c_int,
            )
        };
        drop(scratch);
        self.check("hashing the data added to", rc)
    }

    /// Captures a directory tree as a new image.
    pub fn add_image(&self, source: &Path, name: &str) -> Result<(), WimError> {
        let csrc = c_path(source);
        let cname = c_str(name);
        let rc = unsafe {
            sys::wimlib_add_image(self.raw, csrc.as_ptr(), cname.as_ptr(), std::ptr::null(), 0)
        };
        self.check("capturing an image into", rc)
    }

    /// Appends an empty image (to fill with [`Wim::update`]); returns its index.
    pub fn add_empty_image(&self, name: &str) -> Result<u32, WimError> {
        let cname = c_str(name);
        let mut index: c_int = 0;
        let rc = unsafe { sys::wimlib_add_empty_image(self.raw, cname.as_ptr(), &mut index) };
        self.check("adding an image to", rc)?;
        Ok(index as u32)
    }

    /// Runs `f` with `sink` receiving wimlib's progress; `Progress::Abort` stops the operation.
    fn with_progress<T>(
        &self,
        sink: &mut dyn FnMut(ProgressEvent) -> Progress,
        f: impl FnOnce() -> T,
    ) -> T {
        let mut sink: progress::Sink = sink;
        let ctx = &mut sink as *mut progress::Sink as *mut std::ffi::c_void;
        // SAFETY: the sink outlives the registration, which is removed before returning.
        unsafe {
            sys::wimlib_register_progress_function(self.raw, Some(progress::trampoline), ctx)
        };
        let result = f();
        unsafe { sys::wimlib_register_progress_function(self.raw, None, null_mut()) };
        result
    }

    /// Writes every image into a new file at `dest`. A new file is always a full rebuild: only
    /// blobs still referenced are written, and already-compressed ones are copied raw when the
    /// compression type and chunk size match.
    pub fn write(
        &self,
        dest: &Path,
        integrity: bool,
        threads: u32,
        sink: &mut dyn FnMut(ProgressEvent) -> Progress,
    ) -> Result<(), WimError> {
        self.write_with(dest, sys::WIMLIB_WRITE_FLAG_FSYNC, integrity, threads, sink)
    }

    /// [`Wim::write`] without the final fsync, for a caller that flushes the file itself while
    /// it does other work (and must before relying on it).
    pub fn write_unsynced(
        &self,
        dest: &Path,
        integrity: bool,
        threads: u32,
        sink: &mut dyn FnMut(ProgressEvent) -> Progress,
    ) -> Result<(), WimError> {
        self.write_with(dest, 0, integrity, threads, sink)
    }

    fn write_with(
        &self,
        dest: &Path,
        mut flags: u32,
        integrity: bool,
        threads: u32,
        sink: &mut dyn FnMut(ProgressEvent) -> Progress,
    ) -> Result<(), WimError> {
        flags |= if integrity {
            sys::WIMLIB_WRITE_FLAG_CHECK_INTEGRITY
        } else {
            sys::WIMLIB_WRITE_FLAG_NO_CHECK_INTEGRITY
        };
        let cdest = c_path(dest);
        diagnostics::take();
        let rc = self.with_progress(sink, || unsafe {
            sys::wimlib_write(
                self.raw,
                cdest.as_ptr(),
                sys::WIMLIB_ALL_IMAGES,
                flags as c_int,
                threads,
            )
        });
        if rc != 0 {
            return Err(WimError::new(dest, "writing", rc));
        }
        Ok(())
    }

    /// Decompresses every blob and metadata resource and checks its SHA-1.
    pub fn verify(&self, sink: &mut dyn FnMut(ProgressEvent) -> Progress) -> Result<(), WimError> {
        let rc = self.with_progress(sink, || unsafe { sys::wimlib_verify_wim(self.raw, 0) });
        self.check("verifying", rc)
    }

    /// Lists an image's tree below `path` (recursive) or the entries directly in it.
    pub fn list(
        &self,
        index: u32,
        path: &str,
        recursive: bool,
    ) -> Result<Vec<TreeEntry>, WimError> {
        tree::list(self, index, path, recursive)
    }

    /// The file or directory at `path` of an image, if there is one.
    pub fn entry(&self, index: u32, path: &str) -> Result<Option<TreeEntry>, WimError> {
        tree::entry(self, index, path)
    }

    /// Extracts a whole image into a directory (used by tests and the mount-style baseline).
    pub fn extract_image(&self, index: u32, target: &Path) -> Result<(), WimError> {
        let ctarget = c_path(target);
        let flags = sys::WIMLIB_EXTRACT_FLAG_NO_ACLS | sys::WIMLIB_EXTRACT_FLAG_NORPFIX;
        let rc = unsafe {
            sys::wimlib_extract_image(self.raw, index as c_int, ctarget.as_ptr(), flags as c_int)
        };
        self.check("extracting an image from", rc)
    }

    /// Bytes stored and bytes they expand to, over every blob of the WIM (file data only).
    pub fn blob_totals(&self) -> Result<(u64, u64), WimError> {
        unsafe extern "C" fn add(
            r: *const sys::wimlib_resource_entry,
            ctx: *mut std::ffi::c_void,
        ) -> c_int {
            // SAFETY: wimlib passes a valid entry; ctx is the (u64, u64) below.
            let (r, totals) = unsafe { (&*r, &mut *(ctx as *mut (u64, u64))) };
            if r.is_metadata() == 0 {
                // Solid blobs share one resource: count it through its first blob only.
                if r.packed() == 0 {
                    totals.0 += r.compressed_size;
                    totals.1 += r.uncompressed_size;
                } else if r.offset == 0 {
                    totals.0 += r.raw_resource_compressed_size;
                    totals.1 += r.raw_resource_uncompressed_size;
                }
            }
            0
        }
        let mut totals = (0u64, 0u64);
        let rc = unsafe {
            sys::wimlib_iterate_lookup_table(
                self.raw,
                0,
                Some(add),
                &mut totals as *mut (u64, u64) as *mut std::ffi::c_void,
            )
        };
        self.check("listing the blobs of", rc)?;
        Ok(totals)
    }

    pub(crate) fn raw(&self) -> *mut sys::WIMStruct {
        self.raw
    }
}

fn raw_command(c: &UpdateCommand, a: &TString, b: &TString) -> sys::wimlib_update_command {
    // SAFETY: the command structs are plain data; pointers stay valid while `strings` lives.
    unsafe {
        let mut cmd = std::mem::zeroed::<sys::wimlib_update_command>();
        match c {
            UpdateCommand::Add { .. } => {
                cmd.op = sys::wimlib_update_op_WIMLIB_UPDATE_OP_ADD;
                cmd.__bindgen_anon_1.add = sys::wimlib_add_command {
                    fs_source_path: a.as_ptr() as *mut _,
                    wim_target_path: b.as_ptr() as *mut _,
                    config_file: null_mut(),
                    add_flags: (sys::WIMLIB_ADD_FLAG_NO_ACLS | sys::WIMLIB_ADD_FLAG_NORPFIX)
                        as c_int,
                };
            }
            UpdateCommand::Delete { .. } => {
                cmd.op = sys::wimlib_update_op_WIMLIB_UPDATE_OP_DELETE;
                cmd.__bindgen_anon_1.delete_ = sys::wimlib_delete_command {
                    wim_path: a.as_ptr() as *mut _,
                    delete_flags: sys::WIMLIB_DELETE_FLAG_RECURSIVE as c_int,
                };
            }
            UpdateCommand::Rename { .. } => {
                cmd.op = sys::wimlib_update_op_WIMLIB_UPDATE_OP_RENAME;
                cmd.__bindgen_anon_1.rename = sys::wimlib_rename_command {
                    wim_source_path: a.as_ptr() as *mut _,
                    wim_target_path: b.as_ptr() as *mut _,
                    rename_flags: 0,
                };
            }
        }
        cmd
    }
}

extern "C" {
    #[link_name = "free"]
    fn libc_free(ptr: *mut std::ffi::c_void);
}
