//! `ois quickstart`: a sample image and packages on the site, serviced end to end.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::commands::{print_outcome, service_images, CliError};
use ois::commands::{self, ImportedImage, UpdateQuery};
use ois::image::ImageKind;
use ois::library::PackageKind;
use ois::servicing::{self, RunStatus, Selection, ServiceOptions};
use ois::site::Site;
use ois::wim::{TreeEntry, Wim};

fn other<E: std::fmt::Display>(e: E) -> CliError {
    CliError::Other(e.to_string())
}

fn listing(path: &Path) -> Result<Vec<BTreeMap<String, TreeEntry>>, CliError> {
    let wim = Wim::open(path, false).map_err(other)?;
    (1..=wim.header().image_count)
        .map(|i| {
            let entries = wim.list(i, "/", true).map_err(other)?;
            Ok(entries
                .into_iter()
                .filter(|e| !e.is_dir && !e.path.is_empty())
                .map(|e| (e.path.to_lowercase(), e))
                .collect())
        })
        .collect()
}

pub fn run(site_dir: &Path) -> Result<u8, CliError> {
    let site = Site::open(site_dir, ois::SCHEMA)?;
    let n = commands::list_images(&site)?.len() + 1;
    let work = site.root().join("samples").join(format!("quickstart-{n}"));
    std::fs::create_dir_all(&work).map_err(other)?;
    let wim_path = work.join("install.wim");
    let scratch = tempfile::tempdir().map_err(other)?;

    println!(
        "1. Creating a sample image with two indexes: {}",
        wim_path.display()
    );
    ois::sample::golden_image(scratch.path(), &wim_path).map_err(other)?;
    let name = format!("Windows 11 sample {n}");
    let ImportedImage {
        image: img,
        indexes,
        ..
    } = commands::import_image(&site, &wim_path, ImageKind::OsImage, Some(&name))?;
    for i in &indexes {
        let installed: Vec<&str> = i.installed.iter().map(|u| u.id.as_str()).collect();
        println!(
            "   index {}: {} ({}), installed: {}",
            i.info.index,
            i.info.name,
            i.info.edition.clone().unwrap_or_default(),
            installed.join(" ")
        );
    }

    println!("2. Importing sample update packages into the content library");
    let packages = ois::sample::sample_packages(&work.join("packages")).map_err(other)?;
    for o in commands::import_updates(&site, &packages)? {
        println!("   {:<10} {}", o.id, o.title);
    }

    println!("3. Applicable updates for {}", img.name);
    let applicable = commands::applicable_updates(&site, &img.name, &UpdateQuery::default())?;
    for u in applicable.iter().filter(|u| u.kind() == PackageKind::File) {
        println!("   {:<10} {}", u.id(), u.title());
    }

    println!("4. Servicing every index with all applicable updates");
    let before = listing(&wim_path)?;
    let options = ServiceOptions {
        selection: Selection::AllApplicable(servicing::KindFilter::File),
        continue_on_error: false,
        jobs: 1,
        cancel: Arc::new(AtomicBool::new(false)),
    };
    let outcomes = service_images(
        &site,
        std::slice::from_ref(&img.name),
        &options,
        false,
        true,
    )?;
    for o in &outcomes {
        print_outcome(&o.outcome);
    }
    let ok = outcomes
        .iter()
        .all(|o| o.outcome.status == RunStatus::Successful);
    if !ok {
        return Ok(1);
    }

    println!("5. What changed in each index");
    let after = listing(&wim_path)?;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        println!("   index {}:", i + 1);
        for (key, e) in a {
            match b.get(key) {
                None => println!("     + {}", e.path),
                Some(old) if old.sha1 != e.sha1 => println!("     ~ {}", e.path),
                _ => {}
            }
        }
        for (key, e) in b {
            if !a.contains_key(key) {
                println!("     - {}", e.path);
            }
        }
    }
    println!(
        "\nSee `ois --site {} image show \"{}\"` for the record.",
        site_dir.display(),
        img.name
    );
    Ok(0)
}
