//! The AUR's RPC and pacman sync databases over HTTP (feature `aur`): the I/O half of
//! [`libvieter::aur`] and [`libvieter::resolve`]. Requests, parsing, the back-off decision and every
//! closure rule are the library's; this module sends, waits and downloads. The server resolves the
//! closures of `aur` targets and checks them for changes with it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use libvieter::aur::{self, AurError, AurPackage, Backoff, Method, Next, Request};
use libvieter::name::{Arch, PkgName};
use libvieter::resolve::{self, AurLookup, Closure, Provider, ResolveError, SyncSet};

/// The largest RPC answer read (an `info` of 150 packages is a few hundred KiB).
const MAX_RPC_BODY: usize = 16 << 20;
/// The largest sync database downloaded (Arch's `extra.db` is about 8 MiB).
const MAX_SYNC_DB: usize = 256 << 20;

/// Why the AUR or a sync database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AurClientError {
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: {source}")]
    Aur {
        url: String,
        #[source]
        source: AurError,
    },
    #[error("{url}: the answer is larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("sync database {url}: {source}")]
    Db {
        url: String,
        #[source]
        source: libvieter::db::DbError,
    },
    #[error("the HTTP client could not be built: {0}")]
    Client(#[source] reqwest::Error),
}

/// The AUR client and the sync databases it read, shared by every request.
pub struct Aur {
    http: reqwest::Client,
    rpc_url: String,
    backoff: Backoff,
    /// Sync db URLs with `$arch` / `$repo` still in them.
    sync_urls: Vec<String>,
    sync: RwLock<BTreeMap<Arch, Arc<SyncSet>>>,
    requests: AtomicU64,
}

impl Aur {
    /// A client of the RPC at `rpc_url` reading the sync databases `sync_urls`.
    pub fn new(rpc_url: &str, sync_urls: Vec<String>, backoff: Backoff) -> Result<Aur, AurClientError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("vieter/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(AurClientError::Client)?;
        Ok(Aur {
            http,
            rpc_url: rpc_url.trim_end_matches('/').to_owned(),
            backoff,
            sync_urls,
            sync: RwLock::new(BTreeMap::new()),
            requests: AtomicU64::new(0),
        })
    }

    /// RPC requests sent since start (retries included).
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The configured sync database URLs (templates).
    pub fn sync_urls(&self) -> &[String] {
        &self.sync_urls
    }

