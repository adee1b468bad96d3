//! `parley subscriptions`: stored subscriptions of the notify service.
//!
//! ```text
//! parley subscriptions create --filter 'type = ceasefire_*' --webhook https://example.com/hook [--format slack]
//! parley subscriptions create --filter 'party = RUS' --nats
//! parley subscriptions list | pause ID | resume ID | delete ID
//! parley subscriptions dead-letters [ID] | redrive ID [KEY...]
//! ```
//!
//! Output is JSON Lines, one subscription (or dead letter) per line; a
//! webhook's signing secret is printed once, when it is created.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use parley_domain::pb::notify_service_client::NotifyServiceClient;
use parley_domain::pb::{
    Channel, CreateSubscriptionRequest, DeleteSubscriptionRequest, ListDeadLettersRequest,
    ListSubscriptionsRequest, PauseSubscriptionRequest, RedriveDeadLettersRequest,
    ResumeSubscriptionRequest, Subscription, Webhook, WebhookFormat,
};
use parley_domain::time;

/// `parley subscriptions` and its flags.
#[derive(Debug, Args)]
pub struct SubscriptionsArgs {
    /// Where `parley up` or the notify service is.
    #[command(flatten)]
    server: crate::rpc::ServerArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Store a subscription: a filter and a channel (grpc, --nats or --webhook URL).
    Create {
        /// Filter expression, e.g. `type = ceasefire_* and party = RUS`; empty matches everything.
        #[arg(long, default_value = "")]
        filter: String,
        /// Owner's label.
        #[arg(long, default_value = "")]
        name: String,
        /// Publish to the NATS subject parley.notify.<id>.
        #[arg(long, conflicts_with = "webhook")]
        nats: bool,
        /// POST signed deliveries to this http(s) URL.
        #[arg(long)]
        webhook: Option<String>,
        /// Webhook body: raw (JSON), slack or ntfy.
        #[arg(long, default_value = "raw", requires = "webhook")]
        format: String,
        /// Webhook signing secret; generated and printed when omitted.
        #[arg(long, env = "PARLEY_WEBHOOK_SECRET", requires = "webhook")]
        secret: Option<String>,
        /// First log sequence to deliver (default: only changes from now on).
        #[arg(long)]
        from: Option<u64>,
    },
    /// List stored subscriptions.
    List,
    /// Stop pushing a subscription (its cursor is kept).
    Pause {
        /// Subscription id.
        id: String,
    },
    /// Push a paused subscription again from where it stopped.
    Resume {
        /// Subscription id.
        id: String,
    },
    /// End a subscription.
    Delete {
        /// Subscription id.
        id: String,
    },
    /// List parked webhook deliveries.
    DeadLetters {
        /// Only this subscription's.
        id: Option<String>,
    },
    /// Queue parked deliveries for another round of attempts.
    Redrive {
        /// Subscription id.
        id: String,
        /// Idempotency keys to redrive (default: all of the subscription's).
        keys: Vec<String>,
    },
}

fn channel_name(channel: i32) -> String {
    Channel::try_from(channel)
        .unwrap_or_default()
        .as_str_name()
        .trim_start_matches("CHANNEL_")
        .to_ascii_lowercase()
}

/// One JSON line for a subscription.
fn subscription_json(s: &Subscription) -> serde_json::Value {
    let mut row = serde_json::json!({
        "subscription_id": s.subscription_id,
        "name": s.name,
        "filter": s.filter,
        "channel": channel_name(s.channel),
        "paused": s.paused,
        "cursor": s.cursor,
        "dead_letters": s.dead_letters,
        "created_at": s.created_at.as_ref().and_then(time::from_timestamp),
    });
    if !s.webhook_url.is_empty() {
        row["webhook_url"] = s.webhook_url.clone().into();
        row["format"] = WebhookFormat::try_from(s.format)
            .unwrap_or_default()
            .as_str_name()
            .trim_start_matches("WEBHOOK_FORMAT_")
            .to_ascii_lowercase()
            .into();
    }
    if !s.nats_subject.is_empty() {
        row["nats_subject"] = s.nats_subject.clone().into();
    }
    row
}

