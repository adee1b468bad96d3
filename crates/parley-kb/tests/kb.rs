//! Behaviour of the shipped knowledge base and of the loader.

use chrono::NaiveDate;
use parley_kb::{KbError, KnowledgeBase, OrgKind, Target, Via, canonical_role, normalize};

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn kb() -> KnowledgeBase {
    KnowledgeBase::bundled().expect("bundled knowledge base loads")
}

fn names(people: &[&parley_kb::Person]) -> Vec<String> {
    people.iter().map(|p| p.name.clone()).collect()
}

#[test]
fn bundled_has_every_iso_state_and_the_extras() {
    let kb = kb();
    assert!(kb.states.len() >= 240, "only {} states", kb.states.len());
    // Every ISO 3166-1 entry is present by alpha-3 and alpha-2.
    for c in rust_iso3166_codes() {
        assert!(kb.state(c).is_some(), "missing state {c}");
    }
    assert_eq!(kb.state("XKX").unwrap().name, "Kosovo");
    assert_eq!(kb.state("PSE").unwrap().name, "Palestine");
    assert_eq!(kb.state("UA").unwrap().code, "UKR");
    assert_eq!(kb.state("ukr").unwrap().alpha2, "UA");
    // Press names replace ISO's formal ones, which stay reachable as aliases.
    let iran = kb.state("IRN").unwrap();
    assert_eq!(iran.name, "Iran");
    assert!(
        iran.aliases
            .iter()
            .any(|a| a == "Iran (Islamic Republic of)")
    );
    assert_eq!(kb.actor_name("RUS"), Some("Russia"));
    assert_eq!(kb.actor_name("HAMAS"), Some("Hamas"));
    assert_eq!(kb.actor_name("NOPE"), None);
}

/// A few ISO codes, spelled out so the test does not just replay the loader.
fn rust_iso3166_codes() -> [&'static str; 12] {
    [
        "UKR", "RUS", "USA", "GBR", "SAU", "QAT", "COD", "RWA", "THA", "KHM", "ATA", "UMI",
    ]
}

#[test]
fn un_members_in_the_news_have_capitals_and_demonyms() {
    let kb = kb();
    for code in [
        "UKR", "RUS", "USA", "GBR", "FRA", "DEU", "TUR", "SAU", "QAT", "EGY", "ISR", "IRN", "LBN",
        "YEM", "SDN", "COD", "RWA", "THA", "KHM", "MYS", "IND", "PAK", "ARM", "AZE", "CHN",
    ] {
        let s = kb.state(code).unwrap();
        assert!(!s.capitals.is_empty(), "{code} has no capital");
        assert!(!s.demonyms.is_empty(), "{code} has no demonym");
    }
}

