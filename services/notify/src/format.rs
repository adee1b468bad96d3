//! What a pushed delivery looks like on the wire: raw JSON, Slack and ntfy.

use parley_domain::pb::{SubscribeResponse, TalksEvent, UpdateKind, WebhookFormat};
use parley_domain::{convert, time};

/// Lower-case name of an update kind (`recorded`, `corroborated`, ...).
pub fn kind_name(kind: i32) -> String {
    UpdateKind::try_from(kind)
        .unwrap_or_default()
        .as_str_name()
        .trim_start_matches("UPDATE_KIND_")
        .to_ascii_lowercase()
}

fn enum_words(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix)
        .to_ascii_lowercase()
        .replace('_', " ")
}

/// Snake-case event type (`ceasefire_agreed`), as the filter language spells it.
pub fn type_name(event: &TalksEvent) -> String {
    event
        .r#type()
        .as_str_name()
        .trim_start_matches("TALKS_EVENT_TYPE_")
        .to_ascii_lowercase()
}

/// The delivery as JSON: the same shape `parley subscribe` prints, plus the subscription.
pub fn raw_json(subscription_id: &str, delivery: &SubscribeResponse) -> serde_json::Value {
    let event = delivery
        .event
        .as_ref()
        .and_then(convert::event_from_pb)
        .map(|e| serde_json::to_value(e).unwrap_or_default())
        .unwrap_or_default();
    serde_json::json!({
        "subscription_id": subscription_id,
        "sequence": delivery.sequence,
        "idempotency_key": delivery.idempotency_key,
        "kind": kind_name(delivery.kind),
        "recorded_at": delivery.recorded_at.as_ref().and_then(time::from_timestamp),
        "summary": summary(delivery),
        "event": event,
    })
}

