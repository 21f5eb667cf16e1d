//! `ois service-host` (the scheduler or the site server as a Windows service): what a Linux
//! host answers, and arguments checked before they would go into a service's command line.
//! Installing and starting the service was tried by hand under Wine only (see the report of
//! this change); it was never run on real Windows.

mod common;

use common::TestSite;

#[test]
fn service_host_on_linux_points_to_the_init_system() {
    if cfg!(windows) {
        return;
    }
    let site = TestSite::new();
    let run = site
        .ois(&["service-host", "install", "--command", "scheduler"])
        .failed();
    assert!(
        run.stderr
            .contains("Windows services exist only on Windows, and this host runs linux")
            && run.stderr.contains("systemd"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_service_command_line_with_bad_arguments_is_refused_before_it_is_installed() {
    let site = TestSite::new();
    let run = site
        .ois(&[
            "service-host",
            "install",
            "--command",
            "serve",
            "--",
            "--listen",
            "not-an-address",
        ])
        .failed();
    assert!(
        run.stderr.contains("service-host serve") && run.stderr.contains("--listen"),
        "{}",
        run.stderr
    );
}
