//! ois: offline servicing of Windows images (WIM files).
//!
//! Data flows one way: the CLI (`cli`) asks the engine API (`commands`, where an operation
//! needs several modules) and the engine modules (`servicing`, `image`, `library`, `registry`,
//! `schedule`, `distribution`), which keep their state through `site` (given their tables as
//! [`SCHEMA`]) and touch WIM files through `wim`.

pub mod bench;
pub mod commands;
pub mod distribution;
pub mod fsutil;
pub mod hint;
pub mod id;
pub mod image;
pub mod library;
pub mod log;
pub mod media;
pub mod platform;
pub mod registry;
pub mod sample;
pub mod schedule;
pub mod server;
pub mod servicing;
pub mod site;
pub mod wim;

/// Every engine module's tables, registered at the top: the site's storage layer knows no
/// module above it, and a front end opens a site with this schema.
pub static SCHEMA: site::Schema = &[
    &library::MIGRATIONS,
    &image::MIGRATIONS,
    &servicing::MIGRATIONS,
    &schedule::MIGRATIONS,
    &distribution::MIGRATIONS,
    &media::MIGRATIONS,
    &server::MIGRATIONS,
];
