//! Shared by the document targets: read the bytes as the ingest service
//! would, then run the extractor over every document read.

use std::sync::LazyLock;

use parley_extract::{Extractor, Limits, read_documents};

/// Built once per process: loading the knowledge base is not what we fuzz.
static EXTRACTOR: LazyLock<Extractor> = LazyLock::new(|| {
    let kb = parley_kb::KnowledgeBase::bundled().expect("the bundled knowledge base loads");
    Extractor::new(&kb)
});

/// Small limits keep each run fast; the limit checks themselves are covered
/// by inputs larger than `max_bytes`.
const LIMITS: Limits = Limits {
    max_bytes: 256 * 1024,
    max_feed_items: 50,
};

/// Reads `data` as `name` with the media type hint, extracts every document.
pub fn read_and_extract(name: &str, data: &[u8], media_type: Option<&str>) {
    for document in read_documents(name, data, media_type, &LIMITS)
        .into_iter()
        .flatten()
    {
        let _ = EXTRACTOR.extract(&document);
    }
}
