//! What to do about an error, as data: the engine says *what* went wrong and *why* in the
//! error's message, and names the next step here; each front end renders it in its own terms
//! (the CLI as the `ois` command line to run, the console as a button or a link).

use std::path::PathBuf;

use serde::Serialize;

/// The next step an admin can take after an error. Images are named by their catalog name,
/// distribution points by their NAL path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "hint", rename_all = "snake_case")]
pub enum Hint {
    /// Look the image up in the catalog.
    ListImages,
    /// Look the image up in the catalog, or register this file under another name.
    ListImagesOrRename,
    /// Register the file under another name.
    RenameImage,
    /// Look at the image: its run, its provisioning mode.
    ShowImage { image: String },
    /// Cancel the image's run that is still alive, or wait for it to end.
    CancelRun { image: String },
    /// Take the image out of provisioning mode (the repair after a run that died).
    LeaveProvisioningMode { image: String },
    /// Look the update up in the content library, or import it.
    FindOrImportUpdate { update: String },
    /// Import the update named in the message into the content library.
    ImportUpdate,
    /// Look the distribution point up.
    ListDps,
    /// Change the existing distribution point's properties instead of adding it again.
    ChangeDp { dp: String },
    /// Disable the distribution point's maintenance mode, then change it.
    DisableMaintenanceMode { dp: String },
    /// Create the site.
    InitSite { root: PathBuf },
    /// Create a new site in another directory.
    NewSite,
}

impl Hint {
    /// The step in words that suit any front end (an API client, a tooltip).
    pub fn describe(&self) -> String {
        match self {
            Hint::ListImages => "See the images in the catalog.".into(),
            Hint::ListImagesOrRename => {
                "See the images in the catalog, or register the file under another name.".into()
            }
            Hint::RenameImage => "Register the file under another name.".into(),
            Hint::ShowImage { image } => format!("See image {image}."),
            Hint::CancelRun { image } => {
                format!("Cancel the run of image {image}, or wait for it to end.")
            }
            Hint::LeaveProvisioningMode { image } => {
                format!("Take image {image} out of provisioning mode (repair it).")
            }
            Hint::FindOrImportUpdate { update } => {
                format!("See the updates in the content library, or import {update}.")
            }
            Hint::ImportUpdate => "Import the update into the content library.".into(),
            Hint::ListDps => "See the distribution points.".into(),
            Hint::ChangeDp { dp } => format!("Change the properties of {dp} instead."),
            Hint::DisableMaintenanceMode { dp } => {
                format!("Disable maintenance mode on {dp} first.")
            }
            Hint::InitSite { root } => format!("Create a site at {}.", root.display()),
            Hint::NewSite => "Create a new site in another directory.".into(),
        }
    }
}
