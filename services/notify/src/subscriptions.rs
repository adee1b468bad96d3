//! Stored subscriptions: a read model of the `subscription` aggregates of the
//! log, and the commands that append to them.
//!
//! Every change (created, paused, resumed, deleted, checkpointed, a delivery
//! parked or redriven) is an event on the subscription's own aggregate
//! (`parley.evt.subscription.<id>`), so a replica rebuilds exactly the same
//! state by replaying the log, and every replica sees changes made through any
//! other. The push-delivery lease (see [`crate::delivery`]) lives on one more
//! aggregate, `notify/delivery-lease`, and is tracked here too.
//!
//! Commands append, then wait until the follower has applied their record, so
//! a caller that creates a subscription and lists right after sees it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use parley_domain::pb::{
    self, Channel, DeadLettersRedriven, DeliveryDeadLettered, DeliveryLeaseTaken,
    SubscriptionCheckpointed, SubscriptionCreated, SubscriptionDeleted, SubscriptionPaused,
    SubscriptionResumed,
};
use parley_domain::{Event, aggregate, time};
use parley_log::{AggregateRef, EventLog, ExpectedVersion, LogError};
use parley_runtime::{DecodedRecord, EnvelopeBuilder, append_events};
use tokio::sync::watch;

use crate::format;

/// Aggregate type of the push-delivery lease.
pub const LEASE_KIND: &str = "notify";
/// Aggregate id of the push-delivery lease.
pub const LEASE_ID: &str = "delivery-lease";

/// How long a command waits for the follower to apply its own record.
const APPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a subscription command failed.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// No such subscription (or it was deleted).
    #[error("no subscription {0:?}")]
    NotFound(String),
    /// No parked delivery with that key.
    #[error("subscription {subscription:?} has no parked delivery {key:?}")]
    NoDeadLetter {
        /// Subscription id.
        subscription: String,
        /// Idempotency key asked for.
        key: String,
    },
    /// The log refused or failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The record was appended but this replica did not apply it in time.
    #[error("appended at sequence {0} but not applied yet; retry the read")]
    NotApplied(u64),
}

/// One parked delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Log sequence of the change.
    pub sequence: u64,
    /// Idempotency key of the delivery.
    pub idempotency_key: String,
    /// Attempts made.
    pub attempts: u32,
    /// Last failure.
    pub last_error: String,
    /// When it was parked.
    pub parked_at: DateTime<Utc>,
}

/// A stored subscription as the log says it is.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Id (also the aggregate id and the NATS subject token).
    pub id: String,
    /// Owner's label.
    pub name: String,
    /// Filter expression (validated when created).
    pub filter: String,
    /// Delivery channel.
    pub channel: Channel,
    /// Webhook URL.
    pub webhook_url: String,
    /// Webhook format.
    pub format: pb::WebhookFormat,
    /// Sealed webhook secret.
    pub sealed_secret: String,
    /// Push delivery stopped.
    pub paused: bool,
    /// Push delivery starts after this sequence.
    pub start_after: u64,
    /// Last checkpointed sequence.
    pub checkpoint: u64,
    /// Parked deliveries by idempotency key.
    pub dead_letters: BTreeMap<String, DeadLetter>,
    /// Redriven deliveries waiting for their new attempts, in redrive order.
    pub redrive: Vec<DeadLetter>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Sequence of the creation record (for ordering lists).
    pub created_sequence: u64,
}

impl Subscription {
    /// Push delivery resumes after this log sequence.
    pub fn cursor(&self) -> u64 {
        self.start_after.max(self.checkpoint)
    }

    /// Whether the service pushes it (NATS, webhook) rather than a client pulling it.
    pub fn is_push(&self) -> bool {
        matches!(self.channel, Channel::Nats | Channel::Webhook)
    }

    /// NATS subject of the nats channel.
    pub fn nats_subject(&self) -> String {
        format!("parley.notify.{}", self.id)
    }

    /// The gRPC view (never the secret).
    pub fn to_pb(&self) -> pb::Subscription {
        pb::Subscription {
            subscription_id: self.id.clone(),
            name: self.name.clone(),
            filter: self.filter.clone(),
            channel: self.channel as i32,
            webhook_url: self.webhook_url.clone(),
            format: if self.channel == Channel::Webhook {
                self.format as i32
            } else {
                0
            },
            paused: self.paused,
            nats_subject: if self.channel == Channel::Nats {
                self.nats_subject()
            } else {
                String::new()
            },
            cursor: self.cursor(),
            dead_letters: self.dead_letters.len() as u32,
            created_at: Some(time::to_timestamp(self.created_at)),
        }
    }
}

