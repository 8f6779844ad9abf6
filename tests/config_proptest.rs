//! Property tests of the two JSON parsers users write for: the pipeline config
//! (`framepipe::config::PipelineConfig`) and the rules file of `check`
//! (`framepipe::check::rules::RulesFile`).
//!
//! Inputs: arbitrary JSON values (keys drawn mostly from the real schemas so the parsers get
//! deep), and valid documents with one change: a key's value replaced by an arbitrary value, an
//! unknown key inserted into one of its objects, or a key removed. Properties: no parser ever
//! panics; a rejection names the offending key (its JSON path or its name); an unknown key is
//! never accepted; and the binary (`run --pipeline`, `check --rules`) turns every rejection
//! into exit 2 with that same message, before touching any input.
//!
//! Fixed seeds and case counts (deterministic in CI); no regression files are written.
mod common;

use std::path::{Path, PathBuf};

use common::*;
use framepipe::check::rules::RulesFile;
use framepipe::config::PipelineConfig;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};

const LIBRARY_CASES: u32 = 256;
const BINARY_CASES: u32 = 40;

fn runner(cases: u32, seed: u64) -> TestRunner {
    TestRunner::new(Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    })
}

/// Every key of both schemas: arbitrary objects mostly use these, so they reach past the top.
const SCHEMA_KEYS: &[&str] = &[
    // pipeline
    "normalize",
    "resolution",
    "mode",
    "fps",
    "scenes",
    "detector",
    "threshold",
    "min_scene_frames",
    "luma_only",
    "colour_cuts",
    "clip",
    "model",
    "labels",
    "templates",
    "sample",
    "every_n_frames",
    "per_scene",
    "top_k",
    "min_score",
    "batch_size",
    "vae",
    "dtype",
    "frames_per_shard",
    "tiling",
    "sample_seed",
    "encode",
    "codec",
    "crf",
    "preset",
    "profile",
    "audio",
    "threads",
    "decode",
    "hwaccel",
    "limits",
    "min_side",
    "max_pixels",
    "runtime",
    "queue_frames",
    "decode_threads",
    "precision",
    "color_conversion",
    "device_frames",
    "device",
    // rules
    "rule_sets",
    "name",
    "files",
    "rules",
    "container",
    "video_codec",
    "pixel_format",
    "width",
    "height",
    "aspect_ratio",
    "duration",
    "bitrate",
    "keyframe_interval_max",
    "faststart",
    "rotation",
    "color_range",
    "color_primaries",
    "decodes_cleanly",
    "black",
    "frozen",
    "silence",
    "loudness",
    "tags",
    "burned_in_text",
    "max_area",
    "heads",
    "scores",
    "weights",
    "config",
    "min",
    "max",
    "value",
    "tolerance",
    "present",
    "channels",
    "sample_rate",
    "max_seconds",
    "luma_max",
    "picture_ratio",
    "max_difference",
    "db_max",
    "integrated_lufs",
    "true_peak_dbtp_max",
    "must",
    "must_not",
    "label",
    "score",
];

/// Strings the schemas accept somewhere (enum names, globs, templates), none a key name, so a
/// value echoed in a message is never taken for the key.
const WORDS: &[&str] = &[
    "720p",
    "1080p",
    "4k",
    "fit",
    "fill",
    "stretch",
    "content",
    "libx264",
    "ultrafast",
    "medium",
    "high",
    "main",
    "copy",
    "aac",
    "none",
    "auto",
    "cpu",
    "cuda",
    "cuda:0",
    "cuda:x",
    "on",
    "off",
    "fp32",
    "fp16",
    "bf16",
    "f16",
    "f32",
    "h264",
    "mp4",
    "tv",
    "pc",
    "bt709",
    "**/*.mp4",
    "[",
    "{}",
    "a photo of {}.",
    "{}{}",
    "",
];

/// An unknown key: never a schema key, never a word of an error message.
fn unknown_key() -> impl Strategy<Value = String> {
    "x_[a-z0-9]{1,6}"
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(SCHEMA_KEYS).prop_map(String::from),
        1 => unknown_key(),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..300).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        prop::sample::select(vec![
            0.0,
            -0.0,
            0.5,
            1.0,
            51.0,
            51.5,
            240.0,
            240.5,
            255.0,
            255.5,
            4096.0,
            1e-9,
            1e300,
            -1e300,
            4294967296.0,
            1.8446744073709552e19,
        ])
        .prop_map(|f| json!(f)),
        prop::sample::select(WORDS).prop_map(|s| Value::String(s.into())),
        "[a-z0-9 .:*{}\\[\\]]{0,10}".prop_map(Value::String),
    ]
}

