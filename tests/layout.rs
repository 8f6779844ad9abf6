//! The shape of the source tree, checked: no import cycle between the files (modules) of `src/`
//! or of each crate in `crates/` (a folder's `mod.rs` naming its own children is not an edge), and no function longer than [`MAX_FUNCTION_LINES`] outside
//! tests. Read from the source text (every `use` tree, and every `crate::`, `super::`, `self::`
//! or child-module path in code), so a cycle fails here with the loop it makes, named file by
//! file. See docs/architecture.md for the layers this keeps.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a function may be, counted from its `fn` line to its closing brace.
const MAX_FUNCTION_LINES: usize = 80;

/// Functions kept longer than [`MAX_FUNCTION_LINES`], each with why (file, name).
const LONG_FUNCTIONS_KEPT: &[(&str, &str)] = &[];

/// A module path inside one crate: `["pipeline", "scenes"]` for `src/pipeline/scenes/mod.rs`.
type ModPath = Vec<String>;

struct SourceFile {
    module: ModPath,
    text: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file before its unit tests, without comments (a heuristic good for this tree:
/// `//` inside a string literal cuts the rest of that line, which never holds a path we need).
fn code_of(text: &str) -> String {
    let before_tests = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    before_tests
        .lines()
        .map(|line| match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn load_crate(src: &Path) -> Vec<SourceFile> {
    let mut paths = Vec::new();
    rust_files(src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: ModPath = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let last = module.last().cloned().unwrap_or_default();
            if matches!(last.as_str(), "mod" | "lib" | "main") {
                module.pop();
            }
            SourceFile {
                module,
                text: code_of(&std::fs::read_to_string(&path).unwrap()),
            }
        })
        .collect()
}

/// Expands a `use` tree (`a::{b, c::{d, e as f}}`) into its full paths.
fn expand_use_tree(tree: &str) -> Vec<Vec<String>> {
    // No whitespace, but `a as b` kept apart from names that contain "as".
    let tree: String = tree
        .split_whitespace()
        .map(|word| if word == "as" { " as " } else { word })
        .collect();
    let mut out = Vec::new();
    expand_into(&tree, &mut Vec::new(), &mut out);
    out
}

fn expand_into(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree.find('{') {
        None => {
            let path = tree.split(" as ").next().unwrap_or(tree);
            let mut full = prefix.clone();
            full.extend(path.split("::").filter(|s| !s.is_empty()).map(String::from));
            if full.last().is_some_and(|s| s == "self") {
                full.pop(); // `a::{self, b}` names `a` itself
            }
            out.push(full);
        }
        Some(open) => {
            let head: Vec<String> = tree[..open]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            let inner = &tree[open + 1..tree.rfind('}').unwrap()];
            let depth = prefix.len();
            prefix.extend(head);
            for item in split_top_level(inner) {
                if !item.is_empty() {
                    expand_into(item, prefix, out);
                }
            }
            prefix.truncate(depth);
        }
    }
}

fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut parts) = (0usize, 0usize, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path the file names: its `use` trees, and the `a::b` paths in its code.
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let starts_word = i == 0 || !is_ident_char(rest[..i].chars().last().unwrap());
        let after = &rest[i + 4..];
        match (starts_word, after.find(';')) {
            (true, Some(end)) => {
                paths.extend(expand_use_tree(&after[..end]));
                rest = &after[end..];
            }
            _ => rest = after,
        }
    }
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if is_ident_char(chars[i])
            && (i == 0 || !(is_ident_char(chars[i - 1]) || chars[i - 1] == ':'))
        {
            let mut j = i;
            let mut segments = Vec::new();
            loop {
                let start = j;
                while j < chars.len() && is_ident_char(chars[j]) {
                    j += 1;
                }
                segments.push(chars[start..j].iter().collect::<String>());
                if j + 2 < chars.len()
                    && chars[j] == ':'
                    && chars[j + 1] == ':'
                    && is_ident_char(chars[j + 2])
                {
                    j += 2;
                } else {
                    break;
                }
            }
            if segments.len() > 1 {
                paths.push(segments);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    paths
}

/// The children a file declares (`mod x;`, `pub mod x;`, `pub(crate) mod x;`).
fn declared_children(code: &str) -> BTreeSet<String> {
    code.lines()
        .filter_map(|line| {
            let line = line.trim();
            let after = line.strip_prefix("pub ").unwrap_or(line);
            let after = after.strip_prefix("pub(crate) ").unwrap_or(after);
            let name = after.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_string())
        })
        .collect()
}

/// `path` as named inside the module `dir` (which declares `children`), from the crate root;
/// `None` for paths outside the crate (std, other crates, local names).
fn absolute_path(
    path: &[String],
    dir: &ModPath,
    children: &BTreeSet<String>,
    aliases: &BTreeMap<String, ModPath>,
) -> Option<ModPath> {
    match path[0].as_str() {
        "crate" => Some(path[1..].to_vec()),
        "self" => Some(dir.iter().chain(&path[1..]).cloned().collect()),
        "super" => {
            let mut base = dir.clone();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            Some(base.iter().chain(rest).cloned().collect())
        }
        first if children.contains(first) => Some(dir.iter().chain(path).cloned().collect()),
        first => aliases
            .get(first)
            .map(|module| module.iter().chain(&path[1..]).cloned().collect()),
    }
}

/// The file-to-file import graph of one crate.
fn import_graph(files: &[SourceFile]) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<&ModPath> = files.iter().map(|f| &f.module).collect();
    let resolve = |path: &[String]| -> Option<ModPath> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|candidate| modules.contains(candidate))
    };
    let mut graph = BTreeMap::new();
    for file in files {
        let here = file.module.join("/");
        // `self`, `super` and child modules are relative to the file's own module.
        let dir = &file.module;
        let children = declared_children(&file.text);
        let paths = named_paths(&file.text);
        // Modules a `use` names (`use crate::pipeline;`): code then says `pipeline::annotate::f`.
        let mut aliases: BTreeMap<String, ModPath> = BTreeMap::new();
        for path in &paths {
            if let Some(absolute) = absolute_path(path, dir, &children, &BTreeMap::new()) {
                if modules.contains(&absolute) && !absolute.is_empty() {
                    aliases.insert(path.last().unwrap().clone(), absolute);
                }
            }
        }
        let mut targets = BTreeSet::new();
        for path in &paths {
            let Some(absolute) = absolute_path(path, dir, &children, &aliases) else {
                continue;
            };
            if let Some(target) = resolve(&absolute) {
                // A folder's `mod.rs` may name its own children (declare, re-export, wire
                // them) and a child may use what its parent defines; every other import is
                // one way.
                let descendant = target.starts_with(&file.module);
                if !descendant {
                    targets.insert(target.join("/"));
                }
            }
        }
        graph.insert(here, targets);
    }
    graph
}

