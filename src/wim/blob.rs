//! Reading one blob's bytes straight out of a WIM file, one chunk at a time, in each resource
//! layout wimlib reads (its src/resource.c):
//! - the original one: the chunk table (offsets of chunks 1.., relative to its end) first;
//! - the pipable one (`wimlib-imagex capture --pipable`): each chunk follows its 4-byte
//!   compressed size, and the chunk table comes last, its offsets not counting those sizes;
//! - solid resources (several blobs compressed together): a 16-byte header with the size,
//!   chunk size and compression of the resource, a table of every chunk's compressed size,
//!   then the chunks; a blob is a range of the decompressed resource.
//!
//! Memory is one chunk and one chunk table, whatever the blob's size.

use std::ffi::c_void;
use std::fs::File;
use std::path::Path;
use std::ptr::null_mut;

use wimlib_sys as sys;

use super::resource::Blob;
use super::{Compression, WimError};

/// Solid resources decompress a whole chunk to reach a blob; wimlib writes them with chunks of
/// up to 64 MiB, and a larger one is refused rather than allocated.
const MAX_SOLID_CHUNK: u32 = 1 << 26;
const PIPABLE_CHUNK_HEADER: u64 = 4;
const SOLID_HEADER: u64 = 16;

/// How the resources of one WIM file are laid out.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub compression: Option<Compression>,
    pub chunk_size: u32,
    pub pipable: bool,
}

/// A WIM file opened for reading blobs, with the decompressor its chunks need.
pub struct BlobReader<'a> {
    path: &'a Path,
    file: File,
    layout: Layout,
    decompressor: Option<(Compression, u32, *mut sys::wimlib_decompressor)>,
}

impl Drop for BlobReader<'_> {
    fn drop(&mut self) {
        if let Some((_, _, d)) = self.decompressor.take() {
            unsafe { sys::wimlib_free_decompressor(d) };
        }
    }
}

pub(super) fn corrupt(path: &Path, what: String) -> WimError {
    WimError {
        path: path.to_path_buf(),
        operation: "reading",
        code: sys::wimlib_error_code_WIMLIB_ERR_INVALID_RESOURCE_HASH as i32,
        message: what,
        details: Vec::new(),
    }
}

fn le(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(b)
}

fn compression_of(code: u32) -> Option<Compression> {
    match code {
        1 => Some(Compression::Xpress),
        2 => Some(Compression::Lzx),
        3 => Some(Compression::Lzms),
        _ => None,
    }
}

impl<'a> BlobReader<'a> {
    pub fn open(path: &'a Path, layout: Layout) -> Result<Self, WimError> {
        let file = File::open(path).map_err(|e| WimError::io(path, "reading", e))?;
        Ok(BlobReader {
            path,
            file,
            layout,
            decompressor: None,
        })
    }

