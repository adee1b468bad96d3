//! `parley subscribe`: events as JSON Lines as a subscriber receives them,
//! from a filter or from a stored subscription's server-side cursor.
//!
//! With `--subscription ID` (a subscription of channel `grpc`, made with
//! `parley subscriptions create --filter ...`), the stream uses that
//! subscription's filter and resumes after what was acknowledged last time.
//! Each line is acknowledged once it has been written to stdout (at most
//! once a second, and when the command ends), so a reader that stops in the
//! middle gets the unacknowledged rest again next time: at least once.

use std::process::ExitCode;
use std::time::Duration;

use parley_domain::pb::notify_service_client::NotifyServiceClient;
use parley_domain::pb::{AcknowledgeSubscriptionRequest, SubscribeRequest};
use parley_runtime::client::AuthChannel;
use tokio::time::Instant;

use crate::rpc::ServerArgs;

/// Time between two acknowledgements while lines keep coming.
const ACK_EVERY: Duration = Duration::from_secs(1);

/// Flags of `parley subscribe`.
#[derive(Debug, clap::Args)]
pub struct SubscribeArgs {
    /// Where `parley up` or the notify service is.
    #[command(flatten)]
    server: ServerArgs,
    /// Filter expression, e.g. `type = ceasefire_* and party = RUS` or
    /// `document = doc-…` (what came from one article).
    #[arg(long, default_value = "", conflicts_with = "subscription")]
    filter: String,
    /// Stream this stored subscription (channel grpc): its filter, resuming
    /// after what was acknowledged; every printed line is acknowledged.
    #[arg(long)]
    subscription: Option<String>,
    /// Start: a log sequence (1 = everything), an RFC 3339 time, or `new`
    /// (default: 1, or after the subscription's cursor with --subscription).
    #[arg(long)]
    from: Option<String>,
    /// Exit after this many seconds without a new event.
    #[arg(long)]
    exit_when_idle: Option<f64>,
}

/// Acknowledges printed deliveries of a stored subscription, batched.
struct Acks {
    client: NotifyServiceClient<AuthChannel>,
    subscription_id: String,
    printed: u64,
    acknowledged: u64,
    last_sent: Instant,
}

impl Acks {
    /// Notes that the delivery at `sequence` was printed; acknowledges when due.
    async fn printed(&mut self, sequence: u64) -> anyhow::Result<()> {
        self.printed = self.printed.max(sequence);
        if self.last_sent.elapsed() >= ACK_EVERY {
            self.flush().await?;
        }
        Ok(())
    }

    /// Acknowledges everything printed so far.
    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.printed > self.acknowledged {
            self.client
                .acknowledge_subscription(AcknowledgeSubscriptionRequest {
                    subscription_id: self.subscription_id.clone(),
                    sequence: self.printed,
                })
                .await
                .map_err(crate::rpc::status)?;
            self.acknowledged = self.printed;
        }
        self.last_sent = Instant::now();
        Ok(())
    }
}

/// Runs `parley subscribe`.
pub async fn run(args: SubscribeArgs) -> anyhow::Result<ExitCode> {
    let start = match (&args.from, &args.subscription) {
        (Some(from), _) => Some(crate::commands::parse_start(from)?),
        (None, Some(_)) => None,
        (None, None) => Some(crate::commands::parse_start("1")?),
    };
    let client = NotifyServiceClient::new(crate::rpc::connect(&args.server.server).await?);
    let mut stream = client
        .clone()
        .subscribe(SubscribeRequest {
            filter: args.filter,
            start,
            subscription_id: args.subscription.clone().unwrap_or_default(),
        })
        .await
        .map_err(crate::rpc::status)?
        .into_inner();
    let mut acks = args.subscription.map(|subscription_id| Acks {
        client,
        subscription_id,
        printed: 0,
        acknowledged: 0,
        last_sent: Instant::now(),
    });
    let idle = args.exit_when_idle.map(Duration::from_secs_f64);
    let outcome = async {
        loop {
            let next = match idle {
                Some(idle) => match tokio::time::timeout(idle, stream.message()).await {
                    Ok(next) => next,
                    Err(_) => return Ok(ExitCode::SUCCESS),
                },
                None => stream.message().await,
            };
            match next {
                Ok(Some(delivery)) => {
                    crate::output::line(format_args!(
                        "{}",
                        crate::commands::delivery_json(&delivery)
                    ))?;
                    if let Some(acks) = acks.as_mut() {
                        acks.printed(delivery.sequence).await?;
                    }
                }
                Ok(None) => return Ok(ExitCode::SUCCESS),
                Err(status) => {
                    anyhow::bail!("subscription ended: {}", crate::rpc::describe(&status))
                }
            }
        }
    }
    .await;
    // Whatever ended the stream (idle, a closed pipe, an error), what was
    // printed is acknowledged.
    if let Some(acks) = acks.as_mut() {
        acks.flush().await?;
    }
    outcome
}
