//! Small filesystem helpers shared by the modules: hashing while copying, durable renames.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies `reader` to `writer` and returns the SHA-256 and length of what went through.
pub fn copy_hashing(
    reader: &mut dyn Read,
    writer: &mut dyn Write,
) -> std::io::Result<(String, u64)> {
    thread_local! {
        // One buffer per thread: allocating (and zeroing) 1 MiB per call cost more than the
        // copy itself when staging thousands of small payload files.
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 1 << 20]);
    }
    BUF.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => copy_with(reader, writer, &mut buf),
        // Re-entered from inside a reader or writer: use a buffer of its own.
        Err(_) => copy_with(reader, writer, &mut vec![0u8; 1 << 20]),
    })
}

fn copy_with(
    reader: &mut dyn Read,
    writer: &mut dyn Write,
    buf: &mut [u8],
) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        writer.write_all(&buf[..n])?;
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

/// SHA-256 and size of a file.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    copy_hashing(&mut File::open(path)?, &mut std::io::sink())
}

/// Makes a rename or a new entry in `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    crate::platform::sync_dir(dir)
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Does a process with this id exist on this host? (A reused id keeps its scratch a little
/// longer; it never removes a live process's.)
pub fn process_alive(pid: u32) -> bool {
    crate::platform::process_alive(pid)
}
