//! The agent's calls to the site server's pull API (`/api/v1/pull/…`), with its API token.

use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::AgentError;
use crate::distribution::chunks::ChunkIndex;
use crate::distribution::pull::{Assignments, Report};
use crate::distribution::DpId;
use crate::image::ImageId;

pub struct SiteClient {
    base: String,
    token: String,
    http: Client,
}

#[derive(Serialize)]
struct Registration<'a> {
    nal_path: &'a str,
    url: &'a str,
    agent_version: &'a str,
}

impl SiteClient {
    pub fn new(site_url: &str, token: &str) -> Result<SiteClient, AgentError> {
        let http = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| AgentError::Site {
                what: "the HTTP client".into(),
                reason: e.to_string(),
            })?;
        Ok(SiteClient {
            base: format!("{}/api/v1/pull", site_url.trim_end_matches('/')),
            token: token.to_string(),
            http,
        })
    }

    fn send(
        &self,
        what: &str,
        request: reqwest::blocking::RequestBuilder,
    ) -> Result<Response, AgentError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .map_err(|e| AgentError::Site {
                what: what.to_string(),
                reason: e.to_string(),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // The site answers problems as JSON with what went wrong and what to do.
        let text = response.text().unwrap_or_default();
        let problem: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let detail = problem["detail"].as_str().unwrap_or(&text).to_string();
        let detail = match problem["hint"].as_str() {
            Some(hint) => format!("{detail} ({hint})"),
            None => detail,
        };
        Err(match status {
            StatusCode::GONE => AgentError::Gone(detail),
            _ => AgentError::Refused {
                what: what.to_string(),
                status: status.as_u16(),
                detail,
            },
        })
    }

    fn json<T: DeserializeOwned>(&self, what: &str, response: Response) -> Result<T, AgentError> {
        response.json().map_err(|e| AgentError::Site {
            what: what.to_string(),
            reason: format!("unreadable answer: {e}"),
        })
    }

    pub fn register(&self, nal_path: &str, url: &str) -> Result<DpId, AgentError> {
        let what = "registering with the site";
        let body = Registration {
            nal_path,
            url,
            agent_version: env!("CARGO_PKG_VERSION"),
        };
        let r = self.send(
            what,
            self.http
                .post(format!("{}/register", self.base))
                .json(&body),
        )?;
        let v: serde_json::Value = self.json(what, r)?;
        v["dp_id"]
            .as_i64()
            .map(DpId::new)
            .ok_or_else(|| AgentError::Site {
                what: what.into(),
                reason: "the answer has no dp_id".into(),
            })
    }

    pub fn assignments(&self, dp: DpId) -> Result<Assignments, AgentError> {
        let what = "asking the site for assignments";
        let r = self.send(
            what,
            self.http.get(format!("{}/{dp}/assignments", self.base)),
        )?;
        self.json(what, r)
    }

    fn version_url(&self, dp: DpId, image: ImageId, sha256: &str) -> String {
        format!("{}/{dp}/images/{image}/versions/{sha256}", self.base)
    }

    /// The version's chunk index, and its size on the wire.
    pub fn chunk_index(
        &self,
        dp: DpId,
        image: ImageId,
        sha256: &str,
    ) -> Result<(ChunkIndex, u64), AgentError> {
        let what = format!("fetching the chunk index of image {image} version {sha256}");
        let r = self.send(
            &what,
            self.http
                .get(format!("{}/chunks", self.version_url(dp, image, sha256))),
        )?;
        let bytes = r.bytes().map_err(|e| AgentError::Site {
            what: what.clone(),
            reason: e.to_string(),
        })?;
        let index = ChunkIndex::from_bytes(&bytes).ok_or_else(|| AgentError::Site {
            what,
            reason: "the answer is not a chunk index this agent reads".into(),
        })?;
        Ok((index, bytes.len() as u64))
    }

    /// Bytes `start..=end` of a version.
    pub fn range(
        &self,
        dp: DpId,
        image: ImageId,
        sha256: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, AgentError> {
        let what = format!("fetching bytes {start}-{end} of image {image} version {sha256}");
        let r = self.send(
            &what,
            self.http
                .get(format!("{}/content", self.version_url(dp, image, sha256)))
                .header(reqwest::header::RANGE, format!("bytes={start}-{end}")),
        )?;
        if r.status() != StatusCode::PARTIAL_CONTENT {
            return Err(AgentError::Site {
                what,
                reason: format!("expected 206 Partial Content, got {}", r.status()),
            });
        }
        let bytes = r.bytes().map_err(|e| AgentError::Site {
            what: what.clone(),
            reason: e.to_string(),
        })?;
        Ok(bytes.to_vec())
    }

    pub fn report(&self, dp: DpId, report: &Report) -> Result<(), AgentError> {
        self.send(
            "reporting to the site",
            self.http
                .post(format!("{}/{dp}/report", self.base))
                .json(report),
        )
        .map(|_| ())
    }
}
