//! The committed JSON Schemas (`schemas/*.schema.json`) are the ones the
//! code generates: a change to the JSON form shows up in review as a change
//! to those files. Regenerate them with
//! `PARLEY_BLESS=1 cargo test -p parley-domain --test schema`.

use std::path::PathBuf;

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

#[test]
fn committed_schemas_match_the_code() {
    let bless = std::env::var_os("PARLEY_BLESS").is_some();
    let mut stale = Vec::new();
    for (name, schema) in parley_domain::json::schemas() {
        let path = schemas_dir().join(name);
        let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if bless {
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == generated => {}
            Ok(_) => stale.push(format!("{} differs from the code", path.display())),
            Err(e) => stale.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "{}\nregenerate with: PARLEY_BLESS=1 cargo test -p parley-domain --test schema",
        stale.join("\n")
    );
}
