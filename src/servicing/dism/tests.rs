//! The DISM servicer against transcripts of `dism.exe /English` (testdata/): command lines,
//! exit codes mapped to results, /Discard on failure and cancel, stale mount cleanup.

use std::cell::Cell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::*;

const SUCCESS: &str = include_str!("testdata/add_package_success.txt");
const RESTART: &str = include_str!("testdata/add_package_3010.txt");
const NEEDS_SSU: &str = include_str!("testdata/add_package_0x800f0823.txt");
const NOT_APPLICABLE: &str = include_str!("testdata/add_package_0x800f081e.txt");
const PACKAGES: &str = include_str!("testdata/get_packages.txt");
const MOUNTED: &str = include_str!("testdata/get_mounted_wim_info_stale.txt");
const UNMOUNT_FAILED: &str = include_str!("testdata/unmount_0xc1420117.txt");
const MOUNTED_OK: &str = include_str!("testdata/mount_success.txt");

const CU: &str = "Package_for_RollupFix~31bf3856ad364e35~amd64~~26100.2605.1.10";
const SSU: &str = "Package_for_ServicingStack_2600~31bf3856ad364e35~amd64~~26100.2600.1.1";

/// Replays one transcript per call, in order, and keeps every command line it was given.
struct Replay {
    answers: VecDeque<(u32, &'static str)>,
    seen: Vec<Vec<String>>,
}

impl Replay {
    fn new(answers: &[(u32, &'static str)]) -> Replay {
        Replay {
            answers: answers.iter().copied().collect(),
            seen: Vec::new(),
        }
    }

    /// The verb of each call (`/Mount-Image`, `/Add-Package`, …) and its mode flag.
    fn verbs(&self) -> Vec<String> {
        self.seen
            .iter()
            .map(|a| {
                a.iter()
                    .filter(|x| {
                        !x.contains(':') && *x != "/English" && *x != "/NoRestart"
                            || x.starts_with("/Commit")
                    })
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }
}

impl DismRunner for Replay {
    fn run(&mut self, args: &[String]) -> std::io::Result<DismOutput> {
        self.seen.push(args.to_vec());
        let (code, stdout) = self
            .answers
            .pop_front()
            .unwrap_or_else(|| panic!("no transcript left for {args:?}"));
        Ok(DismOutput {
            code,
            stdout: stdout.to_string(),
        })
    }
}

fn job(packages: &[(&str, &str)]) -> IndexJob {
    let root = r"D:\ConfigMgr_OfflineImageServicing\1a2b3c4d-run-7";
    IndexJob {
        image: PathBuf::from(format!(r"{root}\staged.wim")),
        index: 1,
        mount_dir: std::env::temp_dir().join("ois-dism-test-mount/1"),
        log: PathBuf::from(format!(r"{root}\dism.log")),
        packages: packages
            .iter()
            .map(|(id, p)| PackageToAdd::one(*id, *p))
            .collect(),
        remove_superseded: false,
        ssu_in_library: Some("KB5043080".into()),
    }
}

#[test]
fn a_plan_mounts_adds_in_order_lists_and_commits() {
    let mut dism = Replay::new(&[
        (0, MOUNTED_OK),
        (0, SUCCESS),
        (ADD_PACKAGE_RESTART_PENDING, RESTART),
        (0, PACKAGES),
        (0, ""),
    ]);
    let j = job(&[(SSU, r"D:\lib\ssu.cab"), (CU, r"D:\lib\cu\checkpoint")]);
    let result = service_index(&mut dism, &j, &|| false).expect("serviced");
    assert_eq!(
        result.packages,
        vec![
            PackageResult {
                identity: SSU.into(),
                outcome: DismOutcome::Success
            },
            PackageResult {
                identity: CU.into(),
                outcome: DismOutcome::RestartPending
            },
        ]
    );
    let mount = j.mount_dir.display().to_string();
    let log = r"/LogPath:D:\ConfigMgr_OfflineImageServicing\1a2b3c4d-run-7\dism.log";
    assert_eq!(
        dism.seen[0],
        vec![
            "/Mount-Image".to_string(),
            r"/ImageFile:D:\ConfigMgr_OfflineImageServicing\1a2b3c4d-run-7\staged.wim".into(),
            "/Index:1".into(),
            format!("/MountDir:{mount}"),
            "/English".into(),
            log.into(),
        ]
    );
    assert_eq!(
        dism.seen[1],
        vec![
            format!("/Image:{mount}"),
            "/Add-Package".into(),
            r"/PackagePath:D:\lib\ssu.cab".into(),
            "/English".into(),
            "/NoRestart".into(),
            log.into(),
        ]
    );
    assert_eq!(dism.seen[2][2], r"/PackagePath:D:\lib\cu\checkpoint");
    assert_eq!(
        dism.verbs(),
        vec![
            "/Mount-Image",
            "/Add-Package",
            "/Add-Package",
            "/Get-Packages",
            "/Unmount-Image /Commit"
        ]
    );
    let _ = std::fs::remove_dir_all(j.mount_dir.parent().unwrap());
}

#[test]
fn remove_superseded_runs_component_cleanup_before_unmounting() {
    let mut dism = Replay::new(&[
        (0, MOUNTED_OK),
        (0, SUCCESS),
        (0, ""),
        (0, PACKAGES),
        (0, ""),
    ]);
    let mut j = job(&[(CU, r"D:\lib\cu.msu")]);
    j.remove_superseded = true;
    service_index(&mut dism, &j, &|| false).expect("serviced");
    assert_eq!(
        dism.verbs()[2],
        "/Cleanup-Image /StartComponentCleanup /ResetBase"
    );
    assert_eq!(dism.verbs()[4], "/Unmount-Image /Commit");
}

#[test]
fn a_package_needing_a_newer_stack_discards_the_mount_and_names_the_library_ssu() {
    let mut dism = Replay::new(&[(0, MOUNTED_OK), (0x800f_0823, NEEDS_SSU), (0, "")]);
    let j = job(&[(CU, r"D:\lib\cu.msu"), (SSU, r"D:\lib\never.cab")]);
    let err = service_index(&mut dism, &j, &|| false).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("0x800f0823") && text.contains("KB5043080"),
        "{text}"
    );
    assert_eq!(
        dism.verbs(),
        vec!["/Mount-Image", "/Add-Package", "/Unmount-Image /Discard"]
    );
}

#[test]
fn a_package_not_applicable_is_said_so_and_discarded() {
    let mut dism = Replay::new(&[(0, MOUNTED_OK), (0x800f_081e, NOT_APPLICABLE), (0, "")]);
    let err = service_index(&mut dism, &job(&[(CU, r"D:\lib\cu.cab")]), &|| false).unwrap_err();
    assert!(matches!(
        err,
        DismError::Failed {
            outcome: DismOutcome::NotApplicable,
            ..
        }
    ));
    assert!(err.to_string().contains("does not apply to this image"));
    assert_eq!(dism.verbs().last().unwrap(), "/Unmount-Image /Discard");
}

#[test]
fn cancel_stops_between_packages_and_discards() {
    let mut dism = Replay::new(&[(0, MOUNTED_OK), (0, SUCCESS), (0, "")]);
    let calls = Cell::new(0);
    let canceled = || {
        calls.set(calls.get() + 1);
        calls.get() > 1
    };
    let j = job(&[(SSU, r"D:\lib\ssu.cab"), (CU, r"D:\lib\cu.cab")]);
    let err = service_index(&mut dism, &j, &canceled).unwrap_err();
    assert!(
        matches!(&err, DismError::Canceled { package, .. } if package == CU),
        "{err}"
    );
    assert_eq!(
        dism.verbs(),
        vec!["/Mount-Image", "/Add-Package", "/Unmount-Image /Discard"]
    );
}

#[test]
fn an_update_missing_from_the_package_list_fails_despite_exit_code_zero() {
    let other = "Package_for_KB5099999~31bf3856ad364e35~amd64~~26100.1.1.0";
    let mut dism = Replay::new(&[(0, MOUNTED_OK), (0, SUCCESS), (0, PACKAGES), (0, "")]);
    let err = service_index(&mut dism, &job(&[(other, r"D:\lib\x.cab")]), &|| false).unwrap_err();
    assert!(
        matches!(&err, DismError::NotInstalled { identity, .. } if identity == other),
        "{err}"
    );
    assert_eq!(dism.verbs().last().unwrap(), "/Unmount-Image /Discard");
}

#[test]
fn a_failed_commit_is_reported_as_an_unmount_failure() {
    let mut dism = Replay::new(&[
        (0, MOUNTED_OK),
        (0, SUCCESS),
        (0, PACKAGES),
        (0xc142_0117, UNMOUNT_FAILED),
    ]);
    let err = service_index(&mut dism, &job(&[(CU, r"D:\lib\cu.cab")]), &|| false).unwrap_err();
    assert!(matches!(
        err,
        DismError::Failed {
            outcome: DismOutcome::UnmountFailed,
            ..
        }
    ));
    assert!(err.to_string().contains("0xc1420117"));
}

#[test]
fn repair_discards_only_stale_mounts_under_the_staging_folder() {
    let mut dism = Replay::new(&[(0, MOUNTED), (0, ""), (0, "")]);
    let cleaned = clean_stale_mounts(
        &mut dism,
        Path::new(r"D:\ConfigMgr_OfflineImageServicing"),
        Path::new(r"D:\ConfigMgr_OfflineImageServicing\repair-dism.log"),
    )
    .expect("cleaned");
    assert_eq!(
        cleaned,
        vec![PathBuf::from(
            r"D:\ConfigMgr_OfflineImageServicing\1a2b3c4d-run-6\mount\1"
        )]
    );
    assert_eq!(
        dism.verbs(),
        vec![
            "/Get-MountedWimInfo",
            "/Unmount-Image /Discard",
            "/Cleanup-Wim"
        ]
    );
    assert_eq!(
        dism.seen[1][1],
        r"/MountDir:D:\ConfigMgr_OfflineImageServicing\1a2b3c4d-run-6\mount\1"
    );
}

#[test]
fn exit_codes_map_to_results() {
    assert_eq!(DismOutcome::from_code(0, None), DismOutcome::Success);
    assert!(DismOutcome::from_code(3010, None).installed());
    assert_eq!(
        DismOutcome::from_code(0x800f_081f, None),
        DismOutcome::SourceMissing
    );
    assert_eq!(
        DismOutcome::from_code(0x800f_0922, None),
        DismOutcome::InstallersFailed
    );
    assert_eq!(
        DismOutcome::from_code(0x800f_0823, None).to_string(),
        "the package needs a newer servicing stack (0x800f0823), and the library has none newer: import the servicing stack update the package's KB article names"
    );
    assert_eq!(
        DismOutcome::from_code(0x8007_0005, None).to_string(),
        "DISM ended with 0x80070005: see the DISM log copied into the run log"
    );
}

#[test]
fn listings_are_read_from_english_output() {
    let packages = installed_packages(PACKAGES);
    assert_eq!(packages.len(), 3);
    assert_eq!(packages[1].identity, CU);
    assert!(packages.iter().all(|p| p.is_installed()));
    let mounts = mounted_images(MOUNTED);
    assert_eq!(mounts.len(), 2);
    assert_eq!(mounts[0].index, 1);
    assert_eq!(mounts[0].status, "Needs Remount");
    assert_eq!(mounts[1].image_file, PathBuf::from(r"C:\Images\other.wim"));
}

const RUNS_1_AND_12: &str = "Mounted images:\n\nMount Dir : D:\\ConfigMgr_OfflineImageServicing\\1a2b3c4d-run-12\\mount\\1\nImage File : D:\\ConfigMgr_OfflineImageServicing\\1a2b3c4d-run-12\\staged.wim\nImage Index : 1\nMounted Read/Write : Yes\nStatus : Ok\n\nMount Dir : d:/configmgr_offlineimageservicing/1A2B3C4D-RUN-1/mount/2\nImage File : D:\\ConfigMgr_OfflineImageServicing\\1a2b3c4d-run-1\\staged.wim\nImage Index : 2\nMounted Read/Write : Yes\nStatus : Needs Remount\n\nThe operation completed successfully.\n";

/// A repair of run 1 must not discard run 12's mount, which may belong to a live run.
#[test]
fn stale_mount_cleanup_takes_only_mounts_inside_the_given_folder() {
    let mut dism = Replay::new(&[(0, RUNS_1_AND_12), (0, ""), (0, "")]);
    let cleaned = clean_stale_mounts(
        &mut dism,
        Path::new(r"D:\ConfigMgr_OfflineImageServicing\1a2b3c4d-run-1"),
        Path::new(r"D:\logs\run-1-repair-dism.log"),
    )
    .expect("cleaned");
    assert_eq!(
        cleaned,
        vec![PathBuf::from(
            "d:/configmgr_offlineimageservicing/1A2B3C4D-RUN-1/mount/2"
        )]
    );
    assert_eq!(
        dism.verbs(),
        vec![
            "/Get-MountedWimInfo",
            "/Unmount-Image /Discard",
            "/Cleanup-Wim"
        ]
    );
}
