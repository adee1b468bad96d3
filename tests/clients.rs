//! What the clients of Parley's ecosystem hit, through the real binaries:
//! the CLI in a terminal and in pipes, bulk ingest against the default rate
//! limit, standalone services called for an API they do not serve, the NATS
//! intake and webhooks under `parley up --nats`, `promtool` on every
//! process's metrics, JSON logs, the chat formats and CSV, and the Python
//! example client.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use parley_domain::pb::ingest_service_client::IngestServiceClient;
use parley_domain::pb::notify_service_client::NotifyServiceClient;
use parley_domain::pb::{
    Channel, CreateSubscriptionRequest, SubmitArticleRequest, SubmitArticleResponse, Webhook,
    WebhookFormat,
};
use parley_e2e::{HttpReceiver, ServiceProcess, parley_cli};

const STARTUP: Duration = Duration::from_secs(60);

/// Writes document `i` of the synthetic corpus for each `i` in `range` into `dir`.
fn write_articles(dir: &Path, range: std::ops::Range<usize>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for i in range {
        std::fs::write(
            dir.join(format!("article-{i:04}.txt")),
            parley_e2e::synthetic_article(i),
        )?;
    }
    Ok(())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A counter's value on a `/metrics` page, summed over its label sets.
fn metric_sum(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_files_into_parley_up_with_default_settings_are_all_acknowledged()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let articles = dir.path().join("articles");
    write_articles(&articles, 0..1000)?;
    let metrics = format!("127.0.0.1:{}", parley_testkit::free_port()?);
    // Default settings: 50 submissions per second per client.
    let mut up = ServiceProcess::spawn_up_with_env(
        &dir.path().join("data"),
        &[],
        dir.path(),
        &[("PARLEY_METRICS_ADDR", &metrics)],
    )?;
    up.wait_serving(STARTUP).await?;

    let folder = articles.display().to_string();
    let url = up.url();
    let output = parley_cli(
        &["ingest", "--server", &url, &folder],
        &[],
        Duration::from_secs(600),
    )
    .await?;
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some("1000 ingested, 0 duplicates, 0 failed"),
        "{stderr}"
    );
    let stdout = text(&output.stdout);
    let ids: BTreeSet<&str> = stdout
        .lines()
        .map(|line| line.split('\t').next().unwrap_or_default())
        .collect();
    assert_eq!(ids.len(), 1000, "one document id per file:\n{stdout}");
    // The server did refuse some (the CLI had to pace itself and retry), and
    // every document is in the log once.
    let page = parley_e2e::scrape_metrics(metrics.parse()?).await?;
    assert!(
        metric_sum(&page, "parley_ingest_rate_limited_total") >= 1.0,
        "the default rate limit was never reached: {page}"
    );
    assert_eq!(metric_sum(&page, "parley_documents_ingested_total"), 1000.0);

    // Again: every file is a duplicate, nothing fails.
    let again = parley_cli(
        &["ingest", "--server", &url, &folder],
        &[],
        Duration::from_secs(600),
    )
    .await?;
    let stderr = text(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some("0 ingested, 1000 duplicates, 0 failed"),
        "{stderr}"
    );
    Ok(())
}

