//! `parley events list|show|export`: what the notify service already knows.
//!
//! `list` prints one screenful (or `--limit`) of events matching a filter,
//! newest first; `export` pages through every match (oldest first, so a dump
//! reads like the log) as JSON Lines or CSV; `show` prints one event with all
//! its versions and sources.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand, ValueEnum};
use parley_domain::pb::event_history_service_client::EventHistoryServiceClient;
use parley_domain::pb::{
    self, DateRange, GetEventRequest, HistoryEvent, QueryEventsRequest, QueryOrder, TimeRange,
    UpdateKind,
};
use parley_domain::{convert, time};

/// `parley events` and where to find the notify service.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Where `parley up` or the notify service is.
    #[command(flatten)]
    server: crate::rpc::ServerArgs,
    #[command(subcommand)]
    action: EventsAction,
}

#[derive(Debug, Subcommand)]
enum EventsAction {
    /// List matching events, newest first.
    List {
        #[command(flatten)]
        query: QueryArgs,
        /// Print at most this many events.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Print one event with every version and every source (JSON).
    Show {
        /// Event id.
        event_id: String,
    },
    /// Print every matching event, oldest first.
    Export {
        #[command(flatten)]
        query: QueryArgs,
    },
}

/// What to select, shared by `list` and `export`.
#[derive(Debug, Args)]
struct QueryArgs {
    /// Filter expression, e.g. `type = ceasefire_* and party = RUS`.
    #[arg(long, default_value = "")]
    filter: String,
    /// Only events first recorded at or after this time (RFC 3339, or YYYY-MM-DD for midnight UTC).
    #[arg(long)]
    since: Option<String>,
    /// Only events first recorded before this time (RFC 3339, or YYYY-MM-DD).
    #[arg(long)]
    until: Option<String>,
    /// Only events that changed at or after this time (RFC 3339, or YYYY-MM-DD).
    #[arg(long)]
    changed_since: Option<String>,
    /// Only events dated on or after this day (YYYY-MM-DD).
    #[arg(long)]
    date_from: Option<String>,
    /// Only events dated on or before this day (YYYY-MM-DD).
    #[arg(long)]
    date_to: Option<String>,
    /// Leave out retracted events.
    #[arg(long)]
    exclude_retracted: bool,
    /// Result order (default: newest for list, oldest for export).
    #[arg(long, value_enum)]
    order: Option<Order>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Order {
    Newest,
    Oldest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One JSON object per line.
    Jsonl,
    /// A header line, then one row per event.
    Csv,
}

/// Largest page the server serves.
const PAGE_SIZE: usize = 500;

/// Runs `parley events ...`.
pub async fn run(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let mut client =
        EventHistoryServiceClient::new(crate::rpc::connect(&args.server.server).await?);
    match args.action {
        EventsAction::List { query, limit } => {
            let request = query.request(Order::Newest)?;
            print_pages(&mut client, request, query.format, Some(limit)).await?;
        }
        EventsAction::Export { query } => {
            let request = query.request(Order::Oldest)?;
            print_pages(&mut client, request, query.format, None).await?;
        }
        EventsAction::Show { event_id } => {
            let response = client
                .get_event(GetEventRequest { event_id })
                .await
                .map_err(crate::rpc::status)?
                .into_inner();
            crate::out!("{}", show_json(&response));
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl QueryArgs {
    fn request(&self, default_order: Order) -> anyhow::Result<QueryEventsRequest> {
        let since = self
            .since
            .as_deref()
            .map(|t| parse_time(t, "--since"))
            .transpose()?;
        let until = self
            .until
            .as_deref()
            .map(|t| parse_time(t, "--until"))
            .transpose()?;
        let changed_since = self
            .changed_since
            .as_deref()
            .map(|t| parse_time(t, "--changed-since"))
            .transpose()?;
        let order = match self.order.unwrap_or(default_order) {
            Order::Newest => QueryOrder::NewestFirst,
            Order::Oldest => QueryOrder::OldestFirst,
        };
        let range = |start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>| {
            (start.is_some() || end.is_some()).then(|| TimeRange {
                start: start.map(time::to_timestamp),
                end: end.map(time::to_timestamp),
            })
        };
        Ok(QueryEventsRequest {
            filter: self.filter.clone(),
            recorded: range(since, until),
            updated: range(changed_since, None),
            event_date: (self.date_from.is_some() || self.date_to.is_some()).then(|| DateRange {
                from: self.date_from.clone().unwrap_or_default(),
                to: self.date_to.clone().unwrap_or_default(),
            }),
            page_size: 0,
            page_token: String::new(),
            order: order as i32,
            exclude_retracted: self.exclude_retracted,
        })
    }
}

/// An RFC 3339 time, or a day meaning its midnight UTC.
fn parse_time(text: &str, flag: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .with_context(|| {
            format!("{flag} {text:?}: expected an RFC 3339 time (2025-03-01T12:00:00Z) or a day (2025-03-01)")
        })
}

/// Requests pages until the end (or `limit` rows) and prints each row as it arrives.
async fn print_pages(
    client: &mut EventHistoryServiceClient<parley_runtime::client::AuthChannel>,
    mut request: QueryEventsRequest,
    format: Format,
    limit: Option<usize>,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout().lock();
    let mut csv = (format == Format::Csv).then(|| csv::Writer::from_writer(stdout));
    let mut jsonl = std::io::stdout().lock();
    if let Some(csv) = csv.as_mut() {
        csv.write_record(CSV_HEADER)?;
    }
    let mut printed = 0;
    loop {
        let remaining = limit.map_or(PAGE_SIZE, |l| l.saturating_sub(printed));
        if remaining == 0 {
            break;
        }
        request.page_size = remaining.min(PAGE_SIZE) as u32;
        let page = client
            .query_events(request.clone())
            .await
            .map_err(crate::rpc::status)?
            .into_inner();
        for row in &page.events {
            match csv.as_mut() {
                Some(csv) => csv.write_record(csv_row(row))?,
                None => writeln!(jsonl, "{}", event_json(row))?,
            }
            printed += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    if let Some(mut csv) = csv {
        csv.flush()?;
    }
    jsonl.flush()?;
    Ok(())
}

/// Lower-case name of a protobuf enum value without its prefix (`CEASEFIRE_AGREED` → `ceasefire_agreed`).
fn enum_name(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_ascii_lowercase()
}

/// One event row: its place in the log and the event in the evaluation format's vocabulary.
fn event_json(row: &HistoryEvent) -> serde_json::Value {
    let event = row
        .event
        .as_ref()
        .and_then(convert::event_from_pb)
        .map(|e| serde_json::to_value(e).unwrap_or_default())
        .unwrap_or_default();
    serde_json::json!({
        "event_id": row.event.as_ref().map(|e| e.event_id.as_str()).unwrap_or_default(),
        "first_sequence": row.first_sequence,
        "last_sequence": row.last_sequence,
        "recorded_at": row.recorded_at.as_ref().and_then(time::from_timestamp),
        "updated_at": row.updated_at.as_ref().and_then(time::from_timestamp),
        "event": event,
    })
}

/// `show`: the current row, every version and every source.
fn show_json(response: &pb::GetEventResponse) -> serde_json::Value {
    let versions: Vec<_> = response
        .versions
        .iter()
        .map(|v| {
            serde_json::json!({
                "version": v.version,
                "kind": enum_name(UpdateKind::try_from(v.kind).unwrap_or_default().as_str_name(), "UPDATE_KIND_"),
                "sequence": v.sequence,
                "recorded_at": v.recorded_at.as_ref().and_then(time::from_timestamp),
                "reason": v.reason,
                "event": v.event.as_ref().and_then(convert::event_from_pb)
                    .map(|e| serde_json::to_value(e).unwrap_or_default())
                    .unwrap_or_default(),
            })
        })
        .collect();
    let sources: Vec<_> = response
        .sources
        .iter()
        .map(|e| serde_json::to_value(convert::evidence_from_pb(e)).unwrap_or_default())
        .collect();
    let mut json = response
        .current
        .as_ref()
        .map(event_json)
        .unwrap_or_default();
    json["versions"] = serde_json::json!(versions);
    json["sources"] = serde_json::json!(sources);
    json
}

const CSV_HEADER: [&str; 22] = [
    "event_id",
    "type",
    "status",
    "date",
    "end_date",
    "parties",
    "mediators",
    "venue_city",
    "venue_country",
    "lat",
    "lon",
    "scope",
    "version",
    "source_count",
    "retracted",
    "first_sequence",
    "last_sequence",
    "recorded_at",
    "updated_at",
    "sources",
    "participants",
    "modality",
];

/// One CSV row; lists are joined with `;`.
fn csv_row(row: &HistoryEvent) -> Vec<String> {
    let e = row.event.clone().unwrap_or_default();
    let date = e.date.clone().unwrap_or_default();
    let venue = e.venue.clone().unwrap_or_default();
    let codes = |actors: &[pb::Actor]| {
        actors
            .iter()
            .map(|a| a.code.as_str())
            .collect::<Vec<_>>()
            .join(";")
    };
    let ts = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    vec![
        e.event_id.clone(),
        enum_name(e.r#type().as_str_name(), "TALKS_EVENT_TYPE_"),
        enum_name(e.status().as_str_name(), "EVENT_STATUS_"),
        date.date,
        date.end_date,
        codes(&e.parties),
        codes(&e.mediators),
        venue.city,
        venue.country,
        venue.lat.map(|x| x.to_string()).unwrap_or_default(),
        venue.lon.map(|x| x.to_string()).unwrap_or_default(),
        e.scope()
            .map(|s| enum_name(s.as_str_name(), "SCOPE_"))
            .collect::<Vec<_>>()
            .join(";"),
        e.version.to_string(),
        e.source_count.to_string(),
        e.retracted.to_string(),
        row.first_sequence.to_string(),
        row.last_sequence.to_string(),
        ts(row.recorded_at.as_ref().and_then(time::from_timestamp)),
        ts(row.updated_at.as_ref().and_then(time::from_timestamp)),
        e.evidence
            .iter()
            .map(|s| s.document_name.as_str())
            .collect::<Vec<_>>()
            .join(";"),
        e.participants
            .iter()
            .map(|p| match p.affiliation.as_str() {
                "" => p.name.clone(),
                side => format!("{} ({side})", p.name),
            })
            .collect::<Vec<_>>()
            .join(";"),
        match e.modality() {
            pb::Modality::Unspecified => String::new(),
            modality => enum_name(modality.as_str_name(), "MODALITY_"),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_days() {
        assert_eq!(
            parse_time("2025-03-01", "--since").unwrap().to_rfc3339(),
            "2025-03-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_time("2025-03-01T12:30:00+02:00", "--since")
                .unwrap()
                .to_rfc3339(),
            "2025-03-01T10:30:00+00:00"
        );
        let err = parse_time("last tuesday", "--until")
            .unwrap_err()
            .to_string();
        assert!(err.contains("--until"), "{err}");
    }

    #[test]
    fn a_csv_row_has_one_cell_per_header_column() {
        let row = HistoryEvent {
            event: Some(pb::TalksEvent {
                event_id: "evt-1".into(),
                r#type: pb::TalksEventType::CeasefireAgreed as i32,
                parties: vec![
                    pb::Actor {
                        code: "RUS".into(),
                        ..Default::default()
                    },
                    pb::Actor {
                        code: "UKR".into(),
                        ..Default::default()
                    },
                ],
                participants: vec![pb::Participant {
                    name: "Rustem Umerov".into(),
                    affiliation: "UKR".into(),
                    ..Default::default()
                }],
                modality: pb::Modality::Shuttle as i32,
                venue: Some(pb::Venue {
                    city: "Tartus".into(),
                    country: "SYR".into(),
                    lat: Some(34.88902),
                    lon: Some(35.88659),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            first_sequence: 3,
            last_sequence: 9,
            ..Default::default()
        };
        let cells = csv_row(&row);
        assert_eq!(cells.len(), CSV_HEADER.len());
        assert_eq!(cells[1], "ceasefire_agreed");
        assert_eq!(cells[5], "RUS;UKR");
        assert_eq!(cells[7..11], ["Tartus", "SYR", "34.88902", "35.88659"]);
        assert_eq!(cells[16], "9");
        assert_eq!(cells[20], "Rustem Umerov (UKR)");
        assert_eq!(cells[21], "shuttle");
        // No coordinates: empty cells, as for any unknown value.
        let mut row = row;
        if let Some(v) = row.event.as_mut().and_then(|e| e.venue.as_mut()) {
            v.lat = None;
            v.lon = None;
        }
        assert_eq!(csv_row(&row)[9..11], ["", ""]);
    }
}
