//! Sentence-level rules that turn a document into candidate events and
//! person mentions.
//!
//! The pipeline for one document:
//! 1. fold the text to ASCII (with a map back to character offsets), so every
//!    rule sees "Erdogan" and straight quotes;
//! 2. dictionary hits (states, capitals, seats, demonyms, organisations,
//!    cities, known people) and person names;
//! 3. sentences, each with its triggers (talks, ceasefire, agreement,
//!    violation, end), filtered for negation, hypotheticals, topics and
//!    background;
//! 4. for each surviving trigger: type and status from tense cues, parties
//!    and mediators from the actors of its clause, date, venue, scope,
//!    modality, participants and attribution;
//! 5. document-level repair: anaphoric "the talks" enrich the event they
//!    refer to, duplicates merge, mediators of talks pass to the agreement
//!    they produced, and relative dates resolve against earlier events.

use crate::coref::*;
use crate::document::Document;
use crate::lexicon::Lexicon;
use crate::linking::*;
use crate::mentions::*;
use crate::model::*;
use crate::rules::Rules;
use crate::text::*;
use parley_kb::{KnowledgeBase, Via};
use std::collections::HashMap;

/// Version string stored with every extraction.
pub const EXTRACTOR_VERSION: &str =
    concat!("parley-extract/", env!("CARGO_PKG_VERSION"), "+rules1");

/// Reads events and person mentions from documents; build once and share.
pub struct Extractor {
    /// Cue words, expressions and tables, compiled from the knowledge base's rule files.
    pub(crate) rules: Rules,
    pub(crate) lex: Lexicon,
    /// Who held which post when: resolves "Ukraine's defence minister" to a person.
    pub(crate) kb: KnowledgeBase,
}

impl Extractor {
    /// Compiles the knowledge base into the extractor's dictionaries.
    pub fn new(kb: &KnowledgeBase) -> Extractor {
        Extractor {
            rules: Rules::new(kb),
            lex: Lexicon::new(kb),
            // The extractor reads people and roles from it; its places are in
            // `lex`, so the 30,000 gazetteer towns are not copied.
            kb: kb.without_gazetteer(),
        }
    }

    /// Reads candidate events and person mentions from one document.
    pub fn extract(&self, doc: &Document) -> Extraction {
        let folded = Folded::new(&doc.text);
        let text = folded.text.as_str();
        // The folded text is ASCII, so lower-casing is byte for byte: every
        // rule that wants lower case slices this copy instead of allocating.
        let lower = text.to_ascii_lowercase();
        let lower = lower.as_str();
        let reference = doc.reference_date;
        let hits = self.lex.find(text);
        let sentences = split_sentences(&self.rules, text, lower, doc.title.as_deref());
        // Same-named cities ("Tripoli") are read in the states the document names.
        let states = self.lex.document_states(&hits);
        let dateline = find_dateline(&self.rules, text, &self.lex, &states);

        let (mut actors, cities, kb_people) =
            self.classify_hits(text, lower, &hits, dateline.as_ref(), &states);
        let persons = self.find_persons(text, lower, &hits, &kb_people, &sentences, &actors);
        for p in &persons {
            if let Some(code) = &p.affiliation {
                actors.push(ActorMention {
                    start: p.start,
                    end: p.end,
                    code: code.clone(),
                    via: Via::Name,
                    place: false,
                    target: false,
                    mediator: false,
                    from_person: true,
                });
            }
        }
        actors.sort_by_key(|a| a.start);
        mark_roles(&self.rules, lower, &mut actors);
        // "hosted by U.S. President Donald Trump": the person named right
        // after a host speaks for the host.
        for i in 1..actors.len() {
            let (head, rest) = actors.split_at_mut(i);
            let person = &mut rest[0];
            if person.mediator {
                continue;
            }
            let Some(host) = head.iter().rev().find(|h| h.end <= person.start) else {
                continue;
            };
            // "the UN Support Mission in Libya (UNSMIL)": the acronym too.
            let acronym = lower[host.end..person.start].trim() == "(";
            if host.mediator
                && host.code == person.code
                && (acronym
                    || person.from_person
                        && person.start - host.end <= 40
                        && !lower[host.end..person.start].contains([',', ';'])
                        && !lower[host.end..person.start].contains(" and "))
            {
                person.mediator = true;
            }
        }
        let role_refs = self.role_references(text, lower, &actors, &persons, reference);
        // How often each side is named (places aside): counted once per document.
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for a in actors.iter().filter(|a| !a.place) {
            *counts.entry(a.code.as_str()).or_default() += 1;
        }
        let pairs = conflict_pairs(&self.rules, &counts);
        let dyad = pick_dyad(&pairs);
        // Whether the document speaks of a ceasefire at all: only "accused ...
        // of" needs it, so it is read on first use.
        let ceasefire_flag = std::cell::OnceCell::new();
        let has_ceasefire = || *ceasefire_flag.get_or_init(|| self.rules.ceasefire.is_match(lower));

        // A digest of the name: once per document, not once per event.
        let document_id = doc.id();
        let mut drafts: Vec<Draft> = Vec::new();
        for sentence in &sentences {
            if sentence.headline {
                continue;
            }
            self.sentence_events(
                doc,
                &folded,
                &document_id,
                lower,
                sentence,
                &actors,
                &cities,
                &persons,
                &role_refs,
                &pairs,
                dyad,
                &has_ceasefire,
                dateline.as_ref(),
                &mut drafts,
            );
        }
        let events = finish_document(drafts, reference, dateline.as_ref());

        let mentions = persons
            .iter()
            .map(|p| {
                let (start, end) = folded.chars(p.start, p.end);
                PersonMention {
                    text: folded.original(&doc.text, start, end).to_owned(),
                    start,
                    end,
                    role: p.role.clone(),
                    affiliation: p.affiliation.clone(),
                    kb_id: p.kb_id.clone(),
                    source: p.source.to_owned(),
                }
            })
            .collect();
        Extraction {
            events,
            mentions,
            reference_date: reference,
            extractor_version: EXTRACTOR_VERSION.to_owned(),
        }
    }
}