/// One cycle through `graph`, if there is any, as the files it passes.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_string(), Mark::Open);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next) {
                Some(Mark::Open) => {
                    let from = stack.iter().position(|n| n == next).unwrap();
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(next, graph, marks, stack) {
                        return Some(cycle);
                    }
                }
            }
        }
        stack.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if !marks.contains_key(node) {
            if let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

fn crate_sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = vec![root.join("src")];
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() {
            sources.push(src);
        }
    }
    sources.sort();
    sources
}

#[test]
fn no_import_cycle_between_modules() {
    let mut cycles = Vec::new();
    for src in crate_sources() {
        let mut graph = import_graph(&load_crate(&src));
        assert!(graph.len() > 3, "{}: read too few files", src.display());
        // Every loop, not only the first: each found one loses an edge and the search goes on.
        while let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!("{}: {}", src.display(), cycle.join(" -> ")));
            graph.get_mut(&cycle[0]).unwrap().remove(&cycle[1]);
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles (each file imports the next):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_cycle_finder_sees_use_trees_super_and_child_paths() {
    let file = |module: &[&str], text: &str| SourceFile {
        module: module.iter().map(|s| s.to_string()).collect(),
        text: code_of(text),
    };
    let files = [
        file(&[], "pub mod a;\npub mod b;\npub mod c;"),
        file(&["a"], "mod inner;\nfn f() { inner::g(); }"),
        file(
            &["a", "inner"],
            "use super::{X, Y as Z};\nfn h() { crate::b::w(); }",
        ),
        file(
            &["b"],
            "use crate::{a::inner::g};\n// crate::a::Q in a comment",
        ),
        file(&["c"], "use crate::a::{self};\nfn k() { a::inner::g(); }"),
    ];
    let graph = import_graph(&files);
    assert_eq!(graph[""], BTreeSet::new(), "lib.rs only names its children");
    assert_eq!(
        graph["a"],
        BTreeSet::new(),
        "a parent naming its child is no edge"
    );
    let inner: BTreeSet<String> = ["a", "b"].map(String::from).into();
    assert_eq!(graph["a/inner"], inner);
    assert_eq!(graph["b"], BTreeSet::from(["a/inner".to_string()]));
    let through_alias: BTreeSet<String> = ["a", "a/inner"].map(String::from).into();
    assert_eq!(graph["c"], through_alias, "`a::inner` after `use crate::a`");
    let cycle = find_cycle(&graph).expect("a/inner <-> b is a cycle");
    assert_eq!(cycle.first(), cycle.last());
    let mut acyclic = graph.clone();
    acyclic.get_mut("a/inner").unwrap().remove("b");
    assert_eq!(find_cycle(&acyclic), None);
}

/// `(lines, file, line, name)` of every function longer than `limit` before a file's tests.
fn long_functions(src: &Path, limit: usize) -> Vec<(usize, String, usize, String)> {
    let mut paths = Vec::new();
    rust_files(src, &mut paths);
    let mut long = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let end = lines
            .iter()
            .position(|l| l.starts_with("#[cfg(test)]"))
            .unwrap_or(lines.len());
        for (i, line) in lines[..end].iter().enumerate() {
            let Some(name) = fn_name(line) else { continue };
            let indent = line.len() - line.trim_start().len();
            let Some(open) =
                (i..end).find(|&j| lines[j].contains('{') || lines[j].trim_end().ends_with(';'))
            else {
                continue;
            };
            if !lines[open].contains('{') {
                continue; // a declaration without a body
            }
            let closing = format!("{}}}", " ".repeat(indent));
            if let Some(close) = (open..end).find(|&j| lines[j].trim_end() == closing) {
                let n = close - i + 1;
                if n > limit {
                    let file = path.strip_prefix(src.parent().unwrap()).unwrap();
                    long.push((n, file.display().to_string(), i + 1, name));
                }
            }
        }
    }
    long
}

