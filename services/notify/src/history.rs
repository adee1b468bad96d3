//! `parley.v1.EventHistoryService`: queries over the notify read model.
//!
//! Subscribers see changes as they happen; history answers what is already
//! known: "the ceasefires involving Russia recorded last week", or "how did
//! this event come to be, and who reported it".
//!
//! Results are ordered by when each event was first recorded (its ordinal in
//! the journal) and paged with a keyset token: the token carries the last
//! ordinal returned, so paging never skips or repeats an event even while new
//! events arrive (they get larger ordinals), and a page costs a scan from
//! where the previous one stopped, not from the start. The token also carries
//! a fingerprint of the query, so a token is refused with a different query
//! instead of silently returning a wrong page.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use parley_domain::pb::event_history_service_server::{
    EventHistoryService, EventHistoryServiceServer,
};
use parley_domain::pb::{
    DateRange, EventVersion, Evidence, GetEventRequest, GetEventResponse, HistoryEvent,
    QueryEventsRequest, QueryEventsResponse, QueryOrder, TalksEvent, TimeRange,
};
use parley_domain::time;
use tonic::{Request, Response, Status};

use crate::Journal;
use crate::journal::{Direction, EventSummary, JournalError};
use parley_domain::filter::{Filter, FilterError};

/// Page size when the request leaves it at 0.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page served: bounds the response size.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Events read from the journal at a time while scanning for matches: the
/// journal is locked per batch, so appends never wait behind a long scan.
const SCAN_BATCH: usize = 256;

/// Why a history request cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The filter expression does not parse.
    #[error("{0}")]
    Filter(#[from] FilterError),
    /// The page token is not one this service issued for this query.
    #[error("invalid page_token: {0}")]
    PageToken(&'static str),
    /// Another field is out of range or malformed.
    #[error("{0}")]
    Argument(String),
    /// No event has this id.
    #[error("no event with id {0:?}")]
    NotFound(String),
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl From<HistoryError> for Status {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::NotFound(_) => Status::not_found(e.to_string()),
            HistoryError::Journal(_) => Status::internal(e.to_string()),
            _ => Status::invalid_argument(e.to_string()),
        }
    }
}

/// A half-open time range; `None` is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Window {
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
}

impl Window {
    fn parse(range: Option<&TimeRange>, name: &str) -> Result<Self, HistoryError> {
        let Some(range) = range else {
            return Ok(Self::default());
        };
        let bound = |which: &str| HistoryError::Argument(format!("{name}.{which} is out of range"));
        let window = Self {
            start: range
                .start
                .as_ref()
                .map(|ts| time::from_timestamp(ts).ok_or_else(|| bound("start")))
                .transpose()?,
            end: range
                .end
                .as_ref()
                .map(|ts| time::from_timestamp(ts).ok_or_else(|| bound("end")))
                .transpose()?,
        };
        if let (Some(start), Some(end)) = (window.start, window.end)
            && end < start
        {
            return Err(HistoryError::Argument(format!(
                "{name}.end ({end}) is before {name}.start ({start})"
            )));
        }
        Ok(window)
    }

    fn contains(&self, t: Option<DateTime<Utc>>) -> bool {
        if self.start.is_none() && self.end.is_none() {
            return true;
        }
        let Some(t) = t else { return false };
        self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t < e)
    }

    fn fingerprint(&self, h: &mut Fnv) {
        for bound in [self.start, self.end] {
            h.write(
                &bound
                    .map_or(i64::MIN, |t| t.timestamp_nanos_opt().unwrap_or(0))
                    .to_le_bytes(),
            );
        }
    }
}

/// An inclusive range of days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Days {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

impl Days {
    fn parse(range: Option<&DateRange>) -> Result<Self, HistoryError> {
        let Some(range) = range else {
            return Ok(Self::default());
        };
        let day = |text: &str, which: &str| {
            if text.is_empty() {
                return Ok(None);
            }
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(Some)
                .map_err(|e| {
                    HistoryError::Argument(format!(
                        "event_date.{which} {text:?} is not a YYYY-MM-DD date: {e}"
                    ))
                })
        };
        let days = Self {
            from: day(&range.from, "from")?,
            to: day(&range.to, "to")?,
        };
        if let (Some(from), Some(to)) = (days.from, days.to)
            && to < from
        {
            return Err(HistoryError::Argument(format!(
                "event_date.to ({to}) is before event_date.from ({from})"
            )));
        }
        Ok(days)
    }

