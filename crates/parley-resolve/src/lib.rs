//! parley-resolve: person mentions to canonical entities, candidate events to
//! real-world events with one id across documents.
//!
//! The resolver is event-sourced. [`Resolver::resolve_document`] looks at a
//! document's extraction and returns [`Decision`]s without changing anything;
//! [`Resolver::apply`] changes state from one decision. Services persist the
//! decisions and rebuild the resolver by replaying them, so:
//! - ids are derived from names and first reports, never from counters or clocks;
//! - `apply` is idempotent (a decision applied twice changes nothing);
//! - human judgements (merge, split, alias) are decisions too and survive replay.
//!
//! Owns: entity resolution and cross-document event identity, as
//! decisions, and the [`EventStore`] trait with typed [`StoreError`]s. It
//! works on the domain's model (`parley-domain`) and the knowledge base; it
//! must never import the extractor (outside tests), the log, the runtime or
//! a service.

mod index;
mod people;
pub mod store;

use chrono::NaiveDate;
use parley_domain::ids;
use parley_domain::model::{
    DatePrecision, EventFamily, EventStatus, EventType, Evidence, Extraction, TalksEvent,
};
use parley_kb::{KnowledgeBase, normalize};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The entity model belongs to the domain; re-exported for callers of the resolver.
pub use parley_domain::entity::{Entity, EntityKind};

pub use people::{BadMention, Candidate, MentionKind, check_mention};
pub use store::{EventStore, MemoryEvents, StoreError};

/// A state change, persisted by the services and replayed through [`Resolver::apply`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// A new canonical entity.
    RegisterEntity {
        /// Its id.
        entity_id: String,
        /// Person, state ...
        kind: EntityKind,
        /// Canonical name.
        name: String,
        /// Spellings.
        aliases: Vec<String>,
        /// Actor code, for states and organisations.
        code: Option<String>,
        /// "kb", "discovered", "human".
        origin: String,
        /// Where it was first seen.
        document_id: Option<String>,
    },
    /// A new spelling of an entity.
    LearnAlias {
        /// The entity.
        entity_id: String,
        /// The spelling.
        alias: String,
        /// "fuzzy", "glued", "coreference", "human".
        reason: String,
        /// Where it was seen.
        document_id: Option<String>,
    },
    /// Two entities are one; `merged` stays an alias id of `into`.
    MergeEntities {
        /// Surviving entity.
        into: String,
        /// Entity folded in.
        merged: String,
        /// Why.
        reason: String,
        /// "resolver" or a user.
        decided_by: String,
    },
    /// One entity was two: `aliases` move to a new entity.
    SplitEntity {
        /// Entity that was two.
        entity_id: String,
        /// The new entity.
        new_entity_id: String,
        /// Canonical name of the new entity.
        new_name: String,
        /// Aliases that move.
        aliases: Vec<String>,
        /// Why.
        reason: String,
        /// Who decided.
        decided_by: String,
    },
    /// A real-world event reported for the first time (version 1).
    RecordEvent {
        /// The full event.
        event: TalksEvent,
    },
    /// Another source reports a known event.
    CorroborateEvent {
        /// The event.
        event_id: String,
        /// The new source's text.
        evidence: Evidence,
        /// Distinct sources now.
        source_count: u32,
        /// Status after this report.
        status: EventStatus,
        /// Version after this change.
        version: u64,
        /// Type as this source reports it.
        reported_type: EventType,
    },
    /// A known event changed.
    AmendEvent {
        /// The event after the change.
        event: TalksEvent,
        /// Why.
        reason: String,
    },
    /// A known event is withdrawn.
    RetractEvent {
        /// The event.
        event_id: String,
        /// Why.
        reason: String,
        /// Version after this change.
        version: u64,
    },
    /// A document is fully resolved.
    DocumentResolved {
        /// Document id.
        document_id: String,
        /// Document name.
        document_name: String,
        /// Persons it names.
        persons: Vec<ResolvedPerson>,
        /// Events it reports.
        event_ids: Vec<String>,
    },
}

/// One person of one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedPerson {
    /// Person id.
    pub entity_id: String,
    /// Canonical name.
    pub name: String,
    /// Spellings used in the document.
    pub mentions: Vec<String>,
}

