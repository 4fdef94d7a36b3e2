//! The server's modules stay in layers, and no two modules import each other, directly or
//! around a circle.
//!
//! From the bottom: `error`; `config` (plain data); `store`; `node` (state, auth, orchestration,
//! cluster); `transport` (HTTP, `/ws`, Socket.IO, limits); the features (`dashboard`, `demo`,
//! `geolocate` with `observations`, `imagery`, `scans`, `telemetry`, `tokens`); and on top `app` (the router and
//! `serve`), `openapi` (the document of every route) and `lib`. A module may use its own layer
//! and the layers below it. The graph is read from the `crate::` paths in the sources (doc
//! comments and `#[cfg(test)] mod tests` excluded).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer of a module path (`node::orchestrator::shared` is in `node`).
fn layer(module: &str) -> usize {
    match module.split("::").next().unwrap_or_default() {
        "error" => 0,
        "config" => 1,
        "store" => 2,
        "node" => 3,
        "transport" => 4,
        "dashboard" | "demo" | "geolocate" | "imagery" | "observations" | "scans" | "telemetry"
        | "tokens" => 5,
        "app" | "openapi" | "fuzzing" | "" => 6,
        other => panic!("module `{other}` has no layer: add it to tests/layers.rs"),
    }
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/node/orchestrator/mod.rs` → `node::orchestrator`; `src/lib.rs` → ``.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without comments and without its unit-test module.
fn code(text: &str) -> String {
    let text = text
        .find("#[cfg(test)]\nmod tests")
        .map_or(text, |i| &text[..i]);
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path after `crate::`, with `crate::{a::b, c}` groups expanded.
fn crate_paths(code: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let path: String = item.trim().chars().take_while(|c| ident(*c)).collect();
                out.push(path);
            }
        } else {
            out.push(rest.chars().take_while(|c| ident(*c)).collect());
        }
    }
    out
}

/// The longest module that `path` starts with.
fn resolve<'a>(modules: &'a BTreeSet<String>, path: &str) -> Option<&'a String> {
    let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    (1..=parts.len())
        .rev()
        .find_map(|k| modules.get(&parts[..k].join("::")))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut edges = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        let text = std::fs::read_to_string(file).expect("read source");
        let uses: BTreeSet<String> = crate_paths(&code(&text))
            .iter()
            .filter_map(|p| resolve(&modules, p))
            .filter(|m| **m != module && !m.is_empty())
            .cloned()
            .collect();
        edges.insert(module, uses);
    }
    edges
}

#[test]
fn every_module_uses_only_its_own_layer_and_those_below() {
    let edges = graph();
    assert!(edges.len() > 20, "found the sources: {:?}", edges.keys());
    let mut wrong = Vec::new();
    for (module, uses) in &edges {
        for used in uses {
            if layer(used) > layer(module) {
                wrong.push(format!("{module} uses {used}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports up the layers: {wrong:#?}");
}

#[test]
fn no_modules_import_each_other_around_a_circle() {
    let edges = graph();
    // Depth-first search for a back edge; prints the circle it finds.
    fn visit<'a>(
        m: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| *p == m) {
            let mut circle: Vec<String> = path[at..].iter().map(|s| (*s).to_owned()).collect();
            circle.push(m.to_owned());
            return Some(circle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m);
        for next in edges.get(m).into_iter().flatten() {
            if let Some(circle) = visit(next, edges, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(m);
        None
    }
    let mut done = BTreeSet::new();
    for module in edges.keys() {
        if let Some(circle) = visit(module, &edges, &mut Vec::new(), &mut done) {
            panic!("modules import each other: {}", circle.join(" -> "));
        }
    }
}

#[test]
fn the_reader_sees_the_paths_it_should() {
    let paths = crate_paths("use crate::{error::Result, node::Node};\nlet x = crate::config::X;");
    assert_eq!(paths, ["error::Result", "node::Node", "config::X"]);
    let text = "use crate::a;\n/// [`crate::b`]\n#[cfg(test)]\nmod tests { use crate::c; }";
    assert_eq!(crate_paths(&code(text)), ["a"]);
}
