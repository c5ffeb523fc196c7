//! `GET /health`: answers 200 while the server runs (for load balancers and service managers).

use crate::error::ok;

/// The health answer: `{"message": "", "data": {"status": "ok", "version": ...}}`.
pub fn health() -> warp::reply::Response {
    ok(&serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}
