//! The few libhivex calls ois uses (Debian `libhivex-dev`), behind a safe handle. All of the
//! registry module's unsafe code is here.
//!
//! hivex reports errors through errno. Names cross as NUL-terminated UTF-8, which hivex
//! recodes to Latin-1 or UTF-16LE in the hive. Every string or array hivex returns is the
//! caller's to `free`.

use std::ffi::{c_char, c_int, CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub use super::names::{names_equal, upcase};

#[allow(non_camel_case_types)]
#[repr(C)]
struct hive_h {
    _private: [u8; 0],
}

/// `hive_set_value`: one value for `hivex_node_set_value(s)`. hivex only reads through the
/// pointers.
#[repr(C)]
struct HiveSetValue {
    key: *mut c_char,
    t: u32,
    len: usize,
    value: *mut c_char,
}

const HIVEX_OPEN_WRITE: c_int = 4;

#[link(name = "hivex")]
extern "C" {
    fn hivex_open(filename: *const c_char, flags: c_int) -> *mut hive_h;
    fn hivex_close(h: *mut hive_h) -> c_int;
    fn hivex_root(h: *mut hive_h) -> usize;
    fn hivex_node_name(h: *mut hive_h, node: usize) -> *mut c_char;
    fn hivex_node_children(h: *mut hive_h, node: usize) -> *mut usize;
    fn hivex_node_add_child(h: *mut hive_h, parent: usize, name: *const c_char) -> usize;
    fn hivex_node_delete_child(h: *mut hive_h, node: usize) -> c_int;
    fn hivex_node_values(h: *mut hive_h, node: usize) -> *mut usize;
    fn hivex_value_key(h: *mut hive_h, value: usize) -> *mut c_char;
    fn hivex_value_type(h: *mut hive_h, value: usize, t: *mut u32, len: *mut usize) -> c_int;
    fn hivex_value_value(h: *mut hive_h, value: usize, t: *mut u32, len: *mut usize)
        -> *mut c_char;
    fn hivex_node_set_values(
        h: *mut hive_h,
        node: usize,
        nr_values: usize,
        values: *const HiveSetValue,
        flags: c_int,
    ) -> c_int;
    fn hivex_commit(h: *mut hive_h, filename: *const c_char, flags: c_int) -> c_int;
}

/// A key in an open hive (hivex's offset of its `nk` cell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node(usize);

/// A value in an open hive (the offset of its `vk` cell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value(usize);

/// A value as stored: its name, type number and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredValue {
    pub name: String,
    pub kind: u32,
    pub bytes: Vec<u8>,
}

/// An open hive. hivex keeps a writable hive wholly in memory and writes only on `commit`.
/// Not `Send`: a handle stays on the thread that opened it.
pub struct Hivex {
    h: *mut hive_h,
}

impl Hivex {
    /// Opens the hive at `path`, in memory and writable when `write` (the file itself is only
    /// read: changes go where `commit` says).
    pub fn open(path: &Path, write: bool) -> io::Result<Hivex> {
        let path = c_string(path.as_os_str().as_bytes())?;
        let flags = if write { HIVEX_OPEN_WRITE } else { 0 };
        clear_errno();
        // SAFETY: `path` is a valid NUL-terminated string that outlives the call; hivex copies it.
        let h = unsafe { hivex_open(path.as_ptr(), flags) };
        if h.is_null() {
            return Err(last_error());
        }
        Ok(Hivex { h })
    }

    pub fn root(&self) -> io::Result<Node> {
        clear_errno();
        // SAFETY: `self.h` is an open handle (closed only in Drop).
        let node = unsafe { hivex_root(self.h) };
        if node == 0 {
            return Err(last_error());
        }
        Ok(Node(node))
    }

    pub fn node_name(&self, node: Node) -> io::Result<String> {
        clear_errno();
        // SAFETY: open handle; hivex validates the offset and returns NULL for a bad one.
        let name = unsafe { hivex_node_name(self.h, node.0) };
        take_string(name)
    }