/// The 193 UN member states.
const UN_MEMBERS: [&str; 193] = [
    "AFG", "AGO", "ALB", "AND", "ARE", "ARG", "ARM", "ATG", "AUS", "AUT", "AZE", "BDI", "BEL",
    "BEN", "BFA", "BGD", "BGR", "BHR", "BHS", "BIH", "BLR", "BLZ", "BOL", "BRA", "BRB", "BRN",
    "BTN", "BWA", "CAF", "CAN", "CHE", "CHL", "CHN", "CIV", "CMR", "COD", "COG", "COL", "COM",
    "CPV", "CRI", "CUB", "CYP", "CZE", "DEU", "DJI", "DMA", "DNK", "DOM", "DZA", "ECU", "EGY",
    "ERI", "ESP", "EST", "ETH", "FIN", "FJI", "FRA", "FSM", "GAB", "GBR", "GEO", "GHA", "GIN",
    "GMB", "GNB", "GNQ", "GRC", "GRD", "GTM", "GUY", "HND", "HRV", "HTI", "HUN", "IDN", "IND",
    "IRL", "IRN", "IRQ", "ISL", "ISR", "ITA", "JAM", "JOR", "JPN", "KAZ", "KEN", "KGZ", "KHM",
    "KIR", "KNA", "KOR", "KWT", "LAO", "LBN", "LBR", "LBY", "LCA", "LIE", "LKA", "LSO", "LTU",
    "LUX", "LVA", "MAR", "MCO", "MDA", "MDG", "MDV", "MEX", "MHL", "MKD", "MLI", "MLT", "MMR",
    "MNE", "MNG", "MOZ", "MRT", "MUS", "MWI", "MYS", "NAM", "NER", "NGA", "NIC", "NLD", "NOR",
    "NPL", "NRU", "NZL", "OMN", "PAK", "PAN", "PER", "PHL", "PLW", "PNG", "POL", "PRK", "PRT",
    "PRY", "QAT", "ROU", "RUS", "RWA", "SAU", "SDN", "SEN", "SGP", "SLB", "SLE", "SLV", "SMR",
    "SOM", "SRB", "SSD", "STP", "SUR", "SVK", "SVN", "SWE", "SWZ", "SYC", "SYR", "TCD", "TGO",
    "THA", "TJK", "TKM", "TLS", "TON", "TTO", "TUN", "TUR", "TUV", "TZA", "UGA", "UKR", "URY",
    "USA", "UZB", "VCT", "VEN", "VNM", "VUT", "WSM", "YEM", "ZAF", "ZMB", "ZWE",
];

#[test]
fn every_un_member_and_observer_is_completed() {
    let kb = kb();
    for code in UN_MEMBERS.iter().chain(&["VAT", "PSE"]) {
        let s = kb.state(code).unwrap_or_else(|| panic!("missing {code}"));
        assert!(
            !s.name.contains('('),
            "{code} keeps ISO's formal name {}",
            s.name
        );
        // Nauru has no official capital.
        assert!(
            !s.capitals.is_empty() || *code == "NRU",
            "{code} has no capital"
        );
        assert!(
            !s.aliases.is_empty() || !s.demonyms.is_empty(),
            "{code} has neither alias nor demonym"
        );
    }
}

#[test]
fn metonyms_and_short_names_resolve_to_states() {
    let kb = kb();
    let state_hit = |form: &str, code: &str, via: Via| {
        let hits = kb.lookup(form);
        assert!(
            hits.iter()
                .any(|h| h.target == Target::State(code.into()) && h.via == via),
            "{form} -> {hits:?}, expected {code} via {via:?}"
        );
    };
    state_hit("the Kremlin", "RUS", Via::Seat);
    state_hit("Kremlin", "RUS", Via::Seat);
    state_hit("Kyiv", "UKR", Via::Capital);
    state_hit("Kiev", "UKR", Via::Capital);
    state_hit("the White House", "USA", Via::Seat);
    state_hit("Downing Street", "GBR", Via::Seat);
    state_hit("Élysée", "FRA", Via::Seat);
    state_hit("the U.S.", "USA", Via::Alias);
    state_hit("US", "USA", Via::Alias);
    state_hit("the UAE", "ARE", Via::Alias);
    state_hit("Türkiye", "TUR", Via::Alias);
    state_hit("Ukrainians", "UKR", Via::Demonym);
    state_hit("Saudi", "SAU", Via::Demonym);
    // Capitals are cities too: the resolver chooses place or government.
    assert!(kb.lookup("Kyiv").iter().any(|h| matches!(
        &h.target,
        Target::City { name, country } if name == "Kyiv" && country == "UKR"
    )));
    // Ambiguous short names surface every meaning.
    let congo: Vec<_> = kb
        .lookup("Congo")
        .iter()
        .map(|h| h.target.clone())
        .collect();
    assert!(congo.contains(&Target::State("COD".into())));
    assert!(congo.contains(&Target::State("COG".into())));
    assert!(kb.lookup("nowhere at all").is_empty());
}

