//! Person mentions to entities: exact aliases, in-document coreference,
//! glued-typo repair, fuzzy names with a length-dependent edit budget, and
//! roles resolved to their holder on the article's date.
//!
//! Precision rules (never fold two people into one):
//! - a fuzzy link needs both the family name (edit budget) and the given
//!   name (initial, or close spelling) to agree, and a clear lead;
//! - a bare surname links only inside its document (to the nearest earlier
//!   full name) or to a knowledge-base person the extractor matched;
//! - an unknown full name becomes a new entity with a stable `per-` id.

use crate::index::{Histogram, may_match};
use crate::{Decision, DocumentMeta, EntityKind, Resolver};
use chrono::NaiveDate;
use parley_domain::model::Extraction;
use parley_kb::normalize;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// What kind of words a mention is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MentionKind {
    /// A person's name or part of it.
    Person,
    /// A role ("the Defense Minister"): resolved to its holder on the date.
    Role,
}

/// A possible entity for a mention, with the reason it was proposed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Entity id.
    pub entity_id: String,
    /// Canonical name.
    pub name: String,
    /// 0..1, higher is better; >= 0.88 is a link.
    pub score: f64,
    /// "exact", "fuzzy", "glued", "initial", "role".
    pub reason: String,
}

/// Why a mention cannot name anyone: the "no match" reasons a service
/// reports instead of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadMention {
    /// Nothing but whitespace.
    #[error("empty mention")]
    Empty,
    /// Longer than any name.
    #[error("too long to be a name (more than {MAX_MENTION} characters)")]
    TooLong,
    /// Punctuation only, or a script that does not fold to Latin letters.
    #[error("no letters the knowledge base can read (punctuation only or an unsupported script)")]
    NoLetters,
}

/// Checks that a mention can be a name at all, so callers can say why a
/// mention got no candidate ([`Resolver::resolve_mention`] returns none for
/// these).
pub fn check_mention(mention: &str) -> Result<(), BadMention> {
    if mention.trim().is_empty() {
        return Err(BadMention::Empty);
    }
    if mention.len() > MAX_MENTION && mention.chars().count() > MAX_MENTION {
        return Err(BadMention::TooLong);
    }
    if !normalize(strip_suffixes(mention))
        .bytes()
        .any(|c| c.is_ascii_alphabetic())
    {
        return Err(BadMention::NoLetters);
    }
    Ok(())
}

/// Short words that typos glue onto a name ("Umerovto").
const GLUE: &[&str] = &[
    "to", "in", "on", "at", "of", "and", "the", "for", "is", "was", "said", "has", "with",
];

/// Longest mention considered (characters); longer text is not a name.
const MAX_MENTION: usize = 120;

/// Threshold for linking a fuzzy candidate.
const LINK: f64 = 0.88;

