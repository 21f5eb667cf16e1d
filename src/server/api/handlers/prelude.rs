//! The imports the handler files share.

pub(super) use std::collections::BTreeMap;
pub(super) use std::convert::Infallible;
pub(super) use std::path::PathBuf;
pub(super) use std::time::Duration;

pub(super) use axum::extract::{Path, State};
pub(super) use axum::http::{header, HeaderMap, StatusCode};
pub(super) use axum::response::sse::{Event, KeepAlive, Sse};
pub(super) use axum::response::{IntoResponse, Response};
pub(super) use axum::Extension;
pub(super) use futures_util::stream::Stream;
pub(super) use serde::Deserialize;
pub(super) use utoipa::ToSchema;

pub(super) use super::super::{change, json, read, Body, Params};
pub(super) use super::{id_of, UpdateQuery};
pub(super) use crate::commands::When;
pub(super) use crate::distribution::{DpId, DpProperties};
pub(super) use crate::library::UpdateId;
pub(super) use crate::schedule::ScheduleRequest;
pub(super) use crate::server::auth::{self, Caller};
pub(super) use crate::server::problem::ApiError;
pub(super) use crate::server::{accounts, audit, engine, AppState};
pub(super) use crate::servicing::{KindFilter, Selection, TargetFilter};
