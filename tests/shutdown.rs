//! Process lifecycle of the three service binaries, as an orchestrator sees it:
//!
//! - SIGTERM: `grpc.health.v1` stops answering SERVING (NOT_SERVING on the
//!   watch stream, or the port closes), open gRPC streams end, and the process
//!   exits 0 within `PARLEY_SHUTDOWN_GRACE_SECS` (Kubernetes sends SIGKILL
//!   after its own grace period);
//! - SIGTERM while NATS is still unreachable: same bound;
//! - a malformed setting: the process exits non-zero at once, with a message
//!   naming the environment variable.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use parley_domain::pb::SubscribeRequest;
use parley_domain::pb::notify_service_client::NotifyServiceClient;
use parley_domain::pb::subscribe_request::Start;
use parley_testkit::NatsServer;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Grace period given to the services under test.
const GRACE: Duration = Duration::from_secs(3);
/// Slack on top of the grace period for process teardown on a busy machine.
const SLACK: Duration = Duration::from_millis(1500);
const STARTUP: Duration = Duration::from_secs(60);
const SERVICES: [&str; 3] = ["parley-ingest", "parley-resolver", "parley-notify"];

/// A service binary run as a child process, with its stderr in a file.
struct Service {
    name: &'static str,
    child: Child,
    grpc_port: u16,
    log_path: std::path::PathBuf,
}

