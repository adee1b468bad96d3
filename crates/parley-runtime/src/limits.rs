//! Per-client rate limiting: a token bucket for each client key.
//!
//! Each client (usually its IP address) gets `per_second` requests a second
//! with bursts up to `burst`. Idle clients cost nothing: a bucket that has
//! refilled completely is indistinguishable from a new one, so it is dropped
//! whenever the table grows past its soft cap.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept before idle (full) ones are swept (a soft cap on memory).
pub const SWEEP_ABOVE: usize = 4096;

/// A refused request: how long until the client may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// The configured rate.
    pub per_second: u32,
    /// Time until one request's worth of budget is back.
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets keyed by client.
#[derive(Debug)]
pub struct RateLimiter<K> {
    per_second: u32,
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// `per_second` sustained requests per client, bursts of `burst` (at least 1).
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: per_second.max(1),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The configured sustained rate.
    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// Takes one request from `key`'s budget, or says how long to wait.
    pub fn check(&self, key: &K) -> Result<(), RateLimited> {
        self.check_at(key, Instant::now())
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * f64::from(self.per_second)).min(self.burst);
        bucket.updated = now;
    }

    /// [`RateLimiter::check`] at a given instant (tests drive the clock).
    pub fn check_at(&self, key: &K, now: Instant) -> Result<(), RateLimited> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= SWEEP_ABOVE && !buckets.contains_key(key) {
            let burst = self.burst;
            let rate = f64::from(self.per_second);
            buckets.retain(|_, b| {
                let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
                b.tokens + elapsed * rate < burst
            });
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - bucket.tokens;
            Err(RateLimited {
                per_second: self.per_second,
                retry_after: Duration::from_secs_f64(missing / f64::from(self.per_second)),
            })
        }
    }

    /// Number of clients currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
