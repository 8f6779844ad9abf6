//! The WebDataset export's Hugging Face `features`, declared in the dataset card's
//! `dataset_info`. `datasets`' webdataset builder otherwise infers them from the first shard
//! alone, and a field no clip of that shard has (a clip's `tags`, `latents`, `text`, ...) fails
//! the load when a later shard has it. Every member and every field `clips.jsonl` can hold is
//! declared with its type; `heads` with the head names of the export's clips.
use std::collections::BTreeSet;
use std::fmt::Write;

use super::npy::Dtype;
use super::webdataset::Members;
use super::ClipRef;

/// One declared feature: a leaf type, a list, or a struct of named features.
#[derive(Clone)]
enum Feature {
    Dtype(&'static str),
    List(Box<Feature>),
    Struct(Vec<(String, Feature)>),
}

use Feature::{Dtype as Leaf, List, Struct};

fn fields(pairs: Vec<(&str, Feature)>) -> Vec<(String, Feature)> {
    pairs.into_iter().map(|(n, f)| (n.to_string(), f)).collect()
}

fn list(inner: Feature) -> Feature {
    List(Box::new(inner))
}

impl Feature {
    /// The YAML of a named feature at `indent`, as `datasets` writes `Features._to_yaml_list`.
    fn yaml(&self, name: &str, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        let _ = writeln!(out, "{pad}- name: {}", quoted(name));
        self.body(indent + 2, out);
    }

    /// The part after `name:`: `dtype: x`, `list: ...` or `struct:` with its fields.
    fn body(&self, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match self {
            Leaf(d) => {
                let _ = writeln!(out, "{pad}dtype: {d}");
            }
            List(inner) => match inner.as_ref() {
                Leaf(d) => {
                    let _ = writeln!(out, "{pad}list: {d}");
                }
                Struct(fs) => {
                    let _ = writeln!(out, "{pad}list:");
                    for (n, f) in fs {
                        f.yaml(n, indent, out);
                    }
                }
                nested => {
                    let _ = writeln!(out, "{pad}list:");
                    nested.body(indent + 2, out);
                }
            },
            Struct(fs) => {
                let _ = writeln!(out, "{pad}struct:");
                for (n, f) in fs {
                    f.yaml(n, indent, out);
                }
            }
        }
    }
}

fn quoted(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        name.to_string()
    } else {
        format!("{name:?}")
    }
}

/// The `.json` member's fields: every field a clip record can have.
fn record(heads: &BTreeSet<String>) -> Feature {
    let string = || Leaf("string");
    let int = || Leaf("int64");
    let float = || Leaf("float64");
    let mut all = fields(vec![
        ("id", string()),
        ("file", string()),
        ("scene", int()),
        ("start_frame", int()),
        ("end_frame", int()),
        ("start_time", float()),
        ("end_time", float()),
        ("frames", int()),
        ("motion", float()),
        ("motion_source", string()),
        (
            "tags",
            list(Struct(fields(vec![
                ("label", string()),
                ("score", float()),
            ]))),
        ),
        ("embedding", list(Leaf("float32"))),
        (
            "latents",
            Struct(fields(vec![("files", list(string())), ("frames", int())])),
        ),
        ("blank", float()),
        ("frozen", float()),
        ("phash", list(string())),
        (
            "text",
            Struct(fields(vec![
                ("area", float()),
                ("words", int()),
                ("text", string()),
                ("unread", int()),
            ])),
        ),
    ]);
    if !heads.is_empty() {
        all.push((
            "heads".into(),
            Struct(heads.iter().map(|h| (h.clone(), float())).collect()),
        ));
    }
    all.extend(fields(vec![
        ("dropped", list(string())),
        ("caption", string()),
        ("caption_model", string()),
        ("caption_settings", string()),
        ("caption_error", string()),
        (
            "source",
            Struct(fields(vec![
                ("input", string()),
                ("output", string()),
                ("config_hash", string()),
            ])),
        ),
    ]));
    Struct(all)
}

/// `features:` of the card's `dataset_info` for a WebDataset export of `clips` with `members`.
pub fn webdataset_yaml(clips: &[ClipRef], members: &Members) -> String {
    let heads: BTreeSet<String> = clips
        .iter()
        .flat_map(|c| c.clip.record.heads.keys().cloned())
        .collect();
    let mut all: Vec<(String, Feature)> = Vec::new();
    if members.mp4 {
        all.push(("mp4".into(), Leaf("video")));
    }
    all.push(("json".into(), record(&heads)));
    if members.txt {
        all.push(("txt".into(), Leaf("string")));
    }
    if members.npy {
        all.push(("npy".into(), list(Leaf("float32"))));
    }
    if let Some((dtype, _)) = members.latents {
        let leaf = match dtype {
            Dtype::F16 => "float16",
            Dtype::F32 => "float32",
        };
        let four = list(list(list(list(Leaf(leaf)))));
        all.push(("latents.npy".into(), four));
    }
    all.push(("__key__".into(), Leaf("string")));
    all.push(("__url__".into(), Leaf("string")));
    let mut out = String::from("dataset_info:\n  features:\n");
    for (name, feature) in &all {
        feature.yaml(name, 2, &mut out);
    }
    out
}
