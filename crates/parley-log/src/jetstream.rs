//! The NATS JetStream backend of [`EventLog`].
//!
//! Layout: one file-storage stream (default
//! `PARLEY`) holding subjects `<prefix>.>`, one subject per aggregate
//! (`<prefix>.<kind>.<id>`), and one object-store bucket for large bodies.
//!
//! - **Append** is a JetStream publish with `Nats-Msg-Id` (deduplication
//!   within the stream's duplicate window) and, for a version check,
//!   `Nats-Expected-Last-Subject-Sequence`. From nats-server 2.12 a retried
//!   publish carrying both headers is answered with "wrong last sequence"
//!   instead of a duplicate ack, so every conflict is confirmed by looking
//!   for our msg id among the aggregate's records before it is reported.
//! - **Reads** use ordered consumers (cheap, ephemeral, self-healing);
//!   aggregate lookups use direct gets.
//! - **Durable consumers** are pull consumers with explicit acks, a backoff
//!   schedule derived from `ack_wait`, and a bounded `max_ack_pending`.

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{
    self, Context,
    consumer::{
        AckPolicy, DeliverPolicy, PullConsumer,
        pull::{self, OrderedConfig},
    },
    context::{PublishAckFuture, PublishErrorKind},
    message::{AckKind, PublishMessage, StreamMessage},
    object_store::{self, GetErrorKind, InfoErrorKind, ObjectStore},
    publish::PublishAck,
    stream::{self, DirectGetErrorKind, RawMessageErrorKind, StorageType},
};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::{
    Acker, AggregateRef, AppendRequest, Appended, BlobRef, ConsumerOptions, Delivery,
    DurableConsumer, EventLog, ExpectedVersion, Filter, LogError, LogRecord, ReadMode,
    RecordStream, StartAt,
};

/// Oldest server Parley runs on: `filter_subjects`, direct gets and KV on
/// 2.9 are missing or broken (see the crate's notes).
pub const MIN_SERVER_VERSION: (u64, u64, u64) = (2, 10, 0);

/// Room left in a message for our headers (`Nats-Msg-Id`, the expected
/// sequence and the application's own headers).
const HEADER_HEADROOM: usize = 8 * 1024;

/// How many of an aggregate's records after the expected version we scan for
/// our msg id before calling a conflict a conflict.
const CONFIRM_SCAN_LIMIT: usize = 256;

/// How many times an append is retried after a timeout or broken pipe.
const PUBLISH_ATTEMPTS: usize = 3;

/// Header carrying the deduplication id.
const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// Connection and layout settings of [`JetStreamLog`].
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    /// Server URL(s), comma-separated for a cluster.
    pub url: String,
    /// Name of the one stream that holds the log.
    pub stream_name: String,
    /// Subject prefix; aggregates live at `<prefix>.<kind>.<id>`.
    pub subject_prefix: String,
    /// Stream (and object bucket) replicas: 1 for a single server, 3 in production clusters.
    pub replicas: usize,
    /// Caps the payload limit below the server's `max_payload`.
    pub max_payload: Option<usize>,
    /// Object-store bucket for large bodies.
    pub object_bucket: String,
    /// How long the server remembers msg ids for deduplication.
    pub duplicate_window: Duration,
    /// Timeout of JetStream API requests and publish acks.
    pub request_timeout: Duration,
    /// Publishes awaiting their ack at most (pipelining window; senders wait beyond it).
    pub max_ack_inflight: usize,
    /// Whether a consumer's `ack` waits for the server to confirm it. Slower
    /// (one round trip per record) but an acked record is never redelivered.
    pub confirm_acks: bool,
    /// NATS credentials file (`.creds`), if the server requires one.
    pub credentials_file: Option<PathBuf>,
    /// Require TLS to the server.
    pub require_tls: bool,
    // TODO: client certificates / custom root CAs when a deployment needs them.
}

impl JetStreamConfig {
    /// Parley's defaults for a server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream_name: "PARLEY".to_string(),
            subject_prefix: "parley.evt".to_string(),
            replicas: 1,
            max_payload: None,
            object_bucket: "parley-blobs".to_string(),
            duplicate_window: Duration::from_secs(120),
            request_timeout: Duration::from_secs(10),
            max_ack_inflight: 1024,
            confirm_acks: true,
            credentials_file: None,
            require_tls: false,
        }
    }
}

/// [`EventLog`] on NATS JetStream. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct JetStreamLog {
    inner: Arc<Inner>,
}

struct Inner {
    config: JetStreamConfig,
    client: async_nats::Client,
    context: Context,
    stream: stream::Stream,
    blobs: ObjectStore,
    max_payload: usize,
    server_version: String,
}

