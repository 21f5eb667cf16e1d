//! What differs between the hosts ois runs on (Linux and other Unix systems, Windows), behind
//! one small API: the rest of ois asks these questions and never calls the OS directly.
//!
//! Every function keeps the Unix behaviour ois had before Windows hosts existed; the Windows
//! side answers the same question with Win32 calls.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as host;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as host;

/// Size and room of the filesystem (volume) holding a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub total_bytes: u64,
    /// What this process may still write (quota and reserved blocks taken off).
    pub free_bytes: u64,
}

/// Total and available bytes of the volume holding `path`.
pub fn space(path: &Path) -> Option<Space> {
    host::space(path)
}

/// The root of the volume holding `path` (a Unix mount point, a Windows `D:\` or mounted
/// folder). `path` must exist.
pub fn volume_root(path: &Path) -> Option<PathBuf> {
    host::volume_root(path)
}

/// The filesystem's name (`ext4`, `NTFS`, …) of the volume mounted at `root`.
pub fn file_system(root: &Path) -> Option<String> {
    host::file_system(root)
}

/// Are two existing paths on the same volume, so that a rename between them is atomic?
pub fn same_volume(a: &Path, b: &Path) -> bool {
    host::same_volume(a, b)
}

/// Identity of an open file (device and inode, volume serial and file index): two handles
/// with the same identity are the same file, whatever the names.
pub fn file_identity(file: &File) -> Option<(u64, u64)> {
    host::file_identity(file)
}

/// Do two existing paths name the same file (a hard link or the same name)?
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (File::open(a), File::open(b)) {
        (Ok(x), Ok(y)) => match (file_identity(&x), file_identity(&y)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        _ => false,
    }
}

/// Renames `from` over `to` on one volume, durably: readers see the old file or the new one,
/// never a mix. On Windows a file open elsewhere (without delete sharing) cannot be replaced;
/// the error then says so.
pub fn replace_file(from: &Path, to: &Path) -> io::Result<()> {
    host::replace_file(from, to)
}

/// Swaps two folders. On Linux in one step (`renameat2(RENAME_EXCHANGE)`): readers see one
/// or the other, never a mix or nothing. Windows has no such call: three renames, so for a
/// moment `a` is missing, and a crash in between leaves `a`'s old content at `b`'s
/// `.ois-exchange` name.
pub fn exchange_dirs(a: &Path, b: &Path) -> io::Result<()> {
    host::exchange_dirs(a, b)
}

/// Lets the owner write `path` (files extracted from an ISO come read-only).
pub fn make_owner_writable(path: &Path, meta: &std::fs::Metadata) -> io::Result<()> {
    host::make_owner_writable(path, meta)
}

/// Flushes a file another handle (wimlib's) wrote to disk.
pub fn sync_file(path: &Path) -> io::Result<()> {
    host::sync_file(path)
}

/// Makes a rename or a new entry in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    host::sync_dir(dir)
}

/// Flushes everything written to the volume holding `dir`.
pub fn sync_volume(dir: &Path) -> io::Result<()> {
    host::sync_volume(dir)
}

/// Reads exactly `buf.len()` bytes at `offset`, without sharing a cursor with other readers
/// of the same handle.
pub fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    host::read_exact_at(file, buf, offset)
}

/// The OS's id of the calling thread (as CMTrace logs show it).
pub fn thread_id() -> u64 {
    host::thread_id()
}

/// Does a process with this id run on this host? A reused id keeps a run's leftovers a
/// little longer; it never removes a live process's.
pub fn process_alive(pid: u32) -> bool {
    host::process_alive(pid)
}

/// A flag raised when the user or the service manager asks ois to stop (SIGINT and SIGTERM
/// on Unix; Ctrl+C, Ctrl+Break, console close and shutdown on Windows, and a Windows service's
/// stop control), so long work can stop at a safe point.
pub fn stop_flag() -> io::Result<Arc<AtomicBool>> {
    host::stop_flag()
}

/// The flag [`stop_flag`] returns, without installing the console handler: a Windows
/// service's stop control raises it (`ois service-host`).
#[cfg(not(unix))]
pub fn stop_requested() -> Arc<AtomicBool> {
    host::stop_requested()
}

/// Is this I/O error "the disk is full" (or a quota is exhausted)?
pub fn is_out_of_space(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || e.raw_os_error().is_some_and(host::is_out_of_space_code)
}

/// Frees nothing and writes nothing: flushes every filesystem's dirty data (benchmarks call
/// it between timed steps).
pub fn sync_all_filesystems() {
    host::sync_all_filesystems()
}

/// A servicing drive as a Windows administrator types it: a bare drive letter `D:` means the
/// root of that drive (`D:\`), not the current folder on D: that Windows would read. Any other
/// text is a path as given. Pure text, so the rule is the same (and tested) on every host.
pub fn drive_letter_root(text: &str) -> Option<PathBuf> {
    let b = text.as_bytes();
    (b.len() == 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
        .then(|| PathBuf::from(format!("{}:\\", b[0].to_ascii_uppercase() as char)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_drive_letter_means_the_root_of_that_drive() {
        assert_eq!(drive_letter_root("D:"), Some(PathBuf::from("D:\\")));
        assert_eq!(drive_letter_root("e:"), Some(PathBuf::from("E:\\")));
        assert_eq!(drive_letter_root("D:\\"), None);
        assert_eq!(drive_letter_root("/srv/stage"), None);
        assert_eq!(drive_letter_root("1:"), None);
    }

    #[test]
    fn space_and_volume_of_the_temp_folder_are_known() {
        let dir = tempfile::tempdir().expect("temp dir");
        let space = space(dir.path()).expect("space of the temp dir");
        assert!(space.total_bytes >= space.free_bytes && space.total_bytes > 0);
        let root = volume_root(dir.path()).expect("volume root");
        assert!(dir.path().canonicalize().unwrap().starts_with(&root));
        assert!(same_volume(dir.path(), &root));
    }

    #[test]
    fn replace_file_puts_the_new_bytes_under_the_old_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (old, new) = (dir.path().join("old.wim"), dir.path().join("new.wim"));
        std::fs::write(&old, b"old").unwrap();
        std::fs::write(&new, b"new").unwrap();
        replace_file(&new, &old).expect("replace");
        assert_eq!(std::fs::read(&old).unwrap(), b"new");
        assert!(!new.exists());
    }

    #[test]
    fn same_file_sees_a_hard_link_and_tells_two_files_apart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        std::fs::write(&a, b"x").unwrap();
        std::fs::hard_link(&a, &b).unwrap();
        std::fs::write(&c, b"x").unwrap();
        assert!(same_file(&a, &b));
        assert!(!same_file(&a, &c));
    }

    #[test]
    fn this_process_is_alive() {
        assert!(process_alive(std::process::id()));
    }

    #[test]
    fn read_exact_at_reads_at_the_offset() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let f = File::open(&path).unwrap();
        let mut buf = [0u8; 3];
        read_exact_at(&f, &mut buf, 4).unwrap();
        assert_eq!(&buf, b"456");
        assert!(read_exact_at(&f, &mut buf, 9).is_err());
    }
}
