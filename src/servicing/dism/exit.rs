//! DISM's exit codes, as results an administrator can act on.

use std::fmt;

/// `ERROR_SUCCESS_REBOOT_REQUIRED`: installed, with actions pending until first boot.
pub const ADD_PACKAGE_RESTART_PENDING: u32 = 3010;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DismOutcome {
    Success,
    /// 3010: installed; actions run at the image's first boot.
    RestartPending,
    /// 0x800f0823: the package needs a newer servicing stack than the image has.
    NeedsNewerServicingStack {
        /// The servicing stack update in the library that would satisfy it, if ois has one.
        in_library: Option<String>,
    },
    /// 0x800f081f: source files missing (for a checkpoint update: a base not in the folder).
    SourceMissing,
    /// 0x800f081e: the package does not apply to this image.
    NotApplicable,
    /// 0x800f0922: an installer in the package failed.
    InstallersFailed,
    /// 0xc1420117: the mount folder could not be unmounted (files open in it).
    UnmountFailed,
    Other(u32),
}

impl DismOutcome {
    /// Maps an exit code; `ssu_in_library` names the library's servicing stack update, offered
    /// when DISM asks for a newer one.
    pub fn from_code(code: u32, ssu_in_library: Option<&str>) -> DismOutcome {
        match code {
            0 => DismOutcome::Success,
            ADD_PACKAGE_RESTART_PENDING => DismOutcome::RestartPending,
            0x800f_0823 => DismOutcome::NeedsNewerServicingStack {
                in_library: ssu_in_library.map(str::to_string),
            },
            0x800f_081f => DismOutcome::SourceMissing,
            0x800f_081e => DismOutcome::NotApplicable,
            0x800f_0922 => DismOutcome::InstallersFailed,
            0xc142_0117 => DismOutcome::UnmountFailed,
            other => DismOutcome::Other(other),
        }
    }

    /// Did the package go in (possibly with first-boot actions pending)?
    pub fn installed(&self) -> bool {
        matches!(self, DismOutcome::Success | DismOutcome::RestartPending)
    }
}

impl fmt::Display for DismOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DismOutcome::Success => f.write_str("installed"),
            DismOutcome::RestartPending => f.write_str(
                "installed, restart pending (3010): the rest completes at the image's first boot",
            ),
            DismOutcome::NeedsNewerServicingStack { in_library: Some(ssu) } => write!(
                f,
                "the package needs a newer servicing stack (0x800f0823): install {ssu} from the library first (select it too; the plan puts it first)"
            ),
            DismOutcome::NeedsNewerServicingStack { in_library: None } => f.write_str(
                "the package needs a newer servicing stack (0x800f0823), and the library has none newer: import the servicing stack update the package's KB article names",
            ),
            DismOutcome::SourceMissing => f.write_str(
                "source files are missing (0x800f081f): for a checkpoint cumulative update, import the checkpoint update it is based on so both are added from one folder",
            ),
            DismOutcome::NotApplicable => f.write_str(
                "the package does not apply to this image (0x800f081e): check the edition, architecture and build, or leave the package out",
            ),
            DismOutcome::InstallersFailed => f.write_str(
                "an installer in the package failed (0x800f0922): see the DISM log copied into the run log",
            ),
            DismOutcome::UnmountFailed => f.write_str(
                "DISM could not unmount the image (0xc1420117): a program holds files in the mount folder; close it (Explorer, antivirus), then repair provisioning mode, which cleans stale mounts",
            ),
            DismOutcome::Other(code) => {
                write!(f, "DISM ended with 0x{code:08x}: see the DISM log copied into the run log")
            }
        }
    }
}
