//! The AUR client's timer: the sync databases are read again every `sync_db_refresh_secs`. The
//! client itself ([`vieter_client::aur::Aur`]) is the one HTTP client's.

use std::sync::Arc;
use std::time::Duration;

use libvieter::name::Arch;
pub use vieter_client::aur::{Aur, AurClientError};

/// Reads the sync databases of `default_arch` at start, then every `every_secs` those of every
/// architecture read so far (0: never again). A failed download is logged; the last copy stays.
pub async fn refresh_loop(aur: Arc<Aur>, default_arch: Arch, every_secs: u64) {
    if aur.sync_urls().is_empty() {
        return;
    }
    if let Err(e) = aur.refresh_sync(&default_arch).await {
        tracing::warn!("sync databases for {default_arch}: {e}");
    }
    if every_secs == 0 {
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_secs(every_secs)).await;
        for arch in aur.sync_arches() {
            match aur.refresh_sync(&arch).await {
                Ok(set) => tracing::info!(%arch, dbs = ?set.dbs, "sync databases refreshed"),
                Err(e) => tracing::warn!("sync databases for {arch}: {e}"),
            }
        }
    }
}
