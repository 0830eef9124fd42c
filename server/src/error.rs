//! The one error type of the HTTP API. A 4xx body carries a stable `code`
//! and a human `reason`; a 5xx body says nothing more than that, and the
//! detail goes to the log (never content or credentials). The one 5xx that
//! is not a failure is 503 `server_busy`: under overload a send is refused
//! before anything of it is stored, with `Retry-After`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use starling_protocol::api::StaleLists;
use starling_protocol::ids::IdError;
pub use starling_protocol::{ErrorBody, ErrorCode};
use thiserror::Error;

/// An API error.
#[derive(Debug, Error)]
pub enum AppError {
    /// The request is malformed or violates a rule.
    #[error("{reason}")]
    BadRequest {
        /// Stable machine-readable code.
        code: ErrorCode,
        /// Explanation.
        reason: String,
    },
    /// Missing or wrong credentials.
    #[error("authentication required")]
    Unauthorized,
    /// The credentials are those of a device removed from its account.
    #[error("this device was removed from the account")]
    DeviceRemoved,
    /// An unidentified send's access key was refused for these
    /// destinations.
    #[error("the access key was refused for {}", .0.join(", "))]
    BadAccessKey(Vec<String>),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with current state.
    #[error("{reason}")]
    Conflict {
        /// Stable machine-readable code.
        code: ErrorCode,
        /// Explanation.
        reason: String,
    },
    /// The sender's list of the destination's devices is out of date.
    #[error("device list is stale")]
    StaleDevices {
        /// Devices the send lacked.
        missing: Vec<u32>,
        /// Devices the send named that do not exist.
        extra: Vec<u32>,
    },
    /// The device exceeded a rate limit.
    #[error("rate limit exceeded; retry in {retry_after_secs} s")]
    TooManyRequests {
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// The server is overloaded; nothing of the request was done.
    #[error("the server is busy; retry in {retry_after_secs} s")]
    Busy {
        /// Seconds after which a retry is likely to succeed.
        retry_after_secs: u64,
    },
    /// A multi-recipient send named stale device lists for some accounts.
    #[error("device lists are stale for {} account(s)", .0.len())]
    StaleDevicesMany(std::collections::BTreeMap<String, StaleLists>),
    /// The body is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// A failure on our side; details are logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    /// A 400 with a code and reason.
    pub fn bad_request(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            reason: reason.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::DeviceRemoved | Self::BadAccessKey(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } | Self::StaleDevices { .. } | Self::StaleDevicesMany(_) => {
                StatusCode::CONFLICT
            }
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// For a refusal that a later retry may pass: after how many seconds.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::TooManyRequests { retry_after_secs } | Self::Busy { retry_after_secs } => {
                Some(*retry_after_secs)
            }
            _ => None,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        let code = match self {
            Self::BadRequest { code, .. } | Self::Conflict { code, .. } => *code,
            Self::Unauthorized => ErrorCode::Unauthorized,
            Self::DeviceRemoved => ErrorCode::DeviceRemoved,
            Self::BadAccessKey(_) => ErrorCode::BadAccessKey,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::StaleDevices { .. } | Self::StaleDevicesMany(_) => ErrorCode::StaleDevices,
            Self::TooLarge(_) => ErrorCode::TooLarge,
            Self::TooManyRequests { .. } => ErrorCode::RateLimited,
            Self::Busy { .. } => ErrorCode::ServerBusy,
            Self::Internal(_) => ErrorCode::Internal,
        };
        let (missing_devices, extra_devices) = match self {
            Self::StaleDevices { missing, extra } => (Some(missing.clone()), Some(extra.clone())),
            _ => (None, None),
        };
        ErrorBody {
            code: code.as_str().into(),
            reason: self.to_string(),
            retry_after_secs: self.retry_after_secs(),
            missing_devices,
            extra_devices,
            accounts: match self {
                Self::StaleDevicesMany(accounts) => Some(accounts.clone()),
                _ => None,
            },
            refused: match self {
                Self::BadAccessKey(refused) => Some(refused.clone()),
                _ => None,
            },
        }
    }
}

impl From<IdError> for AppError {
    fn from(error: IdError) -> Self {
        let code = match error {
            IdError::Username => ErrorCode::BadUsername,
            _ => ErrorCode::BadPath,
        };
        Self::bad_request(code, error.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Self::Internal(detail) = &self {
            tracing::error!(detail = %detail, "internal error");
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(format!("database: {error}"))
    }
}

impl From<axum::extract::rejection::JsonRejection> for AppError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::TooLarge("request body too large".into());
        }
        Self::bad_request(ErrorCode::BadJson, rejection.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for AppError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        Self::bad_request(ErrorCode::BadPath, rejection.body_text())
    }
}