/// One event of one document, as that document reports it, with the shared id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedEvent {
    /// The real-world event's id.
    pub event_id: String,
    /// The event as this document tells it (participants resolved).
    pub event: TalksEvent,
    /// True when this document is its first report.
    pub new: bool,
}

/// The outcome of resolving one document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DocumentResolution {
    /// State changes to persist and apply, in order.
    pub decisions: Vec<Decision>,
    /// Persons named in the document.
    pub persons: Vec<ResolvedPerson>,
    /// Events the document reports.
    pub events: Vec<ResolvedEvent>,
}

/// What the resolver needs to know about a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentMeta {
    /// Stable document id.
    pub id: String,
    /// File name, guid or link.
    pub name: String,
    /// Publication date.
    pub reference_date: Option<NaiveDate>,
}

/// Why a human decision was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No entity with that id.
    #[error("unknown entity {0}")]
    UnknownEntity(String),
    /// Merging an entity with itself or one already merged.
    #[error("cannot merge {0} into {1}: {2}")]
    BadMerge(String, String, String),
    /// A split that moves nothing or everything.
    #[error("cannot split {0}: {1}")]
    BadSplit(String, String),
    /// An empty or unusable alias.
    #[error("invalid alias {0:?}")]
    BadAlias(String),
}

/// What matching and corroborating need of a known event, kept in memory
/// (a few dozen bytes, whatever the number of reports); the full state is in
/// the [`EventStore`].
#[derive(Debug, Clone, PartialEq)]
struct EventKey {
    event_type: EventType,
    status: EventStatus,
    /// Sorted, deduplicated party codes.
    parties: Vec<String>,
    date: Option<NaiveDate>,
    precision: DatePrecision,
    /// Publication date of the first report.
    reported_on: Option<NaiveDate>,
    /// Normalised venue city.
    city: Option<String>,
    retracted: bool,
    version: u64,
    /// Distinct documents that reported it.
    sources: u32,
}

impl EventKey {
    fn of(event: &TalksEvent, sources: u32) -> Self {
        Self {
            event_type: event.event_type,
            status: event.status,
            parties: event.party_codes(),
            date: event.date.date,
            precision: event.date.precision,
            reported_on: event.reported_on,
            city: event.venue.city.as_deref().map(normalize),
            retracted: event.retracted,
            version: event.version,
            sources,
        }
    }
}

/// The resolver's state; rebuilt by replaying decisions.
///
/// Memory: entities and their aliases, and a small key per event, are in
/// memory; each event's full state and its sources are in the
/// [`EventStore`], so reports of known events do not grow the resolver.
#[derive(Debug)]
pub struct Resolver {
    kb: KnowledgeBase,
    entities: BTreeMap<String, Entity>,
    /// Normalised alias → entity ids.
    alias_index: HashMap<String, BTreeSet<String>>,
    /// Every alias normalised once, blocked for fuzzy matching.
    names: index::NameIndex,
    /// Matching keys of known events, by id.
    events: BTreeMap<String, EventKey>,
    /// Full states and sources of known events.
    store: Box<dyn EventStore>,
}

impl Resolver {
    /// A resolver that knows the people of the knowledge base, with events in memory.
    pub fn new(kb: &KnowledgeBase) -> Resolver {
        Self::with_store(kb, Box::new(MemoryEvents::default()))
    }

    /// A resolver keeping the full state of events in `store` (which must be empty).
    pub fn with_store(kb: &KnowledgeBase, store: Box<dyn EventStore>) -> Resolver {
        let mut r = Resolver {
            kb: kb.clone(),
            entities: BTreeMap::new(),
            alias_index: HashMap::new(),
            names: index::NameIndex::default(),
            events: BTreeMap::new(),
            store,
        };
        for p in &kb.people {
            let mut aliases: BTreeSet<String> = p.aliases.iter().cloned().collect();
            aliases.insert(p.name.clone());
            let e = Entity {
                entity_id: p.id.clone(),
                kind: EntityKind::Person,
                name: p.name.clone(),
                aliases,
                code: None,
                origin: "kb".into(),
                country: p.country.clone(),
                merged_into: None,
            };
            r.insert_entity(e);
        }
        r
    }

    /// The knowledge base the resolver was built from.
    pub fn kb(&self) -> &KnowledgeBase {
        &self.kb
    }

    fn insert_entity(&mut self, e: Entity) {
        for a in &e.aliases {
            self.index_alias(&e.entity_id, a);
        }
        self.entities.insert(e.entity_id.clone(), e);
    }

