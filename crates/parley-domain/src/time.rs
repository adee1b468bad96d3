//! Conversions between chrono and protobuf timestamps.

use chrono::{DateTime, TimeZone, Utc};
use prost_types::Timestamp;

/// A protobuf timestamp for a chrono time.
pub fn to_timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

/// A chrono time for a protobuf timestamp; `None` when out of range.
pub fn from_timestamp(timestamp: &Timestamp) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(timestamp.seconds, timestamp.nanos.max(0) as u32)
        .single()
}

/// The current time as a protobuf timestamp.
pub fn now() -> Timestamp {
    to_timestamp(Utc::now())
}
