//! Every bad input named in Parley's issues, in one place, each with the
//! exact message the user sees, through the real binaries:
//!
//! - documents (`parley extract`, and `SubmitArticle` / `SubmitFeed` on
//!   `parley up`): binary, empty, invalid UTF-8, UTF-16 without a mark,
//!   50 MB, a feed of 5,000 items, malformed HTML and XML, XML entities;
//! - requests: malformed or oversized ones, missing credentials, a client over
//!   its rate, an invalid filter, unknown ids, a webhook URL that is not
//!   http(s) or points inside the network, a webhook secret that is not
//!   Standard Webhooks base64, bad mentions;
//! - the log: a payload that does not decode, a newer schema, an event type
//!   unknown to this build (a logged skip naming the sequence);
//! - webhook receivers that answer garbage or hang (failed attempts, then a
//!   dead letter, and other subscriptions unaffected);
//! - start-up: a malformed knowledge-base file, a data directory that is a
//!   file, locked, unwritable or from a newer schema, a malformed setting,
//!   NATS unreachable (NOT_SERVING, not a crash loop);
//! - the NATS intake subject: a message that is not protobuf, malformed JSON,
//!   a media type it does not read, an empty document, a client over its rate;
//! - clients in the wrong place: a closed port, an invalid URL, a standalone
//!   service asked for an API it does not serve (the message names the one
//!   to call).
//!
//! After each, the good input sent alongside is still processed.

use std::path::Path;
use std::time::Duration;

use parley_domain::pb::event_history_service_client::EventHistoryServiceClient;
use parley_domain::pb::ingest_service_client::IngestServiceClient;
use parley_domain::pb::notify_service_client::NotifyServiceClient;
use parley_domain::pb::resolver_service_client::ResolverServiceClient;
use parley_domain::pb::{
    Channel, CreateSubscriptionRequest, DeleteSubscriptionRequest, DocumentError, GetEntityRequest,
    GetEventRequest, ListDeadLettersRequest, PauseSubscriptionRequest, QueryEventsRequest,
    ResolveRequest, SubmitArticleRequest, SubmitFeedRequest, SubscribeRequest, Webhook,
    WebhookFormat,
};
use parley_e2e::ServiceProcess;
use tonic::Code;

const STARTUP: Duration = Duration::from_secs(60);

/// A good article, sent alongside the bad input to show it still goes through.
const GOOD: &str = "date 2025-06-03\nDelegations meet in Istanbul\n\n\
    Russian and Ukrainian delegations held talks in Istanbul on Monday, hosted by Turkey.\n";

/// An RSS feed of `items` short items.
fn feed(items: usize) -> String {
    let mut raw =
        String::from("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Wire</title>");
    for i in 0..items {
        raw.push_str(&format!(
            "<item><title>Item {i}</title><guid>wire-{i}</guid>\
             <pubDate>Mon, 02 Jun 2025 10:00:00 +0000</pubDate>\
             <description>Envoys met in Doha.</description></item>"
        ));
    }
    raw.push_str("</channel></rss>");
    raw
}

/// A bad document and what the user is told about it (after its name).
struct BadDocument {
    name: &'static str,
    bytes: Vec<u8>,
    message: &'static str,
}

/// The bad documents of the extraction issue that fit in a request.
fn bad_documents() -> Vec<BadDocument> {
    let utf16: Vec<u8> = GOOD.encode_utf16().flat_map(u16::to_le_bytes).collect();
    vec![
        BadDocument {
            name: "photo.jpg",
            bytes: b"\xFF\xD8\xFF\xE0\0\x10JFIF\0\x01\x01".to_vec(),
            message: "binary data (NUL or control bytes), not a text, HTML or feed document",
        },
        BadDocument {
            name: "blank.txt",
            bytes: b" \n\t\n".to_vec(),
            message: "empty document",
        },
        BadDocument {
            name: "noise.txt",
            bytes: (0..400).map(|i| 0x80 + (i % 60) as u8).collect(),
            message: "not valid UTF-8 text (400 undecodable sequences) and no supported charset declared",
        },
        BadDocument {
            name: "utf16-without-mark.txt",
            bytes: utf16,
            message: "binary data (NUL or control bytes), not a text, HTML or feed document",
        },
        BadDocument {
            name: "truncated.xml",
            bytes: b"<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><item><title>x</title>"
                .to_vec(),
            message: "malformed feed: unable to parse XML: Parser error: syntax error: tag not closed: `>` not found before end of input",
        },
        BadDocument {
            name: "entities.xml",
            bytes: b"<?xml version=\"1.0\"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\
                <rss version=\"2.0\"><channel><title>t</title><item><title>&xxe;</title><guid>a</guid>\
                <description>&xxe; envoys met</description></item></channel></rss>"
                .to_vec(),
            message: "XML entity declarations are not allowed (external entities are never resolved)",
        },
    ]
}

/// Asserts a gRPC call failed with exactly this code and message.
#[track_caller]
fn assert_status<T: std::fmt::Debug>(
    what: &str,
    result: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    message: &str,
) {
    match result {
        Ok(response) => panic!("{what}: expected {code:?} {message:?}, got {response:?}"),
        Err(status) => {
            assert_eq!((status.code(), status.message()), (code, message), "{what}");
        }
    }
}