impl Service {
    /// Starts `name` with a free gRPC port on loopback, `nats_url`, the test
    /// grace period, and `extra` environment on top.
    fn spawn(
        name: &'static str,
        nats_url: &str,
        logs: &Path,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let grpc_port = parley_testkit::free_port()?;
        let log_path = logs.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(parley_e2e::binary(name)?)
            .env("PARLEY_NATS_URL", nats_url)
            .env("PARLEY_GRPC_ADDR", format!("127.0.0.1:{grpc_port}"))
            .env("PARLEY_SHUTDOWN_GRACE_SECS", GRACE.as_secs().to_string())
            .env("PARLEY_LOG", "info")
            .env_remove("PARLEY_METRICS_ADDR")
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("spawning {name}"))?;
        Ok(Self {
            name,
            child,
            grpc_port,
            log_path,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGTERM, as Kubernetes or `podman stop` sends it.
    fn terminate(&self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM {} failed", self.child.id());
        Ok(())
    }

    /// Waits up to `limit` for the process to exit; `None` if it is still running.
    async fn wait_exit(&mut self, limit: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `grpc.health.v1` answers SERVING for the whole server.
    async fn wait_serving(&mut self) -> anyhow::Result<Channel> {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited with {status}:\n{}", self.name, self.log());
            }
            if let Ok(channel) = Channel::from_shared(self.url())?.connect().await {
                let check = HealthClient::new(channel.clone())
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                if check.is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32) {
                    return Ok(channel);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not serving after {STARTUP:?}:\n{}",
                    self.name,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the health watch stream showed after SIGTERM.
#[derive(Debug, PartialEq, Eq)]
enum HealthAfterTerm {
    /// NOT_SERVING was announced.
    NotServing,
    /// The stream ended or failed (the server closed it, or the port closed).
    Closed,
}

/// SIGTERM on a serving service: health flips, streams end, exit 0 in time.
async fn drains_on_sigterm(name: &'static str) -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let logs = tempfile::tempdir()?;
    let mut service = Service::spawn(name, &nats.url(), logs.path(), &[])?;
    let channel = service.wait_serving().await?;

    // A health watcher, as a load balancer would keep one.
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner();
    let first = watch
        .message()
        .await?
        .context("health watch ended at once")?;
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let watcher = tokio::spawn(async move {
        loop {
            match watch.message().await {
                Ok(Some(update)) if update.status == ServingStatus::NotServing as i32 => {
                    return HealthAfterTerm::NotServing;
                }
                Ok(Some(_)) => continue,
                Err(_) | Ok(None) => return HealthAfterTerm::Closed,
            }
        }
    });
    // Notify holds long-lived subscriber streams: one must not hold up the exit.
    let subscription = if name == "parley-notify" {
        let stream = NotifyServiceClient::new(channel)
            .subscribe(SubscribeRequest {
                filter: String::new(),
                start: Some(Start::FromSequence(1)),
                ..Default::default()
            })
            .await?
            .into_inner();
        Some(tokio::spawn(async move {
            let mut stream = stream;
            while let Ok(Some(_)) = stream.message().await {}
        }))
    } else {
        None
    };

    let terminated = Instant::now();
    service.terminate()?;
    let status = service.wait_exit(GRACE + SLACK).await?;
    let took = terminated.elapsed();
    let Some(status) = status else {
        bail!(
            "{name} still running {:?} after SIGTERM (grace {GRACE:?}):\n{}",
            GRACE + SLACK,
            service.log()
        );
    };
    assert!(
        status.success(),
        "{name} exited with {status} after SIGTERM:\n{}",
        service.log()
    );
    let health = tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .context("health watch still open after the process exited")??;
    assert!(
        matches!(
            health,
            HealthAfterTerm::NotServing | HealthAfterTerm::Closed
        ),
        "{health:?}"
    );
    if let Some(subscription) = subscription {
        tokio::time::timeout(Duration::from_secs(5), subscription)
            .await
            .context("subscription still open after the process exited")??;
    }
    eprintln!("{name}: health {health:?}, exit 0 {took:?} after SIGTERM");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_drains_on_sigterm_within_the_grace_period() -> anyhow::Result<()> {
    drains_on_sigterm("parley-ingest").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolver_drains_on_sigterm_within_the_grace_period() -> anyhow::Result<()> {
    drains_on_sigterm("parley-resolver").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_drains_on_sigterm_within_the_grace_period() -> anyhow::Result<()> {
    drains_on_sigterm("parley-notify").await
}

/// A NATS URL where nothing listens.
fn unreachable_nats() -> anyhow::Result<String> {
    Ok(format!("nats://127.0.0.1:{}", parley_testkit::free_port()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_nats_is_unreachable_still_exits_within_the_grace_period()
-> anyhow::Result<()> {
    let logs = tempfile::tempdir()?;
    let nats_url = unreachable_nats()?;
    let mut services = SERVICES
        .into_iter()
        .map(|name| Service::spawn(name, &nats_url, logs.path(), &[]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Let them get into their connect-retry loop.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Waiting for the log, each already answers probes on its port: NOT_SERVING.
    for service in &services {
        let status = not_serving_status(&service.url()).await?;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::NotServing as i32,
            "{} should report NOT_SERVING while NATS is unreachable:\n{}",
            service.name,
            service.log()
        );
    }
    for service in &services {
        service.terminate()?;
    }
    let mut failures = Vec::new();
    for service in &mut services {
        match service.wait_exit(GRACE + SLACK).await? {
            Some(status) if status.success() => {}
            Some(status) => failures.push(format!(
                "{} exited with {status} on SIGTERM while NATS was unreachable:\n{}",
                service.name,
                service.log()
            )),
            None => failures.push(format!(
                "{} still running {:?} after SIGTERM while NATS was unreachable:\n{}",
                service.name,
                GRACE + SLACK,
                service.log()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_setting_stops_the_service_naming_the_variable() -> anyhow::Result<()> {
    let logs = tempfile::tempdir()?;
    // NATS is unreachable: a service that accepted the setting would keep
    // retrying, not exit, so a quick exit means the setting was refused.
    let nats_url = unreachable_nats()?;
    let bad = [
        ("PARLEY_GRPC_ADDR", "nonsense"),
        ("PARLEY_SHUTDOWN_GRACE_SECS", "soon"),
        ("PARLEY_STREAM_REPLICAS", "three"),
        ("PARLEY_LOG_FORMAT", "yaml"),
    ];
    let mut failures = Vec::new();
    for name in SERVICES {
        for (variable, value) in bad {
            let mut service = Service::spawn(name, &nats_url, logs.path(), &[(variable, value)])?;
            match service.wait_exit(Duration::from_secs(10)).await? {
                None => failures.push(format!("{name} with {variable}={value}: still running")),
                Some(status) if status.success() => {
                    failures.push(format!("{name} with {variable}={value}: exited 0"))
                }
                Some(_) if !service.log().contains(variable) => failures.push(format!(
                    "{name} with {variable}={value}: the message does not name {variable}:\n{}",
                    service.log()
                )),
                Some(_) => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// The overall health status a service reports, retried briefly while it binds.
async fn not_serving_status(url: &str) -> anyhow::Result<i32> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(url.to_owned())?
            .connect()
            .await
            && let Ok(response) = tonic_health::pb::health_client::HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await
        {
            return Ok(response.into_inner().status);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{url}: no health answer while waiting for NATS"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
