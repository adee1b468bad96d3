//! Reads from JetStream: aggregates by direct gets, the log in global
//! order through ordered consumers, and the conversion of what the server
//! stored into [`LogRecord`]s.

use async_nats::HeaderMap;
use async_nats::jetstream::{
    self,
    consumer::{
        DeliverPolicy,
        pull::{self, OrderedConfig},
    },
    message::StreamMessage,
    stream::DirectGetErrorKind,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::{JetStreamLog, backend};
use crate::checks::{check_filter, is_reserved_header};
use crate::{AggregateRef, Filter, LogError, LogRecord, ReadMode, RecordStream, StartAt};

/// Header carrying the deduplication id.
const MSG_ID_HEADER: &str = "Nats-Msg-Id";

impl JetStreamLog {
    /// See [`crate::EventLog::last_sequence`].
    pub(super) async fn stream_last_sequence(&self) -> Result<u64, LogError> {
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

    /// See [`crate::EventLog::aggregate_version`].
    pub(super) async fn version_of(
        &self,
        aggregate: &AggregateRef,
    ) -> Result<Option<u64>, LogError> {
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

    /// See [`crate::EventLog::read_aggregate`].
    pub(super) async fn records_of(
        &self,
        aggregate: &AggregateRef,
    ) -> Result<Vec<LogRecord>, LogError> {
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

    /// See [`crate::EventLog::read`].
    pub(super) async fn read_from(
        &self,
        start: StartAt,
        filter: Filter,
        mode: ReadMode,
    ) -> Result<RecordStream, LogError> {
        let filter_subjects = self.filter_subjects(&filter)?;
        // Everything a ToEnd read must deliver is at or below this sequence.
        let last_at_start = self.stream_last_sequence().await?;
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

    /// Subjects a consumer filters on; empty means the whole stream.
    pub(super) fn filter_subjects(&self, filter: &Filter) -> Result<Vec<String>, LogError> {
        check_filter(filter)?;
        Ok(filter
            .aggregate_types
            .iter()
            .map(|kind| format!("{}.{kind}.*", self.inner.config.subject_prefix))
            .collect())
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

    pub(super) fn consumer_message_record(
        &self,
        message: &jetstream::Message,
    ) -> Result<LogRecord, LogError> {
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

/// State of one `read` stream.
struct ReadState {
    messages: pull::Ordered,
    done: bool,
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

pub(super) fn msg_id_of(headers: &HeaderMap) -> Option<&str> {
    headers.get(MSG_ID_HEADER).map(|value| value.as_str())
}

/// Application headers: everything but the server's `Nats-*` ones, sorted by
/// name so records compare equal across backends.
fn app_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| {
            let name: &str = name.as_ref();
            !is_reserved_header(name)
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

fn to_chrono(time: time::OffsetDateTime) -> DateTime<Utc> {
    let nanos = time.unix_timestamp_nanos();
    DateTime::from_timestamp_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
}

fn to_offset(time: DateTime<Utc>) -> Result<time::OffsetDateTime, LogError> {
    let nanos = time
        .timestamp_nanos_opt()
        .ok_or_else(|| LogError::InvalidRequest(format!("time {time} is out of range")))?;
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .map_err(|e| LogError::InvalidRequest(format!("time {time}: {e}")))
}

fn direct_get_error(what: &str, error: async_nats::jetstream::stream::DirectGetError) -> LogError {
    match error.kind() {
        DirectGetErrorKind::TimedOut | DirectGetErrorKind::ErrorResponse(..) => {
            LogError::Unavailable(format!("{what}: {error}"))
        }
        _ => backend(what, error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_parse_back_to_aggregates() {
        let aggregate = parse_subject("parley.evt", "parley.evt.article.abc-1").unwrap();
        assert_eq!(aggregate, AggregateRef::new("article", "abc-1").unwrap());
        assert!(parse_subject("parley.evt", "other.article.x").is_err());
        assert!(parse_subject("parley.evt", "parley.evt.article").is_err());
        assert!(parse_subject("parley.evt", "parley.evt.a.b.c").is_err());
    }

    #[test]
    fn times_round_trip() {
        let now = Utc::now();
        assert_eq!(to_chrono(to_offset(now).unwrap()), now);
    }
}
