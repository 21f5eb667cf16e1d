//! The files of a media folder: listing them with their hashes, finding Setup's files without
//! regard to case, and laying out a new media beside the original.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::fsutil::hash_file;

/// One file of a media, by its path relative to the media root (`/`-separated, as on disk).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MediaFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// Every regular file under `root`, sorted by path, with its size and SHA-256. Symbolic links
/// are refused: a media is copied into an ISO and onto DPs, where a link would point elsewhere.
pub fn record(root: &Path) -> io::Result<Vec<MediaFile>> {
    let mut files = Vec::new();
    walk(root, root, &mut |rel, path| {
        let (sha256, size) = hash_file(path)?;
        files.push(MediaFile {
            path: rel.to_string(),
            size,
            sha256,
        });
        Ok(())
    })?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn walk(
    root: &Path,
    dir: &Path,
    each: &mut dyn FnMut(&str, &Path) -> io::Result<()>,
) -> io::Result<()> {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(root, &path, each)?;
        } else if kind.is_file() {
            let rel = relative(root, &path)?;
            each(&rel, &path)?;
        } else {
            return Err(io::Error::other(format!(
                "{} is not a regular file or folder (a link?): a media holds only files",
                path.display()
            )));
        }
    }
    Ok(())
}

fn relative(root: &Path, path: &Path) -> io::Result<String> {
    let rel = path.strip_prefix(root).map_err(|_| {
        io::Error::other(format!("{} is outside {}", path.display(), root.display()))
    })?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Ok(parts.join("/"))
}

/// The path of `rel` (`/`-separated) under `root`, matching each component without regard to
/// case: some ISOs hold `SOURCES/INSTALL.WIM`.
pub fn find(root: &Path, rel: &str) -> Option<PathBuf> {
    let mut at = root.to_path_buf();
    for part in rel.split('/') {
        let exact = at.join(part);
        if exact.exists() {
            at = exact;
            continue;
        }
        let found = fs::read_dir(&at).ok()?.filter_map(Result::ok).find(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(part))
        })?;
        at = found.path();
    }
    Some(at)
}

/// A relative path from a Setup Dynamic Update CAB, made safe to join under a folder: `\` is a
/// separator, and `..`, roots and drive prefixes are refused.
pub fn safe_relative(name: &str) -> Option<PathBuf> {
    let name = name.replace('\\', "/");
    let path = Path::new(&name);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) if !p.to_string_lossy().contains(':') => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Lays out `to` as a copy of `from`: hard links where the filesystem allows (the new media is
/// written beside the original, so a multi-GiB install.wim is not copied), else copies. Every
/// later change to `to` replaces a file by rename, never writes into one, so the original's
/// files keep their bytes.
pub fn link_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(from)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            link_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            link_or_copy(&entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Puts `from`'s bytes at `to` (which must not exist): a hard link, or a copy across
/// filesystems.
pub fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => fs::copy(from, to).map(|_| ()),
    }
}

/// Replaces `to` with `from`'s bytes by writing beside it and renaming, so a hard-linked
/// original is never written through.
pub fn replace_with(from: &Path, to: &Path) -> io::Result<()> {
    let parent = to.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent)?;
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.ois-media.tmp"));
    let _ = fs::remove_file(&tmp);
    link_or_copy(from, &tmp)?;
    fs::rename(&tmp, to).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Swaps two folders (see [`crate::platform::exchange_dirs`]): on Linux in one step, so readers
/// see the old media or the new one, never a mix or nothing.
pub fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    crate::platform::exchange_dirs(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setup_update_path_cannot_leave_the_sources_folder() {
        assert_eq!(safe_relative("setup.dll"), Some(PathBuf::from("setup.dll")));
        assert_eq!(
            safe_relative("en-us\\setup.exe.mui"),
            Some(PathBuf::from("en-us/setup.exe.mui"))
        );
        assert_eq!(safe_relative("..\\boot\\x"), None);
        assert_eq!(safe_relative("/etc/passwd"), None);
        assert_eq!(safe_relative("C:\\x"), None);
        assert_eq!(safe_relative(""), None);
    }

    /// The new media shares the original's files by hard links: replacing one in the new
    /// folder must leave the original's bytes, and the swap exchanges whole folders.
    #[test]
    fn a_new_media_laid_out_beside_leaves_the_original_until_the_swap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let original = dir.path().join("media");
        let new = dir.path().join(".media.ois-new");
        fs::create_dir_all(original.join("sources")).expect("mkdir");
        fs::write(original.join("sources/install.wim"), b"old wim").expect("write");
        fs::write(original.join("setup.exe"), b"setup").expect("write");
        link_tree(&original, &new).expect("link");
        let serviced = dir.path().join("serviced.wim");
        fs::write(&serviced, b"new wim").expect("write");
        replace_with(&serviced, &new.join("sources/install.wim")).expect("replace");
        assert_eq!(
            fs::read(original.join("sources/install.wim")).expect("read"),
            b"old wim"
        );
        exchange(&new, &original).expect("exchange");
        assert_eq!(
            fs::read(original.join("sources/install.wim")).expect("read"),
            b"new wim"
        );
        assert_eq!(
            fs::read(new.join("sources/install.wim")).expect("read"),
            b"old wim"
        );
        assert_eq!(
            fs::read(original.join("setup.exe")).expect("read"),
            b"setup"
        );
    }

    #[test]
    fn setup_files_are_found_whatever_their_case() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("SOURCES")).expect("mkdir");
        fs::write(dir.path().join("SOURCES/INSTALL.WIM"), b"x").expect("write");
        assert_eq!(
            find(dir.path(), "sources/install.wim"),
            Some(dir.path().join("SOURCES/INSTALL.WIM"))
        );
        assert_eq!(find(dir.path(), "sources/boot.wim"), None);
    }
}