#[test]
fn organisations_have_codes_kinds_and_demonyms() {
    let kb = kb();
    let houthis = kb.organisation("HOUTHIS").unwrap();
    assert_eq!(houthis.kind, OrgKind::ArmedGroup);
    assert_eq!(houthis.country.as_deref(), Some("YEM"));
    for form in ["Houthi", "Houthis", "Ansar Allah"] {
        assert!(
            kb.lookup(form)
                .iter()
                .any(|h| h.target == Target::Organisation("HOUTHIS".into())),
            "{form}"
        );
    }
    for code in [
        "UN",
        "EU",
        "NATO",
        "ASEAN",
        "AU",
        "ICRC",
        "HAMAS",
        "HEZBOLLAH",
        "M23",
    ] {
        assert!(kb.organisation(code).is_some(), "missing {code}");
    }
    assert_eq!(kb.organisation("icrc").unwrap().kind, OrgKind::Ngo);
    assert!(
        kb.lookup("U.N.")
            .iter()
            .any(|h| h.target == Target::Organisation("UN".into()))
    );
}

#[test]
fn talk_venues_are_cities_with_countries() {
    let kb = kb();
    assert!(kb.cities.len() >= 60);
    for (name, country) in [
        ("Riyadh", "SAU"),
        ("Jeddah", "SAU"),
        ("Istanbul", "TUR"),
        ("Doha", "QAT"),
        ("Geneva", "CHE"),
        ("Putrajaya", "MYS"),
        ("Anchorage", "USA"),
        ("Washington", "USA"),
        ("Kinshasa", "COD"),
    ] {
        assert_eq!(
            kb.city(name).map(|c| c.country.as_str()),
            Some(country),
            "{name}"
        );
    }
    // Case-, accent- and punctuation-insensitive, aliases included.
    assert_eq!(kb.city("SHARM EL SHEIKH").unwrap().name, "Sharm el-Sheikh");
    assert_eq!(kb.city("Genève").unwrap().name, "Geneva");
    assert_eq!(kb.city("Kiev").unwrap().name, "Kyiv");
    assert!(kb.city("Ruritania City").is_none());
}

#[test]
fn holders_follow_role_validity_dates() {
    let kb = kb();
    let march = day(2025, 3, 15);
    let august = day(2025, 8, 15);
    assert_eq!(
        names(&kb.holders("defence_minister", "UKR", march)),
        ["Rustem Umerov"]
    );
    assert_eq!(
        names(&kb.holders("defence_minister", "UKR", august)),
        ["Denys Shmyhal"]
    );
    // Press wording works as the role too, and the handover day belongs to
    // the new holder.
    assert_eq!(
        names(&kb.holders("Defense Minister", "UKR", day(2025, 7, 17))),
        ["Denys Shmyhal"]
    );
    assert_eq!(
        names(&kb.holders("Prime Minister", "UKR", august)),
        ["Yulia Svyrydenko"]
    );
    assert_eq!(
        names(&kb.holders("president", "USA", day(2025, 1, 19))),
        ["Joe Biden"]
    );
    assert_eq!(
        names(&kb.holders("president", "USA", day(2025, 1, 20))),
        ["Donald Trump"]
    );
    assert_eq!(
        names(&kb.holders("Secretary of State", "USA", march)),
        ["Marco Rubio"]
    );
    assert_eq!(
        names(&kb.holders("national security adviser", "USA", march)),
        ["Mike Waltz"]
    );
    assert_eq!(
        names(&kb.holders("national security adviser", "USA", august)),
        ["Marco Rubio"]
    );
    assert_eq!(
        names(&kb.holders("chancellor", "DEU", day(2025, 5, 5))),
        ["Olaf Scholz"]
    );
    assert!(kb.holders("defence_minister", "ATA", march).is_empty());

    let umerov = kb.person("per-rustem-umerov").unwrap();
    let titles = |d| {
        kb.roles_on(umerov, d)
            .map(|r| r.title.as_str())
            .collect::<Vec<_>>()
    };
    assert!(titles(march).contains(&"defence_minister"));
    assert!(!titles(august).contains(&"defence_minister"));
    assert!(titles(august).contains(&"nsdc_secretary"));
}

