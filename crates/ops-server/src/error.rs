//! [`ApiError`]: the one error type handlers return; maps kinds to HTTP statuses and never
//! shows internals to clients.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ops_core::ErrorKind;
use serde_json::json;

/// An error answer.
#[derive(Debug)]
pub enum ApiError {
    /// No valid key (401).
    Unauthenticated,
    /// A valid key without the right (403).
    Forbidden,
    /// An invalid configuration file on reload (422), located.
    Config(ops_core::config::ConfigError),
    /// A library error.
    Core(ops_core::Error),
    /// The key's request rate is used up (429, with `Retry-After`).
    TooManyRequests(std::time::Duration),
    /// The server's job queue is full (429, kind `queue-full`, with `Retry-After`): the
    /// caller is asked to come back, as a Kubernetes API server does when its queues are full;
    /// nothing was started.
    QueueFull(String),
    /// The request took longer than `server.request-timeout-secs` (503).
    RequestTimeout(std::time::Duration),
    /// The server's own configuration could not be wired (500, kind `wiring`). Its message is
    /// shown: it names the configuration key an operator must fix, secrets as `***`.
    Wiring(crate::state::WiringError),
}

/// The wait a refused job is told to take: a verification takes seconds.
const QUEUE_RETRY_SECS: u64 = 5;

impl From<crate::jobs::Refusal> for ApiError {
    /// Another job holds the same thing: 409 (`conflict`); the queue is full: 429.
    fn from(r: crate::jobs::Refusal) -> Self {
        match r {
            crate::jobs::Refusal::Busy(m) => Self::Core(ops_core::Error::conflict(m)),
            crate::jobs::Refusal::Full(m) => Self::QueueFull(m),
        }
    }
}

impl From<crate::state::WiringError> for ApiError {
    fn from(e: crate::state::WiringError) -> Self {
        Self::Wiring(e)
    }
}

impl From<ops_core::Error> for ApiError {
    fn from(e: ops_core::Error) -> Self {
        Self::Core(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, message, extra) = match self {
            Self::Unauthenticated => {
                (StatusCode::UNAUTHORIZED, "unauthenticated", "a valid API key is required".to_owned(), None)
            }
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "this action needs an admin key".to_owned(), None),
            Self::Config(e) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-config", e.to_string(), Some(json!(e))),
            Self::TooManyRequests(wait) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!("too many requests for this key: retry in {} s", wait.as_secs().max(1)),
                Some(json!({ "retry_after_secs": wait.as_secs().max(1) })),
            ),
            Self::QueueFull(m) => (
                StatusCode::TOO_MANY_REQUESTS,
                "queue-full",
                format!("{m}: try again later"),
                Some(json!({ "retry_after_secs": QUEUE_RETRY_SECS })),
            ),
            Self::RequestTimeout(limit) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!("the request took longer than {} s", limit.as_secs()),
                None,
            ),
            Self::Wiring(e) => {
                tracing::error!(error = %e, kind = e.kind.as_str(), "configuration not wired");
                (StatusCode::INTERNAL_SERVER_ERROR, "wiring", e.to_string(), Some(json!({ "cause": e.kind })))
            }
            Self::Core(e) => {
                let status = match e.kind() {
                    ErrorKind::NotFound => StatusCode::NOT_FOUND,
                    ErrorKind::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorKind::Conflict => StatusCode::CONFLICT,
                    ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                    ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
                    ErrorKind::Auth => StatusCode::BAD_GATEWAY,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
                    // Internals go to the log, not to the client.
                    tracing::error!(error = %e, "internal error");
                    "internal error; see the server log".to_owned()
                } else {
                    e.message().to_owned()
                };
                (status, e.kind().as_str(), message, None)
            }
        };
        let mut body = json!({ "error": { "kind": kind, "message": message } });
        if let Some(detail) = extra {
            body["error"]["detail"] = detail;
        }
        let retry =
            body["error"]["detail"]["retry_after_secs"].as_u64().filter(|_| status == StatusCode::TOO_MANY_REQUESTS);
        let mut resp = (status, Json(body)).into_response();
        if let Some(secs) = retry
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// A request's JSON body, or the type's default when the body is empty; a body that does not
/// parse (unknown fields included) is `InvalidInput` (422).
pub(crate) fn json_body<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::Core(ops_core::Error::invalid_input(format!("invalid request body: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::Refusal;

    #[test]
    fn a_refused_job_is_a_conflict_or_a_full_queue_never_a_server_error() {
        let full =
            ApiError::from(Refusal::Full("8 verifications are already queued or running".into())).into_response();
        assert_eq!(full.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(full.headers()[header::RETRY_AFTER], "5");
        let busy = ApiError::from(Refusal::Busy("job x is already working on main".into())).into_response();
        assert_eq!(busy.status(), StatusCode::CONFLICT);
        assert!(busy.headers().get(header::RETRY_AFTER).is_none());
    }
}
