//! Uploads to WebDAV DPs with a streaming request body. OpenDAL's WebDAV writer sends a file in
//! one PUT whose body it collects in memory first, and an install.wim is several GB going to
//! several DPs at once; so the PUT of an image goes through reqwest (the HTTP client OpenDAL
//! itself uses) with the file read chunk by chunk as the connection takes it. Everything else
//! on a WebDAV DP (MKCOL, PROPFIND, GET, MOVE, DELETE) still goes through OpenDAL.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::OnceLock;

use reqwest::header::CONTENT_LENGTH;
use reqwest::{StatusCode, Url};
use sha2::{Digest, Sha256};

use super::progress::Tracker;
use super::transfer::{read_full, Failure};
use crate::fsutil::hex;

/// Bytes per chunk of the request body.
const CHUNK: usize = 8 << 20;
/// Chunks read ahead of the connection. With the chunk being read and the one being written
/// to the socket, a transfer holds at most (QUEUE + 2) × CHUNK = 32 MiB of the image.
const QUEUE: usize = 2;

/// The PUT side of one WebDAV DP, configured from the same options as its OpenDAL operator.
pub struct Uploader {
    endpoint: Url,
    root: String,
    credentials: Credentials,
}

/// How OpenDAL's WebDAV service authenticates, given the same options: a token wins over a
/// username; a username without a password sends an empty one.
enum Credentials {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

/// One client for every upload of the process: it holds the TLS configuration (reqwest's
/// defaults, as OpenDAL's transport uses them) and the connection pool.
fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .build()
                .map_err(|e| format!("cannot set up the HTTP client for WebDAV uploads: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

impl Uploader {
    /// From the OpenDAL options of a WebDAV target: `endpoint`, `root`, `username`,
    /// `password`, `token`.
    pub fn new(options: &BTreeMap<String, String>) -> Result<Uploader, String> {
        let endpoint = options
            .get("endpoint")
            .ok_or("a WebDAV target needs an endpoint")?;
        let endpoint =
            Url::parse(endpoint).map_err(|e| format!("invalid WebDAV endpoint {endpoint}: {e}"))?;
        if endpoint.cannot_be_a_base() {
            return Err(format!(
                "invalid WebDAV endpoint {endpoint}: it has no path"
            ));
        }
        let credentials = match (
            options.get("token"),
            options.get("username"),
            options.get("password"),
        ) {
            (Some(token), _, _) => Credentials::Bearer(token.clone()),
            (None, Some(username), password) => Credentials::Basic {
                username: username.clone(),
                password: password.cloned().unwrap_or_default(),
            },
            (None, None, _) => Credentials::None,
        };
        Ok(Uploader {
            endpoint,
            root: options.get("root").cloned().unwrap_or_default(),
            credentials,
        })
    }

    /// The URL of `path` (relative to the target's root), each segment percent-encoded.
    fn url(&self, path: &str) -> Url {
        let mut url = self.endpoint.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            for s in self.root.split('/').chain(path.split('/')) {
                if !s.is_empty() {
                    segments.push(s);
                }
            }
        }
        url
    }

    /// PUTs `size` bytes of `file` to `dest`, reading it as the connection takes it, and
    /// returns the SHA-256 of what was read. `dest`'s folder must exist.
    pub fn put_file(
        &self,
        file: &mut File,
        size: u64,
        dest: &str,
        tracker: &Tracker,
    ) -> Result<String, Failure> {
        let rt = super::target::runtime().map_err(Failure::permanent)?;
        let url = self.url(dest);
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(QUEUE);
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        // The length is known: servers that refuse chunked uploads (IIS) take it, and one that
        // ends short or long is an error rather than a smaller file.
        let mut request = client()
            .map_err(Failure::permanent)?
            .put(url)
            .header(CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(body));
        request = match &self.credentials {
            Credentials::None => request,
            Credentials::Basic { username, password } => {
                request.basic_auth(username, Some(password))
            }
            Credentials::Bearer(token) => request.bearer_auth(token),
        };
        let response = rt.spawn(async move {
            let response = request.send().await?;
            Ok::<_, reqwest::Error>(response.status())
        });

        let mut hasher = Sha256::new();
        let mut sent = 0u64;
        tracker.set(0);
        let mut ended_early = false;
        let read_error = loop {
            let mut chunk = vec![0u8; CHUNK];
            match read_full(file, &mut chunk) {
                Ok(0) => break None,
                Ok(n) => {
                    chunk.truncate(n);
                    hasher.update(&chunk);
                    // A closed queue means the request ended early: its result says why.
                    if tx.blocking_send(Ok(chunk)).is_err() {
                        ended_early = true;
                        break None;
                    }
                    sent += n as u64;
                    tracker.set(sent);
                }
                Err(e) => {
                    let message = e.to_string();
                    // Aborts the request: the server must not keep a short file as complete.
                    let _ = tx.blocking_send(Err(e));
                    break Some(message);
                }
            }
        };
        drop(tx);
        let outcome = rt.block_on(response);
        if let Some(e) = read_error {
            return Err(Failure {
                message: format!("cannot read the image for {dest}: {e}"),
                retry: true,
            });
        }
        let status = outcome
            .map_err(|e| Failure::permanent(format!("the upload of {dest} stopped: {e}")))?
            .map_err(|e| Failure {
                message: format!("cannot send {dest}: {}", error_chain(&e)),
                retry: !e.is_builder(),
            })?;
        if !status.is_success() {
            return Err(refused(dest, status));
        }
        if ended_early {
            return Err(Failure {
                message: format!(
                    "the DP answered HTTP {status} to the upload of {dest} before it had all of it"
                ),
                retry: true,
            });
        }
        Ok(hex(&hasher.finalize()))
    }
}

/// reqwest's message and its causes ("error sending request …: connection refused").
fn error_chain(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// A PUT the server answered with an error status. Server errors and throttling may pass
/// within seconds; a refused login, a missing permission or a full disk will not.
fn refused(dest: &str, status: StatusCode) -> Failure {
    let hint = match status {
        StatusCode::UNAUTHORIZED => {
            ": check the DP's credentials (--secret username=ENV --secret password=ENV)"
        }
        StatusCode::FORBIDDEN => ": the account may not write there",
        StatusCode::INSUFFICIENT_STORAGE => ": the DP's disk is full",
        StatusCode::PAYLOAD_TOO_LARGE => ": raise the server's upload size limit",
        _ => "",
    };
    Failure {
        message: format!("the DP refused the upload of {dest}: HTTP {status}{hint}"),
        retry: status.is_server_error()
            && status != StatusCode::INSUFFICIENT_STORAGE
            && status != StatusCode::NOT_IMPLEMENTED
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn urls_join_the_root_and_encode_each_segment() {
        let up = Uploader::new(&options(&[
            ("endpoint", "http://dp:8080"),
            ("root", "/content share/"),
        ]))
        .expect("uploader");
        assert_eq!(
            up.url("ois/images/3/.ab.wim.partial").as_str(),
            "http://dp:8080/content%20share/ois/images/3/.ab.wim.partial"
        );
        let nextcloud = Uploader::new(&options(&[
            ("endpoint", "https://cloud/remote.php/webdav/"),
            ("root", "/"),
        ]))
        .expect("uploader");
        assert_eq!(
            nextcloud.url("ois/layout").as_str(),
            "https://cloud/remote.php/webdav/ois/layout"
        );
    }

    #[test]
    fn a_token_wins_over_a_username_as_in_opendal() {
        let up = Uploader::new(&options(&[
            ("endpoint", "http://dp"),
            ("username", "u"),
            ("token", "t"),
        ]))
        .expect("uploader");
        assert!(matches!(up.credentials, Credentials::Bearer(ref t) if t == "t"));
        let up = Uploader::new(&options(&[("endpoint", "http://dp"), ("username", "u")]))
            .expect("uploader");
        assert!(
            matches!(up.credentials, Credentials::Basic { ref username, ref password } if username == "u" && password.is_empty())
        );
    }

    #[test]
    fn only_passing_refusals_are_retried() {
        assert!(refused("x", StatusCode::SERVICE_UNAVAILABLE).retry);
        assert!(refused("x", StatusCode::TOO_MANY_REQUESTS).retry);
        assert!(!refused("x", StatusCode::UNAUTHORIZED).retry);
        assert!(!refused("x", StatusCode::INSUFFICIENT_STORAGE).retry);
        assert!(refused("x", StatusCode::UNAUTHORIZED)
            .message
            .contains("--secret"));
    }
}
