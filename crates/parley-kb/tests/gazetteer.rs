//! The GeoNames gazetteer merged into the knowledge base: towns found, words
//! and names kept out, same-named cities ranked and chosen by the document,
//! hand entries winning.

use parley_kb::{COLLISION_MIN_POPULATION, CityOrigin, KnowledgeBase, Target};

fn kb() -> &'static KnowledgeBase {
    static KB: std::sync::OnceLock<KnowledgeBase> = std::sync::OnceLock::new();
    KB.get_or_init(|| KnowledgeBase::bundled().expect("bundled knowledge base loads"))
}

fn countries(name: &str) -> Vec<String> {
    kb().places(name)
        .iter()
        .map(|c| c.country.clone())
        .collect()
}

#[test]
fn towns_missing_from_the_hand_list_are_found_with_coordinates() {
    for (form, name, country) in [
        ("Latakia", "Latakia", "SYR"),
        ("Lattakia", "Latakia", "SYR"),
        ("Tartus", "Tartus", "SYR"),
        ("Tartous", "Tartus", "SYR"),
        ("Kassala", "Kassala", "SDN"),
        ("Kismayo", "Kismayo", "SOM"),
        ("Kismaayo", "Kismayo", "SOM"),
        ("Sittwe", "Sittwe", "MMR"),
        ("Cox's Bazar", "Cox's Bazar", "BGD"),
        ("Cox’s Bazar", "Cox's Bazar", "BGD"),
        ("Timbuktu", "Timbuktu", "MLI"),
        ("Timbuctu", "Timbuktu", "MLI"),
    ] {
        let city = kb()
            .city(form)
            .unwrap_or_else(|| panic!("{form} not found"));
        assert_eq!((city.name.as_str(), city.country.as_str()), (name, country));
        assert_eq!(city.origin, CityOrigin::Gazetteer, "{form}");
        let (lat, lon) = city.coordinates().expect("coordinates");
        assert!((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon));
        assert!(city.population.unwrap() >= 15_000, "{form}");
        assert!(city.geonames_id.is_some(), "{form}");
        // And through the surface dictionary, as the extractor sees it.
        assert!(
            kb().lookup(form)
                .iter()
                .any(|h| matches!(&h.target, Target::City { country: c, .. } if c == country)),
            "{form}"
        );
    }
    let tartus = kb().city("Tartus").unwrap();
    assert!((tartus.lat.unwrap() - 34.889).abs() < 0.01);
    assert!((tartus.lon.unwrap() - 35.887).abs() < 0.01);
    // Under 15,000 inhabitants, so hand-listed with GeoNames' coordinates.
    let gabala = kb().city("Gabala").unwrap();
    assert_eq!(
        (gabala.country.as_str(), gabala.origin),
        ("AZE", CityOrigin::Hand)
    );
    assert!(gabala.coordinates().is_some());
}

#[test]
fn hand_listed_cities_get_gazetteer_coordinates_and_keep_their_names() {
    let kyiv = kb().city("Kyiv").unwrap();
    assert_eq!(
        (kyiv.name.as_str(), kyiv.origin),
        ("Kyiv", CityOrigin::Hand)
    );
    let (lat, lon) = kyiv.coordinates().unwrap();
    assert!(
        (lat - 50.45).abs() < 0.1 && (lon - 30.52).abs() < 0.1,
        "{lat},{lon}"
    );
    assert!(kyiv.population.unwrap() > 2_000_000);
    // GeoNames spells it "Zaporizhzhya"; the hand name stays, the spelling joins it.
    let z = kb().city("Zaporizhzhya").unwrap();
    assert_eq!(
        (z.name.as_str(), z.origin),
        ("Zaporizhzhia", CityOrigin::Hand)
    );
    assert_eq!(countries("Zaporizhzhia"), ["UKR"]);
    // Every hand-listed city of the bundled list that GeoNames has gets coordinates.
    let hand: Vec<_> = kb()
        .cities
        .iter()
        .filter(|c| c.origin == CityOrigin::Hand)
        .collect();
    let located = hand.iter().filter(|c| c.coordinates().is_some()).count();
    assert!(
        located * 10 >= hand.len() * 9,
        "{located} of {}",
        hand.len()
    );
    // Hand cities come first, then the gazetteer's by population.
    let first_gazetteer = kb()
        .cities
        .iter()
        .position(|c| c.origin == CityOrigin::Gazetteer)
        .unwrap();
    assert_eq!(first_gazetteer, hand.len());
    let sizes: Vec<u64> = kb().cities[first_gazetteer..]
        .iter()
        .map(|c| c.population.unwrap())
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]));
}

