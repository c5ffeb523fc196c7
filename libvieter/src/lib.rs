//! libvieter: the reusable core of Vieter, a self-hosted Arch Linux package platform.
//!
//! Everything here works on bytes, [`std::io::Read`]/[`std::io::Write`] and plain values: no sockets, no
//! database, no container runtime. The binaries (`vieter-server`, `vieter-agent`, `vieter`) wire it to
//! the world.
//!
//! - [`config`]: layered settings (TOML file, `VIETER_*` variables, `_FILE` secrets).
//! - [`api`]: the JSON shapes of the HTTP API.
//! - [`version`]: pacman's version comparison and validated package versions.
//! - [`name`]: validated package names and architectures.
//! - [`pkginfo`]: the `.PKGINFO` format.
//! - [`package`]: reading package archives in one streaming pass.
//! - [`digest`]: hashing a stream on helper threads.
//! - [`depend`]: dependency strings (`name>=version: description`).
//! - [`schedule`]: build schedules (Vieter's `minute hour day month` and 5-field cron) in a time zone.
//! - [`target`]: build targets (git, PKGBUILD URL, AUR) and the validation of their input.
//! - [`job`]: build jobs, their states, leases, failure causes and retry policy.
//! - [`scheduler`]: which scheduled builds are due, and the job queue that leases them to agents.
//! - [`srcinfo`]: the `.SRCINFO` format (`makepkg --printsrcinfo`).
//! - [`vcs`]: VCS sources of a PKGBUILD, `git ls-remote` output and the revision a build was made from.
//! - [`build`]: the steps of a build job and the driver that runs them through a [`build::BuildHost`].
//! - [`builds`]: the build service (targets, queueing, leases, retries, agents, retention) over a
//!   [`builds::BuildStore`] and a [`builds::Clock`].
//! - [`container`]: the container port (create, exec, copy out, remove, list by label, images) a build
//!   runs through, and the choice or preparation of the builder image over it.
//! - [`db`]: repository database entries and archives, byte-compatible with `repo-add`.
//! - [`repo`]: repository rules (names, which architectures a package goes to).
//! - [`fs`]: repositories in plain directories: atomic file replacement, `repo-add`, static mirrors.
//!
//! Features: `builds` (targets, schedules, jobs, the build driver, the API shapes; pulls chrono),
//! `config` (the settings loader; pulls toml and reads files) and `fs` (the directory adapter: reads and
//! writes files), all on by default. With
//! `default-features = false` only the formats remain: `name`, `version`, `pkginfo`, `package`, `digest`,
//! `depend`, `srcinfo`, `vcs` and `db`.

#[cfg(feature = "builds")]
pub mod access;
#[cfg(feature = "builds")]
pub mod api;
#[cfg(feature = "builds")]
pub mod aur;
#[cfg(feature = "builds")]
pub mod build;
#[cfg(feature = "builds")]
pub mod builds;
#[cfg(feature = "builds")]
pub mod compat;
#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "builds")]
pub mod container;
pub mod db;
pub mod depend;
pub mod digest;
#[cfg(feature = "fs")]
pub mod fs;
#[cfg(feature = "builds")]
pub mod job;
#[cfg(feature = "builds")]
pub mod kv;
pub mod name;
pub mod package;
pub mod pkginfo;
pub mod repo;
#[cfg(feature = "builds")]
pub mod resolve;
#[cfg(feature = "builds")]
pub mod schedule;
#[cfg(feature = "builds")]
pub mod scheduler;
pub mod srcinfo;
#[cfg(feature = "builds")]
pub mod target;
pub mod vcs;
pub mod version;
