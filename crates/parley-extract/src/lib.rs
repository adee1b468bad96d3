//! parley-extract: turns articles (plain text, HTML, RSS/Atom items) into
//! candidate talks and ceasefire events and person mentions.
//!
//! The pipeline is rule-based and explainable: [`document`] reads inputs into
//! normalised text, [`time`] resolves date expressions, and the extractor
//! finds triggers, actors, dates and venues sentence by sentence.

pub mod document;
pub mod extract;
pub mod lexicon;
pub mod model;
pub mod time;

pub use document::{Document, DocumentError, Limits, read_documents, read_path};
pub use extract::{EXTRACTOR_VERSION, Extractor};
pub use model::*;
