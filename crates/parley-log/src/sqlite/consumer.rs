//! Durable consumers of the embedded log: each keeps a cursor (the highest
//! contiguous settled sequence) and a row per record delivered above it, so
//! acks, redeliveries and parked records survive a restart.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params, params_from_iter};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::read::{count_range, kind_clause, kinds_of};
use super::{BATCH, SqliteLog};
use crate::checks::check_consumer_name;
use crate::{Acker, ConsumerOptions, Delivery, DurableConsumer, LogError, LogRecord};

/// How long a nak'ed record waits before it is delivered again (at most;
/// a shorter `ack_wait` wins).
const NAK_DELAY: Duration = Duration::from_secs(1);

impl SqliteLog {
    /// See [`crate::EventLog::consumer`].
    pub(super) async fn open_consumer(
        &self,
        options: ConsumerOptions,
    ) -> Result<Box<dyn DurableConsumer>, LogError> {
        check_consumer_name(&options.durable_name)?;
        let kinds = kinds_of(&options.filter)?;
        let name = options.durable_name.clone();
        self.write(move |writer| {
            writer.conn.execute(
                "INSERT OR IGNORE INTO consumers (name, cursor) VALUES (?1, 0)",
                [&name],
            )?;
            Ok(())
        })
        .await?;
        let shared = self.consumer_shared(&options.durable_name);
        {
            let mut state = shared.state.lock().await;
            // A new filter: forget what was fetched under the old one; the
            // delivered-but-unacked records are reloaded from the table.
            if state.kinds != kinds {
                state.loaded = false;
                state.fresh.clear();
                state.in_flight.clear();
            }
            state.kinds = kinds;
            state.options = Some(options);
        }
        Ok(Box::new(SqliteConsumer {
            log: self.clone(),
            shared,
            changes: self.inner.appended.subscribe(),
        }))
    }

    /// The consumer state shared by every handle of one durable name.
    fn consumer_shared(&self, name: &str) -> Arc<ConsumerShared> {
        let mut consumers = self
            .inner
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        consumers
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(ConsumerShared {
                    name: name.to_string(),
                    state: tokio::sync::Mutex::new(ConsumerState::default()),
                    settled: Notify::new(),
                })
            })
            .clone()
    }
}

/// In-process state of one durable consumer, shared by its handles.
pub(super) struct ConsumerShared {
    name: String,
    state: tokio::sync::Mutex<ConsumerState>,
    /// Woken when a delivery is acked, nak'ed or termed.
    settled: Notify,
}

#[derive(Default)]
struct ConsumerState {
    options: Option<ConsumerOptions>,
    kinds: Arc<[String]>,
    /// Whether `scanned` and `in_flight` were loaded from the tables.
    loaded: bool,
    /// Highest sequence fetched for delivery (matching or not).
    scanned: u64,
    /// Fetched and recorded as delivered, not yet handed out.
    fresh: VecDeque<LogRecord>,
    /// Matching records in `scanned + 1..=counted_to`, not fetched yet (for
    /// the exact lag); each record is counted once, when it is first seen.
    unscanned: u64,
    /// Highest sequence included in `unscanned`'s count.
    counted_to: u64,
    /// Handed out and not settled: when to deliver again, and how often it was.
    in_flight: BTreeMap<u64, InFlight>,
}

impl ConsumerState {
    fn options(&self) -> &ConsumerOptions {
        self.options
            .as_ref()
            .expect("set when the consumer is opened")
    }
}

struct InFlight {
    due: Instant,
    deliveries: u64,
}

/// A durable consumer handle of [`SqliteLog`].
struct SqliteConsumer {
    log: SqliteLog,
    shared: Arc<ConsumerShared>,
    changes: watch::Receiver<u64>,
}

#[async_trait]
impl DurableConsumer for SqliteConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, LogError>> {
        loop {
            let mut state = self.shared.state.lock().await;
            if !state.loaded
                && let Err(e) = self.load(&mut state).await
            {
                return Some(Err(e));
            }
            let now = Instant::now();

            // 1. Deliveries whose ack wait ran out, nak'ed ones, and those
            //    pending when the process stopped, oldest sequence first.
            let due = state
                .in_flight
                .iter()
                .find(|(_, f)| f.due <= now)
                .map(|(sequence, _)| *sequence);
            if let Some(sequence) = due {
                match self.redeliver(&mut state, sequence).await {
                    Ok(Some(delivery)) => return Some(Ok(delivery)),
                    Ok(None) => continue,
                    Err(e) => return Some(Err(e)),
                }
            }

            // 2. Records never delivered, while under `max_ack_pending`.
            let max_pending = state.options().max_ack_pending.max(1) as usize;
            let pending = state.in_flight.len() + state.fresh.len();
            let has_room = pending < max_pending;
            if state.fresh.is_empty() && has_room {
                let committed = *self.changes.borrow_and_update();
                if committed > state.scanned {
                    let limit = (max_pending - pending).min(BATCH);
                    if let Err(e) = self.fetch(&mut state, committed, limit).await {
                        return Some(Err(e));
                    }
                    if state.fresh.is_empty() {
                        continue;
                    }
                }
            }
            if let Some(record) = state.fresh.pop_front() {
                let due = now + state.options().ack_wait;
                state
                    .in_flight
                    .insert(record.sequence, InFlight { due, deliveries: 1 });
                let pending = state.fresh.len() as u64 + state.unscanned;
                return Some(Ok(self.delivery(record, 1).with_pending(pending)));
            }

            // 3. Nothing to do: wait for an append (if there is room for
            //    it), a settled delivery, or the next ack wait to run out.
            let next_due = state.in_flight.values().map(|f| f.due).min();
            let settled = self.shared.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            drop(state);
            let timer = async {
                match next_due {
                    Some(due) => tokio::time::sleep_until(due).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = timer => {}
                _ = settled => {}
                _ = self.changes.changed(), if has_room => {}
            }
        }
    }
}

