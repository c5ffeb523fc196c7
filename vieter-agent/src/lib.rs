//! vieter-agent: polls a Vieter server for build jobs and builds them in throw-away Podman containers.
//!
//! The build itself (steps, causes, skip decision) is `libvieter::build`; this crate supplies what it needs
//! from the world: Podman ([`podman`]), the server ([`vieter_client::Client`]), and the loop that leases
//! jobs ([`agent`]).

pub mod agent;
pub mod config;
pub mod job;
pub mod podman;
