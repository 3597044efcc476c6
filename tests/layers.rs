//! The module graph, read from the sources: every import follows the layer order that
//! `src/lib.rs` declares, no two modules import each other (directly or round a longer
//! circle), and no API module imports a sibling API module.
//!
//! An import is any `crate::` or `super::` path outside comments and test modules; it points
//! at the deepest module (a file under `src/`) that the path names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `src/lib.rs` is the root (empty).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The code without comments and without what follows `#[cfg(test)]`.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The paths after each `crate::` / `super::` in `code`, groups (`crate::{a, b::c}`) expanded.
fn paths(code: &str) -> Vec<(bool, Vec<String>)> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for (prefix, is_super) in [("crate::", false), ("super::", true)] {
        let mut from = 0;
        while let Some(at) = code[from..].find(prefix) {
            let start = from + at;
            from = start + prefix.len();
            if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
                continue;
            }
            let mut rest = &code[from..];
            let mut ups = 0;
            while is_super && rest.starts_with("super::") {
                ups += 1;
                rest = &rest[7..];
            }
            let items: Vec<String> = if rest.starts_with('{') {
                let end = rest.find('}').unwrap_or(rest.len());
                rest[1..end].split(',').map(|s| s.trim().to_owned()).collect()
            } else {
                let end =
                    rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
                vec![rest[..end].to_owned()]
            };
            for item in items {
                let segments: Vec<String> = item
                    .split("::")
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && *s != "self" && *s != "*")
                    .map(str::to_owned)
                    .collect();
                let mut path = vec!["super".to_owned(); ups];
                path.extend(segments);
                out.push((is_super, path));
            }
        }
    }
    out
}

struct Graph {
    /// Importer -> imported, both module paths.
    edges: BTreeSet<(Vec<String>, Vec<String>)>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let modules: BTreeSet<Vec<String>> = all.iter().map(|f| module_of(&src, f)).collect();
    let mut edges = BTreeSet::new();
    for file in &all {
        let module = module_of(&src, file);
        if module == ["main"] {
            continue;
        }
        // A file's `super` is its module's parent.
        let text = std::fs::read_to_string(file).unwrap();
        for (is_super, path) in paths(&code_of(&text)) {
            let mut absolute = if is_super { module.clone() } else { Vec::new() };
            if is_super {
                absolute.pop();
            }
            for segment in path {
                if segment == "super" {
                    absolute.pop();
                } else {
                    absolute.push(segment);
                }
            }
            while !absolute.is_empty() && !modules.contains(&absolute) {
                absolute.pop();
            }
            if !absolute.is_empty() && absolute != module {
                edges.insert((module.clone(), absolute));
            }
        }
    }
    Graph { edges }
}

/// The tiers of `src/lib.rs`'s map, top first: `main -> cli -> ... -> primitives`.
fn tiers() -> Vec<Vec<String>> {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let line = lib
        .lines()
        .map(|l| l.trim_start_matches("//!").trim())
        .find(|l| l.starts_with("main ->"))
        .expect("lib.rs declares the layer order on a line starting `main ->`");
    line.split("->").map(|tier| tier.split(',').map(|m| m.trim().to_owned()).collect()).collect()
}

fn tier_of(tiers: &[Vec<String>], top: &str) -> usize {
    tiers.iter().position(|t| t.iter().any(|m| m == top)).unwrap_or_else(|| {
        tiers.iter().position(|t| t.iter().any(|m| m == "primitives")).expect("a primitives tier")
    })
}

#[test]
fn imports_follow_the_declared_layer_order() {
    let tiers = tiers();
    let mut wrong = Vec::new();
    for (from, to) in &graph().edges {
        let (a, b) = (tier_of(&tiers, &from[0]), tier_of(&tiers, &to[0]));
        if a > b {
            wrong.push(format!("{} imports {} (a layer above it)", from.join("::"), to.join("::")));
        }
    }
    assert!(wrong.is_empty(), "imports against lib.rs's order:\n{}", wrong.join("\n"));
}