/// Cleans a mention: possessive and "-led" suffixes off, whitespace squeezed.
fn clean(text: &str) -> String {
    strip_suffixes(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// [`clean`] without squeezing whitespace (normalisation does that), so the
/// hot path does not allocate.
fn strip_suffixes(text: &str) -> &str {
    let t = text.trim();
    let t = t
        .strip_suffix("'s")
        .or_else(|| t.strip_suffix("\u{2019}s"))
        .unwrap_or(t);
    let t = match t.rsplit_once('-') {
        Some((head, tail)) if tail.chars().all(|c| c.is_lowercase()) && !tail.is_empty() => head,
        _ => t,
    };
    t.trim()
}

/// Given-name compatibility: equal, an initial, or a close spelling.
fn given_score(m: &str, c: &str) -> f64 {
    if m == c {
        return 1.0;
    }
    if m.len() == 1 {
        return if c.starts_with(m) { 0.9 } else { 0.0 };
    }
    strsim::jaro_winkler(m, c)
}

/// Edit budget that grows with the length of the family name.
fn budget(len: usize) -> usize {
    match len {
        0..=4 => 0,
        5..=6 => 1,
        7..=10 => 2,
        _ => 3,
    }
}

/// Jaro-Winkler a family name must reach when it misses the edit budget.
const FAMILY_JW: f64 = 0.95;

/// Score of a full-name mention (given and family name, normalised) against
/// a full-name alias: both names must agree (see the module rules).
fn name_score(m: (&str, &str), c: (&str, &str)) -> f64 {
    let ((mg, ms), (cg, cs)) = (m, c);
    let lev = strsim::levenshtein(ms, cs);
    let sur = strsim::jaro_winkler(ms, cs);
    if lev > budget(ms.len().max(cs.len())) && sur < FAMILY_JW {
        return 0.0;
    }
    let given = given_score(mg, cg);
    if given < 0.8 {
        return 0.0;
    }
    0.6 * sur + 0.4 * given
}

impl Resolver {
    /// Candidates for one mention, best first. `context` is the side the text
    /// ties the mention to (needed for roles); `date` the article's date.
    pub fn resolve_mention(
        &self,
        mention: &str,
        context: Option<&str>,
        date: Option<NaiveDate>,
        kind: MentionKind,
    ) -> Vec<Candidate> {
        // Byte length bounds the character count: only count when needed.
        if mention.len() > MAX_MENTION && mention.chars().count() > MAX_MENTION {
            return Vec::new();
        }
        let cleaned = strip_suffixes(mention);
        let n = normalize(cleaned);
        if n.is_empty() || !n.bytes().any(|c| c.is_ascii_alphabetic()) {
            return Vec::new();
        }
        if kind == MentionKind::Role {
            let (Some(of), Some(date)) = (context, date) else {
                return Vec::new();
            };
            let Some(role) = parley_kb::canonical_role(cleaned) else {
                return Vec::new();
            };
            return self
                .kb
                .holders(role, of, date)
                .into_iter()
                .filter_map(|p| self.get_entity(&p.id))
                .map(|e| Candidate {
                    entity_id: e.entity_id.clone(),
                    name: e.name.clone(),
                    score: 1.0,
                    reason: "role".into(),
                })
                .collect();
        }
        let mut out: Vec<Candidate> = Vec::new();
        let push = |out: &mut Vec<Candidate>, id: &str, score: f64, reason: &str| {
            let Some(e) = self.get_entity(id) else { return };
            if e.kind != EntityKind::Person {
                return;
            }
            match out.iter_mut().find(|c| c.entity_id == e.entity_id) {
                Some(c) if c.score >= score => {}
                Some(c) => {
                    c.score = score;
                    c.reason = reason.into();
                }
                None => out.push(Candidate {
                    entity_id: e.entity_id.clone(),
                    name: e.name.clone(),
                    score,
                    reason: reason.into(),
                }),
            }
        };
        // 1. Exact: one hash lookup.
        if let Some(ids) = self.alias_index.get(&n) {
            for id in ids {
                push(&mut out, id, 1.0, "exact");
            }
        }
        // Given name (first token) and family name (last token).
        let given = n.split(' ').next().unwrap_or("");
        let (head, family) = n.rsplit_once(' ').unwrap_or(("", n.as_str()));
        let single = head.is_empty();
        // 2. Glued typo: "rustem umerovto" -> "rustem umerov".
        let mut fixed = String::new();
        for g in GLUE {
            if let Some(stem) = family.strip_suffix(g)
                && stem.len() >= 3
            {
                fixed.clear();
                if !single {
                    fixed.push_str(head);
                    fixed.push(' ');
                }
                fixed.push_str(stem);
                if let Some(ids) = self.alias_index.get(&fixed) {
                    for id in ids {
                        push(&mut out, id, 0.97, "glued");
                    }
                }
            }
        }
        // 3. A bare family name: a knowledge-base person's, when only one
        //    person has it.
        if single && family.len() >= 4 {
            let mut owner: Option<&crate::Entity> = None;
            let mut several = false;
            for entry in self.names.with_family(family) {
                let Some(e) = self.get_entity(&entry.entity_id) else {
                    continue;
                };
                if e.kind != EntityKind::Person || e.origin != "kb" {
                    continue;
                }
                match owner {
                    Some(o) if o.entity_id != e.entity_id => several = true,
                    _ => owner = Some(e),
                }
            }
            if let (Some(o), false) = (owner, several) {
                push(&mut out, &o.entity_id, 0.9, "surname");
            }
        }
        // 4. Fuzzy full names, only inside the block of family names with the
        //    same initial, and only where the letter bounds allow a match.
        if !single {
            let hist = Histogram::of(family);
            let reason = if given.len() == 1 { "initial" } else { "fuzzy" };
            for entry in self.names.block(family.as_bytes()[0]) {
                let cf = entry.family();
                if !may_match(
                    (family, &hist),
                    (cf, &entry.family_hist),
                    budget(family.len().max(cf.len())),
                    FAMILY_JW,
                ) {
                    continue;
                }
                let s = name_score((given, family), (entry.given(), cf));
                if s >= 0.8 {
                    push(&mut out, &entry.entity_id, s.min(0.99), reason);
                }
            }
        }
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.entity_id.cmp(&b.entity_id))
        });
        out
    }
}

