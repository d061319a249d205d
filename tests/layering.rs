//! The source layout's rules, checked on the source itself: the pool's files import each other
//! without cycles (each file can be read knowing only the files below it), and `nr` imports
//! nothing from `pool`.
//!
//! An import is any path to another pool file in the code (`super::x`, `super::super::x`,
//! `crate::pool::x::y`, or a name inside `use super::{..}`), outside `#[cfg(test)]` modules
//! and comments.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, keyed by its module path relative to `dir` (`recovery::seam`);
/// `mod.rs` files are keyed by their folder, the root `mod.rs` is left out.
fn modules(dir: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                walk(&path, &join(prefix, &name), out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let key = if name == "mod" {
                    prefix.to_owned()
                } else {
                    join(prefix, &name)
                };
                if !key.is_empty() {
                    out.insert(key, path);
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, "", &mut out);
    out
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}::{name}")
    }
}

/// The code of a file without comments and without its `#[cfg(test)]` module.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read source");
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    let text = match text.find("#[cfg(all(test, not(loom)))]") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Identifier-and-`::` runs in `code` that start with `start`, with `start` removed.
fn paths_after<'a>(code: &'a str, start: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(start) {
        let before = rest[..i].chars().next_back();
        let tail = &rest[i + start.len()..];
        let end = tail
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            out.push(&tail[..end]);
        }
        rest = tail;
    }
    out
}

/// The longest prefix of `path` (module segments) that names a known module.
fn resolve(path: &str, known: &BTreeMap<String, PathBuf>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    (1..=parts.len())
        .rev()
        .map(|k| parts[..k].join("::"))
        .find(|c| known.contains_key(c))
}

/// Which pool files each pool file imports.
fn pool_imports() -> BTreeMap<String, BTreeSet<String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pool");
    let known = modules(&dir);
    let mut graph = BTreeMap::new();
    for (module, path) in &known {
        let code = code_of(path);
        // A file's `super` is its parent module; a folder's `mod.rs` is the folder itself.
        let is_folder = path.file_name().is_some_and(|n| n == "mod.rs");
        let mut parent: Vec<&str> = module.split("::").collect();
        if !is_folder {
            parent.pop();
        }
        let mut deps = BTreeSet::new();
        let mut add = |dep: Option<String>| {
            if let Some(d) = dep.filter(|d| d != module) {
                deps.insert(d);
            }
        };
        for p in paths_after(&code, "crate::pool::") {
            add(resolve(p, &known));
        }
        for p in paths_after(&code, "super::") {
            let mut base = parent.clone();
            let mut p = p;
            while let Some(rest) = p.strip_prefix("super::") {
                base.pop();
                p = rest;
            }
            add(resolve(&join(&base.join("::"), p), &known));
        }
        // `use super::{a, b::c}`: each listed name that is a module.
        let mut rest = &code[..];
        while let Some(i) = rest.find("super::{") {
            let tail = &rest[i + "super::{".len()..];
            let end = tail.find("};").unwrap_or(tail.len());
            for item in tail[..end].split(|c: char| c == ',' || c == '{' || c.is_whitespace()) {
                let first = item.split("::").next().unwrap_or("");
                if !first.is_empty() {
                    add(resolve(&join(&parent.join("::"), first), &known));
                }
            }
            rest = tail;
        }
        graph.insert(module.clone(), deps);
    }
    graph
}

/// A cycle in `graph`, if there is one (depth-first search with colours).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for dep in graph.get(node).into_iter().flatten() {
            match state.get(dep.as_str()).copied().unwrap_or(0) {
                0 => {
                    if let Some(c) = visit(dep, graph, state, stack) {
                        return Some(c);
                    }
                }
                1 => {
                    let from = stack.iter().position(|n| n == dep).expect("on the stack");
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(dep.clone());
                    return Some(cycle);
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_pools_files_import_each_other_without_cycles() {
    let graph = pool_imports();
    assert!(
        graph.len() > 20,
        "found the pool's files: {:?}",
        graph.keys()
    );
    // The scheduler reaches recovery only through the seam and recovery's state types.
    assert!(graph["worker"].contains("recovery::seam"), "{graph:#?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}\n{graph:#?}", cycle.join(" -> "));
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.insert("a".into(), ["b".to_owned()].into());
    graph.insert("b".into(), ["c".to_owned()].into());
    graph.insert("c".into(), ["a".to_owned()].into());
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    graph.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&graph), None);
}

#[test]
fn nr_imports_nothing_from_the_pool() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/nr");
    for (module, path) in modules(&dir) {
        let code = code_of(&path);
        assert!(
            !code.contains("crate::pool") && !code.contains("super::pool"),
            "nr::{module} ({}) uses the pool",
            path.display()
        );
    }
}
