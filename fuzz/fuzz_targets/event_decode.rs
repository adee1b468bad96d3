//! Log record decoding: arbitrary payloads (and schema headers) must decode
//! or fail with an error, and whatever decodes must survive a re-encode.
#![no_main]

use bytes::Bytes;
use parley_domain::EventBatch;
use parley_log::{AggregateRef, LogRecord};
use prost::Message;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The first byte picks the schema-version header: none, current, or odd.
    let (selector, payload) = data.split_first().unwrap_or((&0, &[]));
    let headers = match selector % 3 {
        0 => vec![],
        1 => vec![(
            parley_domain::HEADER_SCHEMA_VERSION.to_owned(),
            "1".to_owned(),
        )],
        _ => vec![(
            parley_domain::HEADER_SCHEMA_VERSION.to_owned(),
            format!("{selector}x"),
        )],
    };
    let record = LogRecord {
        sequence: 1,
        aggregate: AggregateRef::new("talks", "fuzz").expect("a valid aggregate"),
        msg_id: None,
        headers,
        payload: Bytes::copy_from_slice(payload),
        recorded_at: Default::default(),
    };
    if let Ok(decoded) = parley_runtime::decode_record(&record) {
        let _ = decoded.events().count();
    }
    // prost round trip: what decodes re-encodes to something that decodes to the same.
    if let Ok(batch) = EventBatch::decode(payload) {
        let again =
            EventBatch::decode(batch.encode_to_vec().as_slice()).expect("re-encoded batch decodes");
        assert_eq!(batch, again);
    }
});