#[test]
fn bad_documents_are_named_by_parley_extract_and_the_good_one_is_still_extracted()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut files = Vec::new();
    let mut expected = Vec::new();
    for bad in bad_documents() {
        std::fs::write(dir.path().join(bad.name), &bad.bytes)?;
        files.push(dir.path().join(bad.name));
        expected.push(format!("parley extract: {}: {}", bad.name, bad.message));
    }
    // The file-only cases: an empty file, 50 MB (sparse: refused from its
    // size, never read), a feed of 5,000 items (read up to the limit, with a
    // warning), a file that does not exist.
    std::fs::write(dir.path().join("empty.txt"), b"")?;
    std::fs::File::create(dir.path().join("huge.txt"))?.set_len(50 * 1024 * 1024)?;
    std::fs::write(dir.path().join("wire.xml"), feed(5000))?;
    for (name, message) in [
        ("empty.txt", "empty document"),
        (
            "huge.txt",
            "too large: 52428800 bytes, the limit is 10485760 bytes",
        ),
        (
            "wire.xml",
            "feed has 5000 items; only the first 1000 were read",
        ),
        (
            "missing.txt",
            "cannot open: No such file or directory (os error 2)",
        ),
    ] {
        files.push(dir.path().join(name));
        expected.push(format!("parley extract: {name}: {message}"));
    }
    std::fs::write(dir.path().join("good.txt"), GOOD)?;
    files.push(dir.path().join("good.txt"));
    // Malformed HTML is read the way a browser would (no error), and only
    // the article body counts: not the script, not the navigation.
    std::fs::write(
        dir.path().join("broken.html"),
        "<html><head><meta property=\"article:published_time\" content=\"2025-06-03T10:00:00Z\">\
         <script>document.write('Talks were held in Paris on Monday.')</script></head>\
         <body><nav>Talks were held in Geneva on Monday.</nav><article><p>Armenian and \
         Azerbaijani delegations held talks in Doha on Monday.<div><span></p></b></i>",
    )?;
    files.push(dir.path().join("broken.html"));

    let output = std::process::Command::new(parley_e2e::binary("parley")?)
        .arg("extract")
        .arg("--jsonl")
        .args(&files)
        .output()?;
    let stderr = String::from_utf8(output.stderr)?;
    let stdout = String::from_utf8(output.stdout)?;
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines, expected, "stderr:\n{stderr}");
    assert!(output.status.success(), "some documents were readable");
    // The good document is extracted; nothing of the local file leaked in.
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("\"doc\":\"good.txt\"") && l.contains("\"type\":\"talks_held\"")),
        "{stdout}"
    );
    assert!(
        !stdout.contains("root:"),
        "an entity was expanded:\n{stdout}"
    );
    let from_html: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("\"doc\":\"broken.html\"") && l.contains("\"kind\":\"event\""))
        .collect();
    assert_eq!(from_html.len(), 1, "{stdout}");
    assert!(
        from_html[0].contains("\"venue\":\"Doha\"")
            && from_html[0].contains("\"date\":\"2025-06-02\""),
        "{}",
        from_html[0]
    );

    // Nothing readable at all: a failure exit, still naming each.
    let output = std::process::Command::new(parley_e2e::binary("parley")?)
        .args(["extract", "--jsonl"])
        .arg(dir.path().join("photo.jpg"))
        .arg(dir.path().join("empty.txt"))
        .output()?;
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8(output.stderr)?.lines().count(),
        2,
        "one line per document"
    );
    Ok(())
}

