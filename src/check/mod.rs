//! `framepipe check`: media assertions for CI. A rules file names rule sets (each for the files
//! its glob matches); every input is checked against each matching set, metadata rules without
//! decoding, pixel rules with one decode pass per file; files run in parallel up to `--jobs`.
pub mod audio;
pub mod eval;
pub mod facts;
pub mod output;
pub mod rules;
pub mod scan;
pub mod text;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use eval::Outcome;
use output::FileResult;
use rules::{RuleSet, RulesFile};

/// File extensions taken when an input is a folder.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "ts", "mts", "m2ts", "mpg", "mpeg", "flv", "wmv",
    "3gp", "ogv",
];

/// Expands folders (recursively, by extension, sorted) and keeps files as given.
pub fn expand_inputs(inputs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            out.extend(find_videos(input));
        } else {
            out.push(input.clone());
        }
    }
    out
}

/// Every file under `dir` (recursively) with a video extension, sorted.
pub fn find_videos(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    walk(dir, &mut found);
    found.sort();
    found
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, found);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            found.push(path);
        }
    }
}

/// The rule sets that apply to `path`.
pub fn sets_for<'a>(rules: &'a RulesFile, path: &Path) -> Vec<&'a RuleSet> {
    rules
        .rule_sets
        .iter()
        .filter(|set| match &set.files {
            None => true,
            Some(glob) => globset::Glob::new(glob)
                .map(|g| g.compile_matcher().is_match(path))
                .unwrap_or(false),
        })
        .collect()
}

/// Checks one file against one rule set. A file that cannot be read fails every rule of the set
/// with the real cause.
pub fn check_file(path: &Path, set: &RuleSet) -> FileResult {
    let rules = &set.rules;
    let fail_all = |cause: String| -> Vec<Outcome> {
        eval::rule_names(rules)
            .into_iter()
            .map(|rule| Outcome {
                rule: rule.into(),
                passed: false,
                expected: "a readable video".into(),
                actual: cause.clone(),
                at: None,
                frames: None,
            })
            .collect()
    };
    let outcomes = match facts::collect(path, rules.keyframe_interval_max.is_some()) {
        Err(e) => fail_all(e.to_string()),
        Ok(f) => {
            if rules.needs_decode() {
                match scan::scan(path, &f.source, rules) {
                    Ok(s) => eval::evaluate(path, rules, &f, Some(&s)),
                    Err(e) => {
                        let mut outcomes = eval::evaluate(path, rules, &f, None);
                        let set = eval::rule_names(rules);
                        for rule in eval::DECODED_RULES.iter().filter(|r| set.contains(r)) {
                            outcomes.push(Outcome {
                                rule: (*rule).into(),
                                passed: false,
                                expected: "a decodable video".into(),
                                actual: e.to_string(),
                                at: None,
                                frames: None,
                            });
                        }
                        outcomes
                    }
                }
            } else {
                eval::evaluate(path, rules, &f, None)
            }
        }
    };
    FileResult {
        path: path.display().to_string(),
        rule_set: set.name.clone(),
        outcomes,
    }
}

/// Checks every (file, matching rule set) pair on up to `jobs` threads; results in input order.
pub fn check_all(
    rules: &RulesFile,
    files: &[PathBuf],
    jobs: usize,
) -> (Vec<FileResult>, Vec<PathBuf>) {
    let work: Vec<(&PathBuf, &RuleSet)> = files
        .iter()
        .flat_map(|f| sets_for(rules, f).into_iter().map(move |s| (f, s)))
        .collect();
    let unmatched: Vec<PathBuf> = files
        .iter()
        .filter(|f| sets_for(rules, f).is_empty())
        .cloned()
        .collect();
    let results: Mutex<Vec<Option<FileResult>>> = Mutex::new(vec![None; work.len()]);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(work.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((file, set)) = work.get(i) else {
                    break;
                };
                let r = check_file(file, set);
                results.lock().expect("no panics while holding the lock")[i] = Some(r);
            });
        }
    });
    let results = results
        .into_inner()
        .expect("threads joined")
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect();
    (results, unmatched)
}