    /// Whether the event's days overlap the range. An event without a date
    /// stands at its publication date; one with neither never matches a range.
    fn overlaps(&self, event: &TalksEvent) -> bool {
        if self.from.is_none() && self.to.is_none() {
            return true;
        }
        let parse = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        let date = event.date.as_ref();
        let (first, last) = match date.and_then(|d| parse(&d.date)) {
            Some(first) => (
                first,
                date.and_then(|d| parse(&d.end_date))
                    .filter(|end| *end >= first)
                    .unwrap_or(first),
            ),
            None => match parse(&event.reported_on) {
                Some(day) => (day, day),
                None => return false,
            },
        };
        self.from.is_none_or(|from| last >= from) && self.to.is_none_or(|to| first <= to)
    }

    fn fingerprint(&self, h: &mut Fnv) {
        for bound in [self.from, self.to] {
            h.write(bound.map(|d| d.to_string()).unwrap_or_default().as_bytes());
            h.write(b"|");
        }
    }
}

/// Which way a query walks the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Most recently first-recorded first.
    NewestFirst,
    /// Earliest first-recorded first.
    OldestFirst,
}

/// A validated `QueryEventsRequest`.
#[derive(Debug, Clone)]
pub struct Query {
    filter: Filter,
    recorded: Window,
    updated: Window,
    days: Days,
    exclude_retracted: bool,
    order: Order,
    page_size: usize,
    /// Ordinal of the last event of the previous page.
    after: Option<u64>,
}

impl Query {
    /// Checks every field; the errors name the field and the problem.
    pub fn from_request(request: &QueryEventsRequest) -> Result<Self, HistoryError> {
        let filter = Filter::parse(&request.filter)?;
        let order = match QueryOrder::try_from(request.order) {
            Ok(QueryOrder::OldestFirst) => Order::OldestFirst,
            Ok(QueryOrder::NewestFirst | QueryOrder::Unspecified) => Order::NewestFirst,
            Err(_) => {
                return Err(HistoryError::Argument(format!(
                    "order {} is not a QueryOrder",
                    request.order
                )));
            }
        };
        if request.page_size > MAX_PAGE_SIZE {
            return Err(HistoryError::Argument(format!(
                "page_size {} is over the maximum of {MAX_PAGE_SIZE}",
                request.page_size
            )));
        }
        let page_size = match request.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => n,
        } as usize;
        let mut query = Self {
            filter,
            recorded: Window::parse(request.recorded.as_ref(), "recorded")?,
            updated: Window::parse(request.updated.as_ref(), "updated")?,
            days: Days::parse(request.event_date.as_ref())?,
            exclude_retracted: request.exclude_retracted,
            order,
            page_size,
            after: None,
        };
        if !request.page_token.is_empty() {
            query.after = Some(query.decode_token(&request.page_token)?);
        }
        Ok(query)
    }

    /// Fingerprint of everything that selects and orders results (not the page size,
    /// which may change from page to page).
    fn fingerprint(&self) -> u64 {
        let mut h = Fnv::new();
        h.write(self.filter.source().as_bytes());
        h.write(b"\0");
        self.recorded.fingerprint(&mut h);
        self.updated.fingerprint(&mut h);
        self.days.fingerprint(&mut h);
        h.write(&[u8::from(self.exclude_retracted), self.order as u8]);
        h.finish()
    }

    /// The token resuming after the event with `ordinal`: 32 hex digits, the
    /// ordinal then the query fingerprint.
    fn encode_token(&self, ordinal: u64) -> String {
        format!("{ordinal:016x}{:016x}", self.fingerprint())
    }

    fn decode_token(&self, token: &str) -> Result<u64, HistoryError> {
        if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(HistoryError::PageToken("not a token this service issued"));
        }
        let ordinal = u64::from_str_radix(&token[..16], 16)
            .map_err(|_| HistoryError::PageToken("not a token this service issued"))?;
        let fingerprint = u64::from_str_radix(&token[16..], 16)
            .map_err(|_| HistoryError::PageToken("not a token this service issued"))?;
        if fingerprint != self.fingerprint() {
            return Err(HistoryError::PageToken(
                "it was issued for a different query (filter, ranges or order changed)",
            ));
        }
        Ok(ordinal)
    }

    fn matches(&self, summary: &EventSummary) -> bool {
        let Some(event) = summary.state() else {
            return false;
        };
        let at = |ts: Option<&prost_types::Timestamp>| ts.and_then(time::from_timestamp);
        !(self.exclude_retracted && event.retracted)
            && self
                .recorded
                .contains(at(summary.first_recorded_at.as_ref()))
            && self
                .updated
                .contains(at(summary.latest.recorded_at.as_ref()))
            && self.days.overlaps(event)
            && self.filter.matches(event)
    }

    /// Runs the query over the journal: one page and the token of the next.
    pub fn run(&self, journal: &Journal) -> Result<QueryEventsResponse, HistoryError> {
        // First ordinal to visit, in the query's direction.
        let (mut from, direction) = match (self.order, self.after) {
            (Order::OldestFirst, None) => (Some(0), Direction::Ascending),
            (Order::OldestFirst, Some(after)) => (after.checked_add(1), Direction::Ascending),
            (Order::NewestFirst, None) => (Some(u64::MAX), Direction::Descending),
            (Order::NewestFirst, Some(after)) => (after.checked_sub(1), Direction::Descending),
        };
        let mut events = Vec::new();
        let mut last = None;
        let mut more = false;
        'scan: while let Some(start) = from {
            let batch = journal.events_from(start, direction, SCAN_BATCH)?;
            from = match (batch.last(), direction) {
                _ if batch.len() < SCAN_BATCH => None,
                (Some(e), Direction::Ascending) => e.ordinal.checked_add(1),
                (Some(e), Direction::Descending) => e.ordinal.checked_sub(1),
                (None, _) => None,
            };
            for summary in &batch {
                if !self.matches(summary) {
                    continue;
                }
                if events.len() == self.page_size {
                    more = true;
                    break 'scan;
                }
                events.push(history_event(summary));
                last = Some(summary.ordinal);
            }
        }
        let next_page_token = match (more, last) {
            (true, Some(last)) => self.encode_token(last),
            _ => String::new(),
        };
        Ok(QueryEventsResponse {
            events,
            next_page_token,
        })
    }
}

