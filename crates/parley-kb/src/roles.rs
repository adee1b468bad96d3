//! The role vocabulary: maps the many press wordings of a post to one key.
//!
//! Role keys are what `Role::title` stores and what `KnowledgeBase::holders`
//! is queried with, so "the Defense Minister" in an article and
//! `defence_minister` in `people.toml` meet.

use crate::normalize::normalize;

/// Every canonical role key known to [`canonical_role`], in documentation
/// order. Knowledge-base files may also use other `snake_case` keys; these
/// are simply never produced from press wording.
pub const ROLE_KEYS: &[&str] = &[
    "president",
    "vice_president",
    "prime_minister",
    "deputy_prime_minister",
    "chancellor",
    "king",
    "crown_prince",
    "emir",
    "supreme_leader",
    "pope",
    "foreign_minister",
    "deputy_foreign_minister",
    "defence_minister",
    "deputy_defence_minister",
    "interior_minister",
    "finance_minister",
    "economy_minister",
    "army_secretary",
    "national_security_adviser",
    "nsdc_secretary",
    "security_council_secretary",
    "head_of_presidential_office",
    "presidential_aide",
    "spokesperson",
    "envoy",
    "ambassador",
    "chief_negotiator",
    "intelligence_chief",
    "army_chief",
    "commander_in_chief",
    "commander",
    "secretary_general",
    "commission_president",
    "council_president",
    "high_representative",
    "leader",
    "sultan",
    "parliament_speaker",
    "director_general",
];

/// Keys that have a "deputy_" variant: "Deputy Foreign Minister" is a
/// different post from "Foreign Minister", never the same person.
const HAS_DEPUTY: &[&str] = &["prime_minister", "foreign_minister", "defence_minister"];

/// Words that, right before a role phrase, make it a junior post.
const DEPUTY_WORDS: &[&str] = &["deputy", "vice", "assistant", "under", "undersecretary"];