    pub fn children(&self, node: Node) -> io::Result<Vec<Node>> {
        clear_errno();
        // SAFETY: open handle; hivex validates the offset.
        let list = unsafe { hivex_node_children(self.h, node.0) };
        Ok(take_offsets(list)?.into_iter().map(Node).collect())
    }

    /// The subkey of `node` named `name`, compared as Windows compares key names (ignoring
    /// case). hivex's own lookup returns 0 for both "absent" and "error", and ignores the case
    /// of ASCII letters only.
    pub fn child(&self, node: Node, name: &str) -> io::Result<Option<Node>> {
        for child in self.children(node)? {
            if names_equal(&self.node_name(child)?, name) {
                return Ok(Some(child));
            }
        }
        Ok(None)
    }

    /// The key at `path` (`\`-separated, from the root), if every name on the way exists.
    pub fn find(&self, path: &str) -> io::Result<Option<Node>> {
        let mut node = self.root()?;
        for name in path.split('\\') {
            match self.child(node, name)? {
                Some(child) => node = child,
                None => return Ok(None),
            }
        }
        Ok(Some(node))
    }

    pub fn add_child(&mut self, parent: Node, name: &str) -> io::Result<Node> {
        let name = c_string(name.as_bytes())?;
        clear_errno();
        // SAFETY: open, writable handle; `name` is NUL-terminated and outlives the call.
        let node = unsafe { hivex_node_add_child(self.h, parent.0, name.as_ptr()) };
        if node == 0 {
            return Err(last_error());
        }
        Ok(Node(node))
    }

    /// Deletes `node` with its values and everything under it.
    pub fn delete(&mut self, node: Node) -> io::Result<()> {
        clear_errno();
        // SAFETY: open, writable handle; hivex validates the offset and refuses the root.
        if unsafe { hivex_node_delete_child(self.h, node.0) } != 0 {
            return Err(last_error());
        }
        Ok(())
    }

    pub fn values(&self, node: Node) -> io::Result<Vec<Value>> {
        clear_errno();
        // SAFETY: open handle; hivex validates the offset.
        let list = unsafe { hivex_node_values(self.h, node.0) };
        Ok(take_offsets(list)?.into_iter().map(Value).collect())
    }

    pub fn value_name(&self, value: Value) -> io::Result<String> {
        clear_errno();
        // SAFETY: open handle; hivex validates the offset.
        let name = unsafe { hivex_value_key(self.h, value.0) };
        take_string(name)
    }

    /// The value's type number and data size, without reading the data.
    pub fn value_type(&self, value: Value) -> io::Result<(u32, usize)> {
        let (mut kind, mut len) = (0u32, 0usize);
        clear_errno();
        // SAFETY: open handle; both out-pointers are valid for writes.
        if unsafe { hivex_value_type(self.h, value.0, &mut kind, &mut len) } != 0 {
            return Err(last_error());
        }
        Ok((kind, len))
    }

