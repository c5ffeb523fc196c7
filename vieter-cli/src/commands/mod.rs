//! One module per command group.

pub mod aur;
pub mod builds;
pub mod keys;
pub mod migrate;
pub mod publish;
pub mod repo_add;
pub mod repos;
pub mod schedule;