impl std::fmt::Debug for JetStreamLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamLog")
            .field("url", &self.inner.config.url)
            .field("stream", &self.inner.config.stream_name)
            .field("server_version", &self.inner.server_version)
            .finish()
    }
}

impl JetStreamLog {
    /// Connects, checks the server version, and creates (or updates) the
    /// stream and the blob bucket. Safe to call from every service at start.
    pub async fn connect(config: JetStreamConfig) -> Result<Self, LogError> {
        Self::connect_with_options(config, async_nats::ConnectOptions::new()).await
    }

    /// Like [`JetStreamLog::connect`], starting from caller-built options that
    /// carry authentication and TLS (user/password, nkey, client certificates,
    /// private CAs); the config's creds file and TLS requirement still apply.
    pub async fn connect_with_options(
        config: JetStreamConfig,
        options: async_nats::ConnectOptions,
    ) -> Result<Self, LogError> {
        let mut options = options
            .name("parley-log")
            .request_timeout(Some(config.request_timeout));
        if let Some(path) = &config.credentials_file {
            options = options.credentials_file(path).await.map_err(|e| {
                LogError::Unavailable(format!("credentials {}: {e}", path.display()))
            })?;
        }
        if config.require_tls {
            options = options.require_tls(true);
        }
        // A cluster is given as a comma-separated list of URLs.
        let urls: Vec<&str> = config
            .url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        let client = options
            .connect(urls)
            .await
            .map_err(|e| LogError::Unavailable(format!("connecting to {}: {e}", config.url)))?;

        let info = client.server_info();
        check_server_version(&info.version, &config.url)?;
        let server_limit = info.max_payload.saturating_sub(HEADER_HEADROOM);
        let max_payload = config
            .max_payload
            .map_or(server_limit, |cap| cap.min(server_limit));

        let context = jetstream::ContextBuilder::new()
            .timeout(config.request_timeout)
            .max_ack_inflight(config.max_ack_inflight.max(1))
            .backpressure_on_inflight(true)
            .build(client.clone());

        let stream_config = stream::Config {
            name: config.stream_name.clone(),
            subjects: vec![format!("{}.>", config.subject_prefix)],
            storage: StorageType::File,
            num_replicas: config.replicas,
            duplicate_window: config.duplicate_window,
            allow_direct: true,
            ..Default::default()
        };
        context
            .create_or_update_stream(stream_config)
            .await
            .map_err(|e| backend("creating or updating the stream", e))?;
        let stream = context
            .get_stream(&config.stream_name)
            .await
            .map_err(|e| backend("opening the stream", e))?;

        let blobs = match context.get_object_store(&config.object_bucket).await {
            Ok(store) => store,
            Err(_) => context
                .create_object_store(object_store::Config {
                    bucket: config.object_bucket.clone(),
                    storage: StorageType::File,
                    num_replicas: config.replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| backend("creating the blob bucket", e))?,
        };

        Ok(Self {
            inner: Arc::new(Inner {
                server_version: info.version.clone(),
                config,
                client,
                context,
                stream,
                blobs,
                max_payload,
            }),
        })
    }

    /// The underlying NATS client (for health checks and benchmarks).
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The JetStream context the log publishes through.
    pub fn context(&self) -> &Context {
        &self.inner.context
    }

    /// The configuration in force.
    pub fn config(&self) -> &JetStreamConfig {
        &self.inner.config
    }

    /// Version string the server reported.
    pub fn server_version(&self) -> &str {
        &self.inner.server_version
    }

    /// Subject of an aggregate: `<prefix>.<kind>.<id>`.
    pub fn subject(&self, aggregate: &AggregateRef) -> String {
        format!(
            "{}.{}.{}",
            self.inner.config.subject_prefix, aggregate.kind, aggregate.id
        )
    }

    /// Checks a request and turns it into a subject plus publish message.
    fn prepare(&self, request: &AppendRequest) -> Result<(String, PublishMessage), LogError> {
        // The fields are public, so re-check what `AggregateRef::new` checks.
        AggregateRef::new(request.aggregate.kind.clone(), request.aggregate.id.clone())?;
        if request.payload.len() > self.inner.max_payload {
            return Err(LogError::PayloadTooLarge {
                size: request.payload.len(),
                limit: self.inner.max_payload,
            });
        }
        if request.msg_id.is_empty() {
            return Err(LogError::Backend(
                "an append needs a non-empty msg id".into(),
            ));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            if name.len() >= 5 && name[..5].eq_ignore_ascii_case("nats-") {
                return Err(LogError::Backend(format!(
                    "header {name:?}: the Nats- prefix is reserved for the server"
                )));
            }
            headers.append(name.as_str(), value.as_str());
        }
        let mut message = PublishMessage::build()
            .payload(request.payload.clone())
            .headers(headers)
            .message_id(&request.msg_id);
        match request.expected {
            ExpectedVersion::Any => {}
            ExpectedVersion::NoStream => message = message.expected_last_subject_sequence(0),
            ExpectedVersion::Exact(version) => {
                message = message.expected_last_subject_sequence(version)
            }
        }
        Ok((self.subject(&request.aggregate), message))
    }

    /// Sends one publish; the returned future resolves to the server's ack.
    async fn send(
        &self,
        subject: String,
        message: PublishMessage,
        request: &AppendRequest,
    ) -> Result<PublishAckFuture, LogError> {
        self.inner
            .context
            .send_publish(subject, message)
            .await
            .map_err(|e| match e.kind() {
                PublishErrorKind::MaxPayloadExceeded => LogError::PayloadTooLarge {
                    size: request.payload.len(),
                    limit: self.inner.max_payload,
                },
                PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe => {
                    LogError::Unavailable(format!("publishing: {e}"))
                }
                _ => backend("publishing", e),
            })
    }

    /// Turns the server's answer to a publish into the append's result,
    /// confirming conflicts and retrying lost acks (the slow path).
    async fn settle(
        &self,
        request: &AppendRequest,
        first: Result<PublishAck, async_nats::jetstream::context::PublishError>,
    ) -> Result<Appended, LogError> {
        let mut outcome = first;
        for attempt in 1..=PUBLISH_ATTEMPTS {
            let error = match outcome {
                Ok(ack) => {
                    return Ok(Appended {
                        sequence: ack.sequence,
                        duplicate: ack.duplicate,
                    });
                }
                Err(error) => error,
            };
            match error.kind() {
                PublishErrorKind::WrongLastSequence => {
                    // Pitfall 1: on 2.12+ a retry of an append that landed
                    // looks like a conflict. Look for our msg id first.
                    if let Some(sequence) = self.find_msg_id(request).await? {
                        return Ok(Appended {
                            sequence,
                            duplicate: true,
                        });
                    }
                    let actual = self.last_for_subject_leader(&request.aggregate).await?;
                    return Err(LogError::WrongExpectedVersion {
                        aggregate: request.aggregate.to_string(),
                        expected: describe_expected(request.expected),
                        actual,
                    });
                }
                PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe => {
                    // The publish may or may not have landed. With a version
                    // check a blind retry could be refused even though it
                    // landed, so confirm first; without one, dedup covers it.
                    if request.expected != ExpectedVersion::Any
                        && let Some(sequence) = self.find_msg_id(request).await?
                    {
                        return Ok(Appended {
                            sequence,
                            duplicate: true,
                        });
                    }
                    if attempt == PUBLISH_ATTEMPTS {
                        return Err(LogError::Unavailable(format!(
                            "append to {} not acknowledged after {attempt} attempts: {error}",
                            request.aggregate
                        )));
                    }
                    tracing::warn!(aggregate = %request.aggregate, %error, attempt, "retrying append");
                    tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                    let (subject, message) = self.prepare(request)?;
                    outcome = match self.send(subject, message, request).await {
                        Ok(ack) => ack.into_future().await,
                        Err(e) => return Err(e),
                    };
                }
                PublishErrorKind::StreamNotFound => {
                    return Err(LogError::Unavailable(format!(
                        "no stream answers for {}: {error}",
                        request.aggregate
                    )));
                }
                PublishErrorKind::MaxPayloadExceeded => {
                    return Err(LogError::PayloadTooLarge {
                        size: request.payload.len(),
                        limit: self.inner.max_payload,
                    });
                }
                _ => return Err(backend("publishing", error)),
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// Looks for a record with the request's msg id among the aggregate's
    /// records after the expected version (they are few: only the writes that
    /// raced ours). Reads from the stream leader, so it sees every acked write.
    async fn find_msg_id(&self, request: &AppendRequest) -> Result<Option<u64>, LogError> {
        let subject = self.subject(&request.aggregate);
        let mut next = match request.expected {
            ExpectedVersion::Exact(version) => version + 1,
            ExpectedVersion::NoStream | ExpectedVersion::Any => 1,
        };
        if request.expected == ExpectedVersion::Any {
            // No lower bound: check the latest record only.
            let found = self.last_message_leader(&subject).await?;
            return Ok(found
                .filter(|m| msg_id_of(&m.headers) == Some(request.msg_id.as_str()))
                .map(|m| m.sequence));
        }
        for _ in 0..CONFIRM_SCAN_LIMIT {
            let result = self
                .inner
                .stream
                .raw_message_builder()
                .sequence(next)
                .next_by_subject(subject.clone())
                .send()
                .await;
            match result {
                Ok(message) => {
                    if msg_id_of(&message.headers) == Some(request.msg_id.as_str()) {
                        return Ok(Some(message.sequence));
                    }
                    next = message.sequence + 1;
                }
                Err(e) if raw_not_found(e.kind()) => return Ok(None),
                Err(e) => return Err(raw_get_error("confirming an append", e)),
            }
        }
        Ok(None)
    }

    async fn last_message_leader(&self, subject: &str) -> Result<Option<StreamMessage>, LogError> {
        match self
            .inner
            .stream
            .raw_message_builder()
            .last_by_subject(subject)
            .send()
            .await
        {
            Ok(message) => Ok(Some(message)),
            Err(e) if raw_not_found(e.kind()) => Ok(None),
            Err(e) => Err(raw_get_error("reading the last record", e)),
        }
    }

    async fn last_for_subject_leader(
        &self,
        aggregate: &AggregateRef,
    ) -> Result<Option<u64>, LogError> {
        Ok(self
            .last_message_leader(&self.subject(aggregate))
            .await?
            .map(|m| m.sequence))
    }

    /// Subjects a consumer filters on; empty means the whole stream.
    fn filter_subjects(&self, filter: &Filter) -> Result<Vec<String>, LogError> {
        filter
            .aggregate_types
            .iter()
            .map(|kind| {
                AggregateRef::new(kind.clone(), "x")?;
                Ok(format!("{}.{kind}.*", self.inner.config.subject_prefix))
            })
            .collect()
    }

    /// Converts what the server stored into a [`LogRecord`].
    fn record(
        &self,
        sequence: u64,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: Bytes,
        time: time::OffsetDateTime,
    ) -> Result<LogRecord, LogError> {
        let aggregate = parse_subject(&self.inner.config.subject_prefix, subject)?;
        let (msg_id, headers) = match headers {
            Some(headers) => (msg_id_of(headers).map(str::to_string), app_headers(headers)),
            None => (None, Vec::new()),
        };
        Ok(LogRecord {
            sequence,
            aggregate,
            msg_id,
            headers,
            payload,
            recorded_at: to_chrono(time),
        })
    }

    fn stream_message_record(&self, message: StreamMessage) -> Result<LogRecord, LogError> {
        self.record(
            message.sequence,
            message.subject.as_str(),
            Some(&message.headers),
            message.payload,
            message.time,
        )
    }

    fn consumer_message_record(&self, message: &jetstream::Message) -> Result<LogRecord, LogError> {
        let info = message
            .info()
            .map_err(|e| backend("parsing delivery metadata", e))?;
        self.record(
            info.stream_sequence,
            message.subject.as_str(),
            message.headers.as_ref(),
            message.payload.clone(),
            info.published,
        )
    }
}

#[async_trait]
impl EventLog for JetStreamLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError> {
        let (subject, message) = self.prepare(&request)?;
        let first = match self.send(subject, message, &request).await {
            Ok(ack) => ack.into_future().await,
            Err(LogError::Unavailable(_)) => Err(
                async_nats::jetstream::context::PublishError::new(PublishErrorKind::BrokenPipe),
            ),
            Err(e) => return Err(e),
        };
        self.settle(&request, first).await
    }

    async fn append_many(&self, requests: Vec<AppendRequest>) -> Vec<Result<Appended, LogError>> {
        // Fast path: send every publish without waiting, keeping at most
        // `window` acks outstanding (more would wait on the context's
        // in-flight permits, which only awaited acks release), then settle
        // each answer in request order. One connection keeps the order of
        // records for one aggregate.
        let window = self.inner.config.max_ack_inflight.max(1);
        type AckFuture = std::pin::Pin<
            Box<
                dyn Future<
                        Output = Result<PublishAck, async_nats::jetstream::context::PublishError>,
                    > + Send,
            >,
        >;
        enum Slot {
            Pending(AckFuture),
            Done(Result<PublishAck, async_nats::jetstream::context::PublishError>),
            Failed(LogError),
        }
        let mut slots: Vec<Slot> = Vec::with_capacity(requests.len());
        let mut in_flight: VecDeque<usize> = VecDeque::new();

        for request in &requests {
            if in_flight.len() >= window
                && let Some(oldest) = in_flight.pop_front()
            {
                resolve(&mut slots[oldest]).await;
            }
            let slot = match self.prepare(request) {
                Err(e) => Slot::Failed(e),
                Ok((subject, message)) => match self.send(subject, message, request).await {
                    Ok(ack) => {
                        in_flight.push_back(slots.len());
                        Slot::Pending(ack.into_future())
                    }
                    Err(LogError::Unavailable(_)) => {
                        Slot::Done(Err(async_nats::jetstream::context::PublishError::new(
                            PublishErrorKind::BrokenPipe,
                        )))
                    }
                    Err(e) => Slot::Failed(e),
                },
            };
            slots.push(slot);
        }

        async fn resolve(slot: &mut Slot) {
            if let Slot::Pending(future) = slot {
                let outcome = future.await;
                *slot = Slot::Done(outcome);
            }
        }

        let mut results = Vec::with_capacity(requests.len());
        for (request, mut slot) in requests.iter().zip(slots) {
            resolve(&mut slot).await;
            results.push(match slot {
                Slot::Done(Ok(ack)) => Ok(Appended {
                    sequence: ack.sequence,
                    duplicate: ack.duplicate,
                }),
                Slot::Done(outcome) => self.settle(request, outcome).await,
                Slot::Failed(e) => Err(e),
                Slot::Pending(_) => unreachable!("resolved above"),
            });
        }
        results
    }

    async fn last_sequence(&self) -> Result<u64, LogError> {
        let info = self
            .inner
            .stream
            .get_info()
            .await
            .map_err(|e| match e.kind() {
                jetstream::context::RequestErrorKind::TimedOut
                | jetstream::context::RequestErrorKind::NoResponders => {
                    LogError::Unavailable(format!("reading stream info: {e}"))
                }
                _ => backend("reading stream info", e),
            })?;
        Ok(info.state.last_sequence)
    }

    async fn aggregate_version(&self, aggregate: &AggregateRef) -> Result<Option<u64>, LogError> {
        AggregateRef::new(aggregate.kind.clone(), aggregate.id.clone())?;
        match self
            .inner
            .stream
            .direct_get_last_for_subject(self.subject(aggregate))
            .await
        {
            Ok(message) => Ok(Some(message.sequence)),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(direct_get_error("reading an aggregate version", e)),
        }
    }

    async fn read_aggregate(&self, aggregate: &AggregateRef) -> Result<Vec<LogRecord>, LogError> {
        AggregateRef::new(aggregate.kind.clone(), aggregate.id.clone())?;
        let subject = self.subject(aggregate);
        let mut records = Vec::new();
        let mut next = 1;
        loop {
            match self
                .inner
                .stream
                .direct_get_next_for_subject(subject.clone(), Some(next))
                .await
            {
                Ok(message) => {
                    next = message.sequence + 1;
                    records.push(self.stream_message_record(message)?);
                }
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(records),
                Err(e) => return Err(direct_get_error("reading an aggregate", e)),
            }
        }
    }

    async fn read(
        &self,
        start: StartAt,
        filter: Filter,
        mode: ReadMode,
    ) -> Result<RecordStream, LogError> {
        let filter_subjects = self.filter_subjects(&filter)?;
        // Everything a ToEnd read must deliver is at or below this sequence.
        let last_at_start = self.last_sequence().await?;
        if mode == ReadMode::ToEnd {
            let nothing = match start {
                StartAt::New => true,
                StartAt::Sequence(sequence) => sequence > last_at_start,
                StartAt::Beginning | StartAt::Time(_) => last_at_start == 0,
            };
            if nothing {
                return Ok(futures::stream::empty().boxed());
            }
        }
        let deliver_policy = match start {
            StartAt::Beginning => DeliverPolicy::All,
            StartAt::Sequence(sequence) => DeliverPolicy::ByStartSequence {
                start_sequence: sequence.max(1),
            },
            StartAt::Time(time) => DeliverPolicy::ByStartTime {
                start_time: to_offset(time)?,
            },
            StartAt::New => DeliverPolicy::New,
        };
        let consumer = self
            .inner
            .stream
            .create_consumer(OrderedConfig {
                filter_subjects,
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| backend("creating a reader", e))?;
        if mode == ReadMode::ToEnd && consumer.cached_info().num_pending == 0 {
            return Ok(futures::stream::empty().boxed());
        }
        let messages = consumer
            .messages()
            .await
            .map_err(|e| backend("starting a reader", e))?;

        let log = self.clone();
        let state = ReadState {
            messages,
            done: false,
        };
        let records = futures::stream::unfold(state, move |mut state| {
            let log = log.clone();
            async move {
                if state.done {
                    return None;
                }
                loop {
                    let message = match state.messages.next().await? {
                        Ok(message) => message,
                        Err(e) if e.kind() == pull::OrderedErrorKind::MissingHeartbeat => {
                            // Not terminal: the ordered consumer recreates itself.
                            continue;
                        }
                        Err(e) => {
                            state.done = true;
                            return Some((Err(backend("reading", e)), state));
                        }
                    };
                    let info = match message.info() {
                        Ok(info) => info,
                        Err(e) => {
                            state.done = true;
                            return Some((Err(backend("parsing delivery metadata", e)), state));
                        }
                    };
                    let (sequence, pending) = (info.stream_sequence, info.pending);
                    if mode == ReadMode::ToEnd {
                        if sequence > last_at_start {
                            return None;
                        }
                        // Nothing more matches, or we reached the old end.
                        state.done = pending == 0 || sequence == last_at_start;
                    }
                    let record = log.consumer_message_record(&message);
                    return Some((record, state));
                }
            }
        });
        Ok(records.boxed())
    }

    async fn consumer(
        &self,
        options: ConsumerOptions,
    ) -> Result<Box<dyn DurableConsumer>, LogError> {
        if !is_consumer_name(&options.durable_name) {
            return Err(LogError::Backend(format!(
                "{:?} is not a valid durable name (use [A-Za-z0-9_-])",
                options.durable_name
            )));
        }
        let backoff = backoff_schedule(options.ack_wait, options.max_deliver);
        let config = pull::Config {
            durable_name: Some(options.durable_name.clone()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: options.ack_wait,
            max_deliver: options.max_deliver,
            max_ack_pending: options.max_ack_pending,
            filter_subjects: self.filter_subjects(&options.filter)?,
            backoff: backoff.clone(),
            ..Default::default()
        };
        // Create-or-update; if the update is refused (a field that cannot
        // change), keep using the consumer as it is.
        let consumer: PullConsumer = match self.inner.stream.create_consumer(config).await {
            Ok(consumer) => consumer,
            Err(create_error) => self
                .inner
                .stream
                .get_consumer(&options.durable_name)
                .await
                .map_err(|_| backend("creating a durable consumer", create_error))?,
        };
        let batch = options.max_ack_pending.clamp(1, 256) as usize;
        Ok(Box::new(JetStreamConsumer {
            log: self.clone(),
            consumer,
            messages: None,
            batch,
            backoff: backoff.into(),
        }))
    }

    async fn put_blob(&self, bytes: Bytes) -> Result<BlobRef, LogError> {
        let key = hex::encode(Sha256::digest(&bytes));
        let blob = BlobRef {
            bucket: self.inner.config.object_bucket.clone(),
            key: key.clone(),
            size: bytes.len() as u64,
        };
        // Content-addressed: an existing complete object is the same bytes.
        match self.inner.blobs.info(&key).await {
            Ok(info) if !info.deleted && info.size == bytes.len() => return Ok(blob),
            Ok(_) => {}
            Err(e) if e.kind() == InfoErrorKind::NotFound => {}
            Err(e) => return Err(blob_error(&key, e)),
        }
        let mut reader: &[u8] = &bytes;
        self.inner
            .blobs
            .put(key.as_str(), &mut reader)
            .await
            .map_err(|e| blob_error(&key, e))?;
        Ok(blob)
    }

    async fn get_blob(&self, blob: &BlobRef) -> Result<Bytes, LogError> {
        if blob.bucket != self.inner.config.object_bucket {
            return Err(LogError::Blob {
                key: blob.key.clone(),
                reason: format!(
                    "bucket {:?} is not this log's bucket {:?}",
                    blob.bucket, self.inner.config.object_bucket
                ),
            });
        }
        let mut object = match self.inner.blobs.get(&blob.key).await {
            Ok(object) => object,
            Err(e) if e.kind() == GetErrorKind::NotFound => {
                return Err(LogError::Blob {
                    key: blob.key.clone(),
                    reason: "not found".into(),
                });
            }
            Err(e) => return Err(blob_error(&blob.key, e)),
        };
        let mut bytes = Vec::with_capacity(blob.size as usize);
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| blob_error(&blob.key, e))?;
        let digest = hex::encode(Sha256::digest(&bytes));
        if digest != blob.key {
            return Err(LogError::Blob {
                key: blob.key.clone(),
                reason: format!("content digest is {digest}"),
            });
        }
        Ok(Bytes::from(bytes))
    }

    fn max_payload(&self) -> usize {
        self.inner.max_payload
    }
}

/// State of one `read` stream.
struct ReadState {
    messages: pull::Ordered,
    done: bool,
}

/// A durable pull consumer: pulls in batches over one long-lived pull
/// stream and re-opens it after an error.
struct JetStreamConsumer {
    log: JetStreamLog,
    consumer: PullConsumer,
    messages: Option<pull::Stream>,
    batch: usize,
    backoff: Arc<[Duration]>,
}

#[async_trait]
impl DurableConsumer for JetStreamConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, LogError>> {
        loop {
            if self.messages.is_none() {
                match self
                    .consumer
                    .stream()
                    .max_messages_per_batch(self.batch)
                    .heartbeat(Duration::from_secs(5))
                    .expires(Duration::from_secs(30))
                    .messages()
                    .await
                {
                    Ok(messages) => self.messages = Some(messages),
                    Err(e) => {
                        // Likely a server restart: let the caller see it,
                        // and pace the retries.
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        return Some(Err(LogError::Unavailable(format!(
                            "opening the consumer's pull stream: {e}"
                        ))));
                    }
                }
            }
            let messages = self.messages.as_mut()?;
            let message = match messages.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) if e.kind() == pull::MessagesErrorKind::MissingHeartbeat => {
                    // Not terminal (server busy or reconnecting): keep going.
                    continue;
                }
                Some(Err(e)) => {
                    self.messages = None;
                    return Some(Err(LogError::Unavailable(format!("consumer: {e}"))));
                }
                None => return None,
            };
            let record = match self.log.consumer_message_record(&message) {
                Ok(record) => record,
                Err(e) => {
                    // Not ours to understand: stop its redelivery, report it.
                    let _ = message.ack_with(AckKind::Term).await;
                    return Some(Err(e));
                }
            };
            let (delivery_count, pending) = match message.info() {
                Ok(info) => (info.delivered.max(1) as u64, info.pending),
                Err(e) => return Some(Err(backend("parsing delivery metadata", e))),
            };
            let (_, acker) = message.split();
            let acker = JetStreamAcker {
                acker,
                delivery_count,
                backoff: self.backoff.clone(),
                confirm: self.log.inner.config.confirm_acks,
            };
            return Some(Ok(
                Delivery::new(record, delivery_count, Box::new(acker)).with_pending(pending)
            ));
        }
    }
}

struct JetStreamAcker {
    acker: jetstream::message::Acker,
    delivery_count: u64,
    backoff: Arc<[Duration]>,
    confirm: bool,
}

#[async_trait]
impl Acker for JetStreamAcker {
    async fn ack(&self) -> Result<(), LogError> {
        let result = if self.confirm {
            self.acker.double_ack().await
        } else {
            self.acker.ack().await
        };
        result.map_err(|e| LogError::Unavailable(format!("ack: {e}")))
    }

