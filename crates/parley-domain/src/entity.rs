//! The entity model: the canonical persons, states, organisations and places
//! that actors and participants resolve to.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Kind of a canonical entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A person.
    Person,
    /// A state.
    State,
    /// An organisation.
    Organisation,
    /// A place.
    Place,
}

/// A canonical entity as the resolver knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    /// Stable id (`per-...`, see [`crate::ids::person_id`]).
    pub entity_id: String,
    /// Person, state ...
    pub kind: EntityKind,
    /// Canonical name.
    pub name: String,
    /// Known spellings.
    pub aliases: BTreeSet<String>,
    /// Actor code for states and organisations.
    pub code: Option<String>,
    /// "kb", "discovered" or "human".
    pub origin: String,
    /// Side the person speaks for (from the knowledge base).
    pub country: Option<String>,
    /// Set when merged into another entity.
    pub merged_into: Option<String>,
}