/// The push-delivery lease as last recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Holder.
    pub owner: String,
    /// Lapses then unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Changes with every new holder.
    pub term: u64,
    /// Version of the lease aggregate (for the expected-version check of the next take).
    pub version: u64,
}

#[derive(Default)]
struct Registry {
    subscriptions: HashMap<String, Subscription>,
    lease: Option<Lease>,
    applied: u64,
}

/// What a new subscription is (already validated and with its secret sealed).
#[derive(Debug, Clone, Default)]
pub struct NewSubscription {
    /// Id.
    pub id: String,
    /// Owner's label.
    pub name: String,
    /// Filter expression.
    pub filter: String,
    /// Channel.
    pub channel: Channel,
    /// Webhook URL.
    pub webhook_url: String,
    /// Webhook format.
    pub format: pb::WebhookFormat,
    /// Sealed secret.
    pub sealed_secret: String,
    /// Push delivery starts after this sequence.
    pub start_after: u64,
}

/// The stored subscriptions and the lease, kept up to date by the notify follower.
pub struct Subscriptions {
    log: Arc<dyn EventLog>,
    registry: RwLock<Registry>,
    changed: watch::Sender<u64>,
}

impl Subscriptions {
    /// An empty read model writing to `log`.
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self {
            log,
            registry: RwLock::new(Registry::default()),
            changed: watch::channel(0).0,
        }
    }

    /// The log commands append to.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// Applies one record of the log (any aggregate; others are ignored).
    /// Records at or below the last applied sequence are ignored.
    pub fn apply(&self, record: &DecodedRecord) {
        let mut registry = self.registry.write().expect("subscriptions lock poisoned");
        if record.sequence <= registry.applied {
            return;
        }
        registry.applied = record.sequence;
        let kind = record.aggregate.kind.as_str();
        if kind == aggregate::SUBSCRIPTION {
            for (envelope, event) in record.events() {
                apply_subscription_event(&mut registry, record, envelope, event);
            }
        } else if kind == LEASE_KIND && record.aggregate.id == LEASE_ID {
            for (_, event) in record.events() {
                if let Event::DeliveryLeaseTaken(taken) = event {
                    registry.lease = Some(Lease {
                        owner: taken.owner.clone(),
                        expires_at: taken
                            .expires_at
                            .as_ref()
                            .and_then(time::from_timestamp)
                            .unwrap_or(record.recorded_at),
                        term: taken.term,
                        version: record.sequence,
                    });
                }
            }
        }
        let applied = registry.applied;
        drop(registry);
        self.changed.send_replace(applied);
    }

    /// Last applied log sequence.
    pub fn applied_sequence(&self) -> u64 {
        self.registry.read().expect("lock").applied
    }

    /// Wakes on every applied record.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// One subscription.
    pub fn get(&self, id: &str) -> Option<Subscription> {
        self.registry
            .read()
            .expect("lock")
            .subscriptions
            .get(id)
            .cloned()
    }

    /// Every subscription, oldest first.
    pub fn list(&self) -> Vec<Subscription> {
        let mut all: Vec<Subscription> = self
            .registry
            .read()
            .expect("lock")
            .subscriptions
            .values()
            .cloned()
            .collect();
        all.sort_by_key(|s| s.created_sequence);
        all
    }

    /// The lease as last recorded.
    pub fn lease(&self) -> Option<Lease> {
        self.registry.read().expect("lock").lease.clone()
    }

    /// Waits until the record at `sequence` is applied.
    pub async fn wait_applied(&self, sequence: u64) -> Result<(), SubscriptionError> {
        let mut watch = self.watch();
        let wait = watch.wait_for(|applied| *applied >= sequence);
        match tokio::time::timeout(APPLY_TIMEOUT, wait).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(SubscriptionError::NotApplied(sequence)),
        }
    }

    async fn append(
        &self,
        id: &str,
        expected: ExpectedVersion,
        msg_id: String,
        events: Vec<Event>,
    ) -> Result<u64, SubscriptionError> {
        let target = AggregateRef::new(aggregate::SUBSCRIPTION, id)?;
        let builder = EnvelopeBuilder::new(target.clone()).correlated_with(id);
        let envelopes = events
            .into_iter()
            .enumerate()
            .map(|(i, event)| builder.envelope(format!("{msg_id}:{i}"), event))
            .collect();
        let appended = append_events(&*self.log, target, expected, msg_id, envelopes).await?;
        Ok(appended.sequence)
    }

    fn require(&self, id: &str) -> Result<Subscription, SubscriptionError> {
        self.get(id)
            .ok_or_else(|| SubscriptionError::NotFound(id.to_owned()))
    }

    /// Records a new subscription and returns it once applied.
    pub async fn create(&self, new: NewSubscription) -> Result<Subscription, SubscriptionError> {
        let id = new.id.clone();
        let event = Event::SubscriptionCreated(SubscriptionCreated {
            subscription_id: new.id,
            filter: new.filter,
            channel: new.channel as i32,
            webhook_url: new.webhook_url,
            format: if new.channel == Channel::Webhook {
                format::format_name(new.format).to_owned()
            } else {
                String::new()
            },
            sealed_secret: new.sealed_secret,
            name: new.name,
            start_after: new.start_after,
        });
        let sequence = self
            .append(
                &id,
                ExpectedVersion::NoStream,
                format!("{id}:created"),
                vec![event],
            )
            .await?;
        self.wait_applied(sequence).await?;
        self.require(&id)
    }

    async fn simple_command(
        &self,
        id: &str,
        what: &str,
        event: Event,
    ) -> Result<Subscription, SubscriptionError> {
        self.require(id)?;
        let msg_id = format!("{id}:{what}:{}", uuid::Uuid::now_v7().simple());
        let sequence = self
            .append(id, ExpectedVersion::Any, msg_id, vec![event])
            .await?;
        self.wait_applied(sequence).await?;
        Ok(self.get(id).unwrap_or_else(|| Subscription {
            id: id.to_owned(),
            ..placeholder()
        }))
    }

    /// Stops push delivery (the cursor is kept).
    pub async fn pause(&self, id: &str) -> Result<Subscription, SubscriptionError> {
        let event = Event::SubscriptionPaused(SubscriptionPaused {
            subscription_id: id.to_owned(),
        });
        self.simple_command(id, "paused", event).await
    }

    /// Restarts push delivery from the cursor.
    pub async fn resume(&self, id: &str) -> Result<Subscription, SubscriptionError> {
        let event = Event::SubscriptionResumed(SubscriptionResumed {
            subscription_id: id.to_owned(),
        });
        self.simple_command(id, "resumed", event).await
    }

    /// Ends a subscription; returns it as it was.
    pub async fn delete(&self, id: &str) -> Result<Subscription, SubscriptionError> {
        let before = self.require(id)?;
        let event = Event::SubscriptionDeleted(SubscriptionDeleted {
            subscription_id: id.to_owned(),
        });
        self.simple_command(id, "deleted", event).await?;
        Ok(before)
    }

    /// Queues parked deliveries (all when `keys` is empty) for new attempts; returns how many.
    pub async fn redrive(&self, id: &str, keys: &[String]) -> Result<u32, SubscriptionError> {
        let subscription = self.require(id)?;
        let keys: Vec<String> = if keys.is_empty() {
            subscription.dead_letters.keys().cloned().collect()
        } else {
            for key in keys {
                if !subscription.dead_letters.contains_key(key) {
                    return Err(SubscriptionError::NoDeadLetter {
                        subscription: id.to_owned(),
                        key: key.clone(),
                    });
                }
            }
            keys.to_vec()
        };
        if keys.is_empty() {
            return Ok(0);
        }
        let count = keys.len() as u32;
        let event = Event::DeadLettersRedriven(DeadLettersRedriven {
            subscription_id: id.to_owned(),
            idempotency_keys: keys,
        });
        self.simple_command(id, "redriven", event).await?;
        Ok(count)
    }

    /// Records push progress (not waited for: the delivery worker keeps its own cursor).
    pub async fn checkpoint(
        &self,
        id: &str,
        sequence: u64,
        redrive_completed: Vec<String>,
    ) -> Result<u64, SubscriptionError> {
        let msg_id = format!("{id}:checkpoint:{}", uuid::Uuid::now_v7().simple());
        let event = Event::SubscriptionCheckpointed(SubscriptionCheckpointed {
            subscription_id: id.to_owned(),
            sequence,
            redrive_completed,
        });
        self.append(id, ExpectedVersion::Any, msg_id, vec![event])
            .await
    }

    /// Parks one delivery. The msg id is deterministic per (subscription, key, sequence,
    /// attempt round), so a retried append after a timeout is stored once.
    pub async fn dead_letter(
        &self,
        id: &str,
        letter: &DeadLetter,
        round: u64,
    ) -> Result<u64, SubscriptionError> {
        let msg_id = format!(
            "{id}:dead:{}:{}:{round}",
            letter.sequence, letter.idempotency_key
        );
        let event = Event::DeliveryDeadLettered(DeliveryDeadLettered {
            subscription_id: id.to_owned(),
            sequence: letter.sequence,
            idempotency_key: letter.idempotency_key.clone(),
            attempts: letter.attempts,
            last_error: letter.last_error.clone(),
        });
        self.append(id, ExpectedVersion::Any, msg_id, vec![event])
            .await
    }

    /// Takes or renews the push-delivery lease, checking the lease aggregate's version.
    pub async fn take_lease(
        &self,
        owner: &str,
        expires_at: DateTime<Utc>,
        term: u64,
        expected: ExpectedVersion,
    ) -> Result<u64, SubscriptionError> {
        let target = AggregateRef::new(LEASE_KIND, LEASE_ID)?;
        let msg_id = format!("lease:{owner}:{}", uuid::Uuid::now_v7().simple());
        let envelope = EnvelopeBuilder::new(target.clone()).envelope(
            msg_id.clone(),
            Event::DeliveryLeaseTaken(DeliveryLeaseTaken {
                owner: owner.to_owned(),
                expires_at: Some(time::to_timestamp(expires_at)),
                term,
            }),
        );
        let appended = append_events(&*self.log, target, expected, msg_id, vec![envelope]).await?;
        Ok(appended.sequence)
    }
}