#[test]
fn people_have_ids_aliases_and_sides() {
    let kb = kb();
    assert!(kb.people.len() >= 80);
    let z = kb.person("per-volodymyr-zelensky").unwrap();
    assert_eq!(z.country.as_deref(), Some("UKR"));
    assert_eq!(z.gender.as_deref(), Some("male"));
    for form in ["Zelenskyy", "Zelenskiy", "Volodymyr Zelenskyy"] {
        assert!(
            kb.lookup(form)
                .iter()
                .any(|h| h.target == Target::Person(z.id.clone())),
            "{form}"
        );
    }
    assert!(
        kb.lookup("Steven Witkoff")
            .iter()
            .any(|h| h.target == Target::Person("per-steve-witkoff".into()))
    );
    assert!(kb.person("per-gideon-saar").is_some());
    // Ids are unique and every role points at a known state or organisation.
    let mut ids: Vec<&str> = kb.people.iter().map(|p| p.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), kb.people.len());
    for p in &kb.people {
        for r in &p.roles {
            assert!(kb.actor_name(&r.of).is_some(), "{} role of {}", p.id, r.of);
        }
    }
}

#[test]
fn canonical_role_table() {
    let cases = [
        ("Defense Minister", Some("defence_minister")),
        ("Minister of Defence", Some("defence_minister")),
        ("defence minister", Some("defence_minister")),
        ("Ukrainian Defence Minister", Some("defence_minister")),
        ("Secretary of War", Some("defence_minister")),
        ("Foreign Minister", Some("foreign_minister")),
        ("Secretary of State", Some("foreign_minister")),
        ("foreign secretary", Some("foreign_minister")),
        ("Minister of Foreign Affairs", Some("foreign_minister")),
        ("Deputy Foreign Minister", Some("deputy_foreign_minister")),
        ("Deputy Secretary of State", Some("deputy_foreign_minister")),
        ("President", Some("president")),
        ("former President", Some("president")),
        ("Vice President", Some("vice_president")),
        ("Prime Minister", Some("prime_minister")),
        ("premier", Some("prime_minister")),
        ("First Deputy Prime Minister", Some("deputy_prime_minister")),
        (
            "National Security Advisor",
            Some("national_security_adviser"),
        ),
        (
            "national security adviser",
            Some("national_security_adviser"),
        ),
        (
            "head of the presidential office",
            Some("head_of_presidential_office"),
        ),
        ("chief of staff", Some("head_of_presidential_office")),
        ("deputy chief of staff", None),
        ("army chief of staff", Some("army_chief")),
        ("special envoy", Some("envoy")),
        ("envoy", Some("envoy")),
        ("chief negotiator", Some("chief_negotiator")),
        ("spokesman", Some("spokesperson")),
        ("Kremlin spokesperson", Some("spokesperson")),
        ("press secretary", Some("spokesperson")),
        (
            "Secretary of the National Security and Defence Council",
            Some("nsdc_secretary"),
        ),
        ("crown prince", Some("crown_prince")),
        ("King", Some("king")),
        ("Emir", Some("emir")),
        ("Chancellor", Some("chancellor")),
        ("Chancellor of the Exchequer", Some("finance_minister")),
        ("presidential aide", Some("presidential_aide")),
        ("army chief", Some("army_chief")),
        ("commander", Some("commander")),
        ("commander-in-chief", Some("commander_in_chief")),
        ("UN Secretary-General", Some("secretary_general")),
        ("EU foreign policy chief", Some("high_representative")),
        (
            "President of the European Commission",
            Some("commission_president"),
        ),
        ("senate_president", None),
        ("carpenter", None),
        ("", None),
    ];
    for (text, expected) in cases {
        assert_eq!(canonical_role(text), expected, "{text:?}");
    }
}

