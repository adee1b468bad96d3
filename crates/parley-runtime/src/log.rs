//! Flags that say which log a service uses, and connecting to it.

use std::sync::Arc;
use std::time::Duration;

use parley_log::jetstream::{JetStreamConfig, JetStreamLog};

/// Log connection flags shared by every service binary.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// NATS server URL(s), comma-separated, of a JetStream-enabled server (2.10 or newer).
    #[arg(long, env = "PARLEY_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// JetStream stream holding the log.
    #[arg(long, env = "PARLEY_STREAM", default_value = "PARLEY")]
    pub stream: String,
    /// Replicas of the log stream (3 on a cluster).
    #[arg(long, env = "PARLEY_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
    /// NATS credentials file (.creds), if the server requires one.
    #[arg(long, env = "PARLEY_NATS_CREDS")]
    pub nats_creds: Option<std::path::PathBuf>,
}

impl LogArgs {
    /// Connects, retrying with backoff until `deadline` so a service started
    /// before NATS does not crash-loop.
    pub async fn connect(
        &self,
        deadline: Duration,
    ) -> Result<Arc<JetStreamLog>, parley_log::LogError> {
        let mut config = JetStreamConfig::new(self.nats_url.clone());
        config.stream_name = self.stream.clone();
        config.replicas = self.stream_replicas;
        config.credentials_file = self.nats_creds.clone();
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            match JetStreamLog::connect(config.clone()).await {
                Ok(log) => return Ok(Arc::new(log)),
                Err(e) if e.is_transient() && started.elapsed() + delay < deadline => {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "log not reachable yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }
}
