//! The engine API's errors carry their next step as a typed hint, not as an `ois` command in
//! the message; the CLI renders the hint as the command line to run, so its stderr reads as
//! before.

mod common;

use common::{nal, TestSite};
use ois::hint::Hint;

/// The full error line of a failed command.
fn error_line(site: &TestSite, args: &[&str]) -> String {
    let run = site.ois(args).failed();
    run.stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in {:?}", run.stderr))
        .to_string()
}

#[test]
fn the_cli_renders_each_hint_as_the_command_to_run() {
    let site = TestSite::new();
    assert_eq!(
        error_line(&site, &["image", "show", "nosuch"]),
        "error: no image \"nosuch\" in the catalog: see `ois image list`"
    );
    assert_eq!(
        error_line(&site, &["dp", "show", &nal("DP01.contoso.com")]),
        format!(
            "error: no distribution point {}: see `ois dp list`",
            nal("DP01.contoso.com")
        )
    );
    let target = site.path("dp01");
    std::fs::create_dir_all(&target).expect("mkdir");
    let add = [
        "dp",
        "add",
        &nal("DP01.contoso.com"),
        "--target",
        target.to_str().expect("utf8"),
    ];
    site.ois(&add).ok();
    assert_eq!(
        error_line(&site, &add),
        format!(
            "error: distribution point {} already exists: change it with `ois dp set`",
            nal("DP01.contoso.com")
        )
    );
    site.ois(&["dp", "set-maintenance-mode", &nal("DP01.contoso.com"), "1"])
        .ok();
    assert_eq!(
        error_line(
            &site,
            &["dp", "set", &nal("DP01.contoso.com"), "--description", "x"]
        ),
        format!(
            "error: distribution point {} is in maintenance mode: its properties are read-only; \
             disable maintenance mode first (`ois dp set-maintenance-mode NALPATH 0`)",
            nal("DP01.contoso.com")
        )
    );

    let nowhere = TestSite::uninitialised();
    assert_eq!(
        error_line(&nowhere, &["image", "list"]),
        format!(
            "error: no site at {}: create one with `ois --site {} site init`",
            nowhere.root().display(),
            nowhere.root().display()
        )
    );
}

#[test]
fn an_unknown_update_is_named_and_the_hint_says_find_or_import_it() {
    let (site, _, _) = TestSite::with_golden_image();
    assert_eq!(
        error_line(&site, &["service", "golden", "--updates", "KB404"]),
        "error: cannot service image golden: update KB404 is not in the content library: \
         see `ois update list`, or import it with `ois update import`"
    );
    assert_eq!(
        error_line(&site, &["update", "show", "KB404"]),
        "error: update KB404 is not in the content library: \
         see `ois update list`, or import it with `ois update import`"
    );
}

/// The engine's messages say what and why; the command line is the CLI's business.
#[test]
fn engine_messages_name_no_ois_command_and_their_hints_say_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-site");
    let Err(error) = ois::site::Site::open(&missing, ois::SCHEMA) else {
        panic!("a site opened at {}", missing.display());
    };
    assert!(!error.to_string().contains("ois "), "{error}");
    assert_eq!(
        error.hint(),
        Some(Hint::InitSite {
            root: missing.clone()
        })
    );
    let hint = serde_json::to_value(error.hint()).expect("json");
    assert_eq!(hint["hint"], "init_site");
    assert_eq!(hint["root"], missing.display().to_string());
    assert_eq!(
        Hint::DisableMaintenanceMode { dp: "DP01".into() }.describe(),
        "Disable maintenance mode on DP01 first."
    );
}
