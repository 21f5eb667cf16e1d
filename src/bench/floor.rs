//! The floor: work no servicing tool can avoid. Copy the WIM once (read, write, fsync) and
//! compress the new payload once with the image's compression type.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use super::BenchError;
use crate::wim::{Compression, Progress, Wim};

pub fn run(
    wim: &Path,
    out: &Path,
    payload: &[&Path],
    compression: Compression,
) -> Result<(), BenchError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| BenchError::Io {
            path: p.clone(),
            source: e,
        }
    };
    let mut src = File::open(wim).map_err(io(wim))?;
    let mut dst = File::create(out).map_err(io(out))?;
    // A plain read/write loop: a reflink or in-kernel copy would not be the work a rebuild does.
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(wim)(e)),
        };
        dst.write_all(&buf[..n]).map_err(io(out))?;
    }
    dst.sync_all().map_err(io(out))?;
    drop(dst);
    if payload.is_empty() {
        return Ok(());
    }
    let packed = out.with_extension("payload.wim");
    let new = Wim::create(compression).map_err(|e| BenchError::Wim(e.to_string()))?;
    for (i, dir) in payload.iter().enumerate() {
        new.add_image(dir, &format!("payload {}", i + 1))
            .map_err(|e| BenchError::Wim(e.to_string()))?;
    }
    new.write(&packed, false, 0, &mut |_| Progress::Continue)
        .map_err(|e| BenchError::Wim(e.to_string()))
}
