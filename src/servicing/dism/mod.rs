//! The DISM servicer: Windows (CBS) packages installed by Windows' own servicing stack into a
//! mounted index, on a Windows host. ois keeps everything around it (plan, provisioning mode,
//! rebuild, verification, atomic replace); DISM only mounts, adds packages and unmounts.
//!
//! DISM runs behind [`DismRunner`], so the sequence, the command lines and the mapping of exit
//! codes and output are tested against transcripts in `testdata/`. Those transcripts follow
//! `dism.exe /English`'s documented output; they were not captured on a Windows host, and
//! DISM servicing has not been run on real Windows.
//!
//! A run reaches it through `in_run` when its plan holds Windows packages and its servicers
//! (`servicer::Servicers`) have DISM: on a Windows host with `dism.exe`, or a test's runner.

mod commands;
mod exit;
pub(crate) mod in_run;
mod output;
mod session;

pub use commands::{DismCommand, UnmountMode};
pub use exit::{DismOutcome, ADD_PACKAGE_RESTART_PENDING};
pub use output::{installed_packages, mounted_images, InstalledPackage, MountedImage};
pub use session::{
    clean_stale_mounts, service_index, IndexJob, IndexResult, PackageResult, PackageToAdd,
};

use std::path::{Path, PathBuf};

/// What one `dism.exe` invocation gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DismOutput {
    /// The process exit code (an HRESULT such as 0x800f0823 for most failures).
    pub code: u32,
    pub stdout: String,
}

/// Runs `dism.exe` with arguments; the real runner spawns it, tests replay transcripts.
pub trait DismRunner {
    fn run(&mut self, args: &[String]) -> std::io::Result<DismOutput>;
}

/// `%WINDIR%\System32\dism.exe`, run with its output captured.
pub struct DismExe;

impl DismExe {
    pub fn path() -> PathBuf {
        let windir = std::env::var_os("WINDIR").unwrap_or_else(|| "C:\\Windows".into());
        Path::new(&windir).join("System32").join("dism.exe")
    }
}

impl DismRunner for DismExe {
    fn run(&mut self, args: &[String]) -> std::io::Result<DismOutput> {
        let out = std::process::Command::new(Self::path())
            .args(args)
            .output()?;
        Ok(DismOutput {
            // Windows exit codes are 32-bit; std gives them as i32.
            code: out.status.code().unwrap_or(-1) as u32,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DismError {
    #[error("cannot start dism.exe for {doing}: {source}; is this a Windows host with DISM (Windows 10 or later)?")]
    Start {
        doing: String,
        source: std::io::Error,
    },
    #[error("{doing} failed: {outcome}")]
    Failed { doing: String, outcome: DismOutcome },
    #[error("servicing index {index} was canceled before {package}; the mount was discarded and the image is unchanged")]
    Canceled { index: u32, package: String },
    #[error("DISM reported {identity} installed in index {index}, but the mounted image's package list does not have it; the mount was discarded")]
    NotInstalled { index: u32, identity: String },
}

#[cfg(test)]
mod tests;