    /// Adds one spelling of an entity to the exact and the fuzzy indexes.
    fn index_alias(&mut self, entity_id: &str, alias: &str) {
        let norm = normalize(alias);
        self.names.add(entity_id, alias, &norm);
        self.alias_index
            .entry(norm)
            .or_default()
            .insert(entity_id.to_owned());
    }

    /// The entity with this id, following merges to the survivor.
    pub fn get_entity(&self, id: &str) -> Option<&Entity> {
        let mut cur = self.entities.get(id)?;
        let mut hops = 0;
        while let Some(next) = &cur.merged_into {
            cur = self.entities.get(next)?;
            hops += 1;
            if hops > 32 {
                break;
            }
        }
        Some(cur)
    }

    /// Entities folded into `id` by merges (directly), for display.
    pub fn folded_into<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Entity> + 'a {
        self.entities
            .values()
            .filter(move |e| e.merged_into.as_deref() == Some(id))
    }

    /// All live (unmerged) entities.
    pub fn entities(&self) -> impl Iterator<Item = &Entity> {
        self.entities.values().filter(|e| e.merged_into.is_none())
    }

    /// A known event by id (read from the store).
    pub fn get_event(&self, id: &str) -> Result<Option<TalksEvent>, StoreError> {
        if !self.events.contains_key(id) {
            return Ok(None);
        }
        self.store.load(id)
    }

    /// All known events, by id (read from the store one at a time).
    pub fn events(&self) -> impl Iterator<Item = Result<TalksEvent, StoreError>> + '_ {
        self.events
            .keys()
            .filter_map(|id| self.store.load(id).transpose())
    }

    /// Number of known events.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// Fuzzy search over entity names and aliases, best first.
    pub fn search(&self, query: &str, limit: usize) -> Vec<(&Entity, f64)> {
        if query.len() > 4 * 200 {
            return Vec::new();
        }
        let q = normalize(query);
        if q.is_empty() || q.len() > 200 {
            return Vec::new();
        }
        // Best score per live entity over its (pre-normalised) aliases;
        // aliases of merged entities count for the survivor.
        let mut best: HashMap<&str, (&Entity, f64)> = HashMap::new();
        for entry in self.names.all() {
            let Some(e) = self.get_entity(&entry.entity_id) else {
                continue;
            };
            let jw = strsim::jaro_winkler(&q, &entry.norm);
            let contains = if entry.norm.contains(q.as_str()) {
                0.95
            } else {
                0.0
            };
            let score = jw.max(contains);
            let slot = best.entry(e.entity_id.as_str()).or_insert((e, 0.0));
            slot.1 = slot.1.max(score);
        }
        let mut scored: Vec<(&Entity, f64)> =
            best.into_values().filter(|(_, s)| *s >= 0.75).collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.entity_id.cmp(&b.0.entity_id)));
        scored.truncate(limit);
        scored
    }

    /// Applies one decision. Idempotent: applying it again changes nothing.
    ///
    /// # Errors
    /// When the [`EventStore`] fails. The decision may then be partly
    /// applied: stop deciding with this resolver and rebuild it by replaying
    /// the decisions (the log).
    pub fn apply(&mut self, decision: &Decision) -> Result<(), StoreError> {
        match decision {
            Decision::RegisterEntity {
                entity_id,
                kind,
                name,
                aliases,
                code,
                origin,
                ..
            } => {
                if self.entities.contains_key(entity_id) {
                    return Ok(());
                }
                let mut set: BTreeSet<String> = aliases.iter().cloned().collect();
                set.insert(name.clone());
                self.insert_entity(Entity {
                    entity_id: entity_id.clone(),
                    kind: *kind,
                    name: name.clone(),
                    aliases: set,
                    code: code.clone(),
                    origin: origin.clone(),
                    country: None,
                    merged_into: None,
                });
            }
            Decision::LearnAlias {
                entity_id, alias, ..
            } => {
                if let Some(e) = self.entities.get_mut(entity_id)
                    && e.aliases.insert(alias.clone())
                {
                    self.index_alias(entity_id, alias);
                }
            }
            Decision::MergeEntities { into, merged, .. } => {
                if into == merged || !self.entities.contains_key(into) {
                    return Ok(());
                }
                let Some(m) = self.entities.get_mut(merged) else {
                    return Ok(());
                };
                if m.merged_into.is_some() {
                    return Ok(());
                }
                m.merged_into = Some(into.clone());
                let aliases: Vec<String> = m.aliases.iter().cloned().collect();
                for a in aliases {
                    let ids = self.alias_index.entry(normalize(&a)).or_default();
                    ids.remove(merged);
                    ids.insert(into.clone());
                    if let Some(i) = self.entities.get_mut(into) {
                        i.aliases.insert(a);
                    }
                }
            }
            Decision::SplitEntity {
                entity_id,
                new_entity_id,
                new_name,
                aliases,
                ..
            } => {
                if self.entities.contains_key(new_entity_id) {
                    return Ok(());
                }
                let Some(old) = self.entities.get_mut(entity_id) else {
                    return Ok(());
                };
                let kind = old.kind;
                for a in aliases {
                    old.aliases.remove(a);
                    if let Some(ids) = self.alias_index.get_mut(&normalize(a)) {
                        ids.remove(entity_id);
                    }
                    self.names.remove(entity_id, a);
                }
                let mut set: BTreeSet<String> = aliases.iter().cloned().collect();
                set.insert(new_name.clone());
                self.insert_entity(Entity {
                    entity_id: new_entity_id.clone(),
                    kind,
                    name: new_name.clone(),
                    aliases: set,
                    code: None,
                    origin: "human".into(),
                    country: None,
                    merged_into: None,
                });
            }
            Decision::RecordEvent { event } => {
                if self.events.contains_key(&event.event_id) {
                    return Ok(());
                }
                let mut sources = 0;
                for evidence in &event.evidence {
                    if self
                        .store
                        .add_source(&event.event_id, &evidence.document_id)?
                    {
                        sources += 1;
                    }
                }
                self.store.save(event)?;
                self.events
                    .insert(event.event_id.clone(), EventKey::of(event, sources));
            }
            Decision::CorroborateEvent {
                event_id,
                evidence,
                source_count,
                status,
                version,
                ..
            } => {
                let Some(key) = self.events.get(event_id) else {
                    return Ok(());
                };
                if key.version >= *version {
                    return Ok(());
                }
                let mut sources = key.sources;
                let Some(mut event) = self.store.load(event_id)? else {
                    return Ok(());
                };
                if self.store.add_source(event_id, &evidence.document_id)? {
                    sources += 1;
                }
                event.evidence.push(evidence.clone());
                event.source_count = *source_count;
                event.version = *version;
                if *status != EventStatus::Unspecified {
                    event.status = *status;
                }
                if *status == EventStatus::Held && event.event_type == EventType::TalksAnnounced {
                    event.event_type = EventType::TalksHeld;
                }
                self.store.save(&event)?;
                self.events
                    .insert(event_id.clone(), EventKey::of(&event, sources));
            }
            Decision::AmendEvent { event, .. } => {
                if let Some(key) = self.events.get(&event.event_id)
                    && key.version < event.version
                {
                    let sources = key.sources;
                    self.store.save(event)?;
                    self.events
                        .insert(event.event_id.clone(), EventKey::of(event, sources));
                }
            }
            Decision::RetractEvent {
                event_id, version, ..
            } => {
                if let Some(key) = self.events.get(event_id)
                    && key.version < *version
                    && let Some(mut event) = self.store.load(event_id)?
                {
                    let sources = key.sources;
                    event.retracted = true;
                    event.version = *version;
                    self.store.save(&event)?;
                    self.events
                        .insert(event_id.clone(), EventKey::of(&event, sources));
                }
            }
            // Which document reported what is the service's business (it
            // keeps it to diff re-extractions); the resolver needs none of it.
            Decision::DocumentResolved { .. } => {}
        }
        Ok(())
    }

    /// Human judgement: `merged` is the same entity as `into`.
    pub fn decide_merge(
        &self,
        into: &str,
        merged: &str,
        decided_by: &str,
    ) -> Result<Vec<Decision>, ResolveError> {
        let a = self
            .get_entity(into)
            .ok_or_else(|| ResolveError::UnknownEntity(into.into()))?;
        let b = self
            .entities
            .get(merged)
            .ok_or_else(|| ResolveError::UnknownEntity(merged.into()))?;
        if a.entity_id == b.entity_id {
            return Err(ResolveError::BadMerge(
                merged.into(),
                into.into(),
                "same entity".into(),
            ));
        }
        if b.merged_into.is_some() {
            return Err(ResolveError::BadMerge(
                merged.into(),
                into.into(),
                "already merged".into(),
            ));
        }
        Ok(vec![Decision::MergeEntities {
            into: a.entity_id.clone(),
            merged: merged.into(),
            reason: "human judgement".into(),
            decided_by: decided_by.into(),
        }])
    }

    /// Human judgement: `aliases` of `entity_id` name another person, `new_name`.
    pub fn decide_split(
        &self,
        entity_id: &str,
        new_name: &str,
        aliases: &[String],
        decided_by: &str,
    ) -> Result<Vec<Decision>, ResolveError> {
        let e = self
            .entities
            .get(entity_id)
            .ok_or_else(|| ResolveError::UnknownEntity(entity_id.into()))?;
        if new_name.trim().is_empty() {
            return Err(ResolveError::BadSplit(
                entity_id.into(),
                "empty new name".into(),
            ));
        }
        let moving: Vec<String> = aliases
            .iter()
            .filter(|a| e.aliases.contains(*a))
            .cloned()
            .collect();
        if moving.is_empty()
            && aliases.iter().all(|a| normalize(a) != normalize(new_name))
            && !aliases.is_empty()
        {
            return Err(ResolveError::BadSplit(
                entity_id.into(),
                "none of the aliases belong to it".into(),
            ));
        }
        if moving.iter().any(|a| a == &e.name) {
            return Err(ResolveError::BadSplit(
                entity_id.into(),
                "cannot move the canonical name".into(),
            ));
        }
        let new_entity_id = self.fresh_person_id(new_name, &BTreeSet::new());
        Ok(vec![Decision::SplitEntity {
            entity_id: entity_id.into(),
            new_entity_id,
            new_name: new_name.into(),
            aliases: moving,
            reason: "human judgement".into(),
            decided_by: decided_by.into(),
        }])
    }

    /// Human judgement: `alias` is a spelling of `entity_id`.
    pub fn decide_alias(
        &self,
        entity_id: &str,
        alias: &str,
        decided_by: &str,
    ) -> Result<Vec<Decision>, ResolveError> {
        let e = self
            .get_entity(entity_id)
            .ok_or_else(|| ResolveError::UnknownEntity(entity_id.into()))?;
        if normalize(alias).is_empty() || alias.chars().count() > 200 {
            return Err(ResolveError::BadAlias(alias.into()));
        }
        let _ = decided_by;
        Ok(vec![Decision::LearnAlias {
            entity_id: e.entity_id.clone(),
            alias: alias.trim().into(),
            reason: "human".into(),
            document_id: None,
        }])
    }

    /// `per-` + slug of the name, with a numeric suffix when the slug is taken.
    fn fresh_person_id(&self, name: &str, pending: &BTreeSet<String>) -> String {
        ids::person_id(&normalize(name), |id| {
            self.entities.contains_key(id) || pending.contains(id)
        })
    }

    /// Resolves one document: returns decisions (not applied), persons and events.
    ///
    /// # Errors
    /// When the [`EventStore`] cannot tell whether the document already
    /// reported a known event; nothing is decided then.
    pub fn resolve_document(
        &self,
        doc: &DocumentMeta,
        extraction: &Extraction,
    ) -> Result<DocumentResolution, StoreError> {
        let mut out = DocumentResolution::default();
        // --- persons
        let linked = people::link_mentions(self, doc, extraction, &mut out.decisions);
        let mut persons: Vec<ResolvedPerson> = Vec::new();
        for (mention, (id, name)) in extraction.mentions.iter().zip(&linked) {
            let Some(id) = id else { continue };
            match persons.iter_mut().find(|p| &p.entity_id == id) {
                Some(p) => {
                    if !p.mentions.contains(&mention.text) {
                        p.mentions.push(mention.text.clone());
                    }
                }
                None => persons.push(ResolvedPerson {
                    entity_id: id.clone(),
                    name: name.clone(),
                    mentions: vec![mention.text.clone()],
                }),
            }
        }
        // Mention text → entity, for participants.
        let by_text: HashMap<String, (String, String)> = extraction
            .mentions
            .iter()
            .zip(&linked)
            .filter_map(|(m, (id, name))| id.clone().map(|id| (m.text.clone(), (id, name.clone()))))
            .collect();
        // --- events
        let mut pending: Vec<(String, EventKey, Option<NaiveDate>)> = Vec::new();
        let mut event_ids = Vec::new();
        for (index, candidate) in extraction.events.iter().enumerate() {
            let mut event = candidate.clone();
            for ev in &mut event.evidence {
                ev.document_id = doc.id.clone();
                ev.document_name = doc.name.clone();
            }
            let mut seen = BTreeSet::new();
            event.participants.retain_mut(|p| {
                if let Some((id, name)) = by_text.get(&p.name) {
                    p.entity_id = id.clone();
                    p.name = name.clone();
                }
                seen.insert(p.name.clone())
            });
            let reference = doc.reference_date;
            let key = EventKey::of(&event, 0);
            // Known event, or one recorded earlier in this document?
            let known = self
                .events
                .iter()
                .find(|(_, k)| same_event(k, k.reported_on, &key, reference));
            let in_doc = pending
                .iter()
                .position(|(_, k, r)| same_event(k, *r, &key, reference));
            let event_id = if let Some((id, known)) = known {
                let id = id.clone();
                if !event_ids.contains(&id) && !self.store.has_source(&id, &doc.id)? {
                    let status = if event.event_type == EventType::TalksHeld {
                        EventStatus::Held
                    } else {
                        known.status
                    };
                    out.decisions.push(Decision::CorroborateEvent {
                        event_id: id.clone(),
                        evidence: event.evidence[0].clone(),
                        source_count: known.sources + 1,
                        status,
                        version: known.version + 1,
                        reported_type: event.event_type,
                    });
                }
                out.events.push(ResolvedEvent {
                    event_id: id.clone(),
                    event: TalksEvent {
                        event_id: id.clone(),
                        ..event.clone()
                    },
                    new: false,
                });
                id
            } else if let Some(i) = in_doc {
                let id = pending[i].0.clone();
                out.events.push(ResolvedEvent {
                    event_id: id.clone(),
                    event: TalksEvent {
                        event_id: id.clone(),
                        ..event.clone()
                    },
                    new: false,
                });
                id
            } else {
                let id = ids::event_id(&doc.id, index, &event);
                let mut recorded = event.clone();
                recorded.event_id = id.clone();
                recorded.version = 1;
                recorded.source_count = 1;
                recorded.reported_on = recorded.reported_on.or(reference);
                out.decisions.push(Decision::RecordEvent {
                    event: recorded.clone(),
                });
                pending.push((id.clone(), EventKey::of(&recorded, 1), reference));
                out.events.push(ResolvedEvent {
                    event_id: id.clone(),
                    event: recorded,
                    new: true,
                });
                id
            };
            if !event_ids.contains(&event_id) {
                event_ids.push(event_id);
            }
        }
        out.decisions.push(Decision::DocumentResolved {
            document_id: doc.id.clone(),
            document_name: doc.name.clone(),
            persons: persons.clone(),
            event_ids,
        });
        out.persons = persons;
        Ok(out)
    }
}