fn parse_format(name: &str) -> anyhow::Result<WebhookFormat> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "raw" | "json" => WebhookFormat::Raw,
        "slack" => WebhookFormat::Slack,
        "ntfy" => WebhookFormat::Ntfy,
        other => anyhow::bail!("--format {other:?}: expected raw, slack or ntfy"),
    })
}

/// Runs `parley subscriptions ...`.
pub async fn run(args: SubscriptionsArgs) -> anyhow::Result<ExitCode> {
    let server = args.server.server;
    let channel = crate::rpc::connect(&server).await?;
    let mut client = NotifyServiceClient::new(channel);
    let status = crate::rpc::status;
    match args.action {
        Action::Create {
            filter,
            name,
            nats,
            webhook,
            format,
            secret,
            from,
        } => {
            let (channel, webhook) = match webhook {
                Some(url) => (
                    Channel::Webhook,
                    Some(Webhook {
                        url,
                        secret: secret.unwrap_or_default(),
                        format: parse_format(&format)? as i32,
                    }),
                ),
                None if nats => (Channel::Nats, None),
                None => (Channel::Grpc, None),
            };
            let response = client
                .create_subscription(CreateSubscriptionRequest {
                    name,
                    filter,
                    channel: channel as i32,
                    webhook,
                    from_sequence: from.unwrap_or(0),
                })
                .await
                .map_err(status)?
                .into_inner();
            let mut row = response
                .subscription
                .as_ref()
                .map(subscription_json)
                .unwrap_or_default();
            if !response.webhook_secret.is_empty() {
                row["webhook_secret"] = response.webhook_secret.into();
            }
            crate::out!("{row}");
        }
        Action::List => {
            let response = client
                .list_subscriptions(ListSubscriptionsRequest {})
                .await
                .map_err(status)?
                .into_inner();
            for s in &response.subscriptions {
                crate::out!("{}", subscription_json(s));
            }
        }
        Action::Pause { id } => {
            let s = client
                .pause_subscription(PauseSubscriptionRequest {
                    subscription_id: id,
                })
                .await
                .map_err(status)?
                .into_inner();
            crate::out!(
                "{}",
                s.subscription
                    .as_ref()
                    .map(subscription_json)
                    .unwrap_or_default()
            );
        }
        Action::Resume { id } => {
            let s = client
                .resume_subscription(ResumeSubscriptionRequest {
                    subscription_id: id,
                })
                .await
                .map_err(status)?
                .into_inner();
            crate::out!(
                "{}",
                s.subscription
                    .as_ref()
                    .map(subscription_json)
                    .unwrap_or_default()
            );
        }
        Action::Delete { id } => {
            client
                .delete_subscription(DeleteSubscriptionRequest {
                    subscription_id: id.clone(),
                })
                .await
                .map_err(status)?;
            crate::out!(
                "{}",
                serde_json::json!({ "subscription_id": id, "deleted": true })
            );
        }
        Action::DeadLetters { id } => {
            let response = client
                .list_dead_letters(ListDeadLettersRequest {
                    subscription_id: id.unwrap_or_default(),
                })
                .await
                .map_err(status)?
                .into_inner();
            for d in response.dead_letters {
                crate::out!(
                    "{}",
                    serde_json::json!({
                        "subscription_id": d.subscription_id,
                        "sequence": d.sequence,
                        "idempotency_key": d.idempotency_key,
                        "attempts": d.attempts,
                        "last_error": d.last_error,
                        "parked_at": d.parked_at.as_ref().and_then(time::from_timestamp),
                    })
                );
            }
        }
        Action::Redrive { id, keys } => {
            let response = client
                .redrive_dead_letters(RedriveDeadLettersRequest {
                    subscription_id: id.clone(),
                    idempotency_keys: keys,
                })
                .await
                .map_err(status)?
                .into_inner();
            crate::out!(
                "{}",
                serde_json::json!({ "subscription_id": id, "redriven": response.redriven })
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