fn actors(actors: &[parley_domain::pb::Actor]) -> String {
    actors
        .iter()
        .map(|a| {
            if a.code.is_empty() {
                a.mention.as_str()
            } else {
                a.code.as_str()
            }
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A readable one-line summary with the event's sources, for chat receivers.
///
/// E.g. `[recorded v1] ceasefire agreed: RUS, UKR (mediators TUR) in Istanbul, TUR on 2025-03-10, status held; sources: a.txt, b.html`.
pub fn summary(delivery: &SubscribeResponse) -> String {
    let Some(event) = delivery.event.as_ref() else {
        return format!(
            "[{}] {}",
            kind_name(delivery.kind),
            delivery.idempotency_key
        );
    };
    let mut line = format!(
        "[{} v{}] {}",
        kind_name(delivery.kind),
        event.version,
        enum_words(event.r#type().as_str_name(), "TALKS_EVENT_TYPE_")
    );
    let parties = actors(&event.parties);
    if !parties.is_empty() {
        line.push_str(": ");
        line.push_str(&parties);
    }
    let mediators = actors(&event.mediators);
    if !mediators.is_empty() {
        line.push_str(&format!(" (mediators {mediators})"));
    }
    if let Some(venue) = &event.venue {
        let place: Vec<&str> = [venue.city.as_str(), venue.country.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        if !place.is_empty() {
            line.push_str(&format!(" in {}", place.join(", ")));
        }
    }
    if let Some(date) = event.date.as_ref().filter(|d| !d.date.is_empty()) {
        line.push_str(&format!(" on {}", date.date));
    }
    if event.status != 0 {
        line.push_str(&format!(
            ", status {}",
            enum_words(event.status().as_str_name(), "EVENT_STATUS_")
        ));
    }
    if event.retracted {
        line.push_str(" (retracted)");
    }
    let mut sources: Vec<&str> = Vec::new();
    for evidence in &event.evidence {
        let name = if evidence.document_name.is_empty() {
            evidence.document_id.as_str()
        } else {
            evidence.document_name.as_str()
        };
        if !name.is_empty() && !sources.contains(&name) {
            sources.push(name);
        }
    }
    if !sources.is_empty() {
        line.push_str(&format!("; sources: {}", sources.join(", ")));
    }
    line.replace(['\n', '\r'], " ")
}

/// Text escaped for Slack's `text` field: `&`, `<` and `>` are control
/// characters of its markup (links, mentions) and must be sent as entities.
pub fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// ntfy's priority for a delivery (1 min … 5 max): a ceasefire agreed,
/// broken or ended, or an agreement, is high (4); a corroboration or a
/// retraction is low (2); anything else the default (3).
pub fn ntfy_priority(delivery: &SubscribeResponse) -> u8 {
    use parley_domain::pb::TalksEventType as T;
    match UpdateKind::try_from(delivery.kind).unwrap_or_default() {
        UpdateKind::Corroborated | UpdateKind::Retracted => return 2,
        _ => {}
    }
    match delivery.event.as_ref().map(|e| e.r#type()) {
        Some(
            T::CeasefireAgreed | T::CeasefireViolated | T::CeasefireEnded | T::AgreementReached,
        ) => 4,
        _ => 3,
    }
}

/// The first source of the event that is a web address, for ntfy's `Click`.
pub fn source_link(delivery: &SubscribeResponse) -> Option<String> {
    let event = delivery.event.as_ref()?;
    event
        .evidence
        .iter()
        .map(|e| e.document_name.trim())
        .find(|name| name.starts_with("https://") || name.starts_with("http://"))
        .map(str::to_owned)
}

/// A body ready to POST: bytes, content type and format-specific headers.
#[derive(Debug, Clone)]
pub struct Body {
    /// The bytes (what the signature covers).
    pub bytes: bytes::Bytes,
    /// Content-Type header.
    pub content_type: &'static str,
    /// Extra headers of the format (ntfy's Title, Tags, Priority and Click).
    pub headers: Vec<(&'static str, String)>,
}

/// Renders a delivery for a webhook of `format`.
pub fn webhook_body(
    format: WebhookFormat,
    subscription_id: &str,
    delivery: &SubscribeResponse,
) -> Body {
    match format {
        WebhookFormat::Slack => Body {
            bytes: serde_json::json!({ "text": slack_escape(&summary(delivery)) })
                .to_string()
                .into(),
            content_type: "application/json",
            headers: Vec::new(),
        },
        WebhookFormat::Ntfy => {
            let (title, tags) = match delivery.event.as_ref() {
                Some(event) => (
                    format!(
                        "Parley: {}",
                        enum_words(event.r#type().as_str_name(), "TALKS_EVENT_TYPE_")
                    ),
                    format!("{},{}", kind_name(delivery.kind), type_name(event)),
                ),
                None => ("Parley".to_owned(), kind_name(delivery.kind)),
            };
            let mut headers = vec![
                ("Title", title),
                ("Tags", tags),
                ("Priority", ntfy_priority(delivery).to_string()),
            ];
            if let Some(link) = source_link(delivery) {
                headers.push(("Click", link));
            }
            Body {
                bytes: summary(delivery).into(),
                content_type: "text/plain; charset=utf-8",
                headers,
            }
        }
        WebhookFormat::Raw | WebhookFormat::Unspecified => Body {
            bytes: raw_json(subscription_id, delivery).to_string().into(),
            content_type: "application/json",
            headers: Vec::new(),
        },
    }
}

/// Parses a format name as the CLI and the log spell it (`raw`/`json`, `slack`, `ntfy`).
pub fn parse_format(name: &str) -> Option<WebhookFormat> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "" | "raw" | "json" => WebhookFormat::Raw,
        "slack" => WebhookFormat::Slack,
        "ntfy" => WebhookFormat::Ntfy,
        _ => return None,
    })
}

/// The name a format is stored under in `SubscriptionCreated.format`.
pub fn format_name(format: WebhookFormat) -> &'static str {
    match format {
        WebhookFormat::Slack => "slack",
        WebhookFormat::Ntfy => "ntfy",
        WebhookFormat::Raw | WebhookFormat::Unspecified => "raw",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_domain::pb::{Actor, EventDate, Evidence, TalksEventType, Venue};

    fn delivery() -> SubscribeResponse {
        SubscribeResponse {
            sequence: 7,
            idempotency_key: "evt-1:v2".into(),
            kind: UpdateKind::Corroborated as i32,
            event: Some(TalksEvent {
                event_id: "evt-1".into(),
                r#type: TalksEventType::CeasefireAgreed as i32,
                parties: vec![
                    Actor {
                        code: "RUS".into(),
                        ..Default::default()
                    },
                    Actor {
                        code: "UKR".into(),
                        ..Default::default()
                    },
                ],
                mediators: vec![Actor {
                    code: "TUR".into(),
                    ..Default::default()
                }],
                venue: Some(Venue {
                    city: "Istanbul".into(),
                    ..Default::default()
                }),
                date: Some(EventDate {
                    date: "2025-03-10".into(),
                    ..Default::default()
                }),
                evidence: vec![
                    Evidence {
                        document_name: "a.txt".into(),
                        text: "line one\nline two".into(),
                        ..Default::default()
                    },
                    Evidence {
                        document_name: "b.html".into(),
                        ..Default::default()
                    },
                ],
                version: 2,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn summary_is_one_readable_line_with_sources() {
        let line = summary(&delivery());
        assert_eq!(
            line,
            "[corroborated v2] ceasefire agreed: RUS, UKR (mediators TUR) in Istanbul on 2025-03-10; sources: a.txt, b.html"
        );
    }

    #[test]
    fn slack_text_is_escaped_and_ntfy_gets_priority_and_click() {
        let mut d = delivery();
        d.kind = UpdateKind::Recorded as i32;
        if let Some(event) = d.event.as_mut() {
            event.venue = Some(Venue {
                city: "Tom & Jerry's <b>".into(),
                ..Default::default()
            });
            event.evidence[1].document_name = "https://news.example/a?x=1&y=2".into();
        }
        let slack: serde_json::Value =
            serde_json::from_slice(&webhook_body(WebhookFormat::Slack, "s", &d).bytes).unwrap();
        let text = slack["text"].as_str().unwrap();
        assert!(text.contains("Tom &amp; Jerry's &lt;b&gt;"), "{text}");
        assert!(!text.contains('<') && !text.contains('>'), "{text}");
        let ntfy = webhook_body(WebhookFormat::Ntfy, "s", &d);
        assert!(ntfy.headers.contains(&("Priority", "4".into())), "{ntfy:?}");
        assert!(
            ntfy.headers
                .contains(&("Click", "https://news.example/a?x=1&y=2".into())),
            "{ntfy:?}"
        );
    }

    #[test]
    fn formats_have_their_shapes() {
        let d = delivery();
        let slack: serde_json::Value =
            serde_json::from_slice(&webhook_body(WebhookFormat::Slack, "s", &d).bytes).unwrap();
        assert_eq!(slack["text"], summary(&d));
        let ntfy = webhook_body(WebhookFormat::Ntfy, "s", &d);
        assert_eq!(ntfy.bytes, summary(&d).as_bytes());
        assert!(
            ntfy.headers
                .contains(&("Tags", "corroborated,ceasefire_agreed".into()))
        );
        assert!(ntfy.headers.contains(&("Priority", "2".into())), "{ntfy:?}");
        assert!(!ntfy.headers.iter().any(|(name, _)| *name == "Click"));
        let raw: serde_json::Value =
            serde_json::from_slice(&webhook_body(WebhookFormat::Raw, "sub-9", &d).bytes).unwrap();
        assert_eq!(raw["idempotency_key"], "evt-1:v2");
        assert_eq!(raw["subscription_id"], "sub-9");
        assert_eq!(raw["sequence"], 7);
        assert_eq!(parse_format("JSON"), Some(WebhookFormat::Raw));
        assert_eq!(parse_format("xml"), None);
    }
}
