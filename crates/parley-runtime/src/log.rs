//! Flags that say which log a service uses, and connecting to it.
//!
//! NATS authentication is one of: user/password, an nkey seed file, or a
//! `.creds` file (JWT + nkey, for operator-mode servers). TLS is used when
//! the server asks for it, forced with `PARLEY_NATS_REQUIRE_TLS`, and can
//! verify against a private CA and present a client certificate.

use std::path::{Path, PathBuf};
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
    pub nats_creds: Option<PathBuf>,
    /// NATS user name (with --nats-password).
    #[arg(long, env = "PARLEY_NATS_USER", requires = "nats_password")]
    pub nats_user: Option<String>,
    /// NATS password of --nats-user.
    #[arg(
        long,
        env = "PARLEY_NATS_PASSWORD",
        hide_env_values = true,
        requires = "nats_user"
    )]
    pub nats_password: Option<String>,
    /// File holding an nkey seed (`SU...`) to authenticate with.
    #[arg(long, env = "PARLEY_NATS_NKEY_SEED_FILE")]
    pub nats_nkey_seed_file: Option<PathBuf>,
    /// Refuse to talk to NATS without TLS.
    #[arg(long, env = "PARLEY_NATS_REQUIRE_TLS")]
    pub nats_require_tls: bool,
    /// PEM CA bundle to verify the NATS server with (instead of the system roots).
    #[arg(long, env = "PARLEY_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// PEM client certificate presented to NATS (with --nats-tls-key).
    #[arg(long, env = "PARLEY_NATS_TLS_CERT", requires = "nats_tls_key")]
    pub nats_tls_cert: Option<PathBuf>,
    /// PEM private key of --nats-tls-cert.
    #[arg(long, env = "PARLEY_NATS_TLS_KEY", requires = "nats_tls_cert")]
    pub nats_tls_key: Option<PathBuf>,
    /// Records the stream may be missing (deleted, or removed from its
    /// start) before the service refuses to start: 0 refuses any loss; set
    /// it to the count the refusal reports to acknowledge a known loss.
    #[arg(long, env = "PARLEY_ACCEPT_MISSING_RECORDS", default_value_t = 0)]
    pub accept_missing_records: u64,
}

impl Default for LogArgs {
    /// A local server without auth: what tests and `parley up` use.
    fn default() -> Self {
        Self {
            nats_url: "nats://127.0.0.1:4222".into(),
            stream: "PARLEY".into(),
            stream_replicas: 1,
            nats_creds: None,
            nats_user: None,
            nats_password: None,
            nats_nkey_seed_file: None,
            nats_require_tls: false,
            nats_tls_ca: None,
            nats_tls_cert: None,
            nats_tls_key: None,
            accept_missing_records: 0,
        }
    }
}

/// Why the NATS flags cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NatsArgsError {
    /// A file named by a flag is missing or unreadable.
    #[error("{flag}: cannot read {path}: {source}")]
    File {
        /// The flag's environment variable.
        flag: &'static str,
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Flags that contradict each other.
    #[error("{0}")]
    Conflict(String),
}

fn readable(path: &Path, flag: &'static str) -> Result<(), NatsArgsError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|source| NatsArgsError::File {
            flag,
            path: path.to_owned(),
            source,
        })
}

