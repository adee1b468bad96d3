//! The name index behind [`Resolver::resolve_mention`](crate::Resolver):
//! every alias of every entity, normalised once when it is learned, with the
//! blocks that keep fuzzy matching to a handful of comparisons.
//!
//! Matching a mention used to normalise and score every alias of every
//! entity (about a thousand `strsim` calls per mention). Now:
//! 1. exact hits come from a hash map of normalised aliases;
//! 2. fuzzy candidates come only from the block of aliases whose family name
//!    starts with the same letter as the mention's;
//! 3. inside the block a letter histogram gives a lower bound on the edit
//!    distance and an upper bound on Jaro-Winkler, so aliases that cannot
//!    pass the thresholds are dropped before any `strsim` call. The bounds
//!    are exact, so blocking changes speed, never results.

use std::collections::HashMap;

/// Letters and digits: the only characters a normalised token holds.
const ALPHABET: usize = 36;

/// Letter counts of a token, for the bounds, with a bit mask of the
/// letters present for a first, cheaper bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Histogram {
    counts: [u16; ALPHABET],
    present: u64,
}

impl Histogram {
    /// Counts the letters and digits of a normalised token.
    pub(crate) fn of(token: &str) -> Histogram {
        let mut counts = [0u16; ALPHABET];
        let mut present = 0u64;
        for b in token.bytes() {
            let slot = match b {
                b'a'..=b'z' => usize::from(b - b'a'),
                b'0'..=b'9' => 26 + usize::from(b - b'0'),
                _ => continue,
            };
            counts[slot] = counts[slot].saturating_add(1);
            present |= 1 << slot;
        }
        Histogram { counts, present }
    }

    /// Cheap version of [`compare`](Self::compare) from the masks alone:
    /// (upper bound of the characters in common, lower bound of the
    /// distance). Each letter present on one side only costs an edit and
    /// cannot be in common.
    fn compare_masks(&self, la: usize, other: &Histogram, lb: usize) -> (usize, usize) {
        let only_a = (self.present & !other.present).count_ones() as usize;
        let only_b = (other.present & !self.present).count_ones() as usize;
        let common = la.saturating_sub(only_a).min(lb.saturating_sub(only_b));
        (common, only_a.max(only_b))
    }

    /// (characters in common, lower bound of the Levenshtein distance).
    ///
    /// Every edit fixes at most one surplus character on each side, so the
    /// distance is at least the larger of the two surpluses; Jaro counts at
    /// most the common characters as matches.
    fn compare(&self, other: &Histogram) -> (usize, usize) {
        let (mut common, mut surplus_a, mut surplus_b) = (0usize, 0usize, 0usize);
        for (a, b) in self.counts.iter().zip(other.counts.iter()) {
            let (a, b) = (usize::from(*a), usize::from(*b));
            common += a.min(b);
            surplus_a += a.saturating_sub(b);
            surplus_b += b.saturating_sub(a);
        }
        (common, surplus_a.max(surplus_b))
    }
}

/// Whether two family names may pass `lev <= budget || jaro_winkler >= min_jw`.
/// `false` means they certainly cannot; `true` means score them.
pub(crate) fn may_match(
    a: (&str, &Histogram),
    b: (&str, &Histogram),
    budget: usize,
    min_jw: f64,
) -> bool {
    let (la, lb) = (a.0.len(), b.0.len());
    let possible = |(common, lev_lower): (usize, usize)| {
        if lev_lower <= budget {
            return true;
        }
        if common == 0 {
            return false;
        }
        let c = common as f64;
        // Jaro <= (m/|a| + m/|b| + 1) / 3 with m <= common; Winkler adds at
        // most 0.4 of the remainder.
        let jaro = (c / la as f64 + c / lb as f64 + 1.0) / 3.0;
        let jw = jaro + 0.4 * (1.0 - jaro);
        jw + 1e-9 >= min_jw
    };
    // Length difference alone, then the masks, then the counts: each bound
    // is tighter and dearer than the one before.
    let by_length = (la.min(lb), la.abs_diff(lb));
    possible(by_length) && possible(a.1.compare_masks(la, b.1, lb)) && possible(a.1.compare(b.1))
}

/// One alias of one entity, normalised.
#[derive(Debug, Clone)]
pub(crate) struct NameEntry {
    /// Entity id as registered (merges are followed at query time).
    pub(crate) entity_id: String,
    /// The alias as written, to remove it on a split.
    pub(crate) alias: String,
    /// Normalised alias.
    pub(crate) norm: String,
    /// Byte length of the first token of `norm`.
    given_len: usize,
    /// Byte offset of the last token of `norm`.
    family_at: usize,
    /// Letter counts of the family name.
    pub(crate) family_hist: Histogram,
    /// False once the alias was moved away by a split.
    pub(crate) live: bool,
}

impl NameEntry {
    /// First token ("volodymyr").
    pub(crate) fn given(&self) -> &str {
        &self.norm[..self.given_len]
    }

    /// Last token ("zelensky").
    pub(crate) fn family(&self) -> &str {
        &self.norm[self.family_at..]
    }

