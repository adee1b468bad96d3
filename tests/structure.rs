//! The crate graph points inward: this test reads it with `cargo metadata`
//! and fails when a dependency the architecture forbids comes back, naming
//! the path that brings it in.
//!
//! It also holds the README's crate-graph diagram against the code. The
//! parts and the rules mirror the intended structure (README, "Crate
//! graph"): each part is a set of packages; "never" means no path of normal
//! or build dependencies leads from any package of one part to any package of
//! the other — and, like `cargo tree -p`, the first step may also be a
//! dev-dependency.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::process::Command;

/// Part name → the packages it is made of.
const PARTS: &[(&str, &[&str])] = &[
    ("Proto", &["parley-proto"]),
    ("Domain", &["parley-domain"]),
    ("Kb", &["parley-kb"]),
    ("Log", &["parley-log"]),
    ("Extract", &["parley-extract"]),
    ("Resolve", &["parley-resolve"]),
    ("Runtime", &["parley-runtime", "parley-telemetry"]),
    ("Ingest", &["parley-ingest"]),
    ("Resolver", &["parley-resolver"]),
    ("Notify", &["parley-notify"]),
    ("Cli", &["parley-cli"]),
];

/// (from, to, why): `from` must never depend on `to`, directly or not.
const NEVER: &[(&str, &str, &str)] = &[
    (
        "Ingest",
        "Resolver",
        "services talk over NATS and gRPC, never by import",
    ),
    (
        "Ingest",
        "Notify",
        "services talk over NATS and gRPC, never by import",
    ),
    (
        "Resolver",
        "Notify",
        "services talk over NATS and gRPC, never by import",
    ),
    (
        "Notify",
        "Resolver",
        "services talk over NATS and gRPC, never by import",
    ),
    ("Notify", "Extract", "delivery needs no NLP"),
    ("Notify", "Kb", "delivery needs no knowledge base"),
    ("Domain", "Log", "the domain model knows no storage"),
    (
        "Domain",
        "Extract",
        "the model belongs to the domain, the extractor fills it",
    ),
    ("Domain", "Runtime", "the domain knows no process"),
    ("Domain", "Kb", "the domain is pure: no knowledge base"),
    ("Log", "Domain", "the log stores bytes"),
    ("Proto", "Domain", "schemas depend on nothing of ours"),
];

/// Package name → (normal and build dependencies, dev-dependencies), by name.
type Graph = BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>;

fn workspace_graph() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(manifest)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let names: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let mut graph = Graph::new();
    for node in metadata["resolve"]["nodes"].as_array().expect("resolve") {
        let name = names[node["id"].as_str().unwrap()].to_owned();
        let entry = graph.entry(name).or_default();
        for dep in node["deps"].as_array().unwrap() {
            let dep_name = names[dep["pkg"].as_str().unwrap()].to_owned();
            for kind in dep["dep_kinds"].as_array().unwrap() {
                if kind["kind"].as_str() == Some("dev") {
                    entry.1.insert(dep_name.clone());
                } else {
                    entry.0.insert(dep_name.clone());
                }
            }
        }
    }
    graph
}

/// The shortest path from `from` to any of `targets` (first step normal,
/// build or dev; later steps normal or build), if there is one.
fn path_to(graph: &Graph, from: &str, targets: &[&str]) -> Option<Vec<String>> {
    let empty = (BTreeSet::new(), BTreeSet::new());
    let mut previous: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = VecDeque::new();
    let (normal, dev) = graph.get(from).unwrap_or(&empty);
    for next in normal.iter().chain(dev) {
        if !previous.contains_key(next) {
            previous.insert(next.clone(), from.to_owned());
            queue.push_back(next.clone());
        }
    }
    while let Some(current) = queue.pop_front() {
        if targets.contains(&current.as_str()) {
            let mut path = vec![current.clone()];
            let mut at = current;
            while let Some(before) = previous.get(&at) {
                path.push(before.clone());
                if before == from {
                    break;
                }
                at = before.clone();
            }
            path.reverse();
            return Some(path);
        }
        for next in &graph.get(&current).unwrap_or(&empty).0 {
            if !previous.contains_key(next) && next != from {
                previous.insert(next.clone(), current.clone());
                queue.push_back(next.clone());
            }
        }
    }
    None
}

fn packages(part: &str) -> &'static [&'static str] {
    PARTS
        .iter()
        .find(|(name, _)| *name == part)
        .map(|(_, packages)| *packages)
        .unwrap_or_else(|| panic!("unknown part {part}"))
}

