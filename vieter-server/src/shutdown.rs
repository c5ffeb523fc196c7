//! Graceful shutdown: the future the server stops on.
//!
//! warp stops accepting connections when it completes and waits for the requests in flight, so an upload
//! that is arriving when SIGTERM comes is still received, parsed and published before the process exits.

/// Completes on the first SIGINT (Ctrl-C) or SIGTERM (service managers, `podman stop`).
pub async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            // Without a SIGTERM handler only Ctrl-C stops the server.
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