    /// Two tokens or more: a full name.
    pub(crate) fn is_full(&self) -> bool {
        self.family_at > 0
    }
}

/// All aliases, normalised, with their blocks.
#[derive(Debug, Clone, Default)]
pub(crate) struct NameIndex {
    entries: Vec<NameEntry>,
    /// Full names (two tokens or more) by the first byte of the family name.
    by_family_initial: HashMap<u8, Vec<u32>>,
    /// Full names by family name: who a bare surname may be.
    by_family: HashMap<String, Vec<u32>>,
}

impl NameIndex {
    /// Indexes `alias` of `entity_id` (normalised as `norm`). Callers add
    /// an alias once (the entity's alias set tells them); a duplicate would
    /// only cost a second comparison.
    pub(crate) fn add(&mut self, entity_id: &str, alias: &str, norm: &str) {
        if norm.is_empty() {
            return;
        }
        let given_len = norm.find(' ').unwrap_or(norm.len());
        let family_at = norm.rfind(' ').map_or(0, |i| i + 1);
        let entry = NameEntry {
            entity_id: entity_id.to_owned(),
            alias: alias.to_owned(),
            norm: norm.to_owned(),
            given_len,
            family_at,
            family_hist: Histogram::of(&norm[family_at..]),
            live: true,
        };
        let at = self.entries.len() as u32;
        if entry.is_full() {
            let family = entry.family();
            self.by_family_initial
                .entry(family.as_bytes()[0])
                .or_default()
                .push(at);
            self.by_family
                .entry(family.to_owned())
                .or_default()
                .push(at);
        }
        self.entries.push(entry);
    }

    /// Marks `alias` of `entity_id` as gone (a split moved it).
    pub(crate) fn remove(&mut self, entity_id: &str, alias: &str) {
        for e in &mut self.entries {
            if e.entity_id == entity_id && e.alias == alias {
                e.live = false;
            }
        }
    }

    /// Live full names whose family name starts with `initial`.
    pub(crate) fn block(&self, initial: u8) -> impl Iterator<Item = &NameEntry> {
        self.by_family_initial
            .get(&initial)
            .into_iter()
            .flatten()
            .map(|&i| &self.entries[i as usize])
            .filter(|e| e.live)
    }

    /// Live full names with exactly this family name.
    pub(crate) fn with_family(&self, family: &str) -> impl Iterator<Item = &NameEntry> {
        self.by_family
            .get(family)
            .into_iter()
            .flatten()
            .map(|&i| &self.entries[i as usize])
            .filter(|e| e.live)
    }

    /// Every live alias (for the free-text search).
    pub(crate) fn all(&self) -> impl Iterator<Item = &NameEntry> {
        self.entries.iter().filter(|e| e.live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(len: usize) -> usize {
        match len {
            0..=4 => 0,
            5..=6 => 1,
            7..=10 => 2,
            _ => 3,
        }
    }

    /// The bounds never reject a pair the full scores would accept.
    #[test]
    fn bounds_never_drop_a_real_match() {
        let words = [
            "zelensky",
            "zelenskyy",
            "zelenskiy",
            "kellog",
            "kellogg",
            "umerov",
            "umarov",
            "witkoff",
            "witkof",
            "rubio",
            "rubia",
            "yermak",
            "jermak",
            "sybiha",
            "sybiga",
            "a",
            "ab",
            "ba",
            "abc",
            "cba",
            "erdogan",
            "erdoan",
            "netanyahu",
            "netanjahu",
            "al",
            "hayya",
            "haya",
            "lavrov",
            "lavrova",
            "peskov",
            "medinsky",
            "medinskiy",
            "dmitriev",
            "dmitryev",
            "kushner",
            "kuchner",
            "aaaa",
            "aaab",
            "x1",
            "1x",
        ];
        for a in words {
            for b in words {
                let lev = strsim::levenshtein(a, b);
                let jw = strsim::jaro_winkler(a, b);
                let bud = budget(a.len().max(b.len()));
                for min_jw in [0.8, 0.9, 0.95] {
                    let real = lev <= bud || jw >= min_jw;
                    let maybe =
                        may_match((a, &Histogram::of(a)), (b, &Histogram::of(b)), bud, min_jw);
                    assert!(!real || maybe, "{a} / {b} at {min_jw}");
                }
            }
        }
        // And they do reject clear non-matches.
        assert!(!may_match(
            ("zelensky", &Histogram::of("zelensky")),
            ("putin", &Histogram::of("putin")),
            2,
            0.95
        ));
    }

    #[test]
    fn entries_split_into_given_and_family() {
        let mut idx = NameIndex::default();
        idx.add("per-a", "Abdel Fattah el-Sisi", "abdel fattah el sisi");
        idx.add("per-a", "Sisi", "sisi");
        assert_eq!(idx.all().count(), 2);
        let e = idx.block(b's').next().unwrap();
        assert_eq!((e.given(), e.family()), ("abdel", "sisi"));
        assert_eq!(idx.with_family("sisi").count(), 1);
        idx.remove("per-a", "Abdel Fattah el-Sisi");
        assert_eq!(idx.with_family("sisi").count(), 0);
    }
}
