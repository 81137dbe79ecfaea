//! Every error the API returns, and the one place where errors become HTTP
//! responses: RFC 9457 `application/problem+json`. A 4xx explains the
//! problem; a 5xx says only that something failed, and the detail goes to
//! the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::dto::Problem;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or a token that matches no key.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The token is a key's, but the key was revoked or has expired.
    #[error("{0}")]
    KeyRefused(String),
    /// The key's role does not allow the endpoint.
    #[error("the key's role ({role}) may not {action}")]
    Forbidden { role: &'static str, action: &'static str },
    /// The key's route scope excludes the route.
    #[error("the key may not see route '{0}'")]
    RouteForbidden(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// A parameter or body is invalid; names the parameter and the value.
    #[error("{0}")]
    BadRequest(String),
    /// The request body is larger than allowed.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body's media type is not one the endpoint reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// An uploaded file is refused; names the line or row, column and value.
    #[error("{0}")]
    Unprocessable(String),
    /// The endpoint does not take the method.
    #[error("the endpoint does not accept this method; see /openapi.json")]
    MethodNotAllowed,
    /// The asked-for representation is not offered.
    #[error("{0}")]
    NotAcceptable(String),
    /// Too many jobs are waiting.
    #[error("{0}")]
    Busy(String),
    /// The server is not ready (e.g. no forecasts yet).
    #[error("{0}")]
    Unavailable(String),
    /// A configuration problem (key file, audit log), reported at startup.
    #[error("{0}")]
    Config(String),
    /// Anything else: a 500 whose detail is logged, never returned.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of the error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::KeyRefused(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } | ApiError::RouteForbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Config(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem document: internals are replaced by a generic sentence
    /// for every 5xx.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let detail = if status.is_server_error() {
            match self {
                ApiError::Unavailable(text) => text.clone(),
                _ => "The server failed to answer this request; the failure is in its log.".to_owned(),
            }
        } else {
            self.to_string()
        };
        Problem {
            problem_type: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
        }
    }
}

/// A problem document as a response, with its status and content type.
pub(crate) fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, serde_json::to_vec(problem).unwrap_or_default()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self, "Request failed.");
        }
        let mut response = problem_response(&self.problem());
        if matches!(self, ApiError::Unauthorized | ApiError::KeyRefused(_)) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