fn fn_name(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "fn")?;
    let allowed = [
        "pub",
        "pub(crate)",
        "pub(super)",
        "const",
        "async",
        "unsafe",
        "extern",
        "\"C\"",
    ];
    if !words[..at].iter().all(|w| allowed.contains(w)) {
        return None;
    }
    let name = words.get(at + 1)?;
    Some(name.split(['(', '<']).next().unwrap_or(name).to_string())
}

#[test]
fn no_function_is_longer_than_the_limit() {
    let mut over = Vec::new();
    for src in crate_sources() {
        for (n, file, line, name) in long_functions(&src, MAX_FUNCTION_LINES) {
            let kept = LONG_FUNCTIONS_KEPT
                .iter()
                .any(|(f, kept)| file.ends_with(f) && *kept == name);
            if !kept {
                over.push(format!("{file}:{line} {name}: {n} lines"));
            }
        }
    }
    over.sort();
    assert!(
        over.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines (split them into named steps):\n{}",
        over.join("\n")
    );
}

#[test]
fn the_length_check_counts_a_long_function() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let body = "    let x = 1;\n".repeat(90);
    let text = format!("pub fn long() {{\n{body}}}\n\nfn short() {{\n}}\n");
    std::fs::write(src.join("lib.rs"), text).unwrap();
    let long = long_functions(&src, MAX_FUNCTION_LINES);
    assert_eq!(long.len(), 1, "{long:?}");
    assert_eq!((long[0].0, long[0].3.as_str()), (92, "long"));
}
