//! Storage targets of DPs, all reached through OpenDAL: a target string picks the OpenDAL
//! service and its options; DP settings and secrets add to them. Adding a kind of storage
//! (S3-compatible, Azure Blob) means enabling the OpenDAL service (cargo features `s3`,
//! `azblob`) and a target string with its scheme; nothing else changes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use opendal::blocking::Operator;

use super::webdav::Uploader;

/// A parsed target: the OpenDAL scheme and the options the target string itself carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: &'static str,
    pub options: BTreeMap<String, String>,
}

/// Parses `PATH` or `file:///PATH` (a directory or mounted share), `http(s)://HOST[:PORT]/PATH`
/// (WebDAV), `s3://BUCKET/PREFIX` and `azblob://CONTAINER/PREFIX`.
pub fn parse(target: &str) -> Result<Target, String> {
    let t = target.trim();
    let mut options = BTreeMap::new();
    let (scheme, rest) = match t.split_once("://") {
        Some((s, rest)) => (s.to_ascii_lowercase(), rest),
        None => (String::new(), t),
    };
    let scheme = match scheme.as_str() {
        "" | "file" => {
            let path = if scheme.is_empty() { t } else { rest };
            if !Path::new(path).is_absolute() {
                return Err("a directory target must be an absolute path".into());
            }
            options.insert("root".into(), path.to_string());
            "fs"
        }
        "http" | "https" => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            if authority.is_empty() {
                return Err("the URL has no host".into());
            }
            if authority.contains('@') {
                return Err(
                    "credentials do not belong in the URL (it is shown in lists and logs): \
                     give them with --secret username=ENV --secret password=ENV"
                        .into(),
                );
            }
            options.insert("endpoint".into(), format!("{scheme}://{authority}"));
            options.insert("root".into(), format!("/{}", path.trim_matches('/')));
            "webdav"
        }
        "s3" | "azblob" => {
            let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("{scheme}:// needs a bucket or container name"));
            }
            let key = if scheme == "s3" {
                "bucket"
            } else {
                "container"
            };
            options.insert(key.into(), bucket.to_string());
            options.insert("root".into(), format!("/{}", path.trim_matches('/')));
            if scheme == "s3" {
                "s3"
            } else {
                "azblob"
            }
        }
        other => {
            return Err(format!(
            "unknown target scheme {other:?}: use a path, file://, http(s)://, s3:// or azblob://"
        ))
        }
    };
    Ok(Target { scheme, options })
}

/// Where a client finds `rel` on the target: a URL for WebDAV, a path for directories.
pub fn location(target: &str, rel: &str) -> String {
    let base = target.trim().trim_end_matches('/');
    let base = base.strip_prefix("file://").unwrap_or(base);
    format!("{base}/{rel}")
}

/// The runtime OpenDAL's async services run on. Private to this module: callers see a blocking
/// API and the rest of ois stays synchronous.
pub(super) fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            // Services and the HTTP transport are registered explicitly: the automatic
            // registration (a process constructor) is off to keep the dependency set small.
            opendal::install_default();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("ois-dp-io")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the I/O runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A DP's storage: the OpenDAL operator for everything, and for WebDAV the streaming PUT that
/// sends images (see [`super::webdav`]). Derefs to the operator.
pub struct Storage {
    op: Operator,
    uploader: Option<Uploader>,
}

impl Storage {
    /// How images are sent when OpenDAL's writer would hold them whole.
    pub(super) fn uploader(&self) -> Option<&Uploader> {
        self.uploader.as_ref()
    }
}

impl std::ops::Deref for Storage {
    type Target = Operator;
    fn deref(&self) -> &Operator {
        &self.op
    }
}

/// The storage of a target, with extra options (DP settings, then secrets: the later wins).
pub fn storage(
    target: &str,
    settings: &[(String, String)],
    secrets: &[(String, String)],
) -> Result<Storage, String> {
    let t = parse(target)?;
    let mut options = t.options;
    for (k, v) in settings.iter().chain(secrets) {
        options.insert(k.clone(), v.clone());
    }
    let uploader = if t.scheme == "webdav" {
        Some(Uploader::new(&options)?)
    } else {
        None
    };
    let op = operator_for(t.scheme, options)?;
    Ok(Storage { op, uploader })
}

/// A blocking OpenDAL operator for the target, with extra options (DP settings, then secrets:
/// the later wins).
pub fn operator(
    target: &str,
    settings: &[(String, String)],
    secrets: &[(String, String)],
) -> Result<Operator, String> {
    storage(target, settings, secrets).map(|s| s.op)
}

fn operator_for(
    scheme: &'static str,
    options: BTreeMap<String, String>,
) -> Result<Operator, String> {
    let rt = runtime()?;
    let op = opendal::Operator::via_iter(scheme, options).map_err(|e| {
        if e.kind() == opendal::ErrorKind::Unsupported {
            format!("{scheme} storage is not built into this ois (enable its cargo feature): {e}")
        } else {
            format!("cannot configure {scheme} storage: {e}")
        }
    })?;
    let _guard = rt.enter();
    Operator::new(op).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_map_to_services() {
        let fs = parse("/srv/dp01").expect("fs");
        assert_eq!(fs.scheme, "fs");
        assert_eq!(fs.options["root"], "/srv/dp01");
        assert_eq!(
            parse("file:///srv/dp01").expect("fs").options["root"],
            "/srv/dp01"
        );
        let dav = parse("http://127.0.0.1:8080/content/").expect("webdav");
        assert_eq!(dav.scheme, "webdav");
        assert_eq!(dav.options["endpoint"], "http://127.0.0.1:8080");
        assert_eq!(dav.options["root"], "/content");
        assert_eq!(parse("https://dp").expect("webdav").options["root"], "/");
        let s3 = parse("s3://bucket/ois").expect("s3");
        assert_eq!((s3.scheme, s3.options["bucket"].as_str()), ("s3", "bucket"));
    }

    #[test]
    fn rejects_bad_targets() {
        assert!(parse("relative/dir").is_err());
        assert!(parse("ftp://x").is_err());
        assert!(parse("http://user:pw@dp/")
            .expect_err("creds")
            .contains("--secret"));
        assert!(parse("http:///x").is_err());
    }
}