#[test]
fn english_words_and_names_do_not_become_places() {
    // Words ("Reading", "Mobile", "Bath", "Split", "Of"), first names
    // ("Victoria", "Marion"), surnames ("Mardan" by the hand stop list,
    // "Rubio" by the census).
    for form in [
        "Reading", "Mobile", "Bath", "Split", "Of", "Nice", "Victoria", "Marion", "Mardan",
        "Rubio", "Buffalo", "Police", "March", "Hassan", "Vladimir", "Ismail",
    ] {
        assert!(
            kb().places(form).is_empty(),
            "{form} is a place: {:?}",
            countries(form)
        );
        assert!(
            !kb()
                .lookup(form)
                .iter()
                .any(|h| matches!(h.target, Target::City { .. })),
            "{form}"
        );
    }
    // A state's name is never a gazetteer town (Lebanon, Pennsylvania;
    // Jordan, Utah is too small anyway).
    for form in ["Lebanon", "Jordan", "Georgia", "Israel"] {
        assert!(
            kb().places(form).is_empty(),
            "{form}: {:?}",
            countries(form)
        );
    }
    // An alternate name that is another name, not a spelling, is not kept:
    // Rosetta is "Rashid" in Arabic, Jerusalem holds "Salem".
    assert!(kb().places("Rashid").is_empty());
    assert!(!countries("Salem").contains(&"ISR".to_string()));
}

#[test]
fn names_of_people_and_organisations_need_a_large_city() {
    // A user's person whose surname is a gazetteer town of 458,000: the town
    // loses that form. A city over the threshold keeps it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("people.toml"),
        "[[person]]\nname = \"Jane Tartus\"\ncountry = \"NOR\"\n\n\
         [[person]]\nname = \"John Aleppo\"\ncountry = \"NOR\"\n",
    )
    .unwrap();
    let kb = KnowledgeBase::load(Some(dir.path())).unwrap();
    assert!(kb.places("Tartus").is_empty());
    assert!(
        kb.places("Tartous").is_empty(),
        "a city without its name is dropped whole"
    );
    let aleppo = kb.city("Aleppo").unwrap();
    assert!(aleppo.population.unwrap() >= COLLISION_MIN_POPULATION);
}

#[test]
fn same_named_cities_are_chosen_by_the_document_countries() {
    // Tripoli: Libya's is hand-listed (first), Lebanon's from GeoNames.
    assert_eq!(countries("Tripoli")[..2], ["LBY", "LBN"]);
    let none: [&str; 0] = [];
    assert_eq!(kb().place("Tripoli", &none).unwrap().country, "LBY");
    assert_eq!(kb().place("Tripoli", &["LBN"]).unwrap().country, "LBN");
    assert_eq!(
        kb().place("Tripoli", &["USA", "LBY"]).unwrap().country,
        "LBY"
    );
    // Hyderabad: India's is the most populous, Pakistan's when the document names it.
    let hyderabad = kb().places("Hyderabad");
    assert_eq!(hyderabad[0].country, "IND");
    assert!(hyderabad[0].population > hyderabad[1].population);
    assert_eq!(kb().place("Hyderabad", &none).unwrap().country, "IND");
    assert_eq!(kb().place("Hyderabad", &["PAK"]).unwrap().country, "PAK");
    // Saint Petersburg: Russia's by default, Florida's in a US story.
    assert_eq!(
        kb().place("Saint Petersburg", &none).unwrap().country,
        "RUS"
    );
    assert_eq!(
        kb().place("St. Petersburg", &["USA"]).unwrap().country,
        "USA"
    );
    assert_eq!(kb().city_in("Hyderabad", "PAK").unwrap().country, "PAK");
    assert!(kb().city_in("Hyderabad", "NOR").is_none());
}

#[test]
fn a_hand_entry_wins_over_the_gazetteer() {
    // Bundled: "Qabala" is only Gabala, Azerbaijan (hand, 11,867): Qabula,
    // Pakistan (GeoNames, 52,495, under the namesake threshold) loses that
    // spelling and keeps its own name.
    assert_eq!(countries("Qabala"), ["AZE"]);
    assert_eq!(countries("Qabula"), ["PAK"]);
    // A user's entry: its coordinates replace GeoNames', its rank is a hand
    // entry's, its spelling a word the stop list would keep out.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cities.toml"),
        "[[city]]\nname = \"Hyderabad\"\ncountry = \"PAK\"\nlat = 25.4\nlon = 68.4\n\n\
         [[city]]\nname = \"Reading\"\ncountry = \"GBR\"\n",
    )
    .unwrap();
    let kb = KnowledgeBase::load(Some(dir.path())).unwrap();
    // Hand-listed, so ranked before the more populous Hyderabad, India.
    let h = kb.city("Hyderabad").unwrap();
    assert_eq!((h.country.as_str(), h.origin), ("PAK", CityOrigin::Hand));
    assert_eq!(kb.places("Hyderabad")[1].country, "IND");
    assert_eq!(h.coordinates(), Some((25.4, 68.4)));
    assert!(
        h.population.unwrap() > 1_000_000,
        "population lent by GeoNames"
    );
    assert_eq!(kb.places("Hyderabad").len(), 2, "not listed twice");
    let reading = kb.city("Reading").unwrap();
    assert_eq!(reading.country, "GBR");
    assert!(reading.coordinates().is_some());
    // Bad coordinates in a user file are refused with file and line.
    std::fs::write(
        dir.path().join("cities.toml"),
        "[[city]]\nname = \"Nowhere\"\ncountry = \"NOR\"\nlat = 95.0\nlon = 10.0\n",
    )
    .unwrap();
    let err = KnowledgeBase::load(Some(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("cities.toml:1: city Nowhere: latitude 95 is outside -90..90"),
        "{err}"
    );
}
