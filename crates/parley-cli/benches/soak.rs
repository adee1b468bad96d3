//! Soak: `parley up` (release) ingesting at a steady rate for several minutes
//! while subscribers read, with the process's resident memory sampled every
//! ten seconds. Loopback only, bounded in time and count.
//!
//! Run with `cargo bench -p parley-cli --bench soak`; `SOAK_SECS` (default
//! 180), `SOAK_RATE` articles per second (default 20), `SOAK_SUBSCRIBERS`
//! (default 10).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parley_domain::pb::ingest_service_client::IngestServiceClient;
use parley_domain::pb::notify_service_client::NotifyServiceClient;
use parley_domain::pb::{SubmitArticleRequest, SubscribeRequest, subscribe_request::Start};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of a process in MiB, from /proc.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = env_or("SOAK_SECS", 180);
    let rate = env_or("SOAK_RATE", 20).max(1);
    let subscribers = env_or("SOAK_SUBSCRIBERS", 10);
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["up", "--grpc", &format!("127.0.0.1:{port}"), "--data"])
        .arg(dir.path().join("data"))
        .env("PARLEY_LOG", "warn")
        .env("PARLEY_INGEST_RATE_PER_SEC", "0")
        .env_remove("PARLEY_NATS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let channel = loop {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(url.clone())?
            .connect()
            .await
        {
            break channel;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
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
        let mut client = NotifyServiceClient::new(channel.clone());
        let filter = filters[i as usize % filters.len()].to_owned();
        let delivered = delivered.clone();
        tokio::spawn(async move {
            let Ok(response) = client
                .subscribe(SubscribeRequest {
                    filter,
                    start: Some(Start::FromSequence(1)),
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

    println!("soak: {secs} s at {rate} articles/s, {subscribers} subscribers, parley up pid {pid}");
    println!("| elapsed | articles | deliveries | RSS (MiB) |");
    println!("| --- | --- | --- | --- |");
    let mut ingest = IngestServiceClient::new(channel);
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
            })
            .await?;
        sent += 1;
        if started.elapsed() >= next_sample {
            println!(
                "| {:>4} s | {sent} | {} | {:.1} |",
                started.elapsed().as_secs(),
                delivered.load(Ordering::Relaxed),
                rss_mib(pid)
            );
            next_sample += Duration::from_secs(10);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "| {:>4} s | {sent} | {} | {:.1} |",
        started.elapsed().as_secs(),
        delivered.load(Ordering::Relaxed),
        rss_mib(pid)
    );
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    Ok(())
}
