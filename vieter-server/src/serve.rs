//! The connection loop: accepts TCP connections and serves HTTP/1.1 on them with the routes.
//!
//! warp's own server keeps a connection that never sends a complete request head open forever and
//! spins on `accept` errors, so 300 silent connections under a 256-descriptor limit stall it. This loop
//! keeps the server answering under such load:
//! - a request head (and the idle time between two requests on a kept-alive connection) must arrive
//!   within `header_read_timeout`, or hyper closes the connection;
//! - at most `max_connections` connections are served at once (by default three quarters of the
//!   open-file limit, so files, the database and uploads always find a descriptor); further ones wait
//!   in the kernel's listen backlog instead of failing;
//! - an `accept` error (out of descriptors) backs off, doubling from 10 ms to 1 s, instead of spinning;
//! - on shutdown the listener closes and requests in flight finish.
//!
//! Bodies are read by the handlers, which enforce their own idle timeout and size limits (see
//! `routes::body`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use warp::filters::BoxedFilter;

/// How connections are limited.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// The number of connections served at once when none is configured: three quarters of the soft
/// open-file limit (at least 16), after raising the soft limit to the hard one.
pub fn default_max_connections() -> usize {
    let limit = raise_nofile_limit();
    (limit.saturating_mul(3) / 4).max(16) as usize
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (as nginx and most servers do) and returns the
/// resulting soft limit.
fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// Errors of one connection that `accept` reports but that say nothing about the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset | Interrupted)
}

/// Serves `routes` on `listener` until `shutdown` completes, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(warp::reply::Response,)>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = Duration::ZERO;
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff = Duration::ZERO;
                stream
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Typically EMFILE: nothing can be accepted until a descriptor is freed. Waiting lets
                // connections finish (or time out) instead of burning a core on a failing accept.
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                if backoff == Duration::from_millis(10) {
                    tracing::warn!("accept failed: {e}; backing off");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = &mut shutdown => break,
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(warp::service(routes.clone()));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    // Requests in flight finish; a client that keeps one open longer than this is cut off.
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            "requests still open {} s after the shutdown began: stopping anyway",
            SHUTDOWN_GRACE.as_secs()
        );
    }
}

/// How long a graceful shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