impl LogArgs {
    /// Checks the flags: at most one auth method, every named file readable.
    pub fn validate(&self) -> Result<(), NatsArgsError> {
        let methods: Vec<&str> = [
            (
                self.nats_user.is_some(),
                "PARLEY_NATS_USER/PARLEY_NATS_PASSWORD",
            ),
            (
                self.nats_nkey_seed_file.is_some(),
                "PARLEY_NATS_NKEY_SEED_FILE",
            ),
            (self.nats_creds.is_some(), "PARLEY_NATS_CREDS"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        if methods.len() > 1 {
            return Err(NatsArgsError::Conflict(format!(
                "choose one NATS authentication method, not {}",
                methods.join(" and ")
            )));
        }
        if self.nats_user.is_some() != self.nats_password.is_some() {
            return Err(NatsArgsError::Conflict(
                "PARLEY_NATS_USER and PARLEY_NATS_PASSWORD go together".into(),
            ));
        }
        if self.nats_tls_cert.is_some() != self.nats_tls_key.is_some() {
            return Err(NatsArgsError::Conflict(
                "PARLEY_NATS_TLS_CERT and PARLEY_NATS_TLS_KEY go together".into(),
            ));
        }
        for (path, flag) in [
            (&self.nats_creds, "PARLEY_NATS_CREDS"),
            (&self.nats_nkey_seed_file, "PARLEY_NATS_NKEY_SEED_FILE"),
            (&self.nats_tls_ca, "PARLEY_NATS_TLS_CA"),
            (&self.nats_tls_cert, "PARLEY_NATS_TLS_CERT"),
            (&self.nats_tls_key, "PARLEY_NATS_TLS_KEY"),
        ] {
            if let Some(path) = path {
                readable(path, flag)?;
            }
        }
        Ok(())
    }

    /// The async-nats options these flags describe (auth and TLS).
    pub async fn connect_options(&self) -> Result<async_nats::ConnectOptions, NatsArgsError> {
        self.validate()?;
        let mut options = async_nats::ConnectOptions::new();
        if let (Some(user), Some(password)) = (&self.nats_user, &self.nats_password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(path) = &self.nats_nkey_seed_file {
            let seed = std::fs::read_to_string(path).map_err(|source| NatsArgsError::File {
                flag: "PARLEY_NATS_NKEY_SEED_FILE",
                path: path.clone(),
                source,
            })?;
            options = options.nkey(seed.trim().to_owned());
        }
        if let Some(path) = &self.nats_creds {
            options =
                options
                    .credentials_file(path)
                    .await
                    .map_err(|source| NatsArgsError::File {
                        flag: "PARLEY_NATS_CREDS",
                        path: path.clone(),
                        source,
                    })?;
        }
        if let Some(ca) = &self.nats_tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.nats_tls_cert, &self.nats_tls_key) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if self.nats_require_tls {
            options = options.require_tls(true);
        }
        Ok(options)
    }

    /// Names the NATS authentication in use, for the start-up log.
    pub fn auth_mode(&self) -> &'static str {
        if self.nats_user.is_some() {
            "user/password"
        } else if self.nats_nkey_seed_file.is_some() {
            "nkey"
        } else if self.nats_creds.is_some() {
            "credentials file"
        } else {
            "none"
        }
    }

    /// The log configuration, with what `JetStreamConfig` can carry today.
    ///
    /// `JetStreamConfig` holds a creds file and the TLS requirement only;
    /// user/password, nkeys and TLS files need the log to accept connect
    /// options (see [`LogArgs::connect`]).
    pub fn jetstream_config(&self) -> JetStreamConfig {
        let mut config = JetStreamConfig::new(self.nats_url.clone());
        config.stream_name = self.stream.clone();
        config.replicas = self.stream_replicas;
        config.credentials_file = self.nats_creds.clone();
        config.require_tls = self.nats_require_tls;
        config.accept_missing = self.accept_missing_records;
        config
    }

    /// Connects, retrying with backoff until `deadline` so a service started
    /// before NATS does not crash-loop.
    pub async fn connect(
        &self,
        deadline: Duration,
    ) -> Result<Arc<JetStreamLog>, parley_log::LogError> {
        self.validate()
            .map_err(|e| parley_log::LogError::Backend(e.to_string()))?;
        tracing::info!(url = %self.nats_url, auth = self.auth_mode(), tls_required = self.nats_require_tls, "connecting to NATS");
        let config = self.jetstream_config();
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let options = self
                .connect_options()
                .await
                .map_err(|e| parley_log::LogError::Backend(e.to_string()))?;
            match JetStreamLog::connect_with_options(config.clone(), options).await {
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

impl LogArgs {
    /// Connects, retrying with backoff (up to 5 s apart) for as long as it
    /// takes, until `shutdown` fires: a service started before NATS, or
    /// while the cluster elects a leader, waits instead of crash-looping.
    /// Returns `Ok(None)` when shutdown came first. Settings that can never
    /// work (contradictory flags, unreadable files) fail at once.
    pub async fn connect_until_stopped(
        &self,
        shutdown: &crate::ShutdownSignal,
    ) -> Result<Option<Arc<JetStreamLog>>, parley_log::LogError> {
        self.validate()
            .map_err(|e| parley_log::LogError::Backend(e.to_string()))?;
        let config = self.jetstream_config();
        let mut delay = Duration::from_millis(100);
        loop {
            let options = self
                .connect_options()
                .await
                .map_err(|e| parley_log::LogError::Backend(e.to_string()))?;
            let attempt = JetStreamLog::connect_with_options(config.clone(), options);
            let result = tokio::select! {
                _ = shutdown.token.cancelled() => return Ok(None),
                result = attempt => result,
            };
            match result {
                Ok(log) => return Ok(Some(Arc::new(log))),
                Err(e) => {
                    // Not only "unreachable": a cluster without a leader yet
                    // times out creating the stream, which heals by itself.
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, url = %self.nats_url, "log not reachable yet; NOT_SERVING until it is");
                    tokio::select! {
                        _ = shutdown.token.cancelled() => return Ok(None),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
