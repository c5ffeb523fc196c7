//! vieter-server: pacman repositories and the build system's scheduling over HTTP.
//!
//! `main.rs` only parses arguments; [`open`] and [`serve()`] wire the configuration, the store and the
//! routes. The only crate that knows warp ([`routes`]) and redb ([`store`]).

pub mod aur;
pub mod auth;
pub mod builds;
pub mod changes;
pub mod config;
pub mod error;
pub mod metrics;
pub mod repo;
pub mod routes;
pub mod serve;
pub mod shutdown;
pub mod signing;
pub mod store;
pub mod ui;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use config::Config;

/// Everything a request handler may need.
pub struct App {
    pub config: Config,
    pub keys: Arc<auth::Keys>,
    pub repos: repo::Repos,
    pub builds: Arc<builds::Builds>,
    pub metrics: metrics::Metrics,
    /// The AUR's RPC and the sync databases.
    pub aur: Arc<aur::Aur>,
    /// The key that signs packages and databases (`signing_key`), if any.
    pub signer: Option<Arc<signing::OpenPgpSigner>>,
    /// The signing keys, current and retired, and the re-sign after a rotation (with a signer).
    pub keyring: Option<Arc<signing::KeyRing>>,
    /// The web interface's sessions.
    pub ui: ui::Ui,
    /// Cancelled when the server begins to stop: endless responses (the web interface's live streams)
    /// end, so that the graceful shutdown waits only for requests that finish.
    pub stopping: tokio_util::sync::CancellationToken,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("API key file {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
    #[error("opening the repositories: {0}")]
    OpenRepos(#[from] repo::OpenError),
    #[error("recovering the repositories: {0}")]
    Repos(#[from] repo::RepoError),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: SocketAddr, source: std::io::Error },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("opening the build system: {0}")]
    Builds(#[from] builds::BuildsError),
    #[error("the AUR client: {0}")]
    Aur(#[from] aur::AurClientError),
    #[error("{0}")]
    SigningKey(#[from] signing::KeyError),
    #[error("{0}")]
    TrustedKeys(#[from] signing::TrustedKeysError),
    #[error("require_signed_uploads = true needs trusted_keys (the packagers' public keys)")]
    RequireSignedWithoutKeys,
}

/// The admin key: configured, or read from / generated into `{data_dir}/api_key` (mode 0600).
fn admin_key(config: &Config) -> Result<String, StartError> {
    if let Some(key) = config.api_key.as_ref().filter(|k| !k.is_empty()) {
        return Ok(key.clone());
    }
    let path = config.data_dir.join("api_key");
    let shown = path.display().to_string();
    let key_err = |source| StartError::KeyFile { path: shown.clone(), source };
    match std::fs::read_to_string(&path) {
        Ok(key) if !key.trim().is_empty() => {
            tracing::info!("using the API key stored in {shown}");
            return Ok(key.trim().to_owned());
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(key_err(e)),
    }
    let mut random = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random))
        .map_err(key_err)?;
    let key = hex::encode(random);
    libvieter::fs::write_secret(&path, key.as_bytes()).map_err(key_err)?;
    tracing::warn!("no api_key configured: generated one and stored it in {shown} (mode 0600)");
    Ok(key)
}

/// Opens everything and returns the application state (recovery included).
pub fn open(config: Config) -> Result<Arc<App>, StartError> {
    let data_dir: &Path = &config.data_dir;
    std::fs::create_dir_all(data_dir)
        .map_err(|source| StartError::DataDir { path: data_dir.display().to_string(), source })?;
    let admin = admin_key(&config)?;
    let (signer, keyring) = match config.signing_key.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        Some(value) => {
            let (signer, ring) = signing::open(value, data_dir)?;
            let retired: Vec<String> = ring.list().into_iter().skip(1).map(|k| k.fingerprint).collect();
            if !retired.is_empty() {
                tracing::info!(?retired, "retired signing keys: what they signed is signed again");
            }
            (Some(Arc::new(signer)), Some(Arc::new(ring)))
        }
        None => (None, None),
    };
    let mut repos = repo::open(data_dir, config.default_arch.clone(), config.db_format)?;
    if let Some(signer) = &signer {
        tracing::info!(fingerprint = signer.fingerprint(), "signing packages and databases");
        repos = repos.with_signer(signer.clone());
    }
    let trusted = match &config.trusted_keys {
        Some(dir) => {
            let keys = signing::TrustedKeys::load_dir(dir)?;
            tracing::info!(keys = ?keys.fingerprints(), "packager signatures are verified on upload");
            Some(keys)
        }
        None if config.require_signed_uploads => return Err(StartError::RequireSignedWithoutKeys),
        None => None,
    };
    repos = repos.with_upload_policy(libvieter::repo::UploadPolicy {
        verifier: trusted.map(|t| Box::new(t) as Box<dyn libvieter::repo::Verifier>),
        require_signed: config.require_signed_uploads,
    });
    let report = repos.recover()?;
    tracing::info!(?report, "startup recovery done");
    let keys = Arc::new(auth::Keys::new(&admin, config.agent_key.as_deref()));
    let settings = builds::BuildSettings {
        tz: config.timezone,
        global_schedule: config.global_schedule.clone(),
        base_image: config.base_image.clone(),
        default_timeout_secs: config.default_build_timeout,
        lease: builds::BuildSettings::seconds(config.lease_secs),
        retry: libvieter::job::RetryPolicy {
            max_attempts: config.retry_max_attempts,
            backoff_base_secs: config.retry_backoff_secs,
            ..Default::default()
        },
        // 0 keeps logs and agents forever (`BuildSettings::within_limits`).
        log_retention: Some(builds::BuildSettings::seconds(config.max_log_age.saturating_mul(86_400))),
        default_arch: config.default_arch.clone(),
        max_log_size: config.max_log_size,
        max_agent_capacity: config.max_agent_capacity,
        agent_expiry: Some(builds::BuildSettings::seconds(config.agent_expiry_secs)),
        max_agents_per_key: usize::try_from(config.max_agents_per_key).unwrap_or(usize::MAX),
    };
    let builds = builds::Builds::open(data_dir, settings)?;
    let aur = aur::Aur::new(&config.aur_rpc_url, config.sync_dbs.clone(), Default::default())?;
    Ok(Arc::new(App {
        config,
        keys,
        repos,
        builds: Arc::new(builds),
        metrics: metrics::Metrics::new()?,
        aur: Arc::new(aur),
        signer,
        keyring,
        ui: ui::Ui::default(),
        stopping: tokio_util::sync::CancellationToken::new(),
    }))
}

/// Serves until `shutdown` completes; in-flight requests finish first.
pub async fn serve(
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let address = app.config.address;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Bind { address, source })?;
    let local = listener.local_addr().unwrap_or(address);
    // Tests and scripts read this line to learn the port when the address has port 0.
    println!("vieter-server listening on http://{local}");
    let _ = std::io::stdout().flush();
    tracing::info!("listening on http://{local}, data in {}", app.config.data_dir.display());
    let limits = serve::ConnectionLimits {
        header_read_timeout: std::time::Duration::from_secs(app.config.header_read_timeout.max(1)),
        max_connections: match app.config.max_connections {
            0 => serve::default_max_connections(),
            n => n as usize,
        },
    };
    tracing::debug!(?limits, "connection limits");
    if app.keyring.is_some() {
        // After a rotation, what the retired keys signed is signed again (and, at every start, what
        // an unsigned run left); progress in GET /api/v1/keys/resign.
        let resign_app = app.clone();
        tokio::task::spawn_blocking(move || match resign_app.repos.resign(&mut |_| {}) {
            Ok(done) => tracing::info!(?done, "re-sign of the package files done"),
            Err(e) => tracing::error!("re-signing the package files: {e}"),
        });
    }
    let check_app = app.clone();
    let handle = tokio::runtime::Handle::current();
    let ticks = tokio::spawn(builds::run_ticks(app.builds.clone(), move || {
        changes::Lookups::check(check_app.clone(), handle.clone())
    }));
    let sync = tokio::spawn(aur::refresh_loop(
        app.aur.clone(),
        app.config.default_arch.clone(),
        app.config.sync_db_refresh_secs,
    ));
    let settling = tokio::spawn(settle_loop(app.clone()));
    let stopping = app.stopping.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.cancel();
    };
    serve::serve(listener, routes::routes(app.clone()), limits, shutdown).await;
    ticks.abort();
    sync.abort();
    settling.abort();
    // The archives written to memory only reach their files (else recovery rewrites them at the next
    // start).
    if let Err(e) = tokio::task::spawn_blocking(move || app.repos.settle()).await.map_err(|e| e.to_string()) {
        tracing::warn!("writing the archives out at shutdown: {e}");
    }
    tracing::info!("stopped");
    Ok(())
}

/// At most this long after a publish or a removal, the archives it changed reach their files
/// (`DirBlobs::settle`; until then they are served from memory): a burst of publishes writes each
/// archive's file a few times a second instead of once per publish.
const SETTLE_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Settles the repositories' archives every [`SETTLE_EVERY`] while there is something to write.
async fn settle_loop(app: Arc<App>) {
    let mut every = tokio::time::interval(SETTLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if !app.repos.unsettled() {
            continue;
        }
        let settling = app.clone();
        match tokio::task::spawn_blocking(move || settling.repos.settle()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("writing archives out (tried again shortly): {e}"),
            Err(e) => tracing::warn!("writing archives out: {e}"),
        }
    }
}
