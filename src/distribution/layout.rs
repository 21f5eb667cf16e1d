//! Where content lives on a DP, and how a DP's content moves to a newer layout when the site
//! is upgraded.
//!
//! Layout 1: `ois/images/<image-id>/<sha256>.wim`.
//! Layout 2 (current): the same, plus `<sha256>.wim.sha256` beside each WIM (a `sha256sum`
//! line, so a client or an admin can check a download without the site database) and the
//! marker `ois/layout` holding the layout number.

use crate::image::ImageId;
use opendal::blocking::Operator;

pub const LAYOUT_VERSION: u32 = 2;
pub const MARKER: &str = "ois/layout";

pub fn image_dir(image_id: ImageId) -> String {
    format!("ois/images/{image_id}/")
}

pub fn content_path(image_id: ImageId, sha256: &str) -> String {
    format!("ois/images/{image_id}/{sha256}.wim")
}

/// A name clients never ask for: the dot hides it from listings of most servers, and the
/// suffix is never `.wim`. One per version, so a retry overwrites what a failed try left.
pub fn partial_path(image_id: ImageId, sha256: &str) -> String {
    format!("ois/images/{image_id}/.{sha256}.wim.partial")
}

pub fn sidecar_path(image_id: ImageId, sha256: &str) -> String {
    format!("{}.sha256", content_path(image_id, sha256))
}

pub fn write_sidecar(op: &Operator, image_id: ImageId, sha256: &str) -> opendal::Result<()> {
    op.write(
        &sidecar_path(image_id, sha256),
        format!("{sha256}  {sha256}.wim\n").into_bytes(),
    )?;
    Ok(())
}

pub fn write_marker(op: &Operator) -> opendal::Result<()> {
    op.write(MARKER, format!("{LAYOUT_VERSION}\n").into_bytes())?;
    Ok(())
}

/// Brings a DP from layout `from` to the current one. `installed` lists the versions the site
/// database says the DP holds: `(image id, sha256)`.
pub fn migrate(op: &Operator, from: u32, installed: &[(ImageId, String)]) -> opendal::Result<()> {
    if from < 2 {
        for (image_id, sha256) in installed {
            write_sidecar(op, *image_id, sha256)?;
        }
    }
    write_marker(op)
}