/// (normalised phrase, key). The longest phrase found in the text wins, so
/// "vice president" beats "president" and "army chief of staff" beats
/// "chief of staff".
const PHRASES: &[(&str, &str)] = &[
    ("president", "president"),
    ("vice president", "vice_president"),
    ("prime minister", "prime_minister"),
    ("premier", "prime_minister"),
    ("pm", "prime_minister"),
    ("vice premier", "deputy_prime_minister"),
    ("chancellor", "chancellor"),
    ("king", "king"),
    ("crown prince", "crown_prince"),
    ("emir", "emir"),
    ("amir", "emir"),
    ("supreme leader", "supreme_leader"),
    ("pope", "pope"),
    ("pontiff", "pope"),
    // foreign affairs
    ("foreign minister", "foreign_minister"),
    ("foreign affairs minister", "foreign_minister"),
    ("minister of foreign affairs", "foreign_minister"),
    ("minister for foreign affairs", "foreign_minister"),
    ("minister of external affairs", "foreign_minister"),
    ("external affairs minister", "foreign_minister"),
    ("foreign secretary", "foreign_minister"),
    ("secretary of state", "foreign_minister"),
    ("top diplomat", "foreign_minister"),
    ("chief diplomat", "foreign_minister"),
    // defence
    ("defence minister", "defence_minister"),
    ("defense minister", "defence_minister"),
    ("minister of defence", "defence_minister"),
    ("minister of defense", "defence_minister"),
    ("minister of national defence", "defence_minister"),
    ("minister of national defense", "defence_minister"),
    ("defence secretary", "defence_minister"),
    ("defense secretary", "defence_minister"),
    ("secretary of defense", "defence_minister"),
    ("secretary of defence", "defence_minister"),
    ("secretary of state for defence", "defence_minister"),
    ("secretary of war", "defence_minister"),
    ("war secretary", "defence_minister"),
    ("war minister", "defence_minister"),
    ("pentagon chief", "defence_minister"),
    // other ministers
    ("interior minister", "interior_minister"),
    ("minister of interior", "interior_minister"),
    ("minister of the interior", "interior_minister"),
    ("home secretary", "interior_minister"),
    ("finance minister", "finance_minister"),
    ("minister of finance", "finance_minister"),
    ("treasury secretary", "finance_minister"),
    ("secretary of the treasury", "finance_minister"),
    ("chancellor of the exchequer", "finance_minister"),
    ("economy minister", "economy_minister"),
    ("minister of economy", "economy_minister"),
    ("minister of the economy", "economy_minister"),
    ("army secretary", "army_secretary"),
    ("secretary of the army", "army_secretary"),
    // security and presidential staff
    ("national security adviser", "national_security_adviser"),
    ("national security advisor", "national_security_adviser"),
    (
        "secretary of the national security and defence council",
        "nsdc_secretary",
    ),
    (
        "secretary of the national security and defense council",
        "nsdc_secretary",
    ),
    (
        "national security and defence council secretary",
        "nsdc_secretary",
    ),
    (
        "national security and defense council secretary",
        "nsdc_secretary",
    ),
    ("nsdc secretary", "nsdc_secretary"),
    ("security council secretary", "security_council_secretary"),
    (
        "secretary of the security council",
        "security_council_secretary",
    ),
    (
        "head of the presidential office",
        "head_of_presidential_office",
    ),
    ("head of presidential office", "head_of_presidential_office"),
    (
        "head of the office of the president",
        "head_of_presidential_office",
    ),
    (
        "head of the president s office",
        "head_of_presidential_office",
    ),
    ("presidential chief of staff", "head_of_presidential_office"),
    ("chief of staff", "head_of_presidential_office"),
    ("presidential aide", "presidential_aide"),
    ("kremlin aide", "presidential_aide"),
    ("aide", "presidential_aide"),
    ("spokesman", "spokesperson"),
    ("spokeswoman", "spokesperson"),
    ("spokesperson", "spokesperson"),
    ("press secretary", "spokesperson"),
    // diplomacy and talks
    ("envoy", "envoy"),
    ("special envoy", "envoy"),
    ("peace envoy", "envoy"),
    ("special representative", "envoy"),
    ("ambassador", "ambassador"),
    ("chief negotiator", "chief_negotiator"),
    ("lead negotiator", "chief_negotiator"),
    ("top negotiator", "chief_negotiator"),
    ("head of delegation", "chief_negotiator"),
    ("head of the delegation", "chief_negotiator"),
    ("delegation head", "chief_negotiator"),
    ("delegation chief", "chief_negotiator"),
    // military and intelligence
    ("intelligence chief", "intelligence_chief"),
    ("spy chief", "intelligence_chief"),
    ("head of intelligence", "intelligence_chief"),
    ("head of military intelligence", "intelligence_chief"),
    ("director of national intelligence", "intelligence_chief"),
    ("army chief", "army_chief"),
    ("army chief of staff", "army_chief"),
    ("chief of army staff", "army_chief"),
    ("chief of the army staff", "army_chief"),
    ("chief of the general staff", "army_chief"),
    ("chief of general staff", "army_chief"),
    ("military chief", "army_chief"),
    ("military chief of staff", "army_chief"),
    ("idf chief of staff", "army_chief"),
    ("chief of defence staff", "army_chief"),
    ("chief of the defence staff", "army_chief"),
    ("chief of defence forces", "army_chief"),
    ("chief of staff of the armed forces", "army_chief"),
    ("armed forces chief", "army_chief"),
    ("commander in chief", "commander_in_chief"),
    ("commander", "commander"),
    // organisations
    ("secretary general", "secretary_general"),
    (
        "president of the european commission",
        "commission_president",
    ),
    ("european commission president", "commission_president"),
    ("commission president", "commission_president"),
    ("president of the european council", "council_president"),
    ("european council president", "council_president"),
    ("high representative", "high_representative"),
    ("foreign policy chief", "high_representative"),
    ("leader", "leader"),
    ("sultan", "sultan"),
    ("speaker", "parliament_speaker"),
    ("parliament speaker", "parliament_speaker"),
    ("speaker of parliament", "parliament_speaker"),
    ("speaker of the parliament", "parliament_speaker"),
    ("director general", "director_general"),
];

