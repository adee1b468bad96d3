//! Text normalisation shared by every lookup in the knowledge base.
//!
//! The same function is applied to the stored names and to the text being
//! looked up, so the exact rules matter less than applying them on both
//! sides. The rules follow OpenSanctions' name normalisation.

use unicode_normalization::UnicodeNormalization;

/// Normalises a name or surface form for matching.
///
/// Steps, in order:
/// 1. Unicode NFKC (ligatures, full-width forms), then ASCII folding with
///    `deunicode` ("Erdoğan" -> "Erdogan", "Zelenskyy" stays).
/// 2. Lower case.
/// 3. Dots: a dot between two letters/digits or right after a one-letter
///    token is dropped, so abbreviations collapse ("U.S." -> "us",
///    "D.C." -> "dc"); any other dot separates words ("St. Petersburg" ->
///    "st petersburg").
/// 4. Apostrophes (`'`, `’`, `‘`, `ʼ`, `` ` ``): a possessive `'s` at the end
///    of a word is split off ("Zelensky's" -> "zelensky s"), an apostrophe
///    inside a word is dropped ("Sa'ar" -> "saar", "O'Brien" -> "obrien"),
///    any other apostrophe separates words ("Houthis'" -> "houthis").
/// 5. Every other non-alphanumeric character separates words; runs of
///    separators become a single space, trimmed at both ends
///    ("Sharm el-Sheikh" -> "sharm el sheikh").
pub fn normalize(text: &str) -> String {
    let nfkc: String = text.nfkc().collect();
    let folded = deunicode::deunicode(&nfkc).to_lowercase();
    let chars: Vec<char> = folded.chars().collect();
    let mut out = String::with_capacity(chars.len());
    // Whether a separator is pending: written lazily so that we never emit
    // leading, trailing or doubled spaces.
    let mut pending_space = false;
    let is_word = |c: char| c.is_ascii_alphanumeric();

    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        if is_word(c) {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
            continue;
        }
        let prev_word = prev.is_some_and(is_word);
        let next_word = next.is_some_and(is_word);
        match c {
            '.' => {
                // "U.S" (between letters) or "S." after a one-letter token.
                let single_letter_before = prev_word && (i < 2 || !is_word(chars[i - 2]));
                if (prev_word && next_word) || single_letter_before {
                    continue;
                }
                pending_space = true;
            }
            '\'' | '`' => {
                // deunicode maps ’ ‘ ʼ to '.
                if prev_word && next_word {
                    let possessive =
                        next == Some('s') && !chars.get(i + 2).copied().is_some_and(is_word);
                    if possessive {
                        pending_space = true;
                    }
                    continue;
                }
                pending_space = true;
            }
            _ => pending_space = true,
        }
    }
    out
}

/// Turns a name into the ASCII slug used in person ids ("per-" + slug).
pub(crate) fn slug(text: &str) -> String {
    normalize(text).replace(' ', "-")
}

/// Removes a leading "the " from a normalised key, so that "the Kremlin",
/// "Kremlin", "The Hague" and "Hague" meet in the index.
pub(crate) fn index_key(text: &str) -> String {
    let n = normalize(text);
    match n.strip_prefix("the ") {
        Some(rest) if !rest.is_empty() => rest.to_string(),
        _ => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviations_collapse() {
        assert_eq!(normalize("U.S."), "us");
        assert_eq!(normalize("the U.S. and the U.K."), "the us and the uk");
        assert_eq!(normalize("Washington, D.C."), "washington dc");
        assert_eq!(normalize("St. Petersburg"), "st petersburg");
    }

    #[test]
    fn accents_and_apostrophes() {
        assert_eq!(normalize("Erdoğan"), "erdogan");
        assert_eq!(normalize("Zelensky's"), "zelensky s");
        assert_eq!(normalize("Zelensky’s office"), "zelensky s office");
        assert_eq!(normalize("Gideon Sa'ar"), "gideon saar");
        assert_eq!(normalize("the Houthis' leader"), "the houthis leader");
        assert_eq!(normalize("  Sharm   el-Sheikh "), "sharm el sheikh");
        assert_eq!(normalize("Élysée"), "elysee");
    }

    #[test]
    fn index_key_drops_article() {
        assert_eq!(index_key("The Kremlin"), "kremlin");
        assert_eq!(index_key("the"), "the");
        assert_eq!(slug("Gideon Sa'ar"), "gideon-saar");
    }
}