/// Runs `command` in a detached tmux session on a private socket, 160x40,
/// until `done` holds for the screen (at most `timeout`); returns the screen.
fn tmux_screen(
    socket: &str,
    command: &str,
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(["-L", socket])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running tmux (apt-get install tmux)")
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-x",
        "160",
        "-y",
        "40",
        &format!("{command}; sleep 600"),
    ])?;
    anyhow::ensure!(started.status.success(), "tmux: {}", text(&started.stderr));
    let deadline = Instant::now() + timeout;
    let screen = loop {
        let captured = tmux(&["capture-pane", "-p"])?;
        let screen = text(&captured.stdout);
        if done(&screen) || Instant::now() > deadline {
            break screen;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = tmux(&["kill-server"]);
    Ok(screen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_failures_stay_on_the_screen_after_the_progress_bar() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let articles = dir.path().join("articles");
    write_articles(&articles, 0..30)?;
    std::fs::write(articles.join("photo.jpg"), b"\xFF\xD8\xFF\xE0\0\x10JFIF\0")?;
    let mut up = ServiceProcess::spawn_up(&dir.path().join("data"), &[], dir.path())?;
    up.wait_serving(STARTUP).await?;
    let command = format!(
        "{} ingest --server {} {} > {}",
        parley_e2e::binary("parley")?.display(),
        up.url(),
        articles.display(),
        dir.path().join("ids.txt").display()
    );
    let socket = format!("parley-e2e-{}", std::process::id());
    let screen = tokio::task::spawn_blocking(move || {
        tmux_screen(&socket, &command, Duration::from_secs(120), |screen| {
            screen.contains(" failed")
        })
    })
    .await??;
    let lines: Vec<&str> = screen
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(
        lines.contains(
            &"parley ingest: photo.jpg: binary data (NUL or control bytes), not a text, HTML or feed document"
        ),
        "the failure is still on the screen:\n{screen}"
    );
    assert_eq!(
        lines.last().copied(),
        Some("30 ingested, 0 duplicates, 1 failed"),
        "{screen}"
    );
    Ok(())
}

/// Spawns `parley` with `args`, reads one line of its stdout, closes the pipe
/// (as `| head -1` does) and returns the line, its exit status and stderr.
async fn first_line_then_close(
    args: &[&str],
) -> anyhow::Result<(String, std::process::ExitStatus, String)> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(parley_e2e::binary("parley")?)
        .args(args)
        .env_remove("PARLEY_SERVER")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .context("no first line")??
        .unwrap_or_default();
    drop(lines);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .context("parley did not end after its reader went away")??;
    Ok((first, output.status, text(&output.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_goes_away_ends_the_cli_quietly() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let articles = dir.path().join("articles");
    write_articles(&articles, 0..12)?;
    let mut up = ServiceProcess::spawn_up(&dir.path().join("data"), &[], dir.path())?;
    let channel = up.wait_serving(STARTUP).await?;
    let url = up.url();
    let output = parley_cli(
        &["ingest", "--server", &url, &articles.display().to_string()],
        &[],
        Duration::from_secs(120),
    )
    .await?;
    assert!(output.status.success(), "{}", text(&output.stderr));
    // Wait until the events are known, so both commands have lines to print.
    let mut deliveries = parley_e2e::subscribe_all(channel).await?;
    let mut received = Vec::new();
    parley_e2e::receive_until(
        &mut deliveries,
        &mut received,
        Duration::from_secs(60),
        |r| r.len() >= 3,
    )
    .await;

    // `parley subscribe ... | head -1`: keeps following until its next line
    // cannot be written; new events arrive as more articles come in.
    let subscribe = tokio::spawn({
        let url = url.clone();
        async move { first_line_then_close(&["subscribe", "--server", &url, "--from", "1"]).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let more = dir.path().join("more");
    write_articles(&more, 100..106)?;
    parley_cli(
        &["ingest", "--server", &url, &more.display().to_string()],
        &[],
        Duration::from_secs(120),
    )
    .await?;
    let (line, status, stderr) = subscribe.await??;
    assert!(line.starts_with('{'), "{line}");
    assert!(
        status.success(),
        "parley subscribe | head -1: {status}: {stderr}"
    );
    assert_eq!(stderr, "", "nothing on stderr");

    // `parley events export | head -1`.
    let (line, status, stderr) =
        first_line_then_close(&["events", "export", "--server", &url]).await?;
    assert!(line.starts_with('{'), "{line}");
    assert!(
        status.success(),
        "parley events export | head -1: {status}: {stderr}"
    );
    assert_eq!(stderr, "", "nothing on stderr");
    let (line, status, stderr) =
        first_line_then_close(&["events", "export", "--server", &url, "--format", "csv"]).await?;
    assert!(line.starts_with("event_id,"), "{line}");
    assert!(status.success(), "csv | head -1: {status}: {stderr}");
    Ok(())
}

/// NATS and the three standalone services, each serving metrics.
struct Stack {
    _nats: parley_testkit::NatsServer,
    services: Vec<(ServiceProcess, String)>,
    _logs: tempfile::TempDir,
}

impl Stack {
    async fn start() -> anyhow::Result<Self> {
        let nats = parley_testkit::NatsServer::start()?;
        let logs = tempfile::tempdir()?;
        let mut services = Vec::new();
        for name in ["parley-ingest", "parley-resolver", "parley-notify"] {
            let metrics = format!("127.0.0.1:{}", parley_testkit::free_port()?);
            let mut process = ServiceProcess::spawn_with_env(
                name,
                &nats.url(),
                logs.path(),
                &[
                    ("PARLEY_METRICS_ADDR", &metrics),
                    ("PARLEY_NOTIFY_SECRET_KEY", "e2e-notify-sealing-key"),
                ],
            )?;
            process.wait_serving(STARTUP).await?;
            services.push((process, metrics));
        }
        Ok(Self {
            _nats: nats,
            services,
            _logs: logs,
        })
    }

    fn url(&self, index: usize) -> String {
        self.services[index].0.url()
    }
}

/// The services a server advertises through reflection.
async fn advertised(url: &str) -> anyhow::Result<BTreeSet<String>> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let channel = tonic::transport::Channel::from_shared(url.to_owned())?
        .connect()
        .await?;
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(futures::stream::iter([request]))
        .await?
        .into_inner();
    let mut names = BTreeSet::new();
    if let Some(response) = responses.message().await?
        && let Some(MessageResponse::ListServicesResponse(list)) = response.message_response
    {
        names.extend(list.service.into_iter().map(|s| s.name));
    }
    Ok(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_services_advertise_their_own_apis_and_name_the_right_one_for_others()
-> anyhow::Result<()> {
    let stack = Stack::start().await?;
    let reflection = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ];
    for (index, own) in [
        (0, vec!["parley.v1.IngestService"]),
        (1, vec!["parley.v1.ResolverService"]),
        (
            2,
            vec!["parley.v1.EventHistoryService", "parley.v1.NotifyService"],
        ),
    ] {
        let expected: BTreeSet<String> = own
            .iter()
            .chain(reflection.iter())
            .map(|s| s.to_string())
            .chain(["grpc.reflection.v1alpha.ServerReflection".to_owned()])
            .collect();
        assert_eq!(advertised(&stack.url(index)).await?, expected);
    }
    // The CLI pointed at the wrong service says which one to use.
    let notify = stack.url(2);
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("f.txt"), parley_e2e::synthetic_article(1))?;
    let file = dir.path().join("f.txt").display().to_string();
    let output = parley_cli(&["ingest", "--server", &notify, &file], &[], STARTUP).await?;
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains(&format!(
            "{file}: parley.v1.IngestService is not served here (this server serves parley.v1.NotifyService, parley.v1.EventHistoryService); call the ingest service (parley-ingest, default 127.0.0.1:50051), or `parley up`, which serves every API"
        )),
        "{}",
        text(&output.stderr)
    );
    // A URL without a scheme is taken as http://; --server after the entities subcommand works.
    let resolver = stack.url(1).trim_start_matches("http://").to_owned();
    let output = parley_cli(
        &["entities", "search", "Zelensky", "--server", &resolver],
        &[],
        STARTUP,
    )
    .await?;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("Zelensk"),
        "{}",
        text(&output.stdout)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_passes_promtool_and_exports_the_listed_metrics() -> anyhow::Result<()> {
    // The standalone services, after an article went through them.
    let stack = Stack::start().await?;
    let receipt = IngestServiceClient::connect(stack.url(0))
        .await?
        .submit_article(SubmitArticleRequest {
            name: "a.txt".into(),
            content: parley_e2e::synthetic_article(3).into_bytes(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(receipt.documents.len(), 1);
    let mut notify = NotifyServiceClient::connect(stack.url(2)).await?;
    let mut deliveries = parley_e2e::subscribe_all(
        tonic::transport::Channel::from_shared(stack.url(2))?
            .connect()
            .await?,
    )
    .await?;
    let mut received = Vec::new();
    parley_e2e::receive_until(&mut deliveries, &mut received, STARTUP, |r| !r.is_empty()).await;
    assert!(!received.is_empty(), "no event reached notify");
    // A push subscription, for the per-subscription lag.
    notify
        .create_subscription(CreateSubscriptionRequest {
            name: "lag".into(),
            filter: String::new(),
            channel: Channel::Nats as i32,
            ..Default::default()
        })
        .await?;
    let wanted: [(&str, &[&str]); 3] = [
        (
            "parley-ingest",
            &[
                "parley_grpc_requests_total{",
                "parley_grpc_request_duration_seconds_bucket{",
                "parley_documents_ingested_total",
            ],
        ),
        (
            "parley-resolver",
            &[
                "parley_talks_events_total{",
                "parley_consumer_lag{service=\"resolver\"}",
            ],
        ),
        (
            "parley-notify",
            &[
                "parley_consumer_lag{service=\"notify\"}",
                "parley_notify_subscription_lag{",
                "parley_notify_delivery_latency_seconds_bucket{channel=\"grpc\",le=\"3600\"}",
                "parley_grpc_requests_total{",
            ],
        ),
    ];
    for ((name, names), (_, metrics)) in wanted.iter().zip(&stack.services) {
        check_metrics(name, metrics, names).await?;
    }

    // `parley up`, after the same.
    let dir = tempfile::tempdir()?;
    let metrics = format!("127.0.0.1:{}", parley_testkit::free_port()?);
    let mut up = ServiceProcess::spawn_up_with_env(
        &dir.path().join("data"),
        &["--demo"],
        dir.path(),
        &[("PARLEY_METRICS_ADDR", &metrics)],
    )?;
    let channel = up.wait_serving(STARTUP).await?;
    let mut deliveries = parley_e2e::subscribe_all(channel).await?;
    let mut received = Vec::new();
    parley_e2e::receive_until(&mut deliveries, &mut received, STARTUP, |r| r.len() >= 3).await;
    check_metrics(
        "parley up",
        &metrics,
        &[
            "parley_grpc_requests_total{",
            "parley_documents_ingested_total",
            "parley_talks_events_total{",
            "parley_consumer_lag{service=\"notify\"}",
            "parley_consumer_lag{service=\"resolver\"}",
        ],
    )
    .await
}

/// Waits (at most 30 s) until the `/metrics` page of `name` on `addr` has
/// every one of `wanted`, then runs promtool over it.
async fn check_metrics(name: &str, addr: &str, wanted: &[&str]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let page = parley_e2e::scrape_metrics(addr.parse()?).await?;
        if wanted.iter().all(|n| page.contains(n)) || Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for metric in wanted {
        assert!(page.contains(metric), "{name} lacks {metric}:\n{page}");
    }
    parley_e2e::promtool_check(&page).with_context(|| name.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_json_logs_every_line_of_parley_up_is_json_with_service_and_trace_id()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut up = ServiceProcess::spawn_up_with_env(
        &dir.path().join("data"),
        &[],
        dir.path(),
        &[("PARLEY_LOG_FORMAT", "json")],
    )?;
    let channel = up.wait_serving(STARTUP).await?;
    // A refused document logs a warning inside the call's span.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = tonic::Request::new(SubmitArticleRequest {
        name: "photo.jpg".into(),
        content: b"\xFF\xD8\xFF\xE0\0\x10JFIF\0".to_vec(),
        ..Default::default()
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace}-00f067aa0ba902b7-01").parse()?,
    );
    let response = IngestServiceClient::new(channel)
        .submit_article(request)
        .await?;
    assert_eq!(
        response
            .metadata()
            .get("trace-id")
            .and_then(|v| v.to_str().ok()),
        Some(trace)
    );
    assert!(up.terminate(Duration::from_secs(20))?, "{}", up.log());
    let log = up.log();
    let mut lines = 0;
    let mut traced = false;
    for line in log.lines() {
        let json: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("not a JSON line: {line}\n{log}"))?;
        assert_eq!(json["service"], "parley-up", "{line}");
        traced |= json["trace_id"] == trace && json["message"] == "document rejected";
        lines += 1;
    }
    assert!(lines >= 4, "{log}");
    assert!(traced, "the warning carries the caller's trace id:\n{log}");
    Ok(())
}

/// A NATS request on the intake with `headers` (and `Content-Type`), or without.
async fn intake_request(
    client: &async_nats::Client,
    content_type: Option<&str>,
    name: Option<&str>,
    payload: &[u8],
) -> anyhow::Result<async_nats::Message> {
    let mut headers = async_nats::HeaderMap::new();
    if let Some(content_type) = content_type {
        headers.insert("Content-Type", content_type);
    }
    if let Some(name) = name {
        headers.insert("Parley-Name", name);
    }
    Ok(tokio::time::timeout(
        Duration::from_secs(30),
        client.request_with_headers("parley.ingest.submit", headers, payload.to_vec().into()),
    )
    .await??)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_parley_up_nats_the_intake_reads_protobuf_json_and_text_and_webhooks_work()
-> anyhow::Result<()> {
    use prost::Message;
    let nats = parley_testkit::NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    // No PARLEY_NOTIFY_SECRET_KEY: parley up keeps its own key in the data directory.
    let mut up = ServiceProcess::spawn_up_with_env(
        &dir.path().join("data"),
        &["--nats", &nats.url()],
        dir.path(),
        &[("PARLEY_WEBHOOK_ALLOW_PRIVATE", "true")],
    )?;
    let channel = up.wait_serving(STARTUP).await?;
    let receiver = HttpReceiver::default();
    let hook = receiver.start().await?;
    let created = NotifyServiceClient::new(channel.clone())
        .create_subscription(CreateSubscriptionRequest {
            name: "hook".into(),
            filter: String::new(),
            channel: Channel::Webhook as i32,
            webhook: Some(Webhook {
                url: hook,
                secret: String::new(),
                format: WebhookFormat::Raw as i32,
            }),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(!created.webhook_secret.is_empty());
    assert!(dir.path().join("data/notify-secret.key").exists());

    let client = async_nats::connect(nats.url()).await?;
    // Discoverable as a NATS micro service.
    let ping = tokio::time::timeout(
        Duration::from_secs(10),
        client.request("$SRV.PING.parley-ingest", "".into()),
    )
    .await??;
    let ping: serde_json::Value = serde_json::from_slice(&ping.payload)?;
    assert_eq!(ping["name"], "parley-ingest", "{ping}");
    let info = client.request("$SRV.INFO.parley-ingest", "".into()).await?;
    let info: serde_json::Value = serde_json::from_slice(&info.payload)?;
    assert_eq!(
        info["endpoints"][0]["subject"], "parley.ingest.submit",
        "{info}"
    );

    // Protobuf, as before.
    let proto = SubmitArticleRequest {
        name: "proto.txt".into(),
        content: parley_e2e::synthetic_article(1).into_bytes(),
        ..Default::default()
    };
    let reply = intake_request(&client, None, None, &proto.encode_to_vec()).await?;
    let reply = SubmitArticleResponse::decode(reply.payload)?;
    assert_eq!(reply.documents.len(), 1, "{reply:?}");
    // JSON.
    let json = serde_json::json!({ "name": "json.txt", "text": parley_e2e::synthetic_article(2) });
    let reply = intake_request(&client, None, None, json.to_string().as_bytes()).await?;
    let body: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    assert_eq!(body["documents"][0]["name"], "json.txt", "{body}");
    assert!(
        body["documents"][0]["document_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("doc-")),
        "{body}"
    );
    // The document itself.
    let reply = intake_request(
        &client,
        Some("text/plain; charset=utf-8"),
        Some("plain.txt"),
        parley_e2e::synthetic_article(3).as_bytes(),
    )
    .await?;
    let body: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    assert_eq!(body["documents"][0]["name"], "plain.txt", "{body}");
    assert_eq!(body["errors"], serde_json::json!([]), "{body}");

    // The webhook gets the events of those articles, signed as Standard
    // Webhooks defines it: the README's snippet and the reference library
    // both verify them, and neither accepts a tampered body.
    let requests = receiver.wait_for(STARTUP, |r| r.len() >= 3).await;
    assert!(
        requests.len() >= 3,
        "{} webhook deliveries:\n{}",
        requests.len(),
        up.log()
    );
    for request in &requests[..3] {
        let secret = &created.webhook_secret;
        assert_eq!(verify_in_python(secret, request, false).await?, "True True");
        assert_eq!(
            verify_in_python(secret, request, true).await?,
            "False False"
        );
    }
    Ok(())
}

/// Runs the verification snippet of `services/notify/README.md` and the
/// `standardwebhooks` library over a delivery (its body changed by one byte
/// when `tamper`); returns what both said (`True True` when both accept it).
async fn verify_in_python(
    secret: &str,
    request: &parley_e2e::HttpRequest,
    tamper: bool,
) -> anyhow::Result<String> {
    use tokio::io::AsyncWriteExt;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("root")?;
    let readme = std::fs::read_to_string(root.join("services/notify/README.md"))?;
    let snippet = readme
        .split_once("<!-- verify:begin -->")
        .and_then(|(_, rest)| rest.split_once("<!-- verify:end -->"))
        .map(|(snippet, _)| snippet.replace("```python", "").replace("```", ""))
        .context("no verification snippet in services/notify/README.md")?;
    let mut body = request.body.clone();
    if tamper {
        body.push(b' ');
    }
    let headers: serde_json::Map<String, serde_json::Value> =
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .iter()
            .map(|name| {
                (
                    name.to_string(),
                    request.header(name).unwrap_or_default().into(),
                )
            })
            .collect();
    let input = serde_json::json!({
        "secret": secret,
        "headers": headers,
        "body": String::from_utf8(body)?,
    });
    let program = format!(
        "{snippet}\n\
         import json, sys\n\
         from standardwebhooks import Webhook\n\
         given = json.load(sys.stdin)\n\
         body = given['body'].encode()\n\
         mine = verify(given['secret'], given['headers'], body)\n\
         try:\n    Webhook(given['secret']).verify(body, given['headers'])\n    library = True\n\
         except Exception:\n    library = False\n\
         print(mine, library)\n"
    );
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", &program])
        .env("PYTHONPATH", root.join(".tools/python-example"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(input.to_string().as_bytes()).await?;
    drop(stdin);
    let output = child.wait_with_output().await?;
    anyhow::ensure!(output.status.success(), "python: {}", text(&output.stderr));
    Ok(text(&output.stdout).trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_formats_and_csv_carry_what_their_readers_need() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut up = ServiceProcess::spawn_up_with_env(
        &dir.path().join("data"),
        &[],
        dir.path(),
        &[("PARLEY_WEBHOOK_ALLOW_PRIVATE", "true")],
    )?;
    let channel = up.wait_serving(STARTUP).await?;
    let receiver = HttpReceiver::default();
    let hook = receiver.start().await?;
    let mut notify = NotifyServiceClient::new(channel.clone());
    for format in [WebhookFormat::Slack, WebhookFormat::Ntfy] {
        notify
            .create_subscription(CreateSubscriptionRequest {
                name: format!("{format:?}"),
                filter: String::new(),
                channel: Channel::Webhook as i32,
                webhook: Some(Webhook {
                    url: format!("{hook}?{format:?}"),
                    secret: String::new(),
                    format: format as i32,
                }),
                ..Default::default()
            })
            .await?;
    }
    // A source named with Slack's control characters, and one that is a link.
    IngestServiceClient::new(channel.clone())
        .submit_article(SubmitArticleRequest {
            name: "Talks & truce <1>.txt".into(),
            content: parley_e2e::synthetic_article(5).into_bytes(),
            ..Default::default()
        })
        .await?;
    let requests = receiver.wait_for(STARTUP, |r| r.len() >= 2).await;
    let slack = requests
        .iter()
        .find(|r| r.head.contains("?Slack"))
        .with_context(|| format!("no Slack delivery: {requests:?}"))?;
    let slack: serde_json::Value = serde_json::from_slice(&slack.body)?;
    let slack_text = slack["text"].as_str().unwrap_or_default();
    assert!(
        slack_text.contains("sources: Talks &amp; truce &lt;1&gt;.txt"),
        "{slack_text}"
    );
    let ntfy = requests
        .iter()
        .find(|r| r.head.contains("?Ntfy"))
        .with_context(|| format!("no ntfy delivery: {requests:?}"))?;
    assert_eq!(
        ntfy.header("Priority").as_deref(),
        Some("3"),
        "{}",
        ntfy.head
    );
    assert!(
        ntfy.header("Title")
            .is_some_and(|t| t.starts_with("Parley: "))
    );

    let url = up.url();
    let output = parley_cli(
        &["events", "export", "--server", &url, "--format", "csv"],
        &[],
        STARTUP,
    )
    .await?;
    let csv = text(&output.stdout);
    let header = csv.lines().next().unwrap_or_default();
    assert!(
        header.ends_with(",sources,participants,modality"),
        "{header}"
    );
    // Coordinates beside the venue, as GDELT users expect.
    assert!(
        header.contains(",venue_city,venue_country,lat,lon,"),
        "{header}"
    );
    assert!(csv.lines().count() >= 2, "{csv}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_client_submits_subscribes_and_queries() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?;
    let packages = root.join(".tools/python-example");
    anyhow::ensure!(
        packages.join(".requirements").exists(),
        "{} is missing: run scripts/install-tools (scripts/test does)",
        packages.display()
    );
    let dir = tempfile::tempdir()?;
    let mut up = ServiceProcess::spawn_up(&dir.path().join("data"), &[], dir.path())?;
    up.wait_serving(STARTUP).await?;
    let articles = dir.path().join("articles");
    write_articles(&articles, 0..2)?;
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new("python3")
            .arg(root.join("examples/python/parley_client.py"))
            .args([
                "--server",
                up.url().trim_start_matches("http://"),
                "--expect",
                "2",
                "--search",
                "Kowalczyk",
                "--stubs",
                &dir.path().join("stubs").display().to_string(),
            ])
            .arg(articles.join("article-0000.txt"))
            .arg(articles.join("article-0001.txt"))
            .env("PYTHONPATH", &packages)
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let count = |kind: &str| rows.iter().filter(|r| r.get(kind).is_some()).count();
    assert_eq!(count("submitted"), 2, "{stdout}");
    assert_eq!(count("delivery"), 2, "{stdout}");
    assert!(count("query") >= 2, "{stdout}");
    assert!(count("entity") >= 1, "{stdout}");
    let delivery = rows
        .iter()
        .find_map(|r| r.get("delivery"))
        .context("a delivery")?;
    assert!(
        delivery["event"]["event_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("evt-")),
        "{delivery}"
    );
    Ok(())
}

/// The JSON lines of a CLI run's stdout.
fn json_lines(output: &std::process::Output) -> anyhow::Result<Vec<serde_json::Value>> {
    text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("not JSON: {line}")))
        .collect()
}

/// The event ids of `parley subscribe` lines.
fn event_ids(lines: &[serde_json::Value]) -> BTreeSet<String> {
    lines
        .iter()
        .filter_map(|line| line["event"]["event_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_subscription_streams_from_its_cursor_and_receipts_name_their_events()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut up = ServiceProcess::spawn_up(&dir.path().join("data"), &[], dir.path())?;
    up.wait_serving(STARTUP).await?;
    let url = up.url();
    let articles = dir.path().join("articles");
    write_articles(&articles, 0..2)?;
    let file = |i: usize| {
        articles
            .join(format!("article-{i:04}.txt"))
            .display()
            .to_string()
    };
    let cli = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = parley_cli(&args, &[], STARTUP).await?;
        anyhow::ensure!(
            output.status.success(),
            "parley {args:?}: {}",
            text(&output.stderr)
        );
        anyhow::Ok(output)
    };
    let args = |list: &[&str]| -> Vec<String> {
        list.iter()
            .map(|s| s.to_string())
            .chain(["--server".to_owned(), url.clone()])
            .collect()
    };

    // A stored subscription of channel grpc.
    let created = cli(args(&[
        "subscriptions",
        "create",
        "--filter",
        "type = talks_held",
    ]))
    .await?;
    let subscription = json_lines(&created)?[0]["subscription_id"]
        .as_str()
        .context("an id")?
        .to_owned();

    // The receipt names the events the article led to.
    let ingested = cli(args(&["ingest", "--wait-for-events", &file(0)])).await?;
    let receipt = text(&ingested.stdout);
    let columns: Vec<&str> = receipt.trim_end().split('\t').collect();
    let document = columns[0].to_owned();
    let reported: BTreeSet<String> = columns
        .last()
        .and_then(|c| c.strip_prefix("events:"))
        .with_context(|| format!("no events column: {receipt}"))?
        .split(',')
        .map(str::to_owned)
        .collect();
    assert!(
        !reported.is_empty() && reported.iter().all(|id| id.starts_with("evt-")),
        "{receipt}"
    );

    // Streaming the subscription prints its matches and acknowledges them.
    let stream = args(&[
        "subscribe",
        "--subscription",
        &subscription,
        "--exit-when-idle",
        "2",
    ]);
    let first = json_lines(&cli(stream.clone()).await?)?;
    assert!(!first.is_empty(), "the first article's talks");
    assert!(
        first.iter().all(|l| l["event"]["type"] == "talks_held"),
        "{first:?}"
    );
    // A second article: the next stream resumes after what was acknowledged.
    cli(args(&["ingest", "--wait-for-events", &file(1)])).await?;
    let second = json_lines(&cli(stream.clone()).await?)?;
    assert!(!second.is_empty(), "the second article's talks");
    assert!(
        event_ids(&first).is_disjoint(&event_ids(&second)),
        "{first:?}\n{second:?}"
    );
    let third = json_lines(&cli(stream).await?)?;
    assert!(third.is_empty(), "nothing left after the cursor: {third:?}");

    // "What came from my article?": by document id or name, live or from history.
    let filter = format!("document = {document}");
    let from_doc = json_lines(
        &cli(args(&[
            "subscribe",
            "--filter",
            &filter,
            "--exit-when-idle",
            "2",
        ]))
        .await?,
    )?;
    assert_eq!(event_ids(&from_doc), reported);
    let listed = json_lines(
        &cli(args(&[
            "events",
            "list",
            "--filter",
            "document = article-0000.txt",
        ]))
        .await?,
    )?;
    let listed: BTreeSet<String> = listed
        .iter()
        .filter_map(|row| row["event_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(listed, reported);
    Ok(())
}
