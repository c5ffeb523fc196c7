//! The one error type of the HTTP API and the rejection handler that turns every failure into Vieter's
//! JSON envelope `{"message": ..., "data": null}` with the right status.

use std::convert::Infallible;

use libvieter::api::Envelope;
use warp::http::StatusCode;
use warp::{Rejection, Reply};

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    /// A server-side failure: logged with its details, answered without them.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!("{context}: {err}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {context}"))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl warp::reject::Reject for ApiError {}

impl Reply for ApiError {
    fn into_response(self) -> warp::reply::Response {
        let status = self.status;
        let mut response =
            warp::reply::with_status(warp::reply::json(&Envelope::error(self.message)), status)
                .into_response();
        // These are answered before an upload's body is read: the connection cannot be reused, so say so
        // and keep clients from sending their next request on it.
        if matches!(status.as_u16(), 401 | 403 | 408 | 411 | 413) {
            let close = warp::http::HeaderValue::from_static("close");
            response.headers_mut().insert(warp::http::header::CONNECTION, close);
        }
        response
    }
}

/// Answers a successful result in the envelope.
pub fn ok<T: serde::Serialize>(data: &T) -> warp::reply::Response {
    warp::reply::json(&Envelope::ok(data)).into_response()
}

/// Turns a handler result into a response.
pub fn respond<T: Reply>(result: Result<T, ApiError>) -> warp::reply::Response {
    match result {
        Ok(reply) => reply.into_response(),
        Err(e) => e.into_response(),
    }
}

/// The last filter: every rejection becomes a JSON error.
pub async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let error = if let Some(e) = rejection.find::<ApiError>() {
        e.clone()
    } else if rejection.is_not_found() {
        ApiError::not_found("not found")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(StatusCode::LENGTH_REQUIRED, "a Content-Length header is required")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "the body is larger than allowed")
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::bad_request(format!("invalid query: {e}"))
    } else if let Some(e) = rejection.find::<warp::reject::MissingHeader>() {
        ApiError::bad_request(e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::bad_request(e.to_string())
    } else if let Some(e) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        ApiError::bad_request(format!("invalid JSON body: {e}"))
    } else if rejection.find::<warp::reject::UnsupportedMediaType>().is_some() {
        ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported content type")
    } else {
        tracing::warn!("unhandled rejection: {rejection:?}");
        ApiError::bad_request(format!("bad request: {rejection:?}"))
    };
    Ok(error.into_response())
}
