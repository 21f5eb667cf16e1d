//! wimlib's strings are `wimlib_tchar`: UTF-8 `char` on Unix, UTF-16 `wchar_t` on Windows
//! (where paths inside an image also come back with `\` separators).

use std::path::Path;

use wimlib_sys as sys;

/// A NUL-terminated string in wimlib's character type, owned for the duration of a call.
#[derive(Default)]
pub(crate) struct TString(#[cfg(unix)] std::ffi::CString, #[cfg(windows)] Vec<u16>);

impl TString {
    #[cfg(unix)]
    pub fn from_path(path: &Path) -> TString {
        use std::os::unix::ffi::OsStrExt;
        // Interior NULs cannot occur in paths that came from the filesystem or from validated
        // manifests; fall back to an empty string that wimlib rejects with INVALID_PARAM.
        TString(std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap_or_default())
    }

    #[cfg(windows)]
    pub fn from_path(path: &Path) -> TString {
        use std::os::windows::ffi::OsStrExt;
        TString(wide(path.as_os_str().encode_wide()))
    }

    #[cfg(unix)]
    pub fn from_str(s: &str) -> TString {
        TString(std::ffi::CString::new(s).unwrap_or_default())
    }

    #[cfg(windows)]
    pub fn from_str(s: &str) -> TString {
        TString(wide(s.encode_utf16()))
    }

    pub fn as_ptr(&self) -> *const sys::wimlib_tchar {
        #[cfg(unix)]
        return self.0.as_ptr();
        #[cfg(windows)]
        return if self.0.is_empty() {
            static EMPTY: [u16; 1] = [0];
            EMPTY.as_ptr()
        } else {
            self.0.as_ptr()
        };
    }
}

/// UTF-16 up to the first NUL, NUL-terminated (an interior NUL gives an empty string, as on
/// Unix).
#[cfg(windows)]
fn wide(units: impl Iterator<Item = u16>) -> Vec<u16> {
    let mut v: Vec<u16> = units.collect();
    if v.contains(&0) {
        v.clear();
    }
    v.push(0);
    v
}

/// Copies a string wimlib returned.
///
/// # Safety
/// `ptr` is non-null and NUL-terminated.
pub(crate) unsafe fn to_string(ptr: *const sys::wimlib_tchar) -> String {
    #[cfg(unix)]
    {
        // SAFETY: per the contract above.
        unsafe { std::ffi::CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    }
    #[cfg(windows)]
    {
        let mut len = 0;
        // SAFETY: per the contract above, every unit up to the NUL is readable.
        while unsafe { *ptr.add(len) } != 0 {
            len += 1;
        }
        String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(ptr, len) })
    }
}

/// A path inside an image as ois writes it (`/` separators), from wimlib's form.
pub(crate) fn image_path(path: String) -> String {
    if cfg!(windows) {
        path.replace('\\', "/")
    } else {
        path
    }
}
