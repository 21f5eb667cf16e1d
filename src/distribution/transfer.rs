//! One image version to one DP: write under a temporary name, hash what landed, move it into
//! place. A client asking for the final name sees the old version or the whole new one,
//! never part of it.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use opendal::blocking::Operator;

use super::target::Storage;
use sha2::{Digest, Sha256};

use super::layout;
use crate::fsutil::hex;
use crate::image::ImageId;

/// Chunk size for uploads and hashing: large enough for throughput, small enough that a
/// streaming service does not hold much in memory.
const CHUNK: usize = 8 << 20;

/// Why a transfer failed, and whether trying again at once may help: a refused login or a
/// changed source file will not get better within seconds; a dropped connection may.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub retry: bool,
}

impl Failure {
    fn storage(context: String, e: opendal::Error) -> Failure {
        use opendal::ErrorKind as K;
        Failure {
            retry: !matches!(
                e.kind(),
                K::PermissionDenied
                    | K::ConfigInvalid
                    | K::Unsupported
                    | K::IsADirectory
                    | K::NotADirectory
            ),
            message: format!("{context}: {e}"),
        }
    }

    fn io(context: String, e: std::io::Error) -> Failure {
        Failure {
            retry: true,
            message: format!("{context}: {e}"),
        }
    }

    pub(super) fn permanent(message: String) -> Failure {
        Failure {
            retry: false,
            message,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The bytes went over the wire.
    Sent(u64),
    /// The DP already held identical content under the final name.
    AlreadyThere,
}

/// SHA-256 and length of a file on the target.
pub fn hash_remote(op: &Operator, path: &str) -> Result<(String, u64), Failure> {
    let reader = op
        .reader(path)
        .and_then(|r| r.into_std_read(..))
        .map_err(|e| Failure::storage(format!("cannot read {path}"), e))?;
    hash_reader(reader).map_err(|e| Failure::io(format!("cannot read {path}"), e))
}

fn hash_reader(mut reader: impl Read) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

/// Sends `local` (whose catalog SHA-256 is `sha256`) to the DP behind `op`.
pub fn send(
    op: &Storage,
    local: &Path,
    image_id: ImageId,
    sha256: &str,
    size: u64,
    tracker: &super::progress::Tracker,
) -> Result<Sent, Failure> {
    let final_path = layout::content_path(image_id, sha256);
    // Content put there by an earlier run whose record was lost, or copied by hand: hashing it
    // costs a read, sending it again costs a write of the same bytes and a read.
    if op
        .stat(&final_path)
        .is_ok_and(|m| m.content_length() == size)
        && hash_remote(op, &final_path).is_ok_and(|(h, _)| h == sha256)
    {
        layout::write_sidecar(op, image_id, sha256)
            .map_err(|e| Failure::storage("cannot write the checksum file".into(), e))?;
        return Ok(Sent::AlreadyThere);
    }
    let partial = layout::partial_path(image_id, sha256);
    let local_hash = upload(op, local, &partial, tracker)?;
    if local_hash != sha256 {
        let _ = op.delete(&partial);
        return Err(Failure::permanent(format!(
            "{} changed since the catalog recorded it (SHA-256 {local_hash}, catalog {sha256}): \
             it was not distributed",
            local.display()
        )));
    }
    let (landed, landed_size) = hash_remote(op, &partial)?;
    if landed != sha256 || landed_size != size {
        let _ = op.delete(&partial);
        return Err(Failure::io(
            "verification".into(),
            std::io::Error::other(format!(
            "what landed on the DP differs from the image: SHA-256 {landed} ({landed_size} bytes), \
             expected {sha256} ({size} bytes)"
        )),
        ));
    }
    op.rename(&partial, &final_path)
        .map_err(|e| Failure::storage(format!("cannot move {partial} to {final_path}"), e))?;
    layout::write_sidecar(op, image_id, sha256)
        .map_err(|e| Failure::storage("cannot write the checksum file".into(), e))?;
    layout::write_marker(op)
        .map_err(|e| Failure::storage(format!("cannot write {}", layout::MARKER), e))?;
    Ok(Sent::Sent(size))
}

/// Sends the local file to `dest` in chunks, returning the SHA-256 of what was read. WebDAV
/// gets one streaming PUT; other services take the chunks through OpenDAL's writer.
fn upload(
    op: &Storage,
    local: &Path,
    dest: &str,
    tracker: &super::progress::Tracker,
) -> Result<String, Failure> {
    let mut file = File::open(local)
        .map_err(|e| Failure::permanent(format!("cannot open {}: {e}", local.display())))?;
    let write_err = |e| Failure::storage(format!("cannot write {dest}"), e);
    let read_err = |e| Failure::io(format!("cannot read {}", local.display()), e);
    if let Some(uploader) = op.uploader() {
        // A PUT does not create folders on most servers: MKCOL them first, as OpenDAL would.
        let folder = dest.rsplit_once('/').map_or("", |(d, _)| d);
        if !folder.is_empty() {
            op.create_dir(&format!("{folder}/"))
                .map_err(|e| Failure::storage(format!("cannot create the folder {folder}"), e))?;
        }
        let size = file.metadata().map_err(read_err)?.len();
        return uploader.put_file(&mut file, size, dest, tracker);
    }
    let mut hasher = Sha256::new();
    let mut writer = op.writer(dest).map_err(write_err)?;
    let mut sent = 0u64;
    tracker.set(0);
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = read_full(&mut file, &mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        hasher.update(&buf);
        writer.write(buf).map_err(write_err)?;
        sent += n as u64;
        tracker.set(sent);
    }
    writer.close().map_err(write_err)?;
    Ok(hex(&hasher.finalize()))
}

pub(super) fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Removes a version's files from the DP; files already gone are fine.
pub fn remove_version(op: &Operator, image_id: ImageId, sha256: &str) -> Result<(), String> {
    for path in [
        layout::content_path(image_id, sha256),
        layout::sidecar_path(image_id, sha256),
        layout::partial_path(image_id, sha256),
    ] {
        match op.delete(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot delete {path}: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use sha2::{Digest, Sha256};

    use super::*;
    use crate::distribution::{progress, target};

    /// The site server streams this: a transfer of several chunks is listed with the bytes
    /// sent so far, all of them once it landed, and no longer once its tracker is gone.
    #[test]
    fn a_transfer_reports_the_bytes_it_has_sent() {
        let dir = tempfile::tempdir().expect("temp dir");
        let local = dir.path().join("install.wim");
        let data: Vec<u8> = (0..CHUNK * 2 + 4096).map(|i| (i % 251) as u8).collect();
        std::fs::File::create(&local)
            .and_then(|mut f| f.write_all(&data))
            .expect("write the image");
        let sha256 = hex(&Sha256::digest(&data));
        let dp = dir.path().join("dp");
        let op = target::storage(&dp.display().to_string(), &[], &[]).expect("fs storage");
        let size = data.len() as u64;
        let tracker = progress::start("transfer-progress-test", "dp1", size);
        let sent = send(
            &op,
            &local,
            "7".parse().expect("id"),
            &sha256,
            size,
            &tracker,
        )
        .expect("send");
        assert!(matches!(sent, Sent::Sent(n) if n == size));
        let mine = |t: &progress::ActiveTransfer| t.image == "transfer-progress-test";
        let listed: Vec<_> = progress::active().into_iter().filter(mine).collect();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].sent, listed[0].total), (size, size));
        drop(tracker);
        assert!(!progress::active().iter().any(mine));
    }
}
