//! Per-client rate limiter behaviour with a driven clock.

use std::time::{Duration, Instant};

use parley_runtime::limits::{RateLimiter, SWEEP_ABOVE};

#[test]
fn a_client_gets_its_burst_then_the_sustained_rate() {
    let limiter = RateLimiter::new(10, 3);
    let start = Instant::now();
    for _ in 0..3 {
        limiter.check_at(&"a", start).unwrap();
    }
    let refused = limiter.check_at(&"a", start).unwrap_err();
    assert_eq!(refused.per_second, 10);
    assert!(refused.retry_after <= Duration::from_millis(100));
    // Another client is unaffected.
    limiter.check_at(&"b", start).unwrap();
    // 100 ms later one more request is allowed, and only one.
    let later = start + Duration::from_millis(100);
    limiter.check_at(&"a", later).unwrap();
    assert!(limiter.check_at(&"a", later).is_err());
}

#[test]
fn idle_clients_are_swept_when_the_table_is_full() {
    let limiter = RateLimiter::new(100, 1);
    let start = Instant::now();
    for i in 0..SWEEP_ABOVE {
        limiter.check_at(&i, start).unwrap();
    }
    assert_eq!(limiter.tracked(), SWEEP_ABOVE);
    // A second later every bucket is full again, so a new client sweeps them.
    limiter
        .check_at(&usize::MAX, start + Duration::from_secs(1))
        .unwrap();
    assert_eq!(limiter.tracked(), 1);
}