#[test]
fn normalize_cases() {
    assert_eq!(normalize("U.S."), "us");
    assert_eq!(normalize("the U.S."), "the us");
    assert_eq!(normalize("Erdoğan"), "erdogan");
    assert_eq!(normalize("Zelensky's"), "zelensky s");
    assert_eq!(normalize("Zelensky’s"), "zelensky s");
    assert_eq!(normalize("Sa'ar"), "saar");
    assert_eq!(normalize("Sharm el-Sheikh"), "sharm el sheikh");
    assert_eq!(normalize("  KYIV,  Ukraine  "), "kyiv ukraine");
    assert_eq!(normalize("Ｆｕｌｌ"), "full");
}

#[test]
fn malformed_toml_names_file_and_line() {
    let text = "[[city]]\nname = \"Riyadh\"\ncountry = \"SAU\"\n\n[[city]]\nname = \"Oops\ncountry = \"SAU\"\n";
    match KnowledgeBase::from_toml_str("user/cities.toml", text) {
        Err(KbError::Parse { file, line, .. }) => {
            assert_eq!(file, "user/cities.toml");
            assert_eq!(line, 6);
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    // Unknown keys are refused too (a typo must not silently drop data).
    let text = "[[person]]\nname = \"A B\"\nalias = [\"x\"]\n";
    match KnowledgeBase::from_toml_str("p.toml", text) {
        Err(KbError::Parse { line, reason, .. }) => {
            assert_eq!(line, 3);
            assert!(reason.contains("alias"), "{reason}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn unknown_country_in_a_city_is_refused_with_its_line() {
    let text = "# cities\n[[city]]\nname = \"Doha\"\ncountry = \"QAT\"\n\n[[city]]\nname = \"Nowhere\"\ncountry = \"XYZ\"\n";
    let err = KnowledgeBase::from_toml_str("extra.toml", text).unwrap_err();
    match &err {
        KbError::Invalid { file, line, reason } => {
            assert_eq!(file, "extra.toml");
            assert_eq!(*line, Some(8));
            assert!(reason.contains("XYZ"), "{reason}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(err.to_string().starts_with("extra.toml:8:"), "{err}");
}

#[test]
fn bad_dates_and_duplicates_are_refused() {
    let reversed = "[[person]]\nname = \"A B\"\nroles = [\n  { title = \"president\", of = \"UKR\", from = 2025-02-01, to = 2025-01-01 },\n]\n";
    assert!(matches!(
        KnowledgeBase::from_toml_str("r.toml", reversed),
        Err(KbError::Invalid { line: Some(4), .. })
    ));
    let bad_date = "[[person]]\nname = \"A B\"\nroles = [{ title = \"president\", of = \"UKR\", from = \"2025-02-30\" }]\n";
    assert!(matches!(
        KnowledgeBase::from_toml_str("d.toml", bad_date),
        Err(KbError::Invalid { line: Some(3), .. })
    ));
    let dup = "[[person]]\nname = \"A B\"\n\n[[person]]\nid = \"per-a-b\"\nname = \"A. B.\"\n";
    assert!(matches!(
        KnowledgeBase::from_toml_str("dup.toml", dup),
        Err(KbError::Invalid { line: Some(4), .. })
    ));
    let bad_of = "[[person]]\nname = \"A B\"\nroles = [{ title = \"leader\", of = \"NOBODY\" }]\n";
    assert!(matches!(
        KnowledgeBase::from_toml_str("of.toml", bad_of),
        Err(KbError::Invalid { line: Some(3), .. })
    ));
    let bad_role =
        "[[person]]\nname = \"A B\"\nroles = [{ title = \"Grand Poobah!\", of = \"UKR\" }]\n";
    assert!(matches!(
        KnowledgeBase::from_toml_str("t.toml", bad_role),
        Err(KbError::Invalid { line: Some(3), .. })
    ));
}

#[test]
fn a_user_directory_adds_people_and_aliases() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("10-people.toml"),
        r#"
[[person]]
name = "Jane Example"
aliases = ["J. Example"]
country = "NOR"
gender = "female"
roles = [{ title = "Special Envoy", of = "NOR", from = 2025-06-01 }]

[[person]]
id = "per-rustem-umerov"
aliases = ["Rustem Umarov"]

[[city]]
name = "Kyiv"
country = "UKR"
aliases = ["Kyjiw"]
"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not toml, ignored").unwrap();

    let kb = KnowledgeBase::load(Some(dir.path())).unwrap();
    let jane = kb.person("per-jane-example").unwrap();
    assert_eq!(jane.roles[0].title, "envoy");
    assert_eq!(
        names(&kb.holders("envoy", "NOR", day(2025, 7, 1))),
        ["Jane Example"]
    );
    assert!(kb.holders("envoy", "NOR", day(2025, 5, 1)).is_empty());
    // Extending an existing person keeps what was bundled.
    let umerov = kb.person("per-rustem-umerov").unwrap();
    assert_eq!(umerov.name, "Rustem Umerov");
    assert!(umerov.aliases.iter().any(|a| a == "Rustem Umarov"));
    assert_eq!(umerov.roles.len(), kb_umerov_roles());
    assert_eq!(kb.city("Kyjiw").unwrap().name, "Kyiv");
    assert_eq!(
        kb.cities.len(),
        KnowledgeBase::bundled().unwrap().cities.len()
    );

    // A broken user file stops loading and names itself.
    std::fs::write(
        dir.path().join("20-bad.toml"),
        "[[city]]\nname = \"X\"\ncountry = \"ZZZ\"\n",
    )
    .unwrap();
    let err = KnowledgeBase::load(Some(dir.path())).unwrap_err();
    assert!(err.to_string().contains("20-bad.toml:3"), "{err}");
}

fn kb_umerov_roles() -> usize {
    kb().person("per-rustem-umerov").unwrap().roles.len()
}

#[test]
fn merge_appends_aliases_and_later_dates_win() {
    let mut kb = kb();
    let extra = KnowledgeBase::from_toml_str(
        "fix.toml",
        r#"
[[organisation]]
code = "M23"
aliases = ["Mouvement du 23-Mars"]

[[state]]
code = "IRN"
seats = ["Pasteur Street"]

[[person]]
id = "per-rustem-umerov"
roles = [{ title = "nsdc_secretary", of = "UKR", from = 2025-07-17, to = 2030-01-01 }]
"#,
    )
    .unwrap();
    kb.merge(extra);
    assert!(
        kb.lookup("Mouvement du 23-Mars")
            .iter()
            .any(|h| h.target == Target::Organisation("M23".into()))
    );
    let umerov = kb.person("per-rustem-umerov").unwrap();
    let nsdc: Vec<_> = umerov
        .roles
        .iter()
        .filter(|r| r.title == "nsdc_secretary")
        .collect();
    assert_eq!(nsdc.len(), 1);
    assert_eq!(nsdc[0].to, Some(day(2030, 1, 1)));
    assert_eq!(kb.organisation("M23").unwrap().kind, OrgKind::ArmedGroup);
    // A patch that names no state keeps the press name, not ISO's.
    assert_eq!(kb.state("IRN").unwrap().name, "Iran");
    assert!(
        kb.lookup("Pasteur Street")
            .iter()
            .any(|h| h.target == Target::State("IRN".into()) && h.via == Via::Seat)
    );
}

#[test]
fn a_new_state_needs_codes_and_name() {
    let text = "[[state]]\ncode = \"ZZZ\"\n";
    assert!(matches!(
        KnowledgeBase::from_toml_str("s.toml", text),
        Err(KbError::Invalid { line: Some(1), .. })
    ));
    let text = "[[state]]\ncode = \"ZZZ\"\nalpha2 = \"ZZ\"\nname = \"Zedland\"\ncapitals = [\"Zed City\"]\n";
    let kb = KnowledgeBase::from_toml_str("s.toml", text).unwrap();
    assert_eq!(kb.state("ZZ").unwrap().name, "Zedland");
}

#[test]
fn the_two_congos() {
    let kb = kb();
    let state = |form: &str| -> Vec<String> {
        kb.lookup(form)
            .iter()
            .filter_map(|h| match &h.target {
                Target::State(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    };
    for form in [
        "DR Congo",
        "DRC",
        "D.R.C.",
        "Democratic Republic of the Congo",
        "Democratic Republic of Congo",
        "Congo-Kinshasa",
        "Kinshasa",
    ] {
        assert_eq!(state(form), ["COD"], "{form}");
    }
    for form in [
        "Congo-Brazzaville",
        "Republic of the Congo",
        "Republic of Congo",
        "Congo Republic",
        "Brazzaville",
    ] {
        assert_eq!(state(form), ["COG"], "{form}");
    }
    // Shared forms list the default reading (DR Congo) first.
    assert_eq!(state("Congo"), ["COD", "COG"]);
    assert_eq!(state("Congolese"), ["COD", "COG"]);
    let pick = |form: &str, context: &str| match kb.disambiguate(form, context) {
        Some(Target::State(c)) => Some(c.clone()),
        other => panic!("{form} in {context:?}: {other:?}"),
    };
    let cod = Some("COD".to_string());
    let cog = Some("COG".to_string());
    assert_eq!(
        pick(
            "Congo",
            "Congo and M23 rebels met in Doha. Kinshasa said the talks went well."
        ),
        cod
    );
    assert_eq!(
        pick(
            "Congo",
            "The Democratic Republic of the Congo and Rwanda signed the deal."
        ),
        cod,
        "the Republic's name inside the DRC's does not count"
    );
    assert_eq!(
        pick(
            "Congo",
            "President Denis Sassou Nguesso spoke in Brazzaville on Monday."
        ),
        cog
    );
    assert_eq!(
        pick("Congolese", "Congo-Brazzaville hosted the summit."),
        cog
    );
    // No clue: the default reading.
    assert_eq!(pick("Congo", "Congo signed the agreement."), cod);
    // Both named: no answer.
    assert_eq!(
        kb.disambiguate("Congo", "Leaders from Kinshasa and Brazzaville met."),
        None
    );
    // Unshared forms are unaffected by the context.
    assert_eq!(
        kb.disambiguate("Ukraine", "Brazzaville"),
        Some(&Target::State("UKR".into()))
    );
}

#[test]
fn a_syntax_error_in_a_user_file_stops_start_up_with_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("people.toml"),
        "[[person]]\nname = \"Ada Example\"\nroles = [\n  { title = \"president\", of = \"UKR\", from = 2025-13-01 },\n]\n",
    )
    .unwrap();
    let err = KnowledgeBase::load(Some(dir.path())).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("people.toml:4"), "{text}");
    match err {
        KbError::Parse { line, reason, .. } => {
            assert_eq!(line, 4);
            assert!(!reason.is_empty());
        }
        KbError::Invalid { line, reason, .. } => {
            assert_eq!(line, Some(4));
            assert!(!reason.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // An unknown field, e.g. a misspelt `default_for`, too.
    std::fs::write(
        dir.path().join("people.toml"),
        "[[state]]\ncode = \"COG\"\ndefault_fro = [\"Congo\"]\n",
    )
    .unwrap();
    let text = KnowledgeBase::load(Some(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(text.contains("people.toml:3"), "{text}");
    assert!(text.contains("default_fro"), "{text}");
}