    pub fn value_data(&self, value: Value) -> io::Result<(u32, Vec<u8>)> {
        let (mut kind, mut len) = (0u32, 0usize);
        clear_errno();
        // SAFETY: open handle; both out-pointers are valid for writes. The result is a
        // malloc'd buffer of `len` bytes, or NULL.
        let data = unsafe { hivex_value_value(self.h, value.0, &mut kind, &mut len) };
        if data.is_null() {
            // malloc(0) may return NULL without an error: an empty value.
            if len == 0 && errno() == 0 {
                return Ok((kind, Vec::new()));
            }
            return Err(last_error());
        }
        // SAFETY: hivex returned `len` initialised bytes at `data`; they are copied before
        // the buffer is freed, and freed once.
        let bytes = unsafe {
            let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len).to_vec();
            libc::free(data.cast());
            bytes
        };
        Ok((kind, bytes))
    }

    /// Every value of `node`, in stored order.
    pub fn stored_values(&self, node: Node) -> io::Result<Vec<StoredValue>> {
        self.values(node)?
            .into_iter()
            .map(|value| {
                let (kind, bytes) = self.value_data(value)?;
                Ok(StoredValue {
                    name: self.value_name(value)?,
                    kind,
                    bytes,
                })
            })
            .collect()
    }

    /// Replaces all of `node`'s values with `values` (hivex's only way to delete one).
    pub fn set_values(&mut self, node: Node, values: &[StoredValue]) -> io::Result<()> {
        let names = values
            .iter()
            .map(|v| c_string(v.name.as_bytes()))
            .collect::<io::Result<Vec<CString>>>()?;
        let list: Vec<HiveSetValue> = values
            .iter()
            .zip(&names)
            .map(|(v, name)| HiveSetValue {
                key: name.as_ptr().cast_mut(),
                t: v.kind,
                len: v.bytes.len(),
                value: v.bytes.as_ptr().cast::<c_char>().cast_mut(),
            })
            .collect();
        clear_errno();
        // SAFETY: open, writable handle; `list` holds `list.len()` entries whose pointers
        // stay valid (borrowed from `names` and `values`) for the call, and hivex only reads
        // through them.
        if unsafe { hivex_node_set_values(self.h, node.0, list.len(), list.as_ptr(), 0) } != 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Writes the hive, with both sequence numbers raised by one and the checksum set, to
    /// `path` (created or truncated).
    pub fn commit(&mut self, path: &Path) -> io::Result<()> {
        let path = c_string(path.as_os_str().as_bytes())?;
        clear_errno();
        // SAFETY: open, writable handle; `path` is NUL-terminated and outlives the call.
        if unsafe { hivex_commit(self.h, path.as_ptr(), 0) } != 0 {
            return Err(last_error());
        }
        Ok(())
    }
}

impl Drop for Hivex {
    fn drop(&mut self) {
        // SAFETY: `self.h` came from hivex_open and is closed only here, once. A writable
        // hive holds no file open, so there is nothing to report from closing it.
        unsafe {
            hivex_close(self.h);
        }
    }
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a name or path contains a NUL character",
        )
    })
}

/// Copies and frees a string hivex returned; NULL is the error errno names.
fn take_string(ptr: *mut c_char) -> io::Result<String> {
    if ptr.is_null() {
        return Err(last_error());
    }
    // SAFETY: hivex returned a malloc'd NUL-terminated string; it is copied, then freed once.
    let bytes = unsafe {
        let bytes = CStr::from_ptr(ptr).to_bytes().to_vec();
        libc::free(ptr.cast());
        bytes
    };
    String::from_utf8(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "hivex gave a name that is not UTF-8",
        )
    })
}

/// Copies and frees a 0-terminated offset array hivex returned; NULL is the error errno names.
fn take_offsets(ptr: *mut usize) -> io::Result<Vec<usize>> {
    if ptr.is_null() {
        return Err(last_error());
    }
    let mut offsets = Vec::new();
    // SAFETY: hivex returned a malloc'd array ending with a 0 entry; it is read up to that
    // entry, then freed once.
    unsafe {
        let mut at = ptr;
        while *at != 0 {
            offsets.push(*at);
            at = at.add(1);
        }
        libc::free(ptr.cast());
    }
    Ok(offsets)
}

fn errno() -> c_int {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn clear_errno() {
    // SAFETY: __errno_location returns this thread's errno, always valid for writes.
    unsafe {
        *libc::__errno_location() = 0;
    }
}

/// errno as an error, with what hivex means by the codes it gives for a hive it refuses.
fn last_error() -> io::Error {
    let os = io::Error::last_os_error();
    let detail = match os.raw_os_error() {
        Some(0) | None => "it gave no reason".to_string(),
        Some(libc::ENOTSUP) => format!("it found a structure it does not accept ({os})"),
        Some(libc::EFAULT) => format!("an offset points outside the hive ({os})"),
        Some(libc::ERANGE) => format!("a count or size is over hivex's limits ({os})"),
        Some(_) => os.to_string(),
    };
    io::Error::new(os.kind(), detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_as_windows_compares_them() {
        assert!(names_equal("Policies", "POLICIES"));
        assert!(names_equal("Équipe", "éQUIPE"));
        assert!(!names_equal("Policies", "Policie"));
        // ß upper-cases to two characters, so Windows leaves it alone.
        assert!(names_equal("straße", "STRAßE"));
        assert!(!names_equal("straße", "STRASSE"));
    }
}
