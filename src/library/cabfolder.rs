//! Reading a CAB folder once, front to back. The `cab` crate's `read_file` decompresses a
//! folder from its start for every file, which is quadratic in the folder's size: a
//! cumulative update with thousands of files in one folder took minutes. Its folder reader is
//! private, so this presents the crate with the same cabinet whose file table is replaced by
//! one entry per folder spanning the whole folder, and streams that.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// One file of the original table: where it lies in its folder's uncompressed stream.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub folder: u16,
    pub offset: u64,
    pub size: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The cabinet's header area with its file table rewritten, and the original members.
struct Rewritten {
    head: Vec<u8>,
    members: Vec<Member>,
}

const FLAG_PREV: u16 = 1;
const FLAG_NEXT: u16 = 2;
const FLAG_RESERVE: u16 = 4;

/// Why a cabinet cannot be streamed: every such layout is refused, never read another way
/// (the crate's per-file reader would hold each entry whole and decompress each folder once
/// per file).
fn unsupported(what: &str) -> String {
    format!("its layout is not supported ({what}); rebuild it as one cabinet (gcab -c, makecab)")
}

fn rewrite(file: &mut File) -> Result<Rewritten, String> {
    let truncated = || unsupported("the header or file table is truncated");
    let mut fixed = [0u8; 36];
    file.read_exact(&mut fixed).map_err(|_| truncated())?;
    if &fixed[..4] != b"MSCF" {
        return Err("not a CAB file (no MSCF signature)".into());
    }
    let coff_files = u32_at(&fixed, 16).ok_or_else(truncated)? as usize;
    let folders = u16_at(&fixed, 26).ok_or_else(truncated)? as usize;
    let files = u16_at(&fixed, 28).ok_or_else(truncated)? as usize;
    let flags = u16_at(&fixed, 30).ok_or_else(truncated)?;
    if flags & (FLAG_PREV | FLAG_NEXT) != 0 {
        return Err(unsupported("one part of a multi-cabinet set"));
    }
    // The file table can hold names up to 256 bytes each: bound what is read.
    let head_len = files
        .checked_mul(16 + 257)
        .and_then(|t| coff_files.checked_add(t))
        .ok_or_else(truncated)?;
    let mut head = fixed.to_vec();
    head.resize(head_len.min(64 << 20), 0);
    let got = read_full(file, &mut head[36..]).map_err(|e| e.to_string())? + 36;
    head.truncate(got);
    let (folder_reserve, mut at) = if flags & FLAG_RESERVE != 0 {
        let header_reserve = u16_at(&head, 36).ok_or_else(truncated)? as usize;
        (
            *head.get(38).ok_or_else(truncated)? as usize,
            40 + header_reserve,
        )
    } else {
        (0, 36)
    };
    let folders_at = at;
    at += folders * (8 + folder_reserve);
    if at > coff_files {
        return Err(unsupported("the folder table overlaps the file table"));
    }
    let mut members = Vec::with_capacity(files);
    let mut at = coff_files;
    for _ in 0..files {
        let size = u64::from(u32_at(&head, at).ok_or_else(truncated)?);
        let offset = u64::from(u32_at(&head, at + 4).ok_or_else(truncated)?);
        let folder = u16_at(&head, at + 8).ok_or_else(truncated)?;
        let name_at = at + 16;
        let len = head
            .get(name_at..)
            .and_then(|rest| rest.iter().position(|&b| b == 0))
            .ok_or_else(truncated)?;
        let name = String::from_utf8_lossy(&head[name_at..name_at + len]).into_owned();
        if usize::from(folder) >= folders {
            // Continued-from/to markers (0xFFFD..) belong to multi-cabinet sets.
            return Err(unsupported(&format!(
                "entry {name:?} continues from or into another cabinet"
            )));
        }
        members.push(Member {
            name,
            folder,
            offset,
            size,
        });
        at = name_at + len + 1;
    }
    let table_end = at;
    // One entry per folder, named by its number, spanning the folder.
    let mut table = Vec::new();
    for k in 0..folders {
        let span = members
            .iter()
            .filter(|m| usize::from(m.folder) == k)
            .map(|m| m.offset + m.size)
            .max()
            .unwrap_or(0);
        let span = u32::try_from(span)
            .map_err(|_| unsupported(&format!("folder {k} is larger than 4 GiB")))?;
        table.extend_from_slice(&span.to_le_bytes());
        table.extend_from_slice(&0u32.to_le_bytes());
        table.extend_from_slice(&(k as u16).to_le_bytes());
        table.extend_from_slice(&[0x21, 0, 0, 0, 0, 0]);
        table.extend_from_slice(format!("{k}\0").as_bytes());
    }
    if coff_files + table.len() > table_end || folders_at > coff_files {
        return Err(unsupported("more folders than its file table can name"));
    }
    head.truncate(table_end);
    head[coff_files..coff_files + table.len()].copy_from_slice(&table);
    head[28..30].copy_from_slice(&(folders as u16).to_le_bytes());
    Ok(Rewritten { head, members })
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The cabinet as the crate sees it: the rewritten header area, then the original bytes.
struct Patched {
    head: Vec<u8>,
    file: BufReader<File>,
    pos: u64,
}

impl Read for Patched {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = if (self.pos as usize) < self.head.len() {
            let from = &self.head[self.pos as usize..];
            let n = from.len().min(buf.len());
            buf[..n].copy_from_slice(&from[..n]);
            n
        } else {
            self.file.seek(SeekFrom::Start(self.pos))?;
            self.file.read(buf)?
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Patched {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let end = self.file.seek(SeekFrom::End(0))?;
        let new = match pos {
            SeekFrom::Start(p) => p as i64,
            SeekFrom::Current(d) => self.pos as i64 + d,
            SeekFrom::End(d) => end as i64 + d,
        };
        if new < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before start",
            ));
        }
        self.pos = new as u64;
        Ok(self.pos)
    }
}