/// Maps a role wording found in text to its canonical key.
///
/// The text may carry a country or qualifier around the role ("Ukrainian
/// Defence Minister", "former U.S. Secretary of State"): the longest known
/// phrase inside it decides (ties: the earliest). Qualifiers such as
/// "former" or "acting" are ignored here; the caller decides what they mean.
/// A deputy word ("deputy", "vice", "assistant", "under") right before the
/// phrase turns minister keys into their `deputy_` key and any other key into
/// `None`, so that a deputy is never resolved to the holder of the full post.
/// Returns `None` for text holding no role phrase.
///
/// Canonical keys are returned unchanged (`canonical_role("defence_minister")`
/// is `Some("defence_minister")`), so files may use keys or wordings.
pub fn canonical_role(text: &str) -> Option<&'static str> {
    let trimmed = text.trim();
    if let Some(key) = ROLE_KEYS.iter().find(|k| **k == trimmed) {
        return Some(key);
    }
    if trimmed.contains('_') {
        // An identifier, not press wording: a custom key ("senate_president")
        // must not be read as the phrase it contains ("president").
        return None;
    }
    let norm = normalize(text);
    let tokens: Vec<&str> = norm.split(' ').filter(|t| !t.is_empty()).collect();
    // (start, length, key) of the best match so far.
    let mut best: Option<(usize, usize, &'static str)> = None;
    for (phrase, key) in PHRASES {
        let p: Vec<&str> = phrase.split(' ').collect();
        if p.len() > tokens.len() {
            continue;
        }
        let Some(start) = (0..=tokens.len() - p.len()).find(|&s| tokens[s..s + p.len()] == p[..])
        else {
            continue;
        };
        let better = match best {
            None => true,
            Some((bs, bl, _)) => p.len() > bl || (p.len() == bl && start < bs),
        };
        if better {
            best = Some((start, p.len(), key));
        }
    }
    let (start, _, key) = best?;
    // Look at up to two words before the phrase: "first deputy prime minister".
    let before = &tokens[start.saturating_sub(2)..start];
    let deputy = before.iter().any(|t| DEPUTY_WORDS.contains(t))
        && !matches!(key, "vice_president" | "deputy_prime_minister");
    if !deputy {
        return Some(key);
    }
    if HAS_DEPUTY.contains(&key) {
        return ROLE_KEYS
            .iter()
            .find(|k| k.strip_prefix("deputy_") == Some(key))
            .copied();
    }
    None
}

/// The role key for `text`: a listed key, a custom `snake_case` key kept as
/// is, or the key of a press wording. Used for file titles and queries.
pub(crate) fn role_key(text: &str) -> Option<std::borrow::Cow<'static, str>> {
    let text = text.trim();
    match canonical_role(text) {
        Some(key) => Some(key.into()),
        None if is_custom_key(text) => Some(text.to_string().into()),
        None => None,
    }
}

/// Whether `text` is acceptable as a role key in a file: a known key, or a
/// custom lower-case `snake_case` identifier.
pub(crate) fn is_custom_key(text: &str) -> bool {
    !text.is_empty()
        && text.starts_with(|c: char| c.is_ascii_lowercase())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phrase_maps_to_a_listed_key() {
        for (phrase, key) in PHRASES {
            assert!(
                ROLE_KEYS.contains(key),
                "{phrase} -> {key} not in ROLE_KEYS"
            );
        }
        for key in ROLE_KEYS {
            assert_eq!(canonical_role(key), Some(*key));
        }
    }
}