    pub fn path(&self) -> &'a Path {
        self.path
    }

    fn read_at(&self, buf: &mut [u8], at: u64) -> Result<(), WimError> {
        crate::platform::read_exact_at(&self.file, buf, at)
            .map_err(|e| WimError::io(self.path, "reading", e))
    }

    fn bad(&self, b: &Blob, what: &str) -> WimError {
        corrupt(self.path, format!("blob {} {what}", hex(&b.sha1)))
    }

    /// Decompresses `packed` into `plain` (its whole length), or takes it as is when it did
    /// not compress (wimlib stores such chunks raw).
    fn decompress(
        &mut self,
        b: &Blob,
        compression: Compression,
        chunk_size: u32,
        packed: &[u8],
        plain: &mut [u8],
    ) -> Result<(), WimError> {
        if packed.len() == plain.len() {
            plain.copy_from_slice(packed);
            return Ok(());
        }
        if packed.is_empty() || packed.len() > plain.len() {
            return Err(self.bad(b, "has a bad chunk table"));
        }
        let reuse =
            matches!(self.decompressor, Some((c, s, _)) if c == compression && s == chunk_size);
        if !reuse {
            if let Some((_, _, d)) = self.decompressor.take() {
                unsafe { sys::wimlib_free_decompressor(d) };
            }
            let mut d = null_mut();
            // SAFETY: d receives an owned decompressor on success, freed on drop.
            let rc = unsafe {
                sys::wimlib_create_decompressor(compression.raw(), chunk_size as usize, &mut d)
            };
            if rc != 0 {
                return Err(WimError::new(self.path, "reading", rc));
            }
            self.decompressor = Some((compression, chunk_size, d));
        }
        let Some((_, _, d)) = self.decompressor else {
            return Err(self.bad(b, "has no decompressor"));
        };
        // SAFETY: both buffers are valid for the lengths given.
        let rc = unsafe {
            sys::wimlib_decompress(
                packed.as_ptr() as *const c_void,
                packed.len(),
                plain.as_mut_ptr() as *mut c_void,
                plain.len(),
                d,
            )
        };
        if rc != 0 {
            return Err(self.bad(b, "does not decompress"));
        }
        Ok(())
    }

    /// Passes the blob's bytes, in order, to `sink`.
    pub fn read(
        &mut self,
        b: &Blob,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), WimError>,
    ) -> Result<(), WimError> {
        if b.solid {
            self.read_solid(b, sink)
        } else if b.compressed {
            self.read_chunked(b, sink)
        } else {
            if b.stored_size != b.size {
                return Err(self.bad(b, "has a bad size"));
            }
            let mut buf = vec![0u8; (b.size.min(1 << 20)) as usize];
            let mut at = 0;
            while at < b.size {
                let n = (b.size - at).min(buf.len() as u64) as usize;
                self.read_at(&mut buf[..n], b.offset + at)?;
                sink(&buf[..n])?;
                at += n as u64;
            }
            Ok(())
        }
    }

    fn read_chunked(
        &mut self,
        b: &Blob,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), WimError>,
    ) -> Result<(), WimError> {
        let (Some(compression), chunk_size) = (self.layout.compression, self.layout.chunk_size)
        else {
            return Err(self.bad(b, "is compressed in a WIM without compression"));
        };
        let chunk = u64::from(chunk_size.max(1));
        let chunks = b.size.div_ceil(chunk);
        let entry: u64 = if b.size > u64::from(u32::MAX) { 8 } else { 4 };
        let table_len = chunks.saturating_sub(1) * entry;
        let headers = if self.layout.pipable {
            chunks * PIPABLE_CHUNK_HEADER
        } else {
            0
        };
        let data_len = b
            .stored_size
            .checked_sub(table_len + headers)
            .ok_or_else(|| self.bad(b, "has a bad chunk table"))?;
        let (table_at, data_at) = if self.layout.pipable {
            (b.offset + b.stored_size - table_len, b.offset)
        } else {
            (b.offset, b.offset + table_len)
        };
        let mut table = vec![0u8; table_len as usize];
        self.read_at(&mut table, table_at)?;
        let start_of = |i: u64| -> u64 {
            if i == 0 {
                0
            } else {
                let at = ((i - 1) * entry) as usize;
                le(&table[at..at + entry as usize])
            }
        };
        let mut packed = Vec::new();
        let mut plain = vec![0u8; chunk.min(b.size.max(1)) as usize];
        for i in 0..chunks {
            let from = start_of(i);
            let to = if i + 1 == chunks {
                data_len
            } else {
                start_of(i + 1)
            };
            let want = (b.size - i * chunk).min(chunk) as usize;
            if to <= from || to - from > want as u64 {
                return Err(self.bad(b, "has a bad chunk table"));
            }
            packed.resize((to - from) as usize, 0);
            // A pipable chunk sits after its own size and those of the chunks before it.
            let header = if self.layout.pipable {
                (i + 1) * PIPABLE_CHUNK_HEADER
            } else {
                0
            };
            self.read_at(&mut packed, data_at + header + from)?;
            self.decompress(b, compression, chunk_size, &packed, &mut plain[..want])?;
            sink(&plain[..want])?;
        }
        Ok(())
    }

    fn read_solid(
        &mut self,
        b: &Blob,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), WimError>,
    ) -> Result<(), WimError> {
        if b.size == 0 {
            return Ok(());
        }
        let mut header = [0u8; SOLID_HEADER as usize];
        self.read_at(&mut header, b.resource_offset)?;
        let resource_size = le(&header[0..8]);
        let chunk_size = le(&header[8..12]) as u32;
        let compression = compression_of(le(&header[12..16]) as u32);
        if !chunk_size.is_power_of_two() || chunk_size > MAX_SOLID_CHUNK {
            return Err(self.bad(
                b,
                &format!("is in a solid resource with unsupported chunks of {chunk_size} bytes"),
            ));
        }
        let chunk = u64::from(chunk_size);
        let end = b
            .offset
            .checked_add(b.size)
            .filter(|&e| e <= resource_size)
            .ok_or_else(|| self.bad(b, "lies outside its solid resource"))?;
        let chunks = resource_size.div_ceil(chunk);
        let (first, last) = (b.offset / chunk, (end - 1) / chunk);
        let mut table = vec![0u8; (chunks * 4) as usize];
        self.read_at(&mut table, b.resource_offset + SOLID_HEADER)?;
        let size_of = |i: u64| le(&table[(i * 4) as usize..(i * 4 + 4) as usize]);
        let data_at = b.resource_offset + SOLID_HEADER + chunks * 4;
        let mut at: u64 = (0..first).map(size_of).sum();
        if data_at + at > b.resource_offset + b.resource_stored_size {
            return Err(self.bad(b, "has a bad chunk table"));
        }
        let mut packed = Vec::new();
        let mut plain = vec![0u8; chunk_size as usize];
        for i in first..=last {
            let csize = size_of(i);
            let want = (resource_size - i * chunk).min(chunk) as usize;
            packed.resize(csize as usize, 0);
            self.read_at(&mut packed, data_at + at)?;
            at += csize;
            match compression {
                Some(c) => self.decompress(b, c, chunk_size, &packed, &mut plain[..want])?,
                None if packed.len() == want => plain[..want].copy_from_slice(&packed),
                None => return Err(self.bad(b, "has a bad chunk table")),
            }
            let chunk_start = i * chunk;
            let from = b.offset.max(chunk_start) - chunk_start;
            let to = end.min(chunk_start + want as u64) - chunk_start;
            sink(&plain[from as usize..to as usize])?;
        }
        Ok(())
    }
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