/// Streams the members of a cabinet folder by folder, each folder decompressed once. A layout
/// this reader cannot stream (multi-cabinet sets, tables it cannot rewrite) is an error, before
/// `each` is called for anything.
pub fn for_each(
    path: &Path,
    each: &mut dyn FnMut(&Member, &mut dyn Read) -> Result<(), String>,
) -> Result<(), String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let rewritten = rewrite(&mut file)?;
    let patched = Patched {
        head: rewritten.head,
        file: BufReader::with_capacity(1 << 16, file),
        pos: 0,
    };
    let mut cabinet = cab::Cabinet::new(patched).map_err(|e| e.to_string())?;
    let mut members = rewritten.members;
    members.sort_by_key(|m| (m.folder, m.offset));
    let mut k = 0;
    while k < members.len() {
        let folder = members[k].folder;
        let mut stream = cabinet
            .read_file(&folder.to_string())
            .map_err(|e| format!("CAB folder {folder}: {e}"))?;
        let mut pos = 0u64;
        while k < members.len() && members[k].folder == folder {
            let m = &members[k];
            if m.offset < pos {
                return Err(format!("CAB entry {:?} overlaps the one before it", m.name));
            }
            io::copy(&mut (&mut stream).take(m.offset - pos), &mut io::sink())
                .map_err(|e| format!("CAB folder {folder}: {e}"))?;
            let mut limited = (&mut stream).take(m.size);
            each(m, &mut limited)?;
            // Whatever the callback left unread is skipped, so the next offset lines up.
            io::copy(&mut limited, &mut io::sink()).map_err(|e| format!("{}: {e}", m.name))?;
            if limited.limit() != 0 {
                return Err(format!("CAB entry {:?} is truncated", m.name));
            }
            pos = m.offset + m.size;
            k += 1;
        }
    }
    Ok(())
}
