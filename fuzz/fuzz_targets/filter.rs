//! The subscription filter language: parsing arbitrary text, and matching
//! whatever parses against an empty and a populated event.
#![no_main]

use std::sync::LazyLock;

use parley_domain::pb::{Actor, TalksEvent, Venue};
use parley_domain::filter::Filter;

static EVENTS: LazyLock<[TalksEvent; 2]> = LazyLock::new(|| {
    let actor = |code: &str| Actor {
        code: code.into(),
        ..Default::default()
    };
    [
        TalksEvent::default(),
        TalksEvent {
            parties: vec![actor("RUS"), actor("UKR")],
            mediators: vec![actor("TUR")],
            venue: Some(Venue {
                city: "Istanbul".into(),
                country: "TUR".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    match Filter::parse(source) {
        Ok(filter) => {
            for event in EVENTS.iter() {
                let _ = filter.matches(event);
            }
        }
        // Rendering the error (with its caret line) must not panic either.
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