fn placeholder() -> Subscription {
    Subscription {
        id: String::new(),
        name: String::new(),
        filter: String::new(),
        channel: Channel::Unspecified,
        webhook_url: String::new(),
        format: pb::WebhookFormat::Unspecified,
        sealed_secret: String::new(),
        paused: false,
        start_after: 0,
        checkpoint: 0,
        dead_letters: BTreeMap::new(),
        redrive: Vec::new(),
        created_at: DateTime::<Utc>::MIN_UTC,
        created_sequence: 0,
    }
}

fn apply_subscription_event(
    registry: &mut Registry,
    record: &DecodedRecord,
    envelope: &parley_domain::EventEnvelope,
    event: &Event,
) {
    let when = envelope
        .recorded_at
        .as_ref()
        .and_then(time::from_timestamp)
        .unwrap_or(record.recorded_at);
    let subscriptions = &mut registry.subscriptions;
    match event {
        Event::SubscriptionCreated(created) => {
            if subscriptions.contains_key(&created.subscription_id) {
                return;
            }
            subscriptions.insert(
                created.subscription_id.clone(),
                Subscription {
                    id: created.subscription_id.clone(),
                    name: created.name.clone(),
                    filter: created.filter.clone(),
                    channel: Channel::try_from(created.channel).unwrap_or_default(),
                    webhook_url: created.webhook_url.clone(),
                    format: format::parse_format(&created.format).unwrap_or(pb::WebhookFormat::Raw),
                    sealed_secret: created.sealed_secret.clone(),
                    start_after: created.start_after,
                    created_at: when,
                    created_sequence: record.sequence,
                    ..placeholder()
                },
            );
        }
        Event::SubscriptionPaused(p) => {
            if let Some(s) = subscriptions.get_mut(&p.subscription_id) {
                s.paused = true;
            }
        }
        Event::SubscriptionResumed(r) => {
            if let Some(s) = subscriptions.get_mut(&r.subscription_id) {
                s.paused = false;
            }
        }
        Event::SubscriptionDeleted(d) => {
            subscriptions.remove(&d.subscription_id);
        }
        Event::SubscriptionCheckpointed(c) => {
            if let Some(s) = subscriptions.get_mut(&c.subscription_id) {
                s.checkpoint = s.checkpoint.max(c.sequence);
                s.redrive
                    .retain(|letter| !c.redrive_completed.contains(&letter.idempotency_key));
            }
        }
        Event::DeliveryDeadLettered(d) => {
            if let Some(s) = subscriptions.get_mut(&d.subscription_id) {
                s.dead_letters.insert(
                    d.idempotency_key.clone(),
                    DeadLetter {
                        sequence: d.sequence,
                        idempotency_key: d.idempotency_key.clone(),
                        attempts: d.attempts,
                        last_error: d.last_error.clone(),
                        parked_at: when,
                    },
                );
            }
        }
        Event::DeadLettersRedriven(r) => {
            if let Some(s) = subscriptions.get_mut(&r.subscription_id) {
                for key in &r.idempotency_keys {
                    if let Some(letter) = s.dead_letters.remove(key)
                        && !s.redrive.iter().any(|l| l.idempotency_key == *key)
                    {
                        s.redrive.push(letter);
                    }
                }
            }
        }
        _ => {}
    }
}
