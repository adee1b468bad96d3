//! The extractor's rules as knowledge-base data: bundled definitions, user
//! extensions, and refusals with file and line.

use parley_kb::{KbError, KnowledgeBase};

fn load_user(file: &str, text: &str) -> Result<KnowledgeBase, KbError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(file), text).unwrap();
    KnowledgeBase::load(Some(dir.path()))
}

fn message(err: KbError) -> String {
    err.to_string()
}

#[test]
fn the_bundled_rules_define_lists_expressions_and_tables() {
    let kb = KnowledgeBase::bundled().unwrap();
    assert!(kb.rules.words("negation").iter().any(|w| w == "not"));
    assert!(kb.rules.pattern("talks").is_some());
    assert!(
        kb.rules
            .table("trigger_stems")
            .iter()
            .any(|(w, _)| w == "truce")
    );
    let origin = &kb.rules.cues["negation"].origin;
    assert_eq!(origin.file, "kb/rules/cues.toml");
}

#[test]
fn a_user_file_appends_and_removes_words() {
    let kb = load_user(
        "50-rules.toml",
        "[[cues]]\nname = \"negation\"\nwords = [\"nowhere near\"]\nremove = [\"despite\"]\n",
    )
    .unwrap();
    let words = kb.rules.words("negation");
    assert!(words.iter().any(|w| w == "nowhere near"));
    assert!(!words.iter().any(|w| w == "despite"));
    assert!(words.iter().any(|w| w == "not"), "bundled words stay");
}

#[test]
fn a_user_file_replaces_an_expression() {
    let kb = load_user(
        "50-rules.toml",
        "[[pattern]]\nname = \"violation\"\nregex = '''\\b(?:violat\\w*|flout\\w*)'''\n",
    )
    .unwrap();
    assert!(
        kb.rules
            .pattern("violation")
            .unwrap()
            .regex
            .contains("flout")
    );
}

#[test]
fn an_unknown_rule_name_is_refused_with_file_and_line() {
    let err = load_user(
        "50-rules.toml",
        "# my rules\n\n[[cues]]\nname = \"negatoin\"\nwords = [\"no way\"]\n",
    )
    .unwrap_err();
    let msg = message(err);
    assert!(msg.contains("50-rules.toml:3:"), "{msg}");
    assert!(msg.contains("unknown rule [[cues]] \"negatoin\""), "{msg}");
}

#[test]
fn words_that_could_never_match_are_refused() {
    let err = load_user(
        "50-rules.toml",
        "[[cues]]\nname = \"negation\"\nwords = [\n  \"ok\",\n  \"Erdoğan\",\n]\n",
    )
    .unwrap_err();
    let msg = message(err);
    assert!(msg.contains("50-rules.toml:5:"), "{msg}");
    assert!(msg.contains("is not ASCII"), "{msg}");
    let err = load_user(
        "50-rules.toml",
        "[[cues]]\nname = \"negation\"\nwords = [\"Never\"]\n",
    )
    .unwrap_err();
    assert!(message(err).contains("has capitals"));
}

#[test]
fn a_broken_expression_is_refused_with_its_line() {
    let err = load_user(
        "50-rules.toml",
        "\n[[pattern]]\nname = \"violation\"\nregex = '''\\b(?:violat'''\n",
    )
    .unwrap_err();
    let msg = message(err);
    assert!(msg.contains("50-rules.toml:2:"), "{msg}");
    assert!(msg.contains("pattern \"violation\""), "{msg}");
    assert!(msg.contains("unclosed group"), "{msg}");
}

#[test]
fn a_huge_expression_is_refused_by_its_size() {
    // Each counted repetition multiplies the compiled program: far past the limit.
    let err = load_user(
        "50-rules.toml",
        "[[pattern]]\nname = \"attack\"\nregex = '''(?:[a-z]{1000}){1000}attack'''\n",
    )
    .unwrap_err();
    let msg = message(err);
    assert!(msg.contains("50-rules.toml:1:"), "{msg}");
    assert!(msg.contains("compiles to more than"), "{msg}");
}

#[test]
fn a_table_value_outside_its_vocabulary_is_refused() {
    let err = load_user(
        "50-rules.toml",
        "[[table]]\nname = \"trigger_stems\"\nentries = [\n  [\"parley\", \"talks chat\"],\n]\n",
    )
    .unwrap_err();
    let msg = message(err);
    assert!(msg.contains("50-rules.toml:4:"), "{msg}");
    assert!(msg.contains("unknown value \"chat\""), "{msg}");
    let ok = load_user(
        "50-rules.toml",
        "[[table]]\nname = \"trigger_stems\"\nentries = [[\"parley\", \"talks\"]]\n",
    )
    .unwrap();
    assert!(
        ok.rules
            .table("trigger_stems")
            .iter()
            .any(|(w, v)| w == "parley" && v == "talks")
    );
}

#[test]
fn a_file_read_alone_merges_its_extended_list() {
    let mut kb = KnowledgeBase::bundled().unwrap();
    let extra = KnowledgeBase::from_toml_str(
        "extra.toml",
        "[[cues]]\nname = \"negation\"\nwords = [\"by no means\"]\nremove = [\"despite\"]\n",
    )
    .unwrap();
    kb.merge(extra);
    let words = kb.rules.words("negation");
    assert!(words.iter().any(|w| w == "by no means"));
    assert!(!words.iter().any(|w| w == "despite"));
    assert!(words.iter().any(|w| w == "not"));
}
