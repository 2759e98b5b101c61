//! The module graph of `src/`: no import cycles between top-level modules, and no file over
//! the size a reader can hold in mind. Read from the source text, so it needs no build tool:
//! every `crate::<module>` path outside comments and `#[cfg(test)]` modules is an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Files in `src/` may hold this many lines before their test module.
const MAX_LINES: usize = 600;

/// The top-level modules `src/lib.rs` declares.
fn modules() -> BTreeSet<String> {
    std::fs::read_to_string("src/lib.rs")
        .expect("src/lib.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';').map(str::to_string))
        .collect()
}

/// `text` without comments (line and doc comments) and without what follows `#[cfg(test)]`.
fn code(text: &str) -> String {
    let end = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..end]
        .lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string (a URI) is rare in the paths we look for; good enough.
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let p = entry.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Which top-level modules each top-level module uses, with a file that shows it.
fn edges() -> BTreeMap<String, BTreeMap<String, String>> {
    let mods = modules();
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix("src").expect("under src").to_string_lossy().to_string();
        let top = rel.split('/').next().unwrap_or_default().trim_end_matches(".rs").to_string();
        if !mods.contains(&top) {
            continue; // lib.rs, main.rs
        }
        let text = code(&std::fs::read_to_string(&f).expect("read"));
        let mut used = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a, b::c}`: the first word of each item.
                let group = &group[..group.find('}').unwrap_or(group.len())];
                used.extend(group.split(',').filter_map(|item| item.trim().split("::").next()).map(str::to_string));
            } else {
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                used.insert(name);
            }
        }
        for m in used.into_iter().filter(|m| mods.contains(m) && *m != top) {
            out.entry(top.clone()).or_default().entry(m).or_insert_with(|| rel.clone());
        }
    }
    out
}

/// A cycle through `start`, as the list of modules on it, if there is one.
fn cycle_through(start: &str, g: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in g.get(&node).into_iter().flat_map(|m| m.keys()) {
            if next == start {
                return Some(path.clone());
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
}

#[test]
fn top_level_modules_import_each_other_in_one_direction_only() {
    let g = edges();
    let mut cycles = Vec::new();
    for m in modules() {
        if let Some(path) = cycle_through(&m, &g) {
            let shown: Vec<String> =
                path.iter().zip(path.iter().cycle().skip(1)).map(|(a, b)| format!("{a} → {b} ({})", g[a][b])).collect();
            cycles.push(shown.join(", "));
        }
    }
    assert!(cycles.is_empty(), "import cycles between top-level modules:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_a_use_and_ignores_comments_and_tests() {
    let text = "use crate::{link, stats::Counters};\n// crate::config\nfn f() { crate::text::closest(); }\n#[cfg(test)]\nuse crate::pipeline;";
    let code = code(text);
    assert!(code.contains("crate::{link") && code.contains("crate::text") && !code.contains("config"));
    assert!(!code.contains("pipeline"));
    let edge = |a: &str, b: &str| (a.to_string(), BTreeMap::from([(b.to_string(), format!("{a}.rs"))]));
    let looped = BTreeMap::from([edge("a", "b"), edge("b", "c"), edge("c", "a")]);
    assert_eq!(cycle_through("a", &looped), Some(vec!["a".into(), "b".into(), "c".into()]));
    let one_way = BTreeMap::from([edge("a", "b"), edge("b", "c")]);
    assert_eq!(cycle_through("a", &one_way), None);
}

#[test]
fn no_source_file_is_longer_than_a_reader_can_hold() {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    let mut long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            let n = text[..text.find("#[cfg(test)]").unwrap_or(text.len())].lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    long.sort();
    assert!(long.is_empty(), "files over {MAX_LINES} lines before their tests: {long:?}");
}

/// The modules of docs/architecture.md's layout, in the order listed (bottom-up).
fn documented_order() -> Vec<String> {
    let arch = std::fs::read_to_string("docs/architecture.md").expect("docs/architecture.md");
    let block = arch
        .split("## Layout")
        .nth(1)
        .and_then(|r| r.split("```text").nth(1))
        .and_then(|r| r.split("```").next())
        .expect("a ```text block under ## Layout");
    block
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .map(|w| w.trim_end_matches('/').to_string())
        .collect()
}

#[test]
fn every_import_points_up_the_documented_layout() {
    let order = documented_order();
    let pos = |m: &str| order.iter().position(|o| o == m);
    let mut wrong = Vec::new();
    for (from, tos) in edges() {
        for (to, file) in tos {
            match (pos(&from), pos(&to)) {
                (Some(a), Some(b)) if b < a => {}
                (Some(_), Some(_)) => wrong.push(format!("{file}: {from} uses {to}, which is listed below it")),
                _ => wrong.push(format!("{file}: {from} or {to} is not in docs/architecture.md's layout")),
            }
        }
    }
    assert!(order.len() > 10, "{order:?}");
    assert!(wrong.is_empty(), "imports against docs/architecture.md's layout order:\n{}", wrong.join("\n"));
}
