//! Support for the end-to-end tests: the real service binaries, spawned as
//! separate processes, killed and restarted like an operator (or a crash) would.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use parley_domain::Event;
use parley_domain::pb::notify_service_client::NotifyServiceClient;
use parley_domain::pb::{SubscribeRequest, SubscribeResponse, subscribe_request::Start};
use parley_log::{EventLog, Filter, ReadMode, StartAt};
use parley_runtime::decode_record;
use std::collections::{BTreeMap, HashMap, HashSet};
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Folder holding the workspace's built binaries (next to the test executable's `deps/`).
pub fn binary_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps folder");
    deps.parent().expect("profile folder").to_path_buf()
}

/// Path of a workspace binary, failing clearly when it was not built.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = binary_dir().join(name);
    if !path.exists() {
        bail!(
            "{} is not built: run `cargo build --workspace --bins` first (scripts/test does)",
            path.display()
        );
    }
    Ok(path)
}

/// One service process with its environment, so it can be restarted the same way.
pub struct ServiceProcess {
    name: String,
    path: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    grpc_port: u16,
    log_path: PathBuf,
}

impl ServiceProcess {
    /// Spawns `binary` with `PARLEY_NATS_URL` and a free gRPC port; its stderr goes to a file.
    pub fn spawn(
        binary_name: &str,
        nats_url: &str,
        log_dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        Self::spawn_with_env(binary_name, nats_url, log_dir, &[])
    }

    /// Like [`ServiceProcess::spawn`], with extra environment variables.
    pub fn spawn_with_env(
        binary_name: &str,
        nats_url: &str,
        log_dir: &std::path::Path,
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let grpc_port = parley_testkit::free_port()?;
        let mut env = vec![
            ("PARLEY_NATS_URL".to_owned(), nats_url.to_owned()),
            (
                "PARLEY_GRPC_ADDR".to_owned(),
                format!("127.0.0.1:{grpc_port}"),
            ),
            ("PARLEY_LOG".to_owned(), "info".to_owned()),
            ("PARLEY_SHUTDOWN_GRACE_SECS".to_owned(), "3".to_owned()),
        ];
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let mut process = Self {
            name: binary_name.to_owned(),
            path: binary(binary_name)?,
            args: Vec::new(),
            env,
            child: None,
            grpc_port,
            log_path: log_dir.join(format!("{binary_name}.log")),
        };
        process.start()?;
        Ok(process)
    }

    /// Spawns `parley up` over the embedded log in `data` (or `--nats URL` if
    /// given among `extra_args`) on a free port; stdout and stderr go to a file.
    pub fn spawn_up(
        data: &std::path::Path,
        extra_args: &[&str],
        log_dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        Self::spawn_up_with_env(data, extra_args, log_dir, &[])
    }

    /// Like [`ServiceProcess::spawn_up`], with extra environment variables.
    pub fn spawn_up_with_env(
        data: &std::path::Path,
        extra_args: &[&str],
        log_dir: &std::path::Path,
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let grpc_port = parley_testkit::free_port()?;
        let mut args = vec![
            "up".to_owned(),
            "--data".to_owned(),
            data.display().to_string(),
            "--grpc".to_owned(),
            format!("127.0.0.1:{grpc_port}"),
        ];
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let mut process = Self {
            name: "parley up".to_owned(),
            path: binary("parley")?,
            args,
            env: [("PARLEY_LOG", "info"), ("PARLEY_SHUTDOWN_GRACE_SECS", "3")]
                .iter()
                .chain(extra_env)
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            child: None,
            grpc_port,
            log_path: log_dir.join("parley-up.log"),
        };
        process.start()?;
        Ok(process)
    }

    fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let child = Command::new(&self.path)
            .args(&self.args)
            .env_remove("PARLEY_NATS_URL")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("spawning {}", self.path.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// gRPC URL of the process.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// Its stderr so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGKILL: no drain, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again with the same environment and port.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.start()
    }

    /// SIGTERM, then waits for the exit (at most `timeout`); returns whether it exited cleanly.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<bool> {
        let Some(child) = self.child.take() else {
            return Ok(true);
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        Ok(self.wait_for(child, timeout, "of SIGTERM")?.success())
    }

