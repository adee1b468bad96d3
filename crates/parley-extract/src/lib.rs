//! parley-extract: turns articles (plain text, HTML, RSS/Atom items) into
//! candidate talks and ceasefire events and person mentions.
//!
//! The pipeline is rule-based and explainable: [`document`] reads inputs into
//! normalised text, [`time`] resolves date expressions, and the extractor
//! finds triggers, actors, dates and venues sentence by sentence.
//!
//! Owns: document readers and the staged extractor with its rules. It fills
//! the talks model, which belongs to `parley-domain` (import it from there).
//! Must never import the log, the runtime, the resolver or a service.

mod clause;
mod coref;
pub mod document;
pub mod extract;
mod frames;
pub mod lexicon;
mod linking;
mod matching;
mod mentions;
mod persons;
mod rules;
mod text;
pub mod time;

/// The talks model, which belongs to the domain; re-exported while callers
/// move to `parley_domain::model` (import it from there).
pub use parley_domain::model;

pub use document::{Document, DocumentError, Limits, read_documents, read_path};
pub use extract::{EXTRACTOR_VERSION, Extractor};
pub use model::*;
