//! Shutdown on SIGTERM or Ctrl-C, broadcast through a cancellation token.
//!
//! Kubernetes sends SIGTERM and waits 30 s before SIGKILL; every service drains
//! within [`ShutdownSignal::grace`], which must stay shorter than that.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A cancellation token plus the grace period in which work must drain.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    /// Cancelled when the process should stop.
    pub token: CancellationToken,
    /// Time allowed for draining after cancellation.
    pub grace: Duration,
}

impl ShutdownSignal {
    /// A signal not tied to the process (tests, embedded use).
    pub fn new(grace: Duration) -> Self {
        Self {
            token: CancellationToken::new(),
            grace,
        }
    }
}

/// Returns a signal cancelled on SIGTERM, SIGINT (Ctrl-C) or SIGHUP.
pub fn shutdown_on_signals(grace: Duration) -> ShutdownSignal {
    let signal = ShutdownSignal::new(grace);
    let token = signal.token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            grace_secs = grace.as_secs_f32(),
            "shutdown requested; draining"
        );
        token.cancel();
    });
    signal
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    let mut hup = signal(SignalKind::hangup()).ok();
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