/// Whether a new report describes a known event: same family (and the same
/// type for ceasefires), the same sides, compatible dates and venues.
fn same_event(
    known: &EventKey,
    known_ref: Option<NaiveDate>,
    new: &EventKey,
    new_ref: Option<NaiveDate>,
) -> bool {
    if known.retracted || known.event_type.family() != new.event_type.family() {
        return false;
    }
    if known.event_type.family() != EventFamily::Talks && known.event_type != new.event_type {
        return false;
    }
    if known.parties != new.parties {
        return false;
    }
    let dates_ok = match (known.date, new.date) {
        (Some(a), Some(b)) => match (known.precision, new.precision) {
            (DatePrecision::Day, DatePrecision::Day) => a == b,
            _ => (a - b).num_days().abs() <= 7,
        },
        // Undated reports match only reports of about the same days.
        (Some(a), None) => new_ref.is_some_and(|r| (a - r).num_days().abs() <= 3),
        (None, Some(b)) => known_ref.is_some_and(|r| (b - r).num_days().abs() <= 3),
        (None, None) => {
            matches!((known_ref, new_ref), (Some(a), Some(b)) if (a - b).num_days().abs() <= 3)
        }
    };
    if !dates_ok {
        return false;
    }
    match (&known.city, &new.city) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}
