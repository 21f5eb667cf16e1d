//! Errors as `application/problem+json` (RFC 9457): type, title, status, detail, and the hint
//! a front end renders in its own words.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::commands::{CommandError, MaintenanceModeFailed};
use crate::distribution::DistributionError;
use crate::hint::Hint;
use crate::image::ImageError;
use crate::library::LibraryError;
use crate::schedule::ScheduleError;
use crate::servicing::ServicingError;
use crate::site::SiteError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// A short, stable name of the kind of problem (the `type` is `urn:ois:problem:<kind>`).
    pub kind: &'static str,
    pub detail: String,
    pub hint: Option<String>,
    /// The typed next step, for a front end that renders it as a button or a link.
    pub action: Option<Hint>,
    /// The HRESULT a WMI method returns for this error (AdminService routes).
    pub hresult: Option<u32>,
}

/// The body, as the OpenAPI document describes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// What to do about it, in words.
    pub hint: Option<String>,
    /// What to do about it, as data (`{"hint": "leave_provisioning_mode", "image": "..."}`):
    /// the engine's typed hint, for clients that offer the step themselves.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub action: Option<Hint>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            detail: detail.into(),
            hint: None,
            action: None,
            hresult: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> ApiError {
        self.hint = Some(hint.into());
        self
    }

    /// The engine's typed next step, in words and as data.
    pub fn next_step(mut self, hint: Hint) -> ApiError {
        self.hint = Some(hint.describe());
        self.action = Some(hint);
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    /// An engine error: its message (what and why) is the detail, its typed hint the next step.
    fn engine(
        status: StatusCode,
        kind: &'static str,
        e: &dyn std::fmt::Display,
        hint: Option<Hint>,
    ) -> ApiError {
        ApiError {
            hint: hint.as_ref().map(Hint::describe),
            action: hint,
            ..ApiError::new(status, kind, e.to_string())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("urn:ois:problem:{}", self.kind),
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
            hint: self.hint,
            action: self.action,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            json,
        )
            .into_response()
    }
}

impl From<SiteError> for ApiError {
    fn from(e: SiteError) -> ApiError {
        tracing::error!("site server: {e}");
        ApiError::engine(StatusCode::INTERNAL_SERVER_ERROR, "site", &e, e.hint())
    }
}

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> ApiError {
        use ImageError::*;
        let (status, kind) = match &e {
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            MissingFile(_) | Unreadable { .. } => (StatusCode::BAD_REQUEST, "bad-image"),
            Nested(n) => match **n {
                crate::image::NestedError::Stage { .. }
                | crate::image::NestedError::Parent { .. } => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal")
                }
                _ => (StatusCode::BAD_REQUEST, "bad-image"),
            },
            AlreadyRegistered { .. } | RegisteredMeanwhile { .. } | NameTaken(_) => {
                (StatusCode::CONFLICT, "conflict")
            }
            InProvisioningMode(_) => (StatusCode::CONFLICT, "provisioning-mode"),
            Site(_) | Io { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::engine(status, kind, &e, e.hint())
    }
}