    /// Reads a whole body, refusing more than `limit` bytes.
    async fn body(url: &str, response: reqwest::Response, limit: usize) -> Result<Vec<u8>, AurClientError> {
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(AurClientError::TooLarge { url: url.to_owned(), limit });
        }
        let mut out = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|source| AurClientError::Unreachable { url: url.to_owned(), source })?;
            if out.len() + chunk.len() > limit {
                return Err(AurClientError::TooLarge { url: url.to_owned(), limit });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Sends one RPC request, retrying 429 and 5xx answers as [`Backoff`] decides; the 200 body.
    async fn send(&self, request: &Request) -> Result<Vec<u8>, AurClientError> {
        let url = request.url(&self.rpc_url);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut builder = match request.method {
                Method::Get => self.http.get(&url),
                Method::Post => self.http.post(&url),
            };
            if let Some(body) = &request.body {
                builder = builder.body(body.clone());
            }
            if let Some(content_type) = request.content_type {
                builder = builder.header("content-type", content_type);
            }
            let response = builder
                .send()
                .await
                .map_err(|source| AurClientError::Unreachable { url: url.clone(), source })?;
            let retry_after =
                response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
            match self.backoff.after_status(response.status().as_u16(), attempt, retry_after.as_deref()) {
                Next::Parse => return Self::body(&url, response, MAX_RPC_BODY).await,
                Next::Retry { after } => {
                    tracing::warn!(%url, status = response.status().as_u16(), ?after, "the AUR asks to retry");
                    tokio::time::sleep(after).await;
                }
                Next::Fail(source) => return Err(AurClientError::Aur { url, source }),
            }
        }
    }

    /// The info records of `names`, in as few requests as the RPC's limits allow.
    pub async fn info(&self, names: &[PkgName]) -> Result<Vec<AurPackage>, AurClientError> {
        let mut out = Vec::new();
        for request in aur::info_requests(names) {
            let body = self.send(&request).await?;
            let url = request.url(&self.rpc_url);
            out.extend(aur::parse_info(&body).map_err(|source| AurClientError::Aur { url, source })?);
        }
        Ok(out)
    }

    /// The packages providing `term` (search by `provides`).
    pub async fn search_provides(&self, term: &str) -> Result<Vec<AurPackage>, AurClientError> {
        let request = aur::search_provides_request(term)
            .map_err(|source| AurClientError::Aur { url: self.rpc_url.clone(), source })?;
        let body = self.send(&request).await?;
        aur::parse_search(&body)
            .map_err(|source| AurClientError::Aur { url: request.url(&self.rpc_url), source })
    }

    /// Downloads and reads every sync database for `arch` and keeps them for [`Aur::sync_set`].
    /// A database that fails is reported and the previous copy for that arch stays in use.
    pub async fn refresh_sync(&self, arch: &Arch) -> Result<Arc<SyncSet>, AurClientError> {
        let mut set = SyncSet::default();
        for template in &self.sync_urls {
            let url = resolve::sync_db_url(template, arch);
            let response = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|source| AurClientError::Unreachable { url: url.clone(), source })?;
            if !response.status().is_success() {
                return Err(AurClientError::Status { url, status: response.status().as_u16() });
            }
            let bytes = Self::body(&url, response, MAX_SYNC_DB).await?;
            let shown = url.clone();
            let entries =
                tokio::task::spawn_blocking(move || libvieter::db::read_entries(std::io::Cursor::new(bytes)))
                    .await
                    .map_err(|e| AurClientError::Db {
                        url: shown.clone(),
                        source: libvieter::db::DbError::Corrupt(std::io::Error::other(e)),
                    })?
                    .map_err(|source| AurClientError::Db { url: shown, source })?;
            set.add_db(&url, &entries);
        }
        let set = Arc::new(set);
        self.sync.write().unwrap_or_else(|p| p.into_inner()).insert(arch.clone(), set.clone());
        Ok(set)
    }

    /// The sync databases of `arch`: the copy read last, downloaded now if there is none.
    pub async fn sync_set(&self, arch: &Arch) -> Result<Arc<SyncSet>, AurClientError> {
        let known = self.sync.read().unwrap_or_else(|p| p.into_inner()).get(arch).cloned();
        match known {
            Some(set) => Ok(set),
            None => self.refresh_sync(arch).await,
        }
    }

    /// The architectures whose sync databases have been read.
    pub fn sync_arches(&self) -> Vec<Arch> {
        self.sync.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    /// Resolves the closure of `roots` for `arch`: the sync databases first, then `target` (the
    /// packages of the repository the builds publish to), then the AUR. Call from a blocking thread:
    /// the library's resolution is synchronous and waits for each batched request on `handle`.
    pub fn resolve_blocking(
        &self,
        handle: &tokio::runtime::Handle,
        roots: &[PkgName],
        sync: &SyncSet,
        target: Vec<Provider>,
    ) -> Result<Closure, ResolveError<AurClientError>> {
        let available = sync.available_with(target);
        let mut lookup = Lookup { aur: self, handle };
        resolve::resolve(roots, &available, &mut lookup)
    }
}

/// [`AurLookup`] over [`Aur`], blocking on each request.
struct Lookup<'a> {
    aur: &'a Aur,
    handle: &'a tokio::runtime::Handle,
}

impl AurLookup for Lookup<'_> {
    type Error = AurClientError;

    fn info(&mut self, names: &[PkgName]) -> Result<Vec<AurPackage>, AurClientError> {
        self.handle.block_on(self.aur.info(names))
    }

    fn search_provides(&mut self, name: &str) -> Result<Vec<AurPackage>, AurClientError> {
        self.handle.block_on(self.aur.search_provides(name))
    }
}