    /// Waits for the process to exit on its own (at most `timeout`, then it is
    /// killed and this fails); returns its exit status. For start-up refusals.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let Some(child) = self.child.take() else {
            bail!("{} is not running", self.name);
        };
        self.wait_for(child, timeout, "of starting")
    }

    /// Waits for `child` to exit, at most `timeout` (`after` says since when,
    /// for the failure message), killing it if it does not.
    fn wait_for(
        &self,
        mut child: Child,
        timeout: Duration,
        after: &str,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{} did not exit within {timeout:?} {after}:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `grpc.health.v1` reports SERVING.
    pub async fn wait_serving(&mut self, timeout: Duration) -> anyhow::Result<Channel> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("{} exited with {status}:\n{}", self.name, self.log());
            }
            if let Ok(channel) = Channel::from_shared(self.url())?.connect().await {
                let mut health = HealthClient::new(channel.clone());
                if let Ok(response) = health
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    && response.into_inner().status == ServingStatus::Serving as i32
                {
                    return Ok(channel);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not serving after {timeout:?}:\n{}",
                    self.name,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sides (demonyms) of the synthetic corpus, all in the shipped knowledge base.
pub const SIDES: [(&str, &str); 6] = [
    ("Russian", "Ukrainian"),
    ("Armenian", "Azerbaijani"),
    ("Israeli", "Lebanese"),
    ("Thai", "Cambodian"),
    ("Indian", "Pakistani"),
    ("Rwandan", "Congolese"),
];
/// Venues of the synthetic corpus.
pub const CITIES: [&str; 5] = ["Istanbul", "Doha", "Geneva", "Riyadh", "Jeddah"];
/// Mediators of the synthetic corpus (unknown to the knowledge base).
pub const ENVOYS: [&str; 4] = [
    "Marta Kowalczyk",
    "Tomas Lindqvist",
    "Amina Diallo",
    "Rafael Ortega",
];
/// Weekdays the synthetic articles date their talks by.
pub const WEEKDAYS: [&str; 3] = ["Monday", "Tuesday", "Wednesday"];

/// A short, distinct talks article: document `i` of the synthetic corpus.
pub fn synthetic_article(i: usize) -> String {
    let (a, b) = SIDES[i % SIDES.len()];
    let city = CITIES[(i / 7) % CITIES.len()];
    let envoy = ENVOYS[(i / 3) % ENVOYS.len()];
    let weekday = WEEKDAYS[i % WEEKDAYS.len()];
    let day = 10 + (i % 15);
    let month = 1 + (i / 15) % 12;
    format!(
        "date 2025-{month:02}-{day:02}\n\
         Delegations meet again (bulletin {i})\n\n\
         {a} and {b} delegations met in {city} on {weekday} for talks on a ceasefire, \
         officials said. The meeting was chaired by the mediator {envoy}, who told reporters \
         that both sides had agreed to continue. Bulletin number {i} of the synthetic corpus.\n"
    )
}

/// Counts of what a log holds, to prove nothing was lost or duplicated.
#[derive(Debug, Default)]
pub struct LogCensus {
    /// `ArticleIngested` per document id.
    pub ingested: HashMap<String, usize>,
    /// `DocumentResolved` per document id.
    pub resolved: HashMap<String, usize>,
    /// `TalksEventRecorded` per event id.
    pub recorded: HashMap<String, usize>,
    /// `EntityRegistered` per entity id.
    pub registered: HashMap<String, usize>,
    /// Entity ids per canonical name of a registered person.
    pub person_ids_by_name: BTreeMap<String, HashSet<String>>,
}

/// Reads the whole log and counts what matters for exactly-once checks.
pub async fn census(log: &dyn EventLog) -> anyhow::Result<LogCensus> {
    let mut records = log
        .read(StartAt::Beginning, Filter::all(), ReadMode::ToEnd)
        .await?;
    let mut census = LogCensus::default();
    while let Some(record) = records.next().await {
        let record = decode_record(&record?)?;
        for (_, event) in record.events() {
            match event {
                Event::ArticleIngested(a) => {
                    *census.ingested.entry(a.document_id.clone()).or_default() += 1
                }
                Event::DocumentResolved(d) => {
                    *census.resolved.entry(d.document_id.clone()).or_default() += 1
                }
                Event::TalksEventRecorded(r) => {
                    let id = r
                        .event
                        .as_ref()
                        .map(|e| e.event_id.clone())
                        .unwrap_or_default();
                    *census.recorded.entry(id).or_default() += 1
                }
                Event::EntityRegistered(e) => {
                    *census.registered.entry(e.entity_id.clone()).or_default() += 1;
                    if e.entity_id.starts_with("per-") {
                        census
                            .person_ids_by_name
                            .entry(e.name.clone())
                            .or_default()
                            .insert(e.entity_id.clone());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(census)
}

impl LogCensus {
    /// Every one of `documents` documents ingested and resolved exactly once,
    /// every event recorded once, every entity registered once, no person split.
    pub fn exactly_once(&self, documents: usize) -> Result<(), String> {
        let twice = |map: &HashMap<String, usize>| -> Vec<String> {
            map.iter()
                .filter(|(_, n)| **n > 1)
                .map(|(k, n)| format!("{k} ×{n}"))
                .collect()
        };
        let mut problems = Vec::new();
        if self.ingested.len() != documents {
            problems.push(format!(
                "{} documents ingested, expected {documents}",
                self.ingested.len()
            ));
        }
        if self.resolved.len() != documents {
            problems.push(format!(
                "{} documents resolved, expected {documents}",
                self.resolved.len()
            ));
        }
        for (what, map) in [
            ("ingested twice", &self.ingested),
            ("resolved twice", &self.resolved),
            ("recorded twice", &self.recorded),
            ("registered twice", &self.registered),
        ] {
            let dups = twice(map);
            if !dups.is_empty() {
                problems.push(format!("{what}: {dups:?}"));
            }
        }
        if self.recorded.is_empty() {
            problems.push("no event recorded at all".into());
        }
        let split: Vec<_> = self
            .person_ids_by_name
            .iter()
            .filter(|(_, ids)| ids.len() > 1)
            .collect();
        if !split.is_empty() {
            problems.push(format!("people split into several entities: {split:?}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}

/// Every delivery of a subscription from the start of the log, into a channel.
pub async fn subscribe_all(
    channel: Channel,
) -> anyhow::Result<mpsc::UnboundedReceiver<SubscribeResponse>> {
    let mut stream = NotifyServiceClient::new(channel)
        .subscribe(SubscribeRequest {
            filter: String::new(),
            start: Some(Start::FromSequence(1)),
            ..Default::default()
        })
        .await?
        .into_inner();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(delivery)) = stream.message().await {
            if tx.send(delivery).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Receives until `done` holds, or the timeout passes; returns whether it holds.
pub async fn receive_until(
    rx: &mut mpsc::UnboundedReceiver<SubscribeResponse>,
    received: &mut Vec<SubscribeResponse>,
    timeout: Duration,
    done: impl Fn(&[SubscribeResponse]) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(received) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(delivery)) => received.push(delivery),
            _ => return done(received),
        }
    }
    true
}

/// Runs the `parley` CLI with `args` and extra environment, at most `timeout`;
/// returns its output (stdout, stderr, status).
pub async fn parley_cli(
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> anyhow::Result<std::process::Output> {
    let child = tokio::process::Command::new(binary("parley")?)
        .args(args)
        .env_remove("PARLEY_SERVER")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawning parley")?;
    tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .with_context(|| format!("parley {args:?} did not finish within {timeout:?}"))?
        .context("waiting for parley")
}

/// The `/metrics` page of a process serving Prometheus metrics on `addr`
/// (waits up to 30 s for the listener).
pub async fn scrape_metrics(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(mut stream) => {
                stream
                    .write_all(
                        format!(
                            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await?;
                let mut page = String::new();
                stream.read_to_string(&mut page).await?;
                let body = page
                    .split_once("\r\n\r\n")
                    .map(|(_, body)| body.to_owned())
                    .unwrap_or_default();
                return Ok(body);
            }
            Err(e) if Instant::now() > deadline => bail!("no metrics on {addr}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The pinned promtool that `scripts/install-tools` puts in `.tools/`.
pub fn promtool() -> anyhow::Result<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let path = root.join(".tools/promtool/promtool");
    if !path.exists() {
        bail!(
            "{} is missing: run scripts/install-tools (scripts/test does)",
            path.display()
        );
    }
    Ok(path)
}

/// Runs `promtool check metrics` over a `/metrics` page; fails with its complaints.
pub fn promtool_check(page: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = Command::new(promtool()?)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("promtool stdin")?
        .write_all(page.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "promtool check metrics failed:\n{}{}\n--- page ---\n{page}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// One HTTP request a [`HttpReceiver`] got.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// Request line and headers, as sent.
    pub head: String,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }
}

/// A loopback HTTP/1.1 receiver that records every request and answers 200.
#[derive(Clone, Default)]
pub struct HttpReceiver {
    requests: std::sync::Arc<std::sync::Mutex<Vec<HttpRequest>>>,
}

impl HttpReceiver {
    /// Starts accepting; returns the URL to post to.
    pub async fn start(&self) -> anyhow::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let requests = self.requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let requests = requests.clone();
                tokio::spawn(async move {
                    loop {
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 8192];
                        let (head_end, body_end) = loop {
                            let Ok(n) = socket.read(&mut chunk).await else {
                                return;
                            };
                            if n == 0 {
                                return;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head =
                                    String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                                let length: usize = head
                                    .lines()
                                    .find_map(|l| l.strip_prefix("content-length:"))
                                    .and_then(|v| v.trim().parse().ok())
                                    .unwrap_or(0);
                                break (end, end + 4 + length);
                            }
                        };
                        while buf.len() < body_end {
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        requests.lock().unwrap().push(HttpRequest {
                            head: String::from_utf8_lossy(&buf[..head_end]).into_owned(),
                            body: buf[head_end + 4..body_end].to_vec(),
                        });
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if socket.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(url)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the requests so far (at most `timeout`).
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[HttpRequest]) -> bool,
    ) -> Vec<HttpRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if done(&requests) || Instant::now() > deadline {
                return requests;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