/// Every broken rule, as a readable line with the path that breaks it.
fn violations(graph: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for (from, to, why) in NEVER {
        for package in packages(from) {
            if let Some(path) = path_to(graph, package, packages(to)) {
                out.push(format!(
                    "{from} must never depend on {to} ({why}): {}",
                    path.join(" -> ")
                ));
            }
        }
    }
    out
}

#[test]
fn no_forbidden_dependency_comes_back() {
    let graph = workspace_graph();
    for (_, packages) in PARTS {
        for package in *packages {
            assert!(
                graph.contains_key(*package),
                "{package} is not in the workspace: update PARTS"
            );
        }
    }
    let broken = violations(&graph);
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn a_forbidden_edge_is_found_however_deep() {
    // The check itself: notify -> runtime -> extract must be reported.
    let mut graph = Graph::new();
    let edge = |graph: &mut Graph, from: &str, to: &str| {
        graph.entry(from.into()).or_default().0.insert(to.into());
    };
    edge(&mut graph, "parley-notify", "parley-runtime");
    edge(&mut graph, "parley-runtime", "parley-domain");
    edge(&mut graph, "parley-runtime", "parley-extract");
    let broken = violations(&graph);
    assert_eq!(
        broken,
        vec![
            "Notify must never depend on Extract (delivery needs no NLP): \
             parley-notify -> parley-runtime -> parley-extract"
                .to_owned()
        ]
    );
    // A dev-dependency counts at the first step only (as in `cargo tree -p`).
    let mut graph = Graph::new();
    graph
        .entry("parley-notify".into())
        .or_default()
        .1
        .insert("parley-kb".into());
    assert_eq!(violations(&graph).len(), 1);
}

/// Direct normal dependencies between the workspace's crates (the test
/// harnesses left out), as `cargo metadata` reads them.
fn crate_graph(graph: &Graph) -> BTreeMap<String, BTreeSet<String>> {
    let ours: BTreeSet<&str> = PARTS
        .iter()
        .flat_map(|(_, packages)| packages.iter().copied())
        .collect();
    graph
        .iter()
        .filter(|(name, _)| ours.contains(name.as_str()))
        .map(|(name, (normal, _))| {
            let deps = normal
                .iter()
                .filter(|d| ours.contains(d.as_str()))
                .cloned()
                .collect();
            (name.clone(), deps)
        })
        .collect()
}

/// The edges no longer path implies (the graph's transitive reduction).
fn reduced_edges(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<(String, String)> {
    let reaches_without = |from: &str, to: &str| {
        let mut stack: Vec<&str> = graph[from]
            .iter()
            .map(String::as_str)
            .filter(|d| *d != to)
            .collect();
        let mut seen = BTreeSet::new();
        while let Some(at) = stack.pop() {
            if at == to {
                return true;
            }
            if seen.insert(at) {
                stack.extend(graph.get(at).into_iter().flatten().map(String::as_str));
            }
        }
        false
    };
    let mut edges = BTreeSet::new();
    for (from, deps) in graph {
        for to in deps {
            if !reaches_without(from, to) {
                edges.insert((from.clone(), to.clone()));
            }
        }
    }
    edges
}

/// The `A --> B` lines of the README's crate-graph diagram.
fn readme_edges() -> BTreeSet<(String, String)> {
    let readme = include_str!("../README.md");
    let start = readme
        .find("## Crate graph")
        .expect("the README has a Crate graph section");
    let block = &readme[start..];
    let block = &block[block.find("```mermaid").expect("with a mermaid diagram")..];
    let block = &block[..block[3..].find("```").expect("closed") + 3];
    block
        .lines()
        .filter_map(|line| line.trim().split_once(" --> "))
        .map(|(a, b)| (a.trim().to_owned(), b.trim().to_owned()))
        .collect()
}

#[test]
fn the_readme_crate_graph_matches_the_code() {
    let actual = reduced_edges(&crate_graph(&workspace_graph()));
    let drawn = readme_edges();
    let missing: Vec<_> = actual.difference(&drawn).collect();
    let extra: Vec<_> = drawn.difference(&actual).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README crate graph differs from the code:\n  missing from the README: {missing:?}\n  not in the code: {extra:?}"
    );
}

#[test]
fn the_reduction_keeps_only_edges_no_path_implies() {
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b", "c"]), ("b", vec!["c"]), ("c", vec![])]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
            .collect();
    let edges = reduced_edges(&graph);
    assert_eq!(
        edges,
        [("a", "b"), ("b", "c")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect()
    );
}
