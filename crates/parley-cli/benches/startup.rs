//! Time from `parley up` to serving: spawn the real binary on an empty data
//! directory (and on one holding a small log), poll `grpc.health.v1` until it
//! says SERVING, and report the median and worst of several runs.
//!
//! Run with `cargo bench -p parley-cli --bench startup` (release build).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const RUNS: usize = 10;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Spawns `parley up` and returns the time until health reports SERVING.
async fn time_to_serving(data: &std::path::Path, extra: &[&str]) -> Duration {
    let port = free_port();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["up", "--grpc", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .args(extra)
        .env("PARLEY_LOG", "warn")
        .env_remove("PARLEY_NATS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn parley up");
    let url = format!("http://127.0.0.1:{port}");
    let elapsed = loop {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(url.clone())
            .expect("valid URL")
            .connect()
            .await
            && let Ok(response) = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
            && response.into_inner().status == 1
        {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "parley up never served"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    elapsed
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label}: median {:.0} ms, min {:.0} ms, max {:.0} ms over {} runs",
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
        samples.len()
    );
}

#[tokio::main]
async fn main() {
    // Empty log: a fresh data directory every run.
    let mut empty = Vec::new();
    for _ in 0..RUNS {
        let dir = tempfile::tempdir().expect("temp dir");
        empty.push(time_to_serving(&dir.path().join("data"), &[]).await);
    }
    report("parley up → SERVING, empty log", empty);

    // A log holding the demo articles: start-up includes replaying it.
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let _ = time_to_serving(&data, &["--demo"]).await;
    let mut replay = Vec::new();
    for _ in 0..RUNS {
        replay.push(time_to_serving(&data, &[]).await);
    }
    report("parley up → SERVING, demo log replayed", replay);
}
