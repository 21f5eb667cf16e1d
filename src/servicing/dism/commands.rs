//! The `dism.exe` command lines ois runs, always with `/English` (parseable output) and
//! `/LogPath` in the run's folder (copied into the run log afterwards).

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnmountMode {
    Commit,
    Discard,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DismCommand {
    Mount {
        image: PathBuf,
        index: u32,
        mount_dir: PathBuf,
    },
    /// One package: a `.cab` or `.msu` (its `.psf` beside it), or a folder holding a
    /// checkpoint cumulative update with every base it needs.
    AddPackage {
        mount_dir: PathBuf,
        package: PathBuf,
    },
    /// "Remove superseded updates": `/StartComponentCleanup /ResetBase`.
    Cleanup {
        mount_dir: PathBuf,
    },
    GetPackages {
        mount_dir: PathBuf,
    },
    Unmount {
        mount_dir: PathBuf,
        mode: UnmountMode,
    },
    GetMountedWimInfo,
    CleanupWim,
}

fn arg(name: &str, path: &Path) -> String {
    format!("/{name}:{}", path.display())
}

impl DismCommand {
    /// The arguments after `dism.exe`, logging to `log`.
    pub fn args(&self, log: &Path) -> Vec<String> {
        let mut a: Vec<String> = match self {
            DismCommand::Mount {
                image,
                index,
                mount_dir,
            } => vec![
                "/Mount-Image".into(),
                arg("ImageFile", image),
                format!("/Index:{index}"),
                arg("MountDir", mount_dir),
            ],
            DismCommand::AddPackage { mount_dir, package } => vec![
                arg("Image", mount_dir),
                "/Add-Package".into(),
                arg("PackagePath", package),
            ],
            DismCommand::Cleanup { mount_dir } => vec![
                arg("Image", mount_dir),
                "/Cleanup-Image".into(),
                "/StartComponentCleanup".into(),
                "/ResetBase".into(),
            ],
            DismCommand::GetPackages { mount_dir } => {
                vec![arg("Image", mount_dir), "/Get-Packages".into()]
            }
            DismCommand::Unmount { mount_dir, mode } => vec![
                "/Unmount-Image".into(),
                arg("MountDir", mount_dir),
                match mode {
                    UnmountMode::Commit => "/Commit".into(),
                    UnmountMode::Discard => "/Discard".into(),
                },
            ],
            DismCommand::GetMountedWimInfo => vec!["/Get-MountedWimInfo".into()],
            DismCommand::CleanupWim => vec!["/Cleanup-Wim".into()],
        };
        a.extend(["/English".into(), "/NoRestart".into(), arg("LogPath", log)]);
        // /NoRestart is for servicing commands only; the others reject it.
        if matches!(
            self,
            DismCommand::GetMountedWimInfo
                | DismCommand::CleanupWim
                | DismCommand::Mount { .. }
                | DismCommand::Unmount { .. }
                | DismCommand::GetPackages { .. }
        ) {
            a.retain(|x| x != "/NoRestart");
        }
        a
    }

    /// What the command does, for messages.
    pub fn describe(&self) -> String {
        match self {
            DismCommand::Mount { image, index, .. } => {
                format!("mounting index {index} of {}", image.display())
            }
            DismCommand::AddPackage { package, .. } => {
                format!("adding package {}", package.display())
            }
            DismCommand::Cleanup { .. } => "removing superseded components".into(),
            DismCommand::GetPackages { .. } => "listing the mounted image's packages".into(),
            DismCommand::Unmount { mode, .. } => match mode {
                UnmountMode::Commit => "unmounting and committing".into(),
                UnmountMode::Discard => "unmounting and discarding".into(),
            },
            DismCommand::GetMountedWimInfo => "listing mounted images".into(),
            DismCommand::CleanupWim => "cleaning up stale mounts".into(),
        }
    }
}