/// Arbitrary JSON: leaves, arrays and objects nested up to 4 deep.
fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Arbitrary documents: mostly objects of schema keys, sometimes any value at all.
fn json_document() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::collection::vec((key(), json_value()), 0..6)
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        1 => json_value(),
    ]
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/framepipe-torch/tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn shipped(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pipelines")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// Every section with every key, no model stage (what the binary can run without libtorch).
fn full_pipeline_without_models() -> Value {
    json!({
        "normalize": {"resolution": "720p", "mode": "fill", "fps": 25},
        "scenes": {"detector": "content", "threshold": 27.0, "min_scene_frames": 15, "luma_only": false},
        "encode": {"codec": "libx264", "crf": 23, "preset": "fast", "profile": "high", "audio": "aac", "threads": 2},
        "decode": {"hwaccel": "none"},
        "limits": {"min_side": 16, "max_pixels": 16777216},
        "runtime": {"queue_frames": 8, "decode_threads": 0, "precision": "auto", "color_conversion": "auto", "device_frames": "auto"},
        "device": "cpu"
    })
}

/// Valid pipeline configs to mutate; `with_models` adds one with clip and vae sections (their
/// model folders are the repository's test fixtures).
fn pipeline_bases(with_models: bool) -> Vec<Value> {
    let mut bases = vec![
        shipped("default.json"),
        shipped("1080p.json"),
        shipped("fill-720p-30fps.json"),
        shipped("scenes-only.json"),
        full_pipeline_without_models(),
    ];
    if with_models {
        let mut full = full_pipeline_without_models();
        full["clip"] = json!({
            "model": fixture("clip-tiny"), "labels": ["a cat", "a dog"],
            "templates": ["a photo of {}."], "sample": {"every_n_frames": 15},
            "top_k": 2, "min_score": 0.05, "batch_size": 8
        });
        full["vae"] = json!({
            "model": fixture("vae-tiny-tiny"), "every_n_frames": 2, "dtype": "f16",
            "frames_per_shard": 64, "batch_size": "auto", "tiling": false, "sample_seed": 7
        });
        bases.push(full);
    }
    for b in &bases {
        let text = b.to_string();
        if let Err(e) = pipeline_verdict(&text) {
            panic!("base config must be valid: {e}\n{text}");
        }
    }
    bases
}

/// Every rule with every key, no tags rule.
fn full_rules_without_models() -> Value {
    json!({"rule_sets": [{
        "name": "all", "files": "**/*.mp4",
        "rules": {
            "container": ["mp4"], "video_codec": ["h264"], "profile": ["High"],
            "pixel_format": ["yuv420p"], "width": {"min": 160, "max": 1920}, "height": 1080,
            "aspect_ratio": {"value": 1.777, "tolerance": 0.01},
            "fps": {"value": 25, "tolerance": 0.1}, "duration": {"min": 1},
            "bitrate": {"max": 20000000}, "keyframe_interval_max": 2.0, "faststart": true,
            "rotation": [0, 90], "color_range": ["tv"], "color_primaries": ["bt709"],
            "audio": {"present": true, "codec": ["aac"], "channels": {"min": 1, "max": 2}, "sample_rate": [48000]},
            "decodes_cleanly": true,
            "black": {"max_seconds": 0.5, "luma_max": 38, "picture_ratio": 0.98},
            "frozen": {"max_seconds": 0.5, "max_difference": 0.5},
            "scenes": {"min": 1, "max": 10},
            "silence": {"max_seconds": 0.5, "db_max": -60},
            "loudness": {"integrated_lufs": {"min": -24, "max": -22}, "true_peak_dbtp_max": -1}
        }
    }]})
}

fn rules_bases(with_models: bool) -> Vec<Value> {
    let mut bases = vec![shipped("ci-check.json"), full_rules_without_models()];
    if with_models {
        let mut full = full_rules_without_models();
        full["rule_sets"].as_array_mut().unwrap().push(json!({
            "name": "tags",
            "rules": {"tags": {
                "model": fixture("clip-tiny"), "labels": ["a cat", "a dog"],
                "templates": ["a photo of {}."], "every_n_frames": 10,
                "must": [{"label": "a cat", "score": 0.2}],
                "must_not": [{"label": "a dog", "score": 0.9}]
            }}
        }));
        bases.push(full);
    }
    for b in &bases {
        let text = b.to_string();
        if let Err(e) = RulesFile::parse(&text) {
            panic!("base rules must be valid: {e}\n{text}");
        }
    }
    bases
}

/// What the pipeline parser makes of a text: parsed and validated, or its message.
fn pipeline_verdict(text: &str) -> Result<(), String> {
    PipelineConfig::parse(text)?
        .validate()
        .map_err(|e| e.to_string())
}

fn rules_verdict(text: &str) -> Result<(), String> {
    RulesFile::parse(text).map(|_| ())
}

#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Paths of every object member (`["encode", "crf"]`, `["rule_sets", 0, "rules"]`).
fn member_paths(v: &Value, at: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                at.push(Seg::Key(k.clone()));
                out.push(at.clone());
                member_paths(child, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                at.push(Seg::Index(i));
                member_paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// Paths of every object (the root included).
fn object_paths(v: &Value, at: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    match v {
        Value::Object(m) => {
            out.push(at.clone());
            for (k, child) in m {
                at.push(Seg::Key(k.clone()));
                object_paths(child, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                at.push(Seg::Index(i));
                object_paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn at<'a>(v: &'a Value, path: &[Seg]) -> &'a Value {
    path.iter().fold(v, |v, seg| match seg {
        Seg::Key(k) => &v[k.as_str()],
        Seg::Index(i) => &v[*i],
    })
}

fn at_mut<'a>(v: &'a mut Value, path: &[Seg]) -> &'a mut Value {
    path.iter().fold(v, |v, seg| match seg {
        Seg::Key(k) => &mut v[k.as_str()],
        Seg::Index(i) => &mut v[*i],
    })
}

/// The last object key of a path: the key that holds what the path points at.
fn last_key(path: &[Seg]) -> Option<String> {
    path.iter().rev().find_map(|s| match s {
        Seg::Key(k) => Some(k.clone()),
        Seg::Index(_) => None,
    })
}

fn path_text(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => s.push_str(&format!(".{k}")),
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    if s.is_empty() {
        ".".into()
    } else {
        s
    }
}

/// Every object key anywhere in `v`.
fn all_keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                out.push(k.clone());
                all_keys(child, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| all_keys(c, out)),
        _ => {}
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// A member's value replaced by an arbitrary value.
    Replace,
    /// A member removed.
    Remove,
    /// An unknown key inserted into an object.
    Insert,
    /// An object (a section, a rule) replaced by an array: its own values in key order (serde's
    /// positional form of a struct), or an arbitrary array.
    ArrayForObject,
}

/// A valid document with one change, and what a rejection of it must name.
#[derive(Debug)]
struct Mutant {
    doc: Value,
    /// What changed, for failure messages.
    change: String,
    /// Keys a message may name for the change: the key changed (or inserted/removed), the key
    /// holding it, and keys inside a replacement value.
    names: Vec<String>,
    /// An unknown key, or an array where an object belongs: the parser must reject it.
    must_reject: bool,
}

fn mutant(
    bases: &[Value],
    base: usize,
    op: Op,
    pick: usize,
    value: Value,
    unknown: String,
) -> Mutant {
    let mut doc = bases[base % bases.len()].clone();
    let mut names = Vec::new();
    let mut paths = Vec::new();
    if let Op::Insert = op {
        object_paths(&doc, &mut Vec::new(), &mut paths);
    } else {
        member_paths(&doc, &mut Vec::new(), &mut paths);
    }
    if let Op::ArrayForObject = op {
        paths.retain(|p| at(&doc, p).is_object());
    }
    let path = paths[pick % paths.len()].clone();
    match op {
        Op::Replace | Op::Remove | Op::ArrayForObject => {
            let key = last_key(&path).unwrap();
            names.push(key.clone());
            if let Some(parent) = last_key(&path[..path.len() - 1]) {
                names.push(parent);
            }
            let slot = at_mut(&mut doc, &path);
            let value = match op {
                Op::ArrayForObject if !pick.is_multiple_of(3) => {
                    Value::Array(slot.as_object().unwrap().values().cloned().collect())
                }
                Op::ArrayForObject if !value.is_array() => Value::Array(vec![value]),
                _ => value,
            };
            let change = match op {
                Op::Remove => format!("{} removed", path_text(&path)),
                _ => format!("{} replaced by {value}", path_text(&path)),
            };
            all_keys(&value, &mut names);
            if let Op::Remove = op {
                let (parent_path, _) = path.split_at(path.len() - 1);
                at_mut(&mut doc, parent_path)
                    .as_object_mut()
                    .unwrap()
                    .remove(&key);
            } else {
                *slot = value;
            }
            Mutant {
                doc,
                change,
                names,
                must_reject: matches!(op, Op::ArrayForObject),
            }
        }
        Op::Insert => {
            names.push(unknown.clone());
            if let Some(parent) = last_key(&path) {
                names.push(parent);
            }
            let change = format!(
                "unknown key {unknown:?} = {value} inserted into {}",
                path_text(&path)
            );
            at_mut(&mut doc, &path)
                .as_object_mut()
                .unwrap()
                .insert(unknown, value);
            Mutant {
                doc,
                change,
                names,
                must_reject: true,
            }
        }
    }
}

/// Valid documents with one value replaced or one key removed: a rejection must name the key.
fn edited_values(bases: Vec<Value>) -> impl Strategy<Value = Mutant> {
    mutants(
        bases,
        prop_oneof![4 => Just(Op::Replace), 1 => Just(Op::Remove)],
    )
}

/// Valid documents with an unknown key or an array where an object belongs: must be rejected.
fn strictness_breaches(bases: Vec<Value>) -> impl Strategy<Value = Mutant> {
    mutants(
        bases,
        prop_oneof![3 => Just(Op::Insert), 2 => Just(Op::ArrayForObject)],
    )
}

fn mutants(bases: Vec<Value>, ops: impl Strategy<Value = Op>) -> impl Strategy<Value = Mutant> {
    let n = bases.len();
    (0..n, ops, any::<usize>(), json_value(), unknown_key()).prop_map(
        move |(base, op, pick, value, unknown)| mutant(&bases, base, op, pick, value, unknown),
    )
}

/// Whether `message` names one of `keys`: as a path segment or a quoted name, not inside
/// another word.
fn names_one_of(message: &str, keys: &[String]) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    keys.iter().any(|k| {
        message.match_indices(k.as_str()).any(|(i, _)| {
            let before = message[..i].chars().next_back();
            let after = message[i + k.len()..].chars().next();
            !before.is_some_and(word) && !after.is_some_and(word)
        })
    }) || message.contains("missing field `")
}

/// A rejection of an arbitrary document names some key of it (a document that is not an object
/// has no key to name).
fn check_names_a_key(doc: &Value, verdict: &Result<(), String>) -> Result<(), TestCaseError> {
    if let (Err(message), Value::Object(_)) = (verdict, doc) {
        let mut keys = Vec::new();
        all_keys(doc, &mut keys);
        prop_assert!(
            names_one_of(message, &keys),
            "the message names no key of the document\n  document: {doc}\n  message: {message}"
        );
    }
    Ok(())
}

fn check_mutant(m: &Mutant, verdict: &Result<(), String>) -> Result<(), TestCaseError> {
    match verdict {
        Ok(()) => prop_assert!(
            !m.must_reject,
            "accepted although it must be refused (an unknown key, or an array for an object)\n  change: {}\n  document: {}",
            m.change,
            m.doc
        ),
        Err(message) => prop_assert!(
            names_one_of(message, &m.names),
            "the message names none of {:?}\n  change: {}\n  message: {message}\n  document: {}",
            m.names,
            m.change,
            m.doc
        ),
    }
    Ok(())
}

// ---- library: no panic, whatever the input ----

#[test]
fn parsers_never_panic_on_arbitrary_json_or_text() {
    let docs = prop_oneof![
        json_document().prop_map(|d| d.to_string()),
        json_document().prop_map(|d| serde_json::to_string_pretty(&d).unwrap()),
        any::<String>(),
    ];
    runner(LIBRARY_CASES, 0xF00D_0001)
        .run(&docs, |text| {
            let _ = pipeline_verdict(&text);
            let _ = rules_verdict(&text);
            Ok(())
        })
        .unwrap();
}

#[test]
fn parsers_never_panic_on_mutated_valid_documents() {
    let mutated = |bases: fn(bool) -> Vec<Value>| {
        prop_oneof![edited_values(bases(true)), strictness_breaches(bases(true))]
    };
    let both = (mutated(pipeline_bases), mutated(rules_bases));
    runner(LIBRARY_CASES, 0xF00D_0002)
        .run(&both, |(p, r)| {
            let _ = pipeline_verdict(&p.doc.to_string());
            let _ = rules_verdict(&r.doc.to_string());
            Ok(())
        })
        .unwrap();
}

// ---- library: rejections name the key ----

#[test]
fn rules_parser_rejections_name_the_key() {
    runner(LIBRARY_CASES, 0xF00D_0003)
        .run(&edited_values(rules_bases(true)), |m| {
            check_mutant(&m, &rules_verdict(&m.doc.to_string()))
        })
        .unwrap();
    runner(LIBRARY_CASES, 0xF00D_0004)
        .run(&json_document(), |doc| {
            check_names_a_key(&doc, &rules_verdict(&doc.to_string()))
        })
        .unwrap();
}

/// `PipelineConfig::parse` names the JSON path of type and value errors (it once returned
/// serde_json's bare message: `{"encode": {"crf": "x"}}` gave `invalid type: string "x",
/// expected f64 at line 1 column 22`, naming neither `crf` nor `encode`).
#[test]
fn pipeline_parser_rejections_name_the_key() {
    runner(LIBRARY_CASES, 0xF00D_0005)
        .run(&edited_values(pipeline_bases(true)), |m| {
            check_mutant(&m, &pipeline_verdict(&m.doc.to_string()))
        })
        .unwrap();
    runner(LIBRARY_CASES, 0xF00D_0006)
        .run(&json_document(), |doc| {
            check_names_a_key(&doc, &pipeline_verdict(&doc.to_string()))
        })
        .unwrap();
}

// ---- library: strict on purpose ----

/// Both parsers refuse what they once took silently: an array in place of a section or a rule
/// (serde's positional form of a struct: `[]` was the default pipeline, `{"normalize":
/// ["1080p"]}` set the resolution, `"fps": [25]` was a rule), and unknown keys inside a range
/// (`"width": {"min": 160, "mx": 1920}` was `width >= 160`).
#[test]
fn unknown_keys_and_arrays_for_objects_are_refused() {
    type Verdict = fn(&str) -> Result<(), String>;
    let examples: &[(&str, Verdict, &str)] = &[
        ("pipeline", pipeline_verdict, "[]"),
        ("pipeline", pipeline_verdict, r#"[{"resolution": "1080p"}]"#),
        (
            "pipeline",
            pipeline_verdict,
            r#"{"normalize": ["1080p", "stretch"]}"#,
        ),
        ("pipeline", pipeline_verdict, r#"{"scenes": []}"#),
        ("rules", rules_verdict, r#"[[["a", null, {}]]]"#),
        (
            "rules",
            rules_verdict,
            r#"{"rule_sets": [{"name": "a", "rules": {"fps": [25]}}]}"#,
        ),
        (
            "rules",
            rules_verdict,
            r#"{"rule_sets": [{"name": "a", "rules": {"width": {"min": 160, "mx": 1920}}}]}"#,
        ),
        (
            "rules",
            rules_verdict,
            r#"{"rule_sets": [{"name": "a", "rules": {"audio": {"channels": {"min": 1, "x": 2}}}}]}"#,
        ),
    ];
    let accepted: Vec<String> = examples
        .iter()
        .filter(|(_, verdict, text)| verdict(text).is_ok())
        .map(|(parser, _, text)| format!("{parser}: {text}"))
        .collect();
    assert!(
        accepted.is_empty(),
        "accepted although they must be refused:\n  {}",
        accepted.join("\n  ")
    );
    runner(LIBRARY_CASES, 0xF00D_0009)
        .run(&strictness_breaches(rules_bases(true)), |m| {
            check_mutant(&m, &rules_verdict(&m.doc.to_string()))
        })
        .unwrap();
    runner(LIBRARY_CASES, 0xF00D_000A)
        .run(&strictness_breaches(pipeline_bases(true)), |m| {
            check_mutant(&m, &pipeline_verdict(&m.doc.to_string()))
        })
        .unwrap();
}

// ---- binary: exit 2 with the library's message, before any input ----

/// How the binary handled one mutated file, against what the library said of it.
fn check_binary(
    m: &Mutant,
    library: &Result<(), String>,
    out: &std::process::Output,
    out_dir: &Path,
    accepted_codes: &[i32],
) -> Result<(), TestCaseError> {
    use std::os::unix::process::ExitStatusExt;
    let err = stderr(out);
    prop_assert!(
        out.status.signal().is_none() && !err.contains("panicked"),
        "killed or panicked ({:?})\n  change: {}\n  stderr: {err}",
        out.status,
        m.change
    );
    let code = out.status.code().unwrap();
    prop_assert!(
        !out_dir.join("missing").exists() && !out_dir.join("missing.partial").exists(),
        "an output folder for the missing input"
    );
    match library {
        Err(message) => {
            prop_assert_eq!(
                code,
                2,
                "the library rejects it ({}) but the binary exits {}\n  change: {}\n  stderr: {}",
                message,
                code,
                &m.change,
                &err
            );
            prop_assert!(
                err.contains(message.as_str()),
                "stderr lacks the library's message {message:?}\n  stderr: {err}"
            );
            prop_assert!(
                names_one_of(&err, &m.names),
                "exit 2 naming none of {:?}\n  change: {}\n  stderr: {err}",
                m.names,
                m.change
            );
            prop_assert!(
                !err.contains("missing.mp4"),
                "a config error must come before any input is opened: {err}"
            );
        }
        Ok(()) if code == 2 => {
            // Valid, but unusable here (a CUDA device on a machine without one): still named.
            let mut keys = Vec::new();
            all_keys(&m.doc, &mut keys);
            prop_assert!(
                names_one_of(&err, &keys),
                "exit 2 for a document the library accepts, naming no key of it\n  change: {}\n  stderr: {err}",
                m.change
            );
        }
        Ok(()) => prop_assert!(
            accepted_codes.contains(&code),
            "exit {code} for an accepted document (expected {accepted_codes:?})\n  change: {}\n  stderr: {err}",
            m.change
        ),
    }
    Ok(())
}

fn missing_input(dir: &Path) -> PathBuf {
    dir.join("missing.mp4")
}

/// FAILS with `pipeline_parser_rejections_name_the_key` (the binary prints the parser's message).
#[test]
fn run_with_a_mutated_pipeline_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    runner(BINARY_CASES, 0xF00D_0007)
        .run(&edited_values(pipeline_bases(false)), |m| {
            let cfg = pipeline(
                &d,
                "cfg.json",
                &serde_json::to_string_pretty(&m.doc).unwrap(),
            );
            let library = PipelineConfig::load(&cfg)
                .map(|_| ())
                .map_err(|e| e.to_string());
            let out_dir = d.join("out");
            let out = framepipe()
                .args(["-q", "run", "--pipeline"])
                .arg(&cfg)
                .arg("-o")
                .arg(&out_dir)
                .arg(missing_input(&d))
                .output()
                .unwrap();
            // Accepted: the missing input fails (exit 1).
            let r = check_binary(&m, &library, &out, &out_dir, &[1]);
            let _ = std::fs::remove_dir_all(&out_dir);
            r
        })
        .unwrap();
}

#[test]
fn check_with_mutated_rules_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    runner(BINARY_CASES, 0xF00D_0008)
        .run(&edited_values(rules_bases(false)), |m| {
            let rules = pipeline(
                &d,
                "rules.json",
                &serde_json::to_string_pretty(&m.doc).unwrap(),
            );
            let library = RulesFile::load(&rules)
                .map(|_| ())
                .map_err(|e| e.to_string());
            let out = framepipe()
                .args(["check", "--rules"])
                .arg(&rules)
                .arg(missing_input(&d))
                .output()
                .unwrap();
            // Accepted: the missing file fails its rules (1), or no rule set's glob takes it (0).
            check_binary(&m, &library, &out, &d.join("out"), &[0, 1])
        })
        .unwrap();
}