impl SqliteConsumer {
    /// Loads the cursor and the unsettled deliveries (due now: their
    /// consumer may have died with them) from the tables.
    async fn load(&self, state: &mut ConsumerState) -> Result<(), LogError> {
        let name = self.shared.name.clone();
        let (cursor, highest, delivered) = self
            .log
            .read_with(move |conn| {
                let cursor: i64 = conn
                    .prepare_cached("SELECT cursor FROM consumers WHERE name = ?1")?
                    .query_row([&name], |row| row.get(0))
                    .optional()?
                    .unwrap_or(0);
                let highest: i64 = conn
                    .prepare_cached(
                        "SELECT coalesce(max(seq), 0) FROM consumer_records WHERE name = ?1",
                    )?
                    .query_row([&name], |row| row.get(0))?;
                let delivered = conn
                    .prepare_cached(
                        "SELECT seq, deliveries FROM consumer_records \
                         WHERE name = ?1 AND state = 'delivered' ORDER BY seq",
                    )?
                    .query_map([&name], |row| {
                        Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((cursor as u64, highest as u64, delivered))
            })
            .await?;
        let now = Instant::now();
        state.scanned = cursor.max(highest);
        state.counted_to = state.scanned;
        state.unscanned = 0;
        state.fresh.clear();
        state.in_flight = delivered
            .into_iter()
            .map(|(sequence, deliveries)| {
                (
                    sequence,
                    InFlight {
                        due: now,
                        deliveries,
                    },
                )
            })
            .collect();
        state.loaded = true;
        Ok(())
    }

    /// Fetches up to `limit` matching records after `scanned`, recording
    /// them as delivered in one transaction.
    async fn fetch(
        &self,
        state: &mut ConsumerState,
        committed: u64,
        limit: usize,
    ) -> Result<(), LogError> {
        if committed > state.counted_to {
            let (first, kinds) = (state.counted_to.max(state.scanned) + 1, state.kinds.clone());
            state.unscanned += self
                .log
                .read_with(move |conn| count_range(conn, first, committed, &kinds))
                .await?;
            state.counted_to = committed;
        }
        let scan = self
            .log
            .range(state.scanned + 1, committed, state.kinds.clone(), limit)
            .await?;
        let records = scan.records;
        state.unscanned = state.unscanned.saturating_sub(records.len() as u64);
        let sequences: Vec<i64> = records.iter().map(|r| r.sequence as i64).collect();
        if !sequences.is_empty() {
            let name = self.shared.name.clone();
            self.log
                .write(move |writer| {
                    let tx = writer.conn.transaction()?;
                    {
                        let mut insert = tx.prepare_cached(
                            "INSERT OR IGNORE INTO consumer_records (name, seq, deliveries, state) \
                             VALUES (?1, ?2, 1, 'delivered')",
                        )?;
                        for sequence in sequences {
                            insert.execute(params![name, sequence])?;
                        }
                    }
                    tx.commit()?;
                    Ok(())
                })
                .await?;
        }
        state.scanned = scan.scanned_to;
        state.fresh.extend(records);
        Ok(())
    }

    /// Delivers an in-flight record again, or parks it once it reached
    /// `max_deliver` (`None`: nothing to deliver).
    async fn redeliver(
        &self,
        state: &mut ConsumerState,
        sequence: u64,
    ) -> Result<Option<Delivery>, LogError> {
        let deliveries = state.in_flight.get(&sequence).map_or(0, |f| f.deliveries);
        let max_deliver = state.options().max_deliver;
        if max_deliver > 0 && deliveries >= max_deliver as u64 {
            state.in_flight.remove(&sequence);
            tracing::warn!(
                consumer = %self.shared.name,
                sequence,
                deliveries,
                "record parked after max_deliver attempts"
            );
            settle(
                &self.log,
                &self.shared.name,
                &state.kinds,
                sequence,
                "parked",
            )
            .await?;
            return Ok(None);
        }
        let name = self.shared.name.clone();
        let found = self
            .log
            .range(sequence, sequence, Arc::from([]), 1)
            .await?
            .records
            .pop();
        let Some(record) = found else {
            state.in_flight.remove(&sequence);
            return Ok(None);
        };
        self.log
            .write(move |writer| {
                writer.conn.execute(
                    "UPDATE consumer_records SET deliveries = deliveries + 1 \
                     WHERE name = ?1 AND seq = ?2",
                    params![name, sequence as i64],
                )?;
                Ok(())
            })
            .await?;
        let ack_wait = state.options().ack_wait;
        let deliveries = deliveries + 1;
        if let Some(in_flight) = state.in_flight.get_mut(&sequence) {
            in_flight.deliveries = deliveries;
            in_flight.due = Instant::now() + ack_wait;
        }
        Ok(Some(self.delivery(record, deliveries)))
    }

    fn delivery(&self, record: LogRecord, deliveries: u64) -> Delivery {
        let acker = SqliteAcker {
            log: self.log.clone(),
            shared: self.shared.clone(),
            sequence: record.sequence,
        };
        Delivery::new(record, deliveries, Box::new(acker))
    }
}

/// Marks a delivered record `acked` or `parked` and moves the consumer's
/// cursor over every settled record right after it.
async fn settle(
    log: &SqliteLog,
    name: &str,
    kinds: &Arc<[String]>,
    sequence: u64,
    outcome: &'static str,
) -> Result<(), LogError> {
    let name = name.to_string();
    let kinds = kinds.clone();
    log.write(move |writer| {
        let tx = writer.conn.transaction()?;
        tx.prepare_cached(
            "UPDATE consumer_records SET state = ?3 \
             WHERE name = ?1 AND seq = ?2 AND state = 'delivered'",
        )?
        .execute(params![name, sequence as i64, outcome])?;
        let mut cursor: i64 = tx
            .prepare_cached("SELECT cursor FROM consumers WHERE name = ?1")?
            .query_row([&name], |row| row.get(0))
            .optional()?
            .unwrap_or(0);
        // Acks may arrive out of order: the cursor is the highest sequence
        // with every matching record up to it settled.
        let next_sql = format!(
            "SELECT seq FROM events WHERE seq > ?1{} ORDER BY seq LIMIT 1",
            kind_clause(kinds.len(), 2)
        );
        loop {
            let next: Option<i64> = tx
                .prepare_cached(&next_sql)?
                .query_row(
                    params_from_iter(
                        std::iter::once(rusqlite::types::Value::from(cursor))
                            .chain(kinds.iter().map(|k| k.clone().into())),
                    ),
                    |row| row.get(0),
                )
                .optional()?;
            let Some(next) = next else { break };
            let state: Option<String> = tx
                .prepare_cached("SELECT state FROM consumer_records WHERE name = ?1 AND seq = ?2")?
                .query_row(params![name, next], |row| row.get(0))
                .optional()?;
            match state.as_deref() {
                Some("acked" | "parked") => cursor = next,
                _ => break,
            }
        }
        tx.execute(
            "UPDATE consumers SET cursor = ?2 WHERE name = ?1",
            params![name, cursor],
        )?;
        tx.execute(
            "DELETE FROM consumer_records WHERE name = ?1 AND seq <= ?2",
            params![name, cursor],
        )?;
        tx.commit()?;
        Ok(())
    })
    .await
}

/// Settles one delivery of a [`SqliteConsumer`].
struct SqliteAcker {
    log: SqliteLog,
    shared: Arc<ConsumerShared>,
    sequence: u64,
}

impl SqliteAcker {
    async fn finish(&self, outcome: &'static str) -> Result<(), LogError> {
        let mut state = self.shared.state.lock().await;
        state.in_flight.remove(&self.sequence);
        let result = settle(
            &self.log,
            &self.shared.name,
            &state.kinds,
            self.sequence,
            outcome,
        )
        .await;
        drop(state);
        self.shared.settled.notify_waiters();
        result
    }
}

#[async_trait]
impl Acker for SqliteAcker {
    async fn ack(&self) -> Result<(), LogError> {
        self.finish("acked").await
    }

    async fn nak(&self) -> Result<(), LogError> {
        let mut state = self.shared.state.lock().await;
        let delay = state
            .options
            .as_ref()
            .map_or(NAK_DELAY, |o| o.ack_wait.min(NAK_DELAY));
        if let Some(in_flight) = state.in_flight.get_mut(&self.sequence) {
            in_flight.due = Instant::now() + delay;
        }
        drop(state);
        self.shared.settled.notify_waiters();
        Ok(())
    }

    async fn term(&self) -> Result<(), LogError> {
        tracing::warn!(
            consumer = %self.shared.name,
            sequence = self.sequence,
            "record terminated (parked) by the consumer"
        );
        self.finish("parked").await
    }
}