/// A `parley up` over a fresh embedded log in `dir`, serving.
async fn up(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> anyhow::Result<(ServiceProcess, tonic::transport::Channel)> {
    let mut process = ServiceProcess::spawn_up_with_env(&dir.join("data"), args, dir, env)?;
    let channel = process.wait_serving(STARTUP).await?;
    Ok((process, channel))
}

/// The good article goes through `channel` and its talks reach a subscriber.
async fn good_article_still_flows(channel: tonic::transport::Channel) -> anyhow::Result<()> {
    let mut deliveries = parley_e2e::subscribe_all(channel.clone()).await?;
    let receipt = IngestServiceClient::new(channel)
        .submit_article(SubmitArticleRequest {
            name: "good.txt".into(),
            content: GOOD.as_bytes().to_vec(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(receipt.documents.len(), 1, "{receipt:?}");
    let mut received = Vec::new();
    let arrived = parley_e2e::receive_until(
        &mut deliveries,
        &mut received,
        Duration::from_secs(30),
        |r| {
            r.iter().any(|d| {
                d.event
                    .as_ref()
                    .is_some_and(|e| e.venue.as_ref().is_some_and(|v| v.city == "Istanbul"))
            })
        },
    )
    .await;
    assert!(arrived, "the good article's talks: {received:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_documents_and_requests_on_parley_up_get_exact_errors_and_nothing_else_is_lost()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (up, channel) = up(dir.path(), &["--ingest-rate-per-sec", "0"], &[]).await?;
    let mut ingest =
        IngestServiceClient::new(channel.clone()).max_encoding_message_size(usize::MAX);
    let mut notify = NotifyServiceClient::new(channel.clone());
    let mut resolver = ResolverServiceClient::new(channel.clone());
    let mut history = EventHistoryServiceClient::new(channel.clone());
    let article = |name: &str, content: Vec<u8>| SubmitArticleRequest {
        name: name.into(),
        content,
        ..Default::default()
    };

    // Documents: refused one by one, each named, with the same words as the CLI.
    for bad in bad_documents() {
        let response = ingest
            .submit_article(article(bad.name, bad.bytes))
            .await?
            .into_inner();
        assert!(response.documents.is_empty(), "{}", bad.name);
        assert_eq!(
            response.errors,
            [DocumentError {
                name: bad.name.into(),
                message: bad.message.into(),
            }],
        );
    }
    // A feed of 5,000 items: the first 1,000 are taken, and the caller is told.
    let response = ingest
        .submit_feed(SubmitFeedRequest {
            name: "wire.xml".into(),
            content: feed(5000).into_bytes(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(response.documents.len(), 1000);
    assert_eq!(
        response.errors,
        [DocumentError {
            name: "wire.xml".into(),
            message: "feed has 5000 items; only the first 1000 were read".into(),
        }]
    );
    // Malformed and oversized requests.
    assert_status(
        "empty content",
        ingest.submit_article(article("empty.txt", vec![])).await,
        Code::InvalidArgument,
        "document \"empty.txt\": content is empty",
    );
    assert_status(
        "over the document limit",
        ingest
            .submit_article(article("eleven.txt", vec![b'a'; 11 * 1024 * 1024]))
            .await,
        Code::InvalidArgument,
        "document \"eleven.txt\": 11534336 bytes exceeds the limit of 10485760 bytes (PARLEY_MAX_DOCUMENT_BYTES)",
    );
    assert_status(
        "50 MB request",
        ingest
            .submit_article(article("huge.txt", vec![b'a'; 50 * 1024 * 1024]))
            .await,
        Code::ResourceExhausted,
        "request larger than the limit of 16777216 bytes (PARLEY_GRPC_MAX_REQUEST_BYTES)",
    );

    // Filters: the position and the reason, on every method that takes one.
    assert_status(
        "unfinished filter",
        notify
            .subscribe(SubscribeRequest {
                filter: "type = ".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "invalid filter at column 8: expected a value, found the end\n  type = \n         ^",
    );
    let deep = "(".repeat(20_000);
    assert_status(
        "huge filter",
        notify
            .subscribe(SubscribeRequest {
                filter: deep,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        &format!(
            "invalid filter at column 1: filter is 20000 bytes long; the limit is 4096\n  {}…\n  ^",
            "(".repeat(64)
        ),
    );
    assert_status(
        "stored subscription's filter",
        notify
            .create_subscription(CreateSubscriptionRequest {
                name: "bad".into(),
                filter: "party = ".into(),
                channel: Channel::Grpc as i32,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "invalid filter at column 9: expected a value, found the end\n  party = \n          ^",
    );
    assert_status(
        "history filter",
        history
            .query_events(QueryEventsRequest {
                filter: "venue ~ ".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "invalid filter at column 7: unexpected character '~'\n  venue ~ \n        ^",
    );

    // Webhook URLs.
    let hook = |url: &str| CreateSubscriptionRequest {
        name: "hook".into(),
        channel: Channel::Webhook as i32,
        webhook: Some(Webhook {
            url: url.into(),
            secret: String::new(),
            format: WebhookFormat::Raw as i32,
        }),
        ..Default::default()
    };
    for (url, message) in [
        (
            "ftp://example.org/hook",
            "invalid webhook URL \"ftp://example.org/hook\": only http and https URLs are allowed",
        ),
        (
            "not a url",
            "invalid webhook URL \"not a url\": relative URL without a base",
        ),
        (
            "http://127.0.0.1:9/hook",
            "webhook host 127.0.0.1 resolves to 127.0.0.1, a loopback/private/link-local address; refused (operators can set PARLEY_WEBHOOK_ALLOW_PRIVATE=true)",
        ),
    ] {
        assert_status(
            url,
            notify.create_subscription(hook(url)).await,
            Code::InvalidArgument,
            message,
        );
    }

    // Unknown ids.
    let unknown_subscription = "no subscription \"sub-nope\"";
    assert_status(
        "pause",
        notify
            .pause_subscription(PauseSubscriptionRequest {
                subscription_id: "sub-nope".into(),
            })
            .await,
        Code::NotFound,
        unknown_subscription,
    );
    assert_status(
        "delete",
        notify
            .delete_subscription(DeleteSubscriptionRequest {
                subscription_id: "sub-nope".into(),
            })
            .await,
        Code::NotFound,
        unknown_subscription,
    );
    assert_status(
        "dead letters",
        notify
            .list_dead_letters(ListDeadLettersRequest {
                subscription_id: "sub-nope".into(),
            })
            .await,
        Code::NotFound,
        unknown_subscription,
    );
    assert_status(
        "entity",
        resolver
            .get_entity(GetEntityRequest {
                entity_id: "per-nobody".into(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        "no entity \"per-nobody\"",
    );
    assert_status(
        "event",
        history
            .get_event(GetEventRequest {
                event_id: "evt-nope".into(),
            })
            .await,
        Code::NotFound,
        "no event with id \"evt-nope\"",
    );
    assert_status(
        "date",
        resolver
            .get_entity(GetEntityRequest {
                entity_id: "UKR".into(),
                date: "June 3".into(),
            })
            .await,
        Code::InvalidArgument,
        "date \"June 3\" is not YYYY-MM-DD: input contains invalid characters",
    );
    assert_status(
        "page token",
        history
            .query_events(QueryEventsRequest {
                page_token: "garbage".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "invalid page_token: not a token this service issued",
    );

    // Mentions: a clear "no match" with the reason, never an error or a panic.
    for (mention, reason) in [
        (String::new(), "empty mention"),
        (
            "!!! ...".to_owned(),
            "no letters the knowledge base can read (punctuation only or an unsupported script)",
        ),
        (
            "x".repeat(100_000),
            "too long to be a name (more than 120 characters)",
        ),
        (
            "\u{1F54A}\u{FE0F} \u{270C}\u{FE0F}".to_owned(),
            "no entity close enough",
        ),
    ] {
        let response = resolver
            .resolve(ResolveRequest {
                mention: mention.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        assert!(response.candidates.is_empty(), "{response:?}");
        assert_eq!(response.no_match_reason, reason);
    }
    // Another script is transliterated rather than refused.
    let putin = resolver
        .resolve(ResolveRequest {
            mention: "\u{10D5}\u{10DA}\u{10D0}\u{10D3}\u{10D8}\u{10DB}\u{10D4}\u{10E0} \u{10DE}\u{10E3}\u{10E2}\u{10D8}\u{10DC}\u{10D8}".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(
        putin
            .candidates
            .first()
            .and_then(|c| c.entity.as_ref())
            .map(|e| e.entity_id.as_str()),
        Some("per-vladimir-putin"),
        "{putin:?}"
    );

    good_article_still_flows(channel).await?;
    drop(up);
    Ok(())
}

/// `parley up` on `data` with `args`, expected to refuse to start: returns
/// its exit code and output.
async fn refused_up(
    dir: &Path,
    data: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> anyhow::Result<(Option<i32>, String)> {
    let logs = tempfile::tempdir_in(dir)?;
    let mut process = ServiceProcess::spawn_up_with_env(data, args, logs.path(), env)?;
    let status = process.wait_exit(STARTUP)?;
    Ok((status.code(), process.log()))
}

/// SHA-256 of every file under `dir`, to show a refusal changed nothing.
fn fingerprint(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    use sha2::{Digest, Sha256};
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            let digest = Sha256::digest(std::fs::read(&path)?);
            files.push((path.display().to_string(), format!("{digest:x}")));
        }
    }
    files.sort();
    Ok(files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_and_data_directories_stop_parley_up_with_a_message_naming_them()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();

    // A knowledge-base extension that is not valid TOML, or refers to nothing.
    let kb = root.join("kb");
    std::fs::create_dir(&kb)?;
    let extra = kb.join("extra.toml");
    for (text, reason) in [
        (
            "[[person]]\nname = \"Ana Example\"\nroles = [ { title = \"president\", of = \"XXQ\" } ]\n",
            "3: unknown role `of` \"XXQ\": expected a state alpha-3 code or an organisation code",
        ),
        (
            "[[person]]\nname = \"Ana\n",
            "2:12: invalid basic string, expected `\"`",
        ),
    ] {
        std::fs::write(&extra, text)?;
        let (code, output) = refused_up(
            root,
            &root.join("unused"),
            &["--kb-dir", &kb.display().to_string()],
            &[],
        )
        .await?;
        assert_eq!(code, Some(1), "{output}");
        assert_eq!(
            output.trim_end(),
            format!("parley: {}:{reason}", extra.display())
        );
    }

    // A malformed setting names its environment variable.
    let (code, output) = refused_up(
        root,
        &root.join("unused"),
        &[],
        &[("PARLEY_INGEST_RATE_PER_SEC", "fast")],
    )
    .await?;
    assert_eq!(code, Some(2), "{output}");
    assert_eq!(
        output.trim_end(),
        "error: invalid value 'fast' for '--ingest-rate-per-sec <INGEST_RATE_PER_SEC>': invalid digit found in string\n\n\
         For more information, try '--help'.\n\
         (set through the environment variable PARLEY_INGEST_RATE_PER_SEC)"
    );

    // A data directory that is a file.
    let file = root.join("a-file");
    std::fs::write(&file, "mine")?;
    let (code, output) = refused_up(root, &file, &[], &[]).await?;
    assert_eq!(code, Some(1), "{output}");
    assert_eq!(
        output.trim_end(),
        format!(
            "parley: data directory {}: exists but is not a directory; give a directory (it is created if missing)",
            file.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&file)?, "mine");

    // Written by a newer Parley: refused, and not a byte changed.
    let newer = root.join("newer");
    std::fs::create_dir(&newer)?;
    {
        let db = rusqlite::Connection::open(newer.join("log.sqlite3"))?;
        db.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")?;
    }
    let before = fingerprint(&newer)?;
    let (code, output) = refused_up(root, &newer, &[], &[]).await?;
    assert_eq!(code, Some(1), "{output}");
    assert_eq!(
        output.trim_end(),
        format!(
            "parley: data directory {}: {} was written by a newer Parley (schema version 99, this build knows up to 2); upgrade Parley or use another data directory. Nothing was changed.",
            newer.display(),
            newer.join("log.sqlite3").display()
        )
    );
    assert_eq!(fingerprint(&newer)?, before);

    // Locked by a running `parley up`: refused, naming the holder.
    let data = root.join("data");
    let (_running, _) = up(root, &["--ingest-rate-per-sec", "0"], &[]).await?;
    let before = fingerprint(&data)?;
    let (code, output) = refused_up(root, &data, &[], &[]).await?;
    assert_eq!(code, Some(1), "{output}");
    let line = output.trim_end();
    let prefix = format!(
        "parley: data directory {}: already locked by another `parley up` (pid ",
        data.display()
    );
    assert!(
        line.starts_with(&prefix) && line.ends_with("); stop it or use another data directory"),
        "{line}"
    );
    assert_eq!(fingerprint(&data)?, before);

    // Not writable (meaningful only without root's override of permissions).
    let locked_down = root.join("read-only");
    std::fs::create_dir(&locked_down)?;
    std::fs::set_permissions(
        &locked_down,
        std::os::unix::fs::PermissionsExt::from_mode(0o555),
    )?;
    if std::fs::write(locked_down.join("probe"), b"").is_err() {
        let (code, output) = refused_up(root, &locked_down, &[], &[]).await?;
        assert_eq!(code, Some(1), "{output}");
        assert_eq!(
            output.trim_end(),
            format!(
                "parley: data directory {}: not writable (Permission denied (os error 13)); choose a directory Parley may write to",
                locked_down.display()
            )
        );
    } else {
        eprintln!(
            "running as root: the unwritable-directory case is covered by parley-log's tests only"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_newer_and_unknown_records_in_the_log_are_skipped_by_sequence_and_nothing_stalls()
-> anyhow::Result<()> {
    use parley_domain::pb::{EventBatch, EventEnvelope};
    use parley_log::{AggregateRef, AppendRequest, EventLog, ExpectedVersion};
    use prost::Message;

    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    {
        // What an older build may find in its log: written by a newer Parley,
        // or damaged.
        let log = parley_log::sqlite::SqliteLog::open(&data)?;
        let append = |kind: &str, id: &str, headers: Vec<(String, String)>, payload: Vec<u8>| {
            Ok::<_, anyhow::Error>(AppendRequest {
                aggregate: AggregateRef::new(kind, id)?,
                expected: ExpectedVersion::Any,
                msg_id: format!("{kind}-{id}"),
                headers,
                payload: payload.into(),
            })
        };
        let unknown_type = EventBatch {
            events: vec![EventEnvelope {
                event_id: "future-1".into(),
                aggregate_type: "article".into(),
                aggregate_id: "doc-future".into(),
                event_type: "parley.v1.SomethingNew".into(),
                schema_version: 1,
                payload: None,
                ..Default::default()
            }],
        };
        for request in [
            // 1: an extracted document that does not decode (the resolver's input).
            append(
                "article",
                "doc-garbage",
                vec![],
                b"\xFFnot protobuf".to_vec(),
            )?,
            // 2: a talks event that does not decode (notify's and the resolver's state).
            append("talks", "evt-garbage", vec![], b"\xFF\xFF\xFF".to_vec())?,
            // 3: a talks event from a newer schema.
            append(
                "talks",
                "evt-newer",
                vec![("Parley-Schema-Version".into(), "99".into())],
                EventBatch::default().encode_to_vec(),
            )?,
            // 4: a document event of a type this build does not know.
            append(
                "article",
                "doc-future",
                vec![],
                unknown_type.encode_to_vec(),
            )?,
        ] {
            log.append(request).await?;
        }
    }
    let (up, channel) = up(dir.path(), &["--ingest-rate-per-sec", "0"], &[]).await?;
    // Nothing stalls: a good article still goes all the way through.
    good_article_still_flows(channel).await?;
    let output = up.log();
    for (what, needles) in [
        (
            "the damaged document is parked, by sequence",
            vec![
                "parking poison record; it will not be delivered again",
                "sequence=1",
                "record 1 on article/doc-garbage: payload does not decode as parley.v1.EventBatch",
            ],
        ),
        (
            "the damaged talks record is skipped by the read models",
            vec![
                "skipping undecodable record",
                "record 2 on talks/evt-garbage: payload does not decode as parley.v1.EventBatch",
            ],
        ),
        (
            "the newer record is skipped, naming its version",
            vec!["record 3 on talks/evt-newer: schema version 99 is newer than this build's 1"],
        ),
        (
            "the unknown event type is skipped, by sequence",
            vec![
                "skipping event type unknown to this build",
                "sequence=4",
                "event_type=parley.v1.SomethingNew",
            ],
        ),
    ] {
        let line = output
            .lines()
            .find(|line| needles.iter().all(|n| line.contains(n)));
        assert!(
            line.is_some(),
            "{what}: no line with {needles:?} in\n{output}"
        );
    }
    drop(up);
    Ok(())
}

/// A loopback HTTP receiver: reads each request whole, then `answer`s it.
/// `None` never answers (a receiver that hangs). Returns its URL.
async fn receiver(
    answer: Option<&'static [u8]>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let requests = requests.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body_end = loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        break end + 4 + length;
                    }
                };
                while buf.len() < body_end {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                match answer {
                    Some(answer) => {
                        let _ = socket.write_all(answer).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(3600)).await,
                }
            });
        }
    });
    Ok(url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_receivers_that_answer_garbage_or_hang_get_failed_attempts_and_others_are_unaffected()
-> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir()?;
    let (up, channel) = up(
        dir.path(),
        &["--ingest-rate-per-sec", "0"],
        &[
            ("PARLEY_WEBHOOK_ALLOW_PRIVATE", "true"),
            ("PARLEY_WEBHOOK_MAX_ATTEMPTS", "2"),
            ("PARLEY_WEBHOOK_BACKOFF_MS", "10"),
            ("PARLEY_WEBHOOK_TIMEOUT_MS", "1000"),
        ],
    )
    .await?;
    let (garbage, hanging, healthy) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut notify = NotifyServiceClient::new(channel.clone());
    let mut ids = Vec::new();
    for (name, url) in [
        (
            "garbage",
            receiver(Some(b"hello, this is not HTTP\r\n\r\n"), garbage.clone()).await?,
        ),
        ("hanging", receiver(None, hanging.clone()).await?),
        (
            "healthy",
            receiver(
                Some(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"),
                healthy.clone(),
            )
            .await?,
        ),
    ] {
        let created = notify
            .create_subscription(CreateSubscriptionRequest {
                name: name.into(),
                channel: Channel::Webhook as i32,
                webhook: Some(Webhook {
                    url,
                    secret: String::new(),
                    format: WebhookFormat::Raw as i32,
                }),
                ..Default::default()
            })
            .await?
            .into_inner()
            .subscription
            .expect("created");
        ids.push(created.subscription_id);
    }
    good_article_still_flows(channel.clone()).await?;

    // Each bad receiver: both attempts made, then a dead letter saying why.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let dead_letters = |id: String| {
        let mut notify = notify.clone();
        async move {
            anyhow::Ok(
                notify
                    .list_dead_letters(ListDeadLettersRequest {
                        subscription_id: id,
                    })
                    .await?
                    .into_inner()
                    .dead_letters,
            )
        }
    };
    loop {
        let garbage_dead = dead_letters(ids[0].clone()).await?;
        let hanging_dead = dead_letters(ids[1].clone()).await?;
        if !garbage_dead.is_empty() && !hanging_dead.is_empty() {
            let garbage_error = &garbage_dead[0].last_error;
            assert_eq!(garbage_dead[0].attempts, 2);
            assert!(
                garbage_error.starts_with("request failed: error sending request for url (")
                    && garbage_error.ends_with("invalid HTTP version parsed"),
                "{garbage_error}"
            );
            assert_eq!(hanging_dead[0].attempts, 2);
            assert_eq!(hanging_dead[0].last_error, "timed out");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no dead letters yet: {garbage_dead:?} {hanging_dead:?}\n{}",
            up.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(garbage.load(Ordering::SeqCst) >= 2);
    assert!(hanging.load(Ordering::SeqCst) >= 2);
    // The healthy receiver got every delivery, with no dead letter.
    assert!(healthy.load(Ordering::SeqCst) >= 1);
    assert!(dead_letters(ids[2].clone()).await?.is_empty());
    // Every failed attempt is in the log, with its reason.
    let output = up.log();
    assert!(
        output
            .lines()
            .any(|l| l.contains("webhook attempt failed") && l.contains("error=timed out")),
        "{output}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_credentials_or_over_the_rate_are_refused_naming_the_setting()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (_up, channel) = up(
        dir.path(),
        &["--ingest-rate-per-sec", "1"],
        &[("PARLEY_GRPC_TOKEN", "correct horse battery staple")],
    )
    .await?;
    let with_header = |value: Option<&'static str>| {
        IngestServiceClient::with_interceptor(
            channel.clone(),
            move |mut request: tonic::Request<()>| {
                if let Some(value) = value {
                    request
                        .metadata_mut()
                        .insert("authorization", value.parse().expect("ascii"));
                }
                Ok(request)
            },
        )
    };
    let article = || SubmitArticleRequest {
        name: "good.txt".into(),
        content: GOOD.as_bytes().to_vec(),
        ..Default::default()
    };
    for (header, message) in [
        (
            None,
            "missing credentials: send `authorization: Bearer <token>` (PARLEY_GRPC_TOKEN)",
        ),
        (
            Some("Bearer wrong"),
            "invalid bearer token (PARLEY_GRPC_TOKEN)",
        ),
        (
            Some("Basic dXNlcjpwYXNz"),
            "the authorization header is not `Bearer <token>` (PARLEY_GRPC_TOKEN)",
        ),
    ] {
        assert_status(
            &format!("{header:?}"),
            with_header(header).submit_article(article()).await,
            Code::Unauthenticated,
            message,
        );
    }
    // Authenticated: one a second, then refused with the limit and when to retry.
    let mut client = with_header(Some("Bearer correct horse battery staple"));
    client.submit_article(article()).await?;
    let refused = client
        .submit_article(article())
        .await
        .expect_err("over the rate");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    let retry_ms: u64 = refused
        .message()
        .strip_prefix(
            "rate limit of 1 requests per second per client exceeded (PARLEY_INGEST_RATE_PER_SEC); retry in ",
        )
        .and_then(|rest| rest.strip_suffix(" ms"))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("{}", refused.message()));
    assert!((1..=1000).contains(&retry_ms), "{retry_ms}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nats_intake_refuses_what_is_not_protobuf_and_clients_over_the_rate()
-> anyhow::Result<()> {
    use parley_domain::pb::SubmitArticleResponse;
    use prost::Message;
    let nats = parley_testkit::NatsServer::start()?;
    let logs = tempfile::tempdir()?;
    let mut ingest = ServiceProcess::spawn_with_env(
        "parley-ingest",
        &nats.url(),
        logs.path(),
        &[("PARLEY_INGEST_RATE_PER_SEC", "2")],
    )?;
    ingest.wait_serving(STARTUP).await?;
    let request = |client: async_nats::Client, payload: Vec<u8>| async move {
        let reply = client
            .request("parley.ingest.submit", payload.into())
            .await?;
        anyhow::Ok(SubmitArticleResponse::decode(reply.payload)?)
    };
    let article = SubmitArticleRequest {
        name: "good.txt".into(),
        content: GOOD.as_bytes().to_vec(),
        ..Default::default()
    }
    .encode_to_vec();

    let client = async_nats::connect(nats.url()).await?;
    let reply = request(client.clone(), b"\xFFnot protobuf".to_vec()).await?;
    assert_eq!(
        reply.errors,
        [DocumentError {
            name: String::new(),
            message: format!(
                "message on parley.ingest.submit is not a protobuf parley.v1.SubmitArticleRequest: failed to decode Protobuf message: invalid wire type value: 7; {EXPECTED}"
            ),
        }]
    );
    // That used one of this connection's two; the next is accepted, the one
    // after refused with the limit named and nothing ingested.
    let reply = request(client.clone(), article.clone()).await?;
    assert_eq!(reply.documents.len(), 1, "{reply:?}");
    let reply = request(client.clone(), article.clone()).await?;
    assert!(reply.documents.is_empty(), "{reply:?}");
    assert_eq!(reply.errors.len(), 1);
    assert!(
        reply.errors[0].message.starts_with(
            "rate limit of 2 requests per second per client exceeded on parley.ingest.submit (PARLEY_INGEST_RATE_PER_SEC); retry in "
        ),
        "{reply:?}"
    );
    // Another connection has its own budget.
    let other = async_nats::connect(nats.url()).await?;
    let reply = request(other, article).await?;
    assert_eq!(reply.documents.len(), 1, "{reply:?}");

    // JSON and documents sent as themselves: malformed ones are answered in
    // JSON naming what was expected, with the micro-service error headers.
    let json_errors = |content_type: Option<&'static str>, payload: &'static [u8]| {
        let client = client.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(600)).await; // under the rate
            let mut headers = async_nats::HeaderMap::new();
            if let Some(content_type) = content_type {
                headers.insert("Content-Type", content_type);
            }
            let reply = client
                .request_with_headers("parley.ingest.submit", headers, payload.into())
                .await?;
            let code = reply
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Service-Error-Code"))
                .map(|v| v.as_str().to_owned());
            let body: serde_json::Value = serde_json::from_slice(&reply.payload)?;
            anyhow::Ok((
                code,
                body["errors"][0]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ))
        }
    };
    for (content_type, payload, message) in [
        (
            None,
            &b"{\"name\": \"a.txt\", \"body\": \"x\"}"[..],
            format!("message on parley.ingest.submit is not valid JSON for a submission: unknown field `body`, expected one of `name`, `text`, `content`, `mediaType`, `media_type`, `sourceUrl`, `source_url`, `waitForEvents`, `wait_for_events` at line 1 column 24; {EXPECTED}"),
        ),
        (
            Some("application/json"),
            &b"{\"name\": \"a.txt\", \"content\": \"not base64!\"}"[..],
            "message on parley.ingest.submit: \"content\" is not base64 (Invalid symbol 32, offset 3.); send the text as \"text\" instead".to_owned(),
        ),
        (
            Some("image/png"),
            &b"\x89PNG"[..],
            format!("message on parley.ingest.submit has Content-Type image/png, which the intake does not read; {EXPECTED}"),
        ),
        (
            Some("text/plain"),
            &b""[..],
            "content is empty".to_owned(),
        ),
    ] {
        let (code, got) = json_errors(content_type, payload).await?;
        assert_eq!(got, message, "{content_type:?}");
        assert_eq!(code.as_deref(), Some("400"), "{content_type:?}");
    }
    Ok(())
}

/// What the NATS intake says it reads, at the end of every refusal of an unreadable message.
const EXPECTED: &str = "expected a protobuf parley.v1.SubmitArticleRequest, JSON {\"name\": ..., \"text\": ...}, \
     or the document itself with Content-Type text/plain, text/html or application/rss+xml and a Parley-Name header";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_reach_the_wrong_place_are_told_where_to_go() -> anyhow::Result<()> {
    let closed = parley_testkit::free_port()?;
    let output = parley_e2e::parley_cli(
        &["events", "list", "--server", &format!("127.0.0.1:{closed}")],
        &[],
        STARTUP,
    )
    .await?;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(output.stderr)?,
        format!(
            "parley: cannot connect to http://127.0.0.1:{closed}: tcp connect error: Connection refused (os error 111)\n"
        )
    );
    let output = parley_e2e::parley_cli(
        &[
            "entities",
            "search",
            "Umerov",
            "--server",
            "http://exa mple:1",
        ],
        &[],
        STARTUP,
    )
    .await?;
    assert_eq!(
        String::from_utf8(output.stderr)?,
        "parley: \"http://exa mple:1\" is not a valid URL: invalid URI\n"
    );

    // A standalone service asked for an API it does not serve.
    let nats = parley_testkit::NatsServer::start()?;
    let logs = tempfile::tempdir()?;
    let mut ingest = ServiceProcess::spawn("parley-ingest", &nats.url(), logs.path())?;
    let channel = ingest.wait_serving(STARTUP).await?;
    let url = ingest.url();
    let output =
        parley_e2e::parley_cli(&["events", "list", "--server", &url], &[], STARTUP).await?;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(output.stderr)?,
        "parley: parley.v1.EventHistoryService is not served here (this server serves parley.v1.IngestService); call the notify service (parley-notify, default 127.0.0.1:50053), or `parley up`, which serves every API\n"
    );
    assert_status(
        "Subscribe on the ingest service",
        NotifyServiceClient::new(channel.clone())
            .subscribe(SubscribeRequest::default())
            .await,
        Code::Unimplemented,
        "parley.v1.NotifyService is not served here (this server serves parley.v1.IngestService); call the notify service (parley-notify, default 127.0.0.1:50053), or `parley up`, which serves every API",
    );
    assert_status(
        "Resolve on the ingest service",
        ResolverServiceClient::new(channel)
            .resolve(ResolveRequest::default())
            .await,
        Code::Unimplemented,
        "parley.v1.ResolverService is not served here (this server serves parley.v1.IngestService); call the resolver service (parley-resolver, default 127.0.0.1:50052), or `parley up`, which serves every API",
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_cannot_reach_nats_says_not_serving_and_retries_instead_of_crashing()
-> anyhow::Result<()> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let logs = tempfile::tempdir()?;
    let closed = format!("nats://127.0.0.1:{}", parley_testkit::free_port()?);
    let mut ingest = ServiceProcess::spawn("parley-ingest", &closed, logs.path())?;
    let deadline = std::time::Instant::now() + STARTUP;
    let status = loop {
        if let Ok(channel) = tonic::transport::Channel::from_shared(ingest.url())?
            .connect()
            .await
            && let Ok(response) = HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await
        {
            break response.into_inner().status;
        }
        assert!(std::time::Instant::now() < deadline, "{}", ingest.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, ServingStatus::NotServing as i32);
    // Still up and retrying a moment later, saying why.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let output = ingest.log();
    let retries = output
        .lines()
        .filter(|l| l.contains("log not reachable yet; NOT_SERVING until it is"))
        .count();
    assert!(retries >= 2, "{output}");
    assert!(
        ingest.terminate(Duration::from_secs(10))?,
        "SIGTERM exits cleanly"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_secret_that_standard_webhooks_cannot_read_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (up, channel) = up(dir.path(), &[], &[("PARLEY_WEBHOOK_ALLOW_PRIVATE", "true")]).await?;
    let url = up.url();
    for (secret, message) in [
        (
            "topsecret",
            "parley: webhook secret is not `whsec_` followed by base64 (Standard Webhooks); leave it out to have one generated\n",
        ),
        (
            "whsec_c2hvcnQ=",
            "parley: webhook secret holds 5 bytes; Standard Webhooks secrets hold 24 to 64 (leave it out to have one generated)\n",
        ),
    ] {
        let output = parley_e2e::parley_cli(
            &[
                "subscriptions",
                "create",
                "--server",
                &url,
                "--webhook",
                "http://127.0.0.1:9/hook",
                "--secret",
                secret,
            ],
            &[],
            STARTUP,
        )
        .await?;
        assert_eq!(output.status.code(), Some(1), "{secret}");
        assert_eq!(String::from_utf8(output.stderr)?, message, "{secret}");
    }
    // Nothing was created; a generated secret is accepted.
    let mut notify = NotifyServiceClient::new(channel);
    let created = notify
        .create_subscription(CreateSubscriptionRequest {
            channel: Channel::Webhook as i32,
            webhook: Some(Webhook {
                url: "http://127.0.0.1:9/hook".into(),
                secret: String::new(),
                format: WebhookFormat::Raw as i32,
            }),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(created.webhook_secret.starts_with("whsec_"));
    let listed = notify
        .list_subscriptions(parley_domain::pb::ListSubscriptionsRequest {})
        .await?
        .into_inner();
    assert_eq!(listed.subscriptions.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_a_subscription_that_cannot_be_streamed_says_why() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (up, channel) = up(dir.path(), &[], &[("PARLEY_WEBHOOK_ALLOW_PRIVATE", "true")]).await?;
    let url = up.url();
    let hook = NotifyServiceClient::new(channel.clone())
        .create_subscription(CreateSubscriptionRequest {
            channel: Channel::Webhook as i32,
            webhook: Some(Webhook {
                url: "http://127.0.0.1:9/hook".into(),
                secret: String::new(),
                format: WebhookFormat::Raw as i32,
            }),
            ..Default::default()
        })
        .await?
        .into_inner()
        .subscription
        .unwrap_or_default()
        .subscription_id;
    for (args, message) in [
        (
            vec!["subscribe", "--subscription", "sub-nope"],
            "parley: no subscription \"sub-nope\"\n".to_owned(),
        ),
        (
            vec!["subscribe", "--subscription", &hook],
            format!("parley: subscription {hook} delivers by webhook; only subscriptions of channel grpc are streamed\n"),
        ),
        (
            vec!["subscribe", "--filter", "article = x"],
            "parley: invalid filter at column 1: unknown field 'article'; expected one of type, party, mediator, actor, entity, venue, country, scope, status, modality, document\n  article = x\n  ^\n".to_owned(),
        ),
    ] {
        let mut all = args.clone();
        all.extend(["--server", &url]);
        let output = parley_e2e::parley_cli(&all, &[], STARTUP).await?;
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(String::from_utf8(output.stderr)?, message, "{args:?}");
    }
    // Over gRPC: a filter and a subscription at once, an acknowledgement past the log.
    let mut notify = NotifyServiceClient::new(channel);
    let stored = notify
        .create_subscription(CreateSubscriptionRequest {
            filter: "type = talks_held".into(),
            channel: Channel::Grpc as i32,
            ..Default::default()
        })
        .await?
        .into_inner()
        .subscription
        .unwrap_or_default()
        .subscription_id;
    assert_status(
        "filter and subscription",
        notify
            .subscribe(SubscribeRequest {
                filter: "party = RUS".into(),
                subscription_id: stored.clone(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "give a filter or a subscription_id, not both (a stored subscription has its own filter)",
    );
    let refused = notify
        .acknowledge_subscription(parley_domain::pb::AcknowledgeSubscriptionRequest {
            subscription_id: stored,
            sequence: 1_000_000,
        })
        .await
        .expect_err("past the log");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused
            .message()
            .starts_with("sequence 1000000 is beyond the log (its last sequence is "),
        "{refused:?}"
    );
    Ok(())
}