    async fn nak(&self) -> Result<(), LogError> {
        // Redeliver after the same backoff an ack timeout would get.
        let index = (self.delivery_count as usize)
            .saturating_sub(1)
            .min(self.backoff.len().saturating_sub(1));
        let delay = self.backoff.get(index).copied();
        self.acker
            .ack_with(AckKind::Nak(delay))
            .await
            .map_err(|e| LogError::Unavailable(format!("nak: {e}")))
    }

    async fn term(&self) -> Result<(), LogError> {
        self.acker
            .ack_with(AckKind::Term)
            .await
            .map_err(|e| LogError::Unavailable(format!("term: {e}")))
    }
}

/// Redelivery delays: `ack_wait`, doubling, at most 4 steps, capped at 10
/// minutes, and fewer steps than `max_deliver` (the server requires it).
pub fn backoff_schedule(ack_wait: Duration, max_deliver: i64) -> Vec<Duration> {
    let steps = if max_deliver <= 0 {
        4
    } else {
        (max_deliver as usize - 1).min(4)
    };
    let cap = Duration::from_secs(600).max(ack_wait);
    (0..steps)
        .map(|i| (ack_wait * 2u32.pow(i as u32)).min(cap))
        .collect()
}

/// Refuses servers older than [`MIN_SERVER_VERSION`].
fn check_server_version(version: &str, url: &str) -> Result<(), LogError> {
    let parsed = parse_version(version);
    match parsed {
        Some(found) if found >= MIN_SERVER_VERSION => Ok(()),
        _ => {
            let (major, minor, _) = MIN_SERVER_VERSION;
            Err(LogError::UnsupportedServer(format!(
                "nats-server {version} at {url} is older than {major}.{minor}, the minimum \
                 Parley supports (it needs filter_subjects and direct gets); upgrade the server \
                 or run scripts/install-tools for a local one"
            )))
        }
    }
}

/// `2.10.7`, `v2.12.0-RC.1` → (2, 10, 7) / (2, 12, 0).
fn parse_version(version: &str) -> Option<(u64, u64, u64)> {
    let core = version.trim().trim_start_matches('v');
    let core = core.split(['-', '+', ' ']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// `<prefix>.<kind>.<id>` → the aggregate.
fn parse_subject(prefix: &str, subject: &str) -> Result<AggregateRef, LogError> {
    let rest = subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .ok_or_else(|| LogError::Backend(format!("subject {subject:?} is outside {prefix}.>")))?;
    let (kind, id) = rest
        .split_once('.')
        .ok_or_else(|| LogError::Backend(format!("subject {subject:?} has no aggregate id")))?;
    AggregateRef::new(kind, id)
}

fn msg_id_of(headers: &HeaderMap) -> Option<&str> {
    headers.get(MSG_ID_HEADER).map(|value| value.as_str())
}

/// Application headers: everything but the server's `Nats-*` ones, sorted by
/// name so records compare equal across backends.
fn app_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| {
            let name: &str = name.as_ref();
            !(name.len() >= 5 && name[..5].eq_ignore_ascii_case("nats-"))
        })
        .flat_map(|(name, values)| {
            let name: &str = name.as_ref();
            values
                .iter()
                .map(move |value| (name.to_string(), value.as_str().to_string()))
        })
        .collect();
    out.sort();
    out
}

fn describe_expected(expected: ExpectedVersion) -> String {
    match expected {
        ExpectedVersion::Any => "any".into(),
        ExpectedVersion::NoStream => "no stream".into(),
        ExpectedVersion::Exact(version) => version.to_string(),
    }
}

fn is_consumer_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn raw_not_found(kind: RawMessageErrorKind) -> bool {
    match kind {
        RawMessageErrorKind::NoMessageFound => true,
        RawMessageErrorKind::JetStream(error) => {
            error.error_code() == async_nats::jetstream::ErrorCode::NO_MESSAGE_FOUND
        }
        _ => false,
    }
}

fn to_chrono(time: time::OffsetDateTime) -> DateTime<Utc> {
    let nanos = time.unix_timestamp_nanos();
    DateTime::from_timestamp_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
}

fn to_offset(time: DateTime<Utc>) -> Result<time::OffsetDateTime, LogError> {
    let nanos = time
        .timestamp_nanos_opt()
        .ok_or_else(|| LogError::Backend(format!("time {time} is out of range")))?;
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .map_err(|e| LogError::Backend(format!("time {time}: {e}")))
}

fn backend(what: &str, error: impl std::fmt::Display) -> LogError {
    LogError::Backend(format!("{what}: {error}"))
}

fn direct_get_error(what: &str, error: async_nats::jetstream::stream::DirectGetError) -> LogError {
    match error.kind() {
        DirectGetErrorKind::TimedOut | DirectGetErrorKind::ErrorResponse(..) => {
            LogError::Unavailable(format!("{what}: {error}"))
        }
        _ => backend(what, error),
    }
}

/// A leader get that failed for another reason than "no such message" did
/// not reach the server (timeout, no responders while it restarts).
fn raw_get_error(what: &str, error: async_nats::jetstream::stream::RawMessageError) -> LogError {
    match error.kind() {
        RawMessageErrorKind::Other => LogError::Unavailable(format!("{what}: {error}")),
        _ => backend(what, error),
    }
}

fn blob_error(key: &str, error: impl std::fmt::Display) -> LogError {
    LogError::Blob {
        key: key.to_string(),
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_compare() {
        assert_eq!(parse_version("2.15.1"), Some((2, 15, 1)));
        assert_eq!(parse_version("v2.12.0-RC.1"), Some((2, 12, 0)));
        assert!(check_server_version("2.10.0", "nats://x").is_ok());
        let error = check_server_version("2.9.10", "nats://x:4222").unwrap_err();
        assert!(matches!(error, LogError::UnsupportedServer(_)));
        assert!(error.to_string().contains("2.9.10 at nats://x:4222"));
        assert!(check_server_version("garbage", "nats://x").is_err());
    }

    #[test]
    fn subjects_parse_back_to_aggregates() {
        let aggregate = parse_subject("parley.evt", "parley.evt.article.abc-1").unwrap();
        assert_eq!(aggregate, AggregateRef::new("article", "abc-1").unwrap());
        assert!(parse_subject("parley.evt", "other.article.x").is_err());
        assert!(parse_subject("parley.evt", "parley.evt.article").is_err());
        assert!(parse_subject("parley.evt", "parley.evt.a.b.c").is_err());
    }

    #[test]
    fn backoff_has_fewer_steps_than_max_deliver() {
        let schedule = backoff_schedule(Duration::from_secs(1), 3);
        assert_eq!(
            schedule,
            vec![Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert_eq!(backoff_schedule(Duration::from_secs(1), -1).len(), 4);
        assert!(backoff_schedule(Duration::from_secs(1), 1).is_empty());
        let long = backoff_schedule(Duration::from_secs(400), 10);
        assert!(long.iter().all(|d| *d <= Duration::from_secs(600)));
    }

    #[test]
    fn times_round_trip() {
        let now = Utc::now();
        assert_eq!(to_chrono(to_offset(now).unwrap()), now);
    }
}