impl Resolver {
    /// Live entities (ids after merges) that have `family` as the family
    /// name of one of their full-name aliases, or as a one-word alias.
    fn entities_with_family(&self, family: &str) -> BTreeSet<&str> {
        let from_full = self.names.with_family(family).map(|e| e.entity_id.as_str());
        let from_alias = self
            .alias_index
            .get(family)
            .into_iter()
            .flatten()
            .map(String::as_str);
        from_full
            .chain(from_alias)
            .filter_map(|id| self.get_entity(id))
            .map(|e| e.entity_id.as_str())
            .collect()
    }
}

/// The best candidate when it is a clear link.
fn clear_link(cands: &[Candidate]) -> Option<&Candidate> {
    let best = cands.first()?;
    if best.score < LINK {
        return None;
    }
    if let Some(second) = cands.get(1)
        && best.score - second.score < 0.02
        && best.reason != "exact"
    {
        return None;
    }
    Some(best)
}

/// Links every mention of a document; pushes the decisions it needs.
/// Returns, per mention, the entity id and canonical name (or `None`).
pub(crate) fn link_mentions(
    r: &Resolver,
    doc: &DocumentMeta,
    extraction: &Extraction,
    decisions: &mut Vec<Decision>,
) -> Vec<(Option<String>, String)> {
    let mut out: Vec<(Option<String>, String)> = Vec::with_capacity(extraction.mentions.len());
    // New entities of this document: normalised name -> (id, name).
    let mut fresh: HashMap<String, (String, String)> = HashMap::new();
    let mut fresh_ids: BTreeSet<String> = BTreeSet::new();
    let mut learned: BTreeSet<(String, String)> = BTreeSet::new();
    for m in &extraction.mentions {
        let cleaned = clean(&m.text);
        let n = normalize(&cleaned);
        if n.is_empty() || cleaned.chars().count() > MAX_MENTION {
            out.push((None, String::new()));
            continue;
        }
        let single = !n.contains(' ');
        // 1. The extractor's knowledge-base match (or its surname coreference).
        if let Some(e) = m.kb_id.as_deref().and_then(|id| r.get_entity(id)) {
            out.push((Some(e.entity_id.clone()), e.name.clone()));
            continue;
        }
        // 2. A bare surname: the nearest earlier full name in this document,
        //    spelled the same there or known to the entity in that spelling
        //    ("Zelenskyy" after "Volodymyr Zelensky").
        if single {
            let spelled_by = r.entities_with_family(&n);
            let earlier = extraction
                .mentions
                .iter()
                .zip(out.iter())
                .rev()
                .find(|(pm, (id, _))| {
                    let Some(id) = id else { return false };
                    spelled_by.contains(id.as_str())
                        || normalize(&clean(&pm.text))
                            .rsplit(' ')
                            .next()
                            .is_some_and(|last| last == n)
                })
                .map(|(_, link)| link.clone());
            out.push(earlier.unwrap_or((None, String::new())));
            continue;
        }
        // 3. Seen earlier in this document as a new entity.
        if let Some((id, name)) = fresh.get(&n) {
            out.push((Some(id.clone()), name.clone()));
            continue;
        }
        // 4. Exact, glued or fuzzy match to a known person.
        let cands = r.resolve_mention(
            &cleaned,
            m.affiliation.as_deref(),
            None,
            MentionKind::Person,
        );
        if let Some(best) = clear_link(&cands) {
            if best.reason != "exact" && learned.insert((best.entity_id.clone(), cleaned.clone())) {
                decisions.push(Decision::LearnAlias {
                    entity_id: best.entity_id.clone(),
                    alias: cleaned.clone(),
                    reason: best.reason.clone(),
                    document_id: Some(doc.id.clone()),
                });
            }
            out.push((Some(best.entity_id.clone()), best.name.clone()));
            continue;
        }
        // 5. A new person.
        let id = r.fresh_person_id(&cleaned, &fresh_ids);
        fresh_ids.insert(id.clone());
        fresh.insert(n.clone(), (id.clone(), cleaned.clone()));
        decisions.push(Decision::RegisterEntity {
            entity_id: id.clone(),
            kind: EntityKind::Person,
            name: cleaned.clone(),
            aliases: vec![cleaned.clone()],
            code: None,
            origin: "discovered".into(),
            document_id: Some(doc.id.clone()),
        });
        out.push((Some(id), cleaned));
    }
    out
}
