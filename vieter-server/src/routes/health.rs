//! `GET /health`: answers 200 while the server runs (for load balancers and service managers).

use crate::error::ok;

/// The health answer: `{"message": "", "data": {"status": "ok", "version": ...}}`.
pub fn health() -> warp::reply::Response {
    ok(&libvieter::api::Health { status: "ok".to_owned(), version: env!("CARGO_PKG_VERSION").to_owned() })
}
