//! The server's repository: libvieter's [`Repository`] over redb ([`Store`]) and the data directory
//! ([`DirBlobs`]: `pool/`, `repos/`, `tmp/`). Every rule (ordering, `any` fan-out, pool references,
//! recovery) is the library's; this module only opens the two.

use std::path::Path;

use libvieter::db::DbFormat;
use libvieter::fs::DirBlobs;
use libvieter::name::Arch;
use libvieter::repo::Repository;
pub use libvieter::repo::{RecoveryReport, Removal, RepoError};

use crate::store::{Store, StoreError};

/// The repositories of the server.
pub type Repos = Repository<Store, DirBlobs>;

/// Why the repositories could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Blobs(#[from] std::io::Error),
}

/// Opens the data directory (creating its layout) and the database.
pub fn open(data_dir: &Path, default_arch: Arch, format: DbFormat) -> Result<Repos, OpenError> {
    let blobs = DirBlobs::open(data_dir)?;
    let store = crate::store::open(&data_dir.join("vieter.redb"))?;
    // A publish is answered once durable and recorded; the archives it changed are written when
    // next served or settled (`lib.rs`: a timer, and at shutdown).
    Ok(Repository::new(store, blobs, default_arch, format, chrono::Utc::now).with_deferred_archives())
}