#[test]
fn no_api_module_imports_a_sibling() {
    let mut wrong = Vec::new();
    for (from, to) in &graph().edges {
        if from.len() >= 2 && to.len() >= 2 && from[0] == "api" && to[0] == "api" && from[1] != to[1] {
            wrong.push(format!("{} imports {}", from.join("::"), to.join("::")));
        }
    }
    assert!(wrong.is_empty(), "adapters borrowing from each other:\n{}", wrong.join("\n"));
}

/// For each edge, the two children of the modules' nearest common ancestor that it joins
/// (nothing for a module and its own parent or child): a circle among them is a circle.
#[test]
fn no_circle_between_modules() {
    let mut by_parent: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (from, to) in &graph().edges {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        if common >= from.len() || common >= to.len() {
            continue;
        }
        by_parent
            .entry(from[..common].to_vec())
            .or_default()
            .entry(from[common].clone())
            .or_default()
            .insert(to[common].clone());
    }
    let mut circles = Vec::new();
    for (parent, edges) in &by_parent {
        // Depth-first search for a back edge.
        fn visit(
            node: &str,
            edges: &BTreeMap<String, BTreeSet<String>>,
            stack: &mut Vec<String>,
            done: &mut BTreeSet<String>,
            found: &mut Vec<String>,
        ) {
            if let Some(at) = stack.iter().position(|n| n == node) {
                let mut circle = stack[at..].to_vec();
                circle.push(node.to_owned());
                found.push(circle.join(" -> "));
                return;
            }
            if !done.insert(node.to_owned()) {
                return;
            }
            stack.push(node.to_owned());
            for next in edges.get(node).into_iter().flatten() {
                visit(next, edges, stack, done, found);
            }
            stack.pop();
        }
        let mut done = BTreeSet::new();
        let mut found = Vec::new();
        for node in edges.keys() {
            visit(node, edges, &mut Vec::new(), &mut done, &mut found);
        }
        for circle in found {
            circles.push(format!(
                "in {}: {circle}",
                if parent.is_empty() { "crate".into() } else { parent.join("::") }
            ));
        }
    }
    assert!(circles.is_empty(), "circles in the module graph:\n{}", circles.join("\n"));
}

/// The reader itself: it sees the imports this test is about.
#[test]
fn the_reader_sees_imports() {
    let code = "use crate::{api, http::Route};\nuse super::super::x::Y; // crate::not_this\nlet a = crate::store::kyc::f();";
    let found = paths(&code_of(code));
    assert!(found.contains(&(false, vec!["api".into()])), "{found:?}");
    assert!(found.contains(&(false, vec!["http".into(), "Route".into()])), "{found:?}");
    assert!(found.contains(&(true, vec!["super".into(), "x".into(), "Y".into()])), "{found:?}");
    assert!(found.contains(&(false, vec!["store".into(), "kyc".into(), "f".into()])), "{found:?}");
    assert!(!found.iter().any(|(_, p)| p.first().is_some_and(|s| s == "not_this")), "{found:?}");
    let edges = graph().edges;
    assert!(edges.contains(&(vec!["api".into(), "kyc_bulk".into()], vec!["store".into(), "kyc".into()])));
}

/// The adapters stay small: no file under `src/api/` grows past 600 lines (a page group, an
/// API, the fixtures' parsing each have their own file; the rules live in the domain).
#[test]
fn no_api_file_is_over_600_lines() {
    let mut all = Vec::new();
    files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api"), &mut all);
    let long: Vec<String> = all
        .iter()
        .map(|f| (f, std::fs::read_to_string(f).unwrap().lines().count()))
        .filter(|(_, n)| *n > 600)
        .map(|(f, n)| format!("{}: {n} lines", f.display()))
        .collect();
    assert!(long.is_empty(), "files under src/api/ over 600 lines:\n{}", long.join("\n"));
}
