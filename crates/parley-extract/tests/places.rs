//! Venues from the knowledge base's places: gazetteer towns, same-named
//! cities read in the document's states, coordinates on the venue.

use std::sync::OnceLock;

use chrono::NaiveDate;
use parley_extract::{Document, Extraction, Extractor};
use parley_kb::KnowledgeBase;

fn extractor() -> &'static Extractor {
    static EX: OnceLock<Extractor> = OnceLock::new();
    EX.get_or_init(|| Extractor::new(&KnowledgeBase::bundled().expect("kb loads")))
}

fn extract(text: &str) -> Extraction {
    let day = NaiveDate::from_ymd_opt(2025, 6, 3);
    extractor().extract(&Document::from_text("places.txt", day, text))
}

/// (city, country, lat, lon) of every event's venue.
fn venues(x: &Extraction) -> Vec<(String, String, Option<f64>, Option<f64>)> {
    x.events
        .iter()
        .filter_map(|e| {
            let v = &e.venue;
            Some((v.city.clone()?, v.country.clone()?, v.lat, v.lon))
        })
        .collect()
}

#[test]
fn a_gazetteer_town_is_the_venue_with_its_coordinates() {
    let x = extract(
        "Russian and Syrian officials held talks in Tartus on Monday about the naval base.",
    );
    let v = venues(&x);
    assert_eq!(v.len(), 1, "{:?}", x.events);
    let (city, country, lat, lon) = &v[0];
    assert_eq!((city.as_str(), country.as_str()), ("Tartus", "SYR"));
    assert!((lat.unwrap() - 34.889).abs() < 0.01, "{lat:?}");
    assert!((lon.unwrap() - 35.887).abs() < 0.01, "{lon:?}");
}

#[test]
fn a_hand_listed_venue_gets_coordinates_too() {
    let x = extract("Ukrainian and U.S. officials held talks in Jeddah on Monday.");
    let v = venues(&x);
    assert_eq!(v.len(), 1, "{:?}", x.events);
    assert_eq!((v[0].0.as_str(), v[0].1.as_str()), ("Jeddah", "SAU"));
    assert!(v[0].2.is_some() && v[0].3.is_some());
}

#[test]
fn a_shared_name_is_read_in_the_state_the_document_names() {
    let x =
        extract("Lebanese army officers and Hezbollah officials held talks in Tripoli on Monday.");
    let v = venues(&x);
    assert_eq!(v.len(), 1, "{:?}", x.events);
    assert_eq!((v[0].0.as_str(), v[0].1.as_str()), ("Tripoli", "LBN"));
    let x = extract("Libyan and Turkish officials held talks in Tripoli on Monday.");
    let v = venues(&x);
    assert_eq!(v.len(), 1, "{:?}", x.events);
    assert_eq!((v[0].0.as_str(), v[0].1.as_str()), ("Tripoli", "LBY"));
}