/// The summary row of one event.
fn history_event(summary: &EventSummary) -> HistoryEvent {
    HistoryEvent {
        event: summary.latest.event.clone(),
        first_sequence: summary.first_sequence,
        last_sequence: summary.latest.sequence,
        recorded_at: summary.first_recorded_at,
        updated_at: summary.latest.recorded_at,
    }
}

/// Everything known about one event: current state, versions, sources.
pub fn get_event(journal: &Journal, event_id: &str) -> Result<GetEventResponse, HistoryError> {
    if event_id.is_empty() {
        return Err(HistoryError::Argument("event_id is empty".into()));
    }
    let history = journal
        .history(event_id)?
        .ok_or_else(|| HistoryError::NotFound(event_id.to_owned()))?;
    let versions = history
        .changes
        .iter()
        .map(|change| EventVersion {
            version: change.entry.event.as_ref().map_or(0, |e| e.version),
            kind: change.entry.kind,
            sequence: change.entry.sequence,
            recorded_at: change.entry.recorded_at,
            reason: change.reason.clone(),
            event: change.entry.event.clone(),
        })
        .collect();
    // Amendments may replace the evidence list: the union over all versions
    // is every source that ever reported the event.
    let mut sources: Vec<Evidence> = Vec::new();
    for change in &history.changes {
        for evidence in change.entry.event.iter().flat_map(|e| &e.evidence) {
            let seen = sources.iter().any(|s| {
                s.document_id == evidence.document_id
                    && s.start == evidence.start
                    && s.end == evidence.end
            });
            if !seen {
                sources.push(evidence.clone());
            }
        }
    }
    let (first, latest) = (history.first(), history.latest());
    let current = HistoryEvent {
        event: latest.event.clone(),
        first_sequence: first.sequence,
        last_sequence: latest.sequence,
        recorded_at: first.recorded_at,
        updated_at: latest.recorded_at,
    };
    Ok(GetEventResponse {
        current: Some(current),
        versions,
        sources,
    })
}

