//! vieter-agent: polls a Vieter server for build jobs and builds them in throw-away Podman containers.
//!
//! The build itself (steps, causes, skip decision) is `libvieter::build`, the container port
//! `libvieter::container`; this crate supplies what they need from the world: Podman ([`podman`]), the
//! server ([`server::JobServer`], implemented by [`vieter_client::Client`]), the runner of one job
//! ([`job`], generic over both) and the loop that leases jobs ([`agent`]).

pub mod agent;
pub mod config;
pub mod job;
pub mod podman;
pub mod server;
