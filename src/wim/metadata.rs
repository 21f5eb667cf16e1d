//! The directory entries an image's metadata resource stores, counted as stored, to compare
//! with the tree wimlib built from it. wimlib skips, with only a printed warning, entries it
//! will not load (its src/dentry.c: unnamed ones, `.` and `..`, names holding a NUL, a second
//! entry of the same name in a directory, the children of a file) and writes the image back
//! without them. Comparing counts catches each of those, and any case a later wimlib adds,
//! without depending on the wording of its messages.
//!
//! Layout (wimlib src/dentry.c, src/security.c): the security data first, its length (u32,
//! rounded up to 8, 0 meaning 8) leading; the root's entry right after it. Each entry: u64
//! length (rounded up to 8; 8 or less ends a directory's list), u64 offset of its children's
//! list at 0x10, u16 count of extra stream entries at 0x60, u16 name length in bytes at 0x64,
//! the UTF-16LE name at 0x66; then its extra stream entries, each with its own u64 length.

const SUBDIR_OFFSET: usize = 0x10;
const EXTRA_STREAMS: usize = 0x60;
const NAME_NBYTES: usize = 0x64;
const NAME: usize = 0x66;
const EXTRA_STREAM_MIN: u64 = 38;
/// wimlib refuses deeper trees as cyclic ("Directory structure too deep").
const MAX_DEPTH: usize = 16384;

/// What the metadata stores, up to a limit.
pub(super) struct Stored {
    /// Entries reached, the root included; stops just past the limit.
    pub entries: u64,
    /// Their paths from the root (no leading `/`, the root itself empty), when asked for.
    pub paths: Vec<String>,
    /// Where the stored tree could not be followed (in parts wimlib did not read).
    pub unreadable: Vec<String>,
}

struct Entry {
    name: String,
    children: u64,
    next: u64,
}

fn align8(n: u64) -> u64 {
    n.saturating_add(7) & !7
}

fn u64_at(m: &[u8], at: u64) -> Option<u64> {
    let at = usize::try_from(at).ok()?;
    Some(u64::from_le_bytes(
        m.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn u16_at(m: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(m.get(at..at + 2)?.try_into().ok()?))
}

/// The entry at `offset`; Ok(None) at the end of a directory's list; Err when it does not
/// parse.
fn entry_at(m: &[u8], offset: u64) -> Result<Option<Entry>, ()> {
    let length = align8(u64_at(m, offset).ok_or(())?);
    if length <= 8 {
        return Ok(None);
    }
    let end = offset.checked_add(length).ok_or(())?;
    if length < NAME as u64 || end > m.len() as u64 {
        return Err(());
    }
    let base = offset as usize;
    let entry = &m[base..end as usize];
    let children = u64_at(entry, SUBDIR_OFFSET as u64).ok_or(())?;
    let streams = u16_at(entry, EXTRA_STREAMS).ok_or(())?;
    let name_len = usize::from(u16_at(entry, NAME_NBYTES).ok_or(())?);
    let name_bytes = entry.get(NAME..NAME + name_len).ok_or(())?;
    let units: Vec<u16> = name_bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    // A NUL inside a name is one of the things wimlib drops; show it rather than cut there.
    let name = String::from_utf16_lossy(&units).replace('\0', "\\0");
    let mut next = end;
    for _ in 0..streams {
        let len = align8(u64_at(m, next).ok_or(())?);
        if len < EXTRA_STREAM_MIN || next.checked_add(len).is_none_or(|e| e > m.len() as u64) {
            return Err(());
        }
        next += len;
    }
    Ok(Some(Entry {
        name,
        children,
        next,
    }))
}

/// Walks every entry the metadata resource `m` stores, following each one's list of children
/// whatever its attributes, until more than `limit` entries are found.
pub(super) fn stored_entries(m: &[u8], limit: u64, with_paths: bool) -> Stored {
    let mut out = Stored {
        entries: 0,
        paths: Vec::new(),
        unreadable: Vec::new(),
    };
    let security = u64::from(u32::from_le_bytes(
        m.get(0..4)
            .and_then(|b| b.try_into().ok())
            .unwrap_or_default(),
    ));
    let root_at = match align8(security) {
        0 => 8,
        n => n,
    };
    let root = match entry_at(m, root_at) {
        Ok(Some(root)) => root,
        Ok(None) => return out,
        Err(()) => {
            out.unreadable.push("/".into());
            return out;
        }
    };
    out.entries = 1;
    if with_paths {
        out.paths.push(String::new());
    }
    let mut dirs: Vec<(u64, usize, String)> = Vec::new();
    if root.children != 0 {
        dirs.push((root.children, 0, String::new()));
    }
    while let Some((mut at, depth, dir)) = dirs.pop() {
        if depth >= MAX_DEPTH {
            out.unreadable.push(dir);
            continue;
        }
        loop {
            let e = match entry_at(m, at) {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(()) => {
                    out.unreadable.push(dir.clone());
                    break;
                }
            };
            out.entries += 1;
            if out.entries > limit {
                return out;
            }
            let path = if dir.is_empty() {
                e.name
            } else {
                format!("{dir}/{}", e.name)
            };
            if e.children != 0 {
                dirs.push((e.children, depth + 1, path.clone()));
            }
            if with_paths {
                out.paths.push(path);
            }
            at = e.next;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry named `name` with children at `children` (0 for none), 8-byte aligned.
    fn entry(name: &str, children: u64) -> Vec<u8> {
        let units: Vec<u8> = name.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let len = align8((NAME + units.len() + if units.is_empty() { 0 } else { 2 }) as u64);
        let mut e = vec![0u8; len as usize];
        e[0..8].copy_from_slice(&len.to_le_bytes());
        e[SUBDIR_OFFSET..SUBDIR_OFFSET + 8].copy_from_slice(&children.to_le_bytes());
        e[NAME_NBYTES..NAME_NBYTES + 2].copy_from_slice(&(units.len() as u16).to_le_bytes());
        e[NAME..NAME + units.len()].copy_from_slice(&units);
        e
    }

    /// Security data of 8 bytes, a root whose children are `a`, `a` again and `..`, and `..`'s
    /// children list pointing back at the root's.
    fn metadata() -> Vec<u8> {
        let mut m = vec![8u8, 0, 0, 0, 0, 0, 0, 0];
        let root_len = entry("", 0).len() as u64;
        let children = 8 + root_len + 8;
        m.extend(entry("", children));
        m.extend([0u8; 8]);
        m.extend(entry("a", 0));
        m.extend(entry("a", 0));
        m.extend(entry("..", children));
        m.extend([0u8; 8]);
        m
    }

    #[test]
    fn every_stored_entry_is_counted_and_cycles_stop_at_the_limit() {
        let m = metadata();
        let s = stored_entries(&m, 10, true);
        // The `..` entry leads back to the root's list, so the walk only stops at the limit.
        assert_eq!(s.entries, 11);
        assert_eq!(&s.paths[..4], ["", "a", "a", ".."]);
        assert!(s.unreadable.is_empty());
    }

    #[test]
    fn a_damaged_entry_is_reported_not_followed() {
        let mut m = metadata();
        let len = m.len();
        // The last entry claims more bytes than the resource has.
        m.truncate(len - 8);
        let at = m.len() - entry("..", 0).len();
        m[at..at + 8].copy_from_slice(&4096u64.to_le_bytes());
        let s = stored_entries(&m, 100, false);
        assert_eq!(s.entries, 3);
        assert_eq!(s.unreadable, [""]);
    }
}