/// 64-bit FNV-1a: a hash that stays the same across builds and restarts, so
/// page tokens survive a redeploy (std's hasher makes no such promise).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The gRPC face of history queries.
#[derive(Clone)]
pub struct HistoryGrpc {
    journal: Arc<Journal>,
}

impl HistoryGrpc {
    /// Answers from `journal`.
    pub fn new(journal: Arc<Journal>) -> Self {
        Self { journal }
    }

    /// Wraps it in the tonic server type.
    pub fn into_server(self) -> EventHistoryServiceServer<Self> {
        EventHistoryServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl EventHistoryService for HistoryGrpc {
    async fn query_events(
        &self,
        request: Request<QueryEventsRequest>,
    ) -> Result<Response<QueryEventsResponse>, Status> {
        let query = Query::from_request(request.get_ref())?;
        Ok(Response::new(query.run(&self.journal)?))
    }

    async fn get_event(
        &self,
        request: Request<GetEventRequest>,
    ) -> Result<Response<GetEventResponse>, Status> {
        Ok(Response::new(get_event(
            &self.journal,
            &request.get_ref().event_id,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use parley_domain::Event;
    use parley_domain::pb::{self, Actor, EventDate, TalksEventType, UpdateKind};
    use parley_log::AggregateRef;
    use parley_runtime::{DecodedRecord, EnvelopeBuilder};
    use proptest::prelude::*;

    /// A journal fed with hand-made records, one per call, one second apart.
    struct Fixture {
        journal: Journal,
        sequence: u64,
        start: DateTime<Utc>,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                journal: Journal::default(),
                sequence: 0,
                start: Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap(),
            }
        }

        /// Time of the record with this sequence.
        fn time_of(&self, sequence: u64) -> DateTime<Utc> {
            self.start + chrono::Duration::seconds(sequence as i64)
        }

        fn append(&mut self, event_id: &str, event: Event) -> u64 {
            self.sequence += 1;
            let builder = EnvelopeBuilder::new(AggregateRef::new("talks", event_id).unwrap());
            let record = DecodedRecord {
                sequence: self.sequence,
                aggregate: builder.aggregate().clone(),
                recorded_at: self.time_of(self.sequence),
                envelopes: vec![builder.envelope(format!("e{}", self.sequence), event)],
                skipped: vec![],
            };
            assert_eq!(self.journal.apply(&record).unwrap(), 1);
            self.sequence
        }

        fn record(&mut self, event: TalksEvent) -> u64 {
            let id = event.event_id.clone();
            self.append(
                &id,
                Event::TalksEventRecorded(pb::TalksEventRecorded { event: Some(event) }),
            )
        }
    }

    fn evidence(doc: &str) -> Evidence {
        Evidence {
            document_id: doc.into(),
            document_name: format!("{doc}.txt"),
            text: format!("text of {doc}"),
            start: 0,
            end: 10,
            ..Default::default()
        }
    }

    fn talks(id: &str, kind: TalksEventType, parties: &[&str], date: &str) -> TalksEvent {
        TalksEvent {
            event_id: id.into(),
            r#type: kind as i32,
            date: Some(EventDate {
                date: date.into(),
                ..Default::default()
            }),
            parties: parties
                .iter()
                .map(|p| Actor {
                    code: (*p).into(),
                    ..Default::default()
                })
                .collect(),
            evidence: vec![evidence(&format!("doc-{id}"))],
            version: 1,
            source_count: 1,
            ..Default::default()
        }
    }

    fn request(filter: &str) -> QueryEventsRequest {
        QueryEventsRequest {
            filter: filter.into(),
            ..Default::default()
        }
    }

    fn ids(response: &QueryEventsResponse) -> Vec<String> {
        response
            .events
            .iter()
            .map(|e| e.event.as_ref().unwrap().event_id.clone())
            .collect()
    }

    fn run(fixture: &Fixture, request: &QueryEventsRequest) -> QueryEventsResponse {
        Query::from_request(request)
            .unwrap()
            .run(&fixture.journal)
            .unwrap()
    }

    #[test]
    fn get_event_lists_every_version_with_its_kind_and_every_source() {
        let mut f = Fixture::new();
        let first = f.record(talks(
            "evt-a",
            TalksEventType::CeasefireAgreed,
            &["RUS", "UKR"],
            "2025-03-10",
        ));
        f.record(talks(
            "evt-b",
            TalksEventType::TalksHeld,
            &["ISR"],
            "2025-03-11",
        ));
        let corroborated = f.append(
            "evt-a",
            Event::TalksEventCorroborated(pb::TalksEventCorroborated {
                event_id: "evt-a".into(),
                evidence: Some(evidence("doc-second")),
                source_count: 2,
                status: pb::EventStatus::Held as i32,
                version: 2,
                reported_type: 0,
            }),
        );
        // An amendment that carries only one of the two sources.
        let mut amended = talks(
            "evt-a",
            TalksEventType::CeasefireAgreed,
            &["RUS", "UKR", "USA"],
            "2025-03-10",
        );
        amended.version = 3;
        amended.evidence = vec![evidence("doc-second")];
        let amend = f.append(
            "evt-a",
            Event::TalksEventAmended(pb::TalksEventAmended {
                event: Some(amended),
                reason: "mediator added".into(),
            }),
        );
        let retract = f.append(
            "evt-a",
            Event::TalksEventRetracted(pb::TalksEventRetracted {
                event_id: "evt-a".into(),
                reason: "misread".into(),
                version: 4,
            }),
        );

        let got = get_event(&f.journal, "evt-a").unwrap();
        let kinds: Vec<_> = got.versions.iter().map(|v| v.kind()).collect();
        assert_eq!(
            kinds,
            [
                UpdateKind::Recorded,
                UpdateKind::Corroborated,
                UpdateKind::Amended,
                UpdateKind::Retracted
            ]
        );
        let versions: Vec<_> = got.versions.iter().map(|v| v.version).collect();
        assert_eq!(versions, [1, 2, 3, 4]);
        let sequences: Vec<_> = got.versions.iter().map(|v| v.sequence).collect();
        assert_eq!(sequences, [first, corroborated, amend, retract]);
        assert_eq!(got.versions[2].reason, "mediator added");
        assert_eq!(got.versions[3].reason, "misread");
        assert_eq!(
            got.versions[1]
                .recorded_at
                .and_then(|t| time::from_timestamp(&t)),
            Some(f.time_of(corroborated))
        );
        // The corroborated version carries both sources and the new status.
        let v2 = got.versions[1].event.as_ref().unwrap();
        assert_eq!(v2.evidence.len(), 2);
        assert_eq!(v2.status, pb::EventStatus::Held as i32);

        let current = got.current.unwrap();
        let state = current.event.unwrap();
        assert!(state.retracted);
        assert_eq!(state.parties.len(), 3, "the amendment's fields are kept");
        assert_eq!(
            (current.first_sequence, current.last_sequence),
            (first, retract)
        );
        // The union of sources keeps the one the amendment dropped.
        let docs: Vec<_> = got.sources.iter().map(|s| s.document_id.as_str()).collect();
        assert_eq!(docs, ["doc-evt-a", "doc-second"]);
    }

    #[test]
    fn unknown_ids_are_not_found_and_empty_ids_invalid() {
        let mut f = Fixture::new();
        f.record(talks(
            "evt-a",
            TalksEventType::TalksHeld,
            &["UKR"],
            "2025-03-10",
        ));
        let status = Status::from(get_event(&f.journal, "evt-zzz").unwrap_err());
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert!(status.message().contains("evt-zzz"), "{}", status.message());
        let status = Status::from(get_event(&f.journal, "").unwrap_err());
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn bad_requests_are_invalid_arguments_naming_the_problem() {
        let cases: Vec<(QueryEventsRequest, &str)> = vec![
            (request("type = "), "column"),
            (request("colour = red"), "colour"),
            (
                QueryEventsRequest {
                    page_size: MAX_PAGE_SIZE + 1,
                    ..Default::default()
                },
                "page_size",
            ),
            (
                QueryEventsRequest {
                    page_token: "garbage".into(),
                    ..Default::default()
                },
                "page_token",
            ),
            (
                QueryEventsRequest {
                    event_date: Some(DateRange {
                        from: "March 3".into(),
                        to: String::new(),
                    }),
                    ..Default::default()
                },
                "event_date.from",
            ),
            (
                QueryEventsRequest {
                    event_date: Some(DateRange {
                        from: "2025-03-10".into(),
                        to: "2025-03-01".into(),
                    }),
                    ..Default::default()
                },
                "before",
            ),
            (
                QueryEventsRequest {
                    order: 42,
                    ..Default::default()
                },
                "order",
            ),
        ];
        for (request, needle) in cases {
            let status = Status::from(Query::from_request(&request).unwrap_err());
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{request:?}");
            assert!(
                status.message().contains(needle),
                "{needle:?} not in {:?}",
                status.message()
            );
        }
    }

    #[test]
    fn a_token_is_refused_with_a_different_query() {
        let mut f = Fixture::new();
        for i in 0..5 {
            f.record(talks(
                &format!("evt-{i}"),
                TalksEventType::TalksHeld,
                &["UKR"],
                "2025-03-10",
            ));
        }
        let first = run(
            &f,
            &QueryEventsRequest {
                page_size: 2,
                ..request("party = UKR")
            },
        );
        assert!(!first.next_page_token.is_empty());
        // Same query, another page size: fine.
        let next = QueryEventsRequest {
            page_size: 3,
            page_token: first.next_page_token.clone(),
            ..request("party = UKR")
        };
        assert_eq!(run(&f, &next).events.len(), 3);
        // Another filter: refused.
        let other = QueryEventsRequest {
            page_token: first.next_page_token,
            ..request("party = RUS")
        };
        let status = Status::from(Query::from_request(&other).unwrap_err());
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("different query"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn filters_ranges_and_order_select_and_sort_events() {
        let mut f = Fixture::new();
        let a = f.record(talks(
            "a",
            TalksEventType::CeasefireAgreed,
            &["RUS", "UKR"],
            "2025-03-01",
        ));
        f.record(talks(
            "b",
            TalksEventType::TalksHeld,
            &["RUS", "UKR"],
            "2025-03-05",
        ));
        let c = f.record(talks(
            "c",
            TalksEventType::CeasefireViolated,
            &["RUS"],
            "2025-03-09",
        ));
        f.record(talks(
            "d",
            TalksEventType::CeasefireProposed,
            &["ISR", "HAMAS"],
            "2025-03-09",
        ));
        let mut undated = talks("e", TalksEventType::CeasefireEnded, &["RUS"], "");
        undated.reported_on = "2025-03-20".into();
        f.record(undated);
        // Corroborating "a" later makes it the most recently updated.
        let late = f.append(
            "a",
            Event::TalksEventCorroborated(pb::TalksEventCorroborated {
                event_id: "a".into(),
                evidence: Some(evidence("doc-late")),
                source_count: 2,
                version: 2,
                ..Default::default()
            }),
        );

        // Filter, newest first by default.
        let got = run(&f, &request("type = ceasefire_* and party = RUS"));
        assert_eq!(ids(&got), ["e", "c", "a"]);
        assert!(got.next_page_token.is_empty());
        let oldest = QueryEventsRequest {
            order: QueryOrder::OldestFirst as i32,
            ..request("type = ceasefire_* and party = RUS")
        };
        assert_eq!(ids(&run(&f, &oldest)), ["a", "c", "e"]);

        // First-recorded range: [time of a, time of c) holds a and b.
        let recorded = QueryEventsRequest {
            recorded: Some(TimeRange {
                start: Some(time::to_timestamp(f.time_of(a))),
                end: Some(time::to_timestamp(f.time_of(c))),
            }),
            ..request("")
        };
        assert_eq!(ids(&run(&f, &recorded)), ["b", "a"]);

        // Updated range: only "a" changed at or after the corroboration.
        let updated = QueryEventsRequest {
            updated: Some(TimeRange {
                start: Some(time::to_timestamp(f.time_of(late))),
                end: None,
            }),
            ..request("")
        };
        let got = run(&f, &updated);
        assert_eq!(ids(&got), ["a"]);
        assert_eq!(got.events[0].last_sequence, late);
        assert_eq!(got.events[0].first_sequence, a);

        // Event dates: the undated event stands at its publication date.
        let days = |from: &str, to: &str| QueryEventsRequest {
            event_date: Some(DateRange {
                from: from.into(),
                to: to.into(),
            }),
            ..request("")
        };
        assert_eq!(
            ids(&run(&f, &days("2025-03-05", "2025-03-09"))),
            ["d", "c", "b"]
        );
        assert_eq!(ids(&run(&f, &days("2025-03-15", ""))), ["e"]);
        assert_eq!(ids(&run(&f, &days("", "2025-03-01"))), ["a"]);
    }

    #[test]
    fn retracted_events_are_listed_unless_excluded() {
        let mut f = Fixture::new();
        f.record(talks(
            "a",
            TalksEventType::TalksHeld,
            &["UKR"],
            "2025-03-01",
        ));
        f.record(talks(
            "b",
            TalksEventType::TalksHeld,
            &["UKR"],
            "2025-03-02",
        ));
        f.append(
            "a",
            Event::TalksEventRetracted(pb::TalksEventRetracted {
                event_id: "a".into(),
                reason: String::new(),
                version: 2,
            }),
        );
        assert_eq!(ids(&run(&f, &request(""))), ["b", "a"]);
        let live = QueryEventsRequest {
            exclude_retracted: true,
            ..request("")
        };
        assert_eq!(ids(&run(&f, &live)), ["b"]);
    }

    /// Pages through a query to the end; panics on a loop.
    fn all_pages(
        f: &mut Fixture,
        base: &QueryEventsRequest,
        mut between_pages: impl FnMut(&mut Fixture),
    ) -> Vec<String> {
        let mut seen = Vec::new();
        let mut token = String::new();
        for _ in 0..10_000 {
            let page = run(
                f,
                &QueryEventsRequest {
                    page_token: token.clone(),
                    ..base.clone()
                },
            );
            assert!(page.events.len() <= base.page_size as usize);
            seen.extend(ids(&page));
            if page.next_page_token.is_empty() {
                return seen;
            }
            token = page.next_page_token;
            between_pages(f);
        }
        panic!("paging did not end");
    }

    const TYPES: [TalksEventType; 4] = [
        TalksEventType::TalksHeld,
        TalksEventType::CeasefireAgreed,
        TalksEventType::CeasefireViolated,
        TalksEventType::AgreementReached,
    ];
    const PARTIES: [&str; 3] = ["RUS", "UKR", "ISR"];
    const FILTERS: [&str; 4] = ["", "type = ceasefire_*", "party = RUS", "not party = UKR"];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Across pages, every matching event appears exactly once, in order,
        /// even when events are recorded and corroborated between pages.
        #[test]
        fn paging_yields_every_matching_event_exactly_once(
            events in proptest::collection::vec((0..TYPES.len(), 0..PARTIES.len()), 0..40),
            page_size in 1u32..8,
            oldest_first in any::<bool>(),
            filter in 0..FILTERS.len(),
            churn in any::<bool>(),
        ) {
            let mut f = Fixture::new();
            for (i, (t, p)) in events.iter().enumerate() {
                f.record(talks(&format!("evt-{i:03}"), TYPES[*t], &[PARTIES[*p]], "2025-03-01"));
            }
            let matcher = Filter::parse(FILTERS[filter]).unwrap();
            let mut expected: Vec<String> = (0..events.len())
                .map(|i| format!("evt-{i:03}"))
                .filter(|id| matcher.matches(&f.journal.event(id).unwrap().unwrap()))
                .collect();
            if !oldest_first {
                expected.reverse();
            }
            let base = QueryEventsRequest {
                page_size,
                order: if oldest_first { QueryOrder::OldestFirst } else { QueryOrder::NewestFirst } as i32,
                ..request(FILTERS[filter])
            };
            let mut extra = 0;
            let seen = all_pages(&mut f, &base, |f| {
                // Bounded: oldest first, a page of one would otherwise chase new events forever.
                if churn && extra < 20 {
                    // A new event and a corroboration of an old one between pages.
                    extra += 1;
                    f.record(talks(&format!("new-{extra:03}"), TalksEventType::CeasefireAgreed, &["RUS"], "2025-03-02"));
                    f.append("evt-000", Event::TalksEventCorroborated(pb::TalksEventCorroborated {
                        event_id: "evt-000".into(),
                        evidence: Some(evidence(&format!("doc-extra-{extra}"))),
                        source_count: 1 + extra,
                        version: 1 + u64::from(extra),
                        ..Default::default()
                    }));
                }
            });
            // Events recorded after paging started may show up (oldest first)
            // but never twice; the ones there at the start all do, in order.
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            prop_assert_eq!(unique.len(), seen.len(), "duplicates in {:?}", seen);
            let original: Vec<String> = seen.into_iter().filter(|id| id.starts_with("evt-")).collect();
            prop_assert_eq!(original, expected);
        }
    }

    #[tokio::test]
    async fn a_journal_replayed_from_a_sqlite_log_answers_queries() {
        use parley_log::{EventLog, ExpectedVersion, Filter as LogFilter, ReadMode, StartAt};
        let dir = tempfile::tempdir().unwrap();
        let log = parley_log::sqlite::SqliteLog::open(dir.path()).unwrap();
        let aggregate = AggregateRef::new("talks", "evt-1").unwrap();
        let builder = EnvelopeBuilder::new(aggregate.clone());
        let recorded = builder.envelope(
            "m1",
            Event::TalksEventRecorded(pb::TalksEventRecorded {
                event: Some(talks(
                    "evt-1",
                    TalksEventType::CeasefireAgreed,
                    &["RUS", "UKR"],
                    "2025-03-10",
                )),
            }),
        );
        parley_runtime::append_events(
            &log,
            aggregate.clone(),
            ExpectedVersion::Any,
            "m1",
            vec![recorded],
        )
        .await
        .unwrap();
        let corroborated = builder.envelope(
            "m2",
            Event::TalksEventCorroborated(pb::TalksEventCorroborated {
                event_id: "evt-1".into(),
                evidence: Some(evidence("doc-2")),
                source_count: 2,
                version: 2,
                ..Default::default()
            }),
        );
        parley_runtime::append_events(
            &log,
            aggregate,
            ExpectedVersion::Any,
            "m2",
            vec![corroborated],
        )
        .await
        .unwrap();

        let journal = Journal::default();
        let stream = log
            .read(
                StartAt::Beginning,
                LogFilter::types(["talks"]),
                ReadMode::ToEnd,
            )
            .await
            .unwrap();
        assert_eq!(journal.replay(stream).await.unwrap(), 2);
        let page = Query::from_request(&request("party = UKR"))
            .unwrap()
            .run(&journal)
            .unwrap();
        assert_eq!(page.events.len(), 1);
        let row = &page.events[0];
        assert_eq!((row.first_sequence, row.last_sequence), (1, 2));
        assert_eq!(row.event.as_ref().unwrap().source_count, 2);
        let got = get_event(&journal, "evt-1").unwrap();
        assert_eq!(got.versions.len(), 2);
        assert_eq!(got.sources.len(), 2);
    }

    #[tokio::test]
    async fn the_service_answers_over_a_real_socket() {
        use parley_domain::pb::event_history_service_client::EventHistoryServiceClient;
        let mut f = Fixture::new();
        for i in 0..7 {
            f.record(talks(
                &format!("evt-{i}"),
                TalksEventType::TalksHeld,
                &["UKR"],
                "2025-03-10",
            ));
        }
        let journal = Arc::new(f.journal);
        let shutdown = parley_runtime::ShutdownSignal::new(std::time::Duration::from_secs(1));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = parley_runtime::GrpcServer::new()
            .add_service(HistoryGrpc::new(journal.clone()).into_server());
        let serving = tokio::spawn(server.serve(listener, shutdown.clone()));

        let mut client = EventHistoryServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let mut token = String::new();
        let mut seen = Vec::new();
        loop {
            let page = client
                .query_events(QueryEventsRequest {
                    page_size: 3,
                    page_token: token,
                    ..request("party = UKR")
                })
                .await
                .unwrap()
                .into_inner();
            seen.extend(ids(&page));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(
            seen,
            (0..7).rev().map(|i| format!("evt-{i}")).collect::<Vec<_>>()
        );

        let got = client
            .get_event(GetEventRequest {
                event_id: "evt-3".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.versions.len(), 1);
        let missing = client
            .get_event(GetEventRequest {
                event_id: "nope".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
        let invalid = client.query_events(request("type =")).await.unwrap_err();
        assert_eq!(invalid.code(), tonic::Code::InvalidArgument);
        let bad_token = client
            .query_events(QueryEventsRequest {
                page_token: "0123".into(),
                ..request("")
            })
            .await
            .unwrap_err();
        assert_eq!(bad_token.code(), tonic::Code::InvalidArgument);
        assert!(bad_token.message().contains("page_token"));

        shutdown.token.cancel();
        serving.await.unwrap().unwrap();
    }
}
