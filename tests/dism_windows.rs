//! DISM on a real Windows host: mounts an index of a copy of `OIS_TEST_DISM_WIM`, adds
//! `OIS_TEST_DISM_PACKAGE` (a .cab or .msu that applies to it), reads the package list back and
//! commits. Runs only with `OIS_TEST_DISM=1` on Windows (as administrator); skipped, and said
//! so, everywhere else: no Windows host ran it for this change.

#[test]
fn dism_adds_a_package_to_a_mounted_index() {
    if std::env::var_os("OIS_TEST_DISM").is_none() {
        eprintln!("skipped: set OIS_TEST_DISM=1 (with OIS_TEST_DISM_WIM and OIS_TEST_DISM_PACKAGE) on a Windows host with DISM to run it");
        return;
    }
    if !cfg!(windows) {
        panic!("OIS_TEST_DISM=1 needs a Windows host with DISM");
    }
    let wim = std::env::var_os("OIS_TEST_DISM_WIM").expect("OIS_TEST_DISM_WIM names a WIM");
    let package =
        std::env::var_os("OIS_TEST_DISM_PACKAGE").expect("OIS_TEST_DISM_PACKAGE names a package");
    let identity = std::env::var("OIS_TEST_DISM_IDENTITY")
        .expect("OIS_TEST_DISM_IDENTITY: the package identity DISM will list");
    let dir = tempfile::tempdir().expect("tempdir");
    let staged = dir.path().join("staged.wim");
    std::fs::copy(&wim, &staged).expect("copy the WIM");
    let job = ois::servicing::dism::IndexJob {
        image: staged.clone(),
        index: 1,
        mount_dir: dir.path().join("mount").join("1"),
        log: dir.path().join("dism.log"),
        packages: vec![ois::servicing::dism::PackageToAdd::one(
            identity.clone(),
            package,
        )],
        remove_superseded: false,
        ssu_in_library: None,
    };
    let result =
        ois::servicing::dism::service_index(&mut ois::servicing::dism::DismExe, &job, &|| false)
            .expect("DISM serviced the index");
    assert_eq!(result.packages[0].identity, identity);
    assert!(result.packages[0].outcome.installed());
    assert!(std::fs::metadata(&staged).expect("staged").len() > 0);
}
