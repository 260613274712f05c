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
    /// The request took longer than `server.request-timeout-secs` (503).
    RequestTimeout(std::time::Duration),
    /// The server's own configuration could not be wired (500, kind `wiring`). Its message is
    /// shown: it names the configuration key an operator must fix, secrets as `***`.
    Wiring(crate::state::WiringError),
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