impl From<LibraryError> for ApiError {
    fn from(e: LibraryError) -> ApiError {
        use LibraryError::*;
        let (status, kind) = match &e {
            UnknownUpdate(_) => (StatusCode::NOT_FOUND, "not-found"),
            InvalidPackage { .. } | InvalidWindowsPackage { .. } | TooLarge { .. } => {
                (StatusCode::BAD_REQUEST, "bad-package")
            }
            Conflict { .. }
            | ImportedElsewhere { .. }
            | DuplicateInBatch { .. }
            | WindowsPackageConflict { .. } => (StatusCode::CONFLICT, "conflict"),
            NoRoom { .. } | LibraryFull { .. } => (StatusCode::INSUFFICIENT_STORAGE, "no-room"),
            Damaged { .. } | Missing { .. } | Io { .. } | Site(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        ApiError::engine(status, kind, &e, e.hint())
    }
}

impl From<ServicingError> for ApiError {
    fn from(e: ServicingError) -> ApiError {
        match e {
            ServicingError::Library(e) => e.into(),
            ServicingError::Image(e) => e.into(),
            ServicingError::Site(e) => e.into(),
            ServicingError::Plan { .. } => {
                ApiError::engine(StatusCode::BAD_REQUEST, "cannot-plan", &e, e.hint())
            }
            ServicingError::UnknownRun { .. } => {
                ApiError::engine(StatusCode::NOT_FOUND, "not-found", &e, e.hint())
            }
            ServicingError::RunAlive { .. } => {
                ApiError::engine(StatusCode::CONFLICT, "provisioning-mode", &e, e.hint())
            }
        }
    }
}

impl From<ScheduleError> for ApiError {
    fn from(e: ScheduleError) -> ApiError {
        match e {
            ScheduleError::Servicing(e) => e.into(),
            ScheduleError::Image(e) => e.into(),
            ScheduleError::Site(e) => e.into(),
            ScheduleError::Invalid { .. } => {
                ApiError::engine(StatusCode::BAD_REQUEST, "bad-schedule", &e, e.hint())
            }
            ScheduleError::NoSchedule(_) => {
                ApiError::engine(StatusCode::NOT_FOUND, "no-schedule", &e, e.hint())
            }
            ScheduleError::InProvisioningMode(_) | ScheduleError::OwnerGone { .. } => {
                ApiError::engine(StatusCode::CONFLICT, "provisioning-mode", &e, e.hint())
            }
            ScheduleError::NothingToCancel(_) => {
                ApiError::engine(StatusCode::CONFLICT, "nothing-to-cancel", &e, e.hint())
            }
        }
    }
}

impl From<DistributionError> for ApiError {
    fn from(e: DistributionError) -> ApiError {
        let hresult = e.hresult();
        ApiError {
            hresult: Some(hresult),
            ..distribution_error(e)
        }
    }
}

fn distribution_error(e: DistributionError) -> ApiError {
    {
        use DistributionError::*;
        let (status, kind) = match &e {
            Image(_) | Site(_) => {
                return match e {
                    Image(e) => e.into(),
                    Site(e) => e.into(),
                    other => ApiError::internal(other.to_string()),
                }
            }
            MalformedNal(_) | InvalidMode(_) | Target { .. } | Usage(_) => {
                (StatusCode::BAD_REQUEST, "bad-request")
            }
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            AlreadyExists(_) => (StatusCode::CONFLICT, "conflict"),
            ReadOnly(_) => (StatusCode::CONFLICT, "maintenance-mode"),
            InProvisioningMode(_) => (StatusCode::CONFLICT, "provisioning-mode"),
            Storage { .. } => (StatusCode::BAD_GATEWAY, "storage"),
            AgentScope(_) => (StatusCode::FORBIDDEN, "dp-agent"),
        };
        ApiError::engine(status, kind, &e, e.hint())
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> ApiError {
        match e {
            CommandError::Image(e) => e.into(),
            CommandError::Library(e) => e.into(),
            CommandError::Servicing(e) => e.into(),
            CommandError::Schedule(e) => (*e).into(),
            CommandError::Distribution(e) => e.into(),
            CommandError::Site(e) => e.into(),
            CommandError::Media(e) => media_error(*e),
        }
    }
}

fn media_error(e: crate::media::MediaError) -> ApiError {
    use crate::media::MediaError::*;
    let (status, kind) = match &e {
        NotFound(_) | SetupUpdateNotFound(_) | Missing(_) => (StatusCode::NOT_FOUND, "not-found"),
        NameTaken(_)
        | AlreadyRegistered { .. }
        | SetupUpdateTaken(_)
        | Changed { .. }
        | ImageOfMedia { .. } => (StatusCode::CONFLICT, "conflict"),
        NotMedia(_)
        | NoInstallWim(_)
        | InstallEsd(_)
        | UnreadableIso { .. }
        | SetupUpdate { .. } => (StatusCode::BAD_REQUEST, "bad-media"),
        Image { .. } | Build { .. } | Io { .. } | Site(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    };
    ApiError::engine(status, kind, &e, e.hint())
}

impl From<super::AccountError> for ApiError {
    fn from(e: super::AccountError) -> ApiError {
        match e {
            super::AccountError::Site(e) => e.into(),
            e => ApiError::engine(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e, None),
        }
    }
}

impl From<MaintenanceModeFailed> for ApiError {
    fn from(e: MaintenanceModeFailed) -> ApiError {
        ApiError {
            hresult: Some(e.return_value),
            ..(*e.error).into()
        }
    }
}
