//! What an export says about itself, beside its shards: `README.md`, a Hugging Face dataset
//! card whose front matter names the shards (`configs: … data_files`), so
//! `datasets.load_dataset(DIR)` loads them with no arguments, with a short description (sources,
//! counts, duration, filters, columns); and `schema.json`, the columns or members, framepipe's
//! version and each output's config hash. Both are the same bytes for the same outputs.
use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::{ClipRef, Format, Output};

/// The card's file name (the Hugging Face Hub's).
pub const CARD_FILE: &str = "README.md";
/// The schema file's name.
pub const SCHEMA_FILE: &str = "schema.json";

/// One column (Parquet) or member (WebDataset) as `schema.json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub name: String,
    /// Arrow's type name (Parquet), or what the member holds (WebDataset).
    #[serde(rename = "type")]
    pub kind: String,
    pub nullable: bool,
}

#[derive(Serialize)]
struct SchemaFile<'a> {
    framepipe_version: &'static str,
    format: &'static str,
    clips: usize,
    shards: usize,
    columns: &'a [Column],
    outputs: Vec<SourceOutput<'a>>,
}

#[derive(Serialize)]
struct SourceOutput<'a> {
    output: String,
    input: &'a str,
    config_hash: &'a str,
    clips: usize,
}

/// What the card and the schema describe.
pub struct Described<'a> {
    pub format: Format,
    pub outputs: &'a [Output],
    pub clips: &'a [ClipRef<'a>],
    pub shards: usize,
    pub columns: &'a [Column],
    pub include_dropped: bool,
    /// Clips a `duplicates.jsonl` left out.
    pub deduplicated: usize,
    /// `dataset_info:` with the declared features (WebDataset exports; Parquet carries its
    /// schema in its files).
    pub dataset_info: Option<String>,
}

impl Described<'_> {
    fn format_name(&self) -> &'static str {
        match self.format {
            Format::Parquet => "parquet",
            Format::Webdataset => "webdataset",
        }
    }

    fn data_files(&self) -> &'static str {
        match self.format {
            Format::Parquet => "clips-*.parquet",
            Format::Webdataset => "shard-*.tar",
        }
    }

    /// Clips per output folder, in the export's order.
    fn per_output(&self) -> Vec<(&Output, usize)> {
        let mut counts: BTreeMap<&std::path::Path, usize> = BTreeMap::new();
        for c in self.clips {
            *counts.entry(c.output.dir.as_path()).or_default() += 1;
        }
        self.outputs
            .iter()
            .filter_map(|o| counts.get(o.dir.as_path()).map(|&n| (o, n)))
            .collect()
    }

    /// `schema.json`'s text.
    pub fn schema_json(&self) -> String {
        let file = SchemaFile {
            framepipe_version: env!("CARGO_PKG_VERSION"),
            format: self.format_name(),
            clips: self.clips.len(),
            shards: self.shards,
            columns: self.columns,
            outputs: self
                .per_output()
                .into_iter()
                .map(|(o, clips)| SourceOutput {
                    output: o.dir.display().to_string(),
                    input: &o.marker.input,
                    config_hash: &o.marker.config_hash,
                    clips,
                })
                .collect(),
        };
        serde_json::to_string_pretty(&file).expect("the schema serializes") + "\n"
    }

    /// `README.md`'s text: front matter, then the description.
    pub fn card(&self) -> String {
        let mut md = String::new();
        let _ = write!(
            md,
            "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: \"{}\"\n{}tags:\n- video\n- framepipe\n---\n\n",
            self.data_files(),
            self.dataset_info.as_deref().unwrap_or("")
        );
        let seconds: f64 = self
            .clips
            .iter()
            .map(|c| c.clip.record.end_time - c.clip.record.start_time)
            .sum();
        let captioned = self
            .clips
            .iter()
            .filter(|c| c.clip.record.caption.is_some())
            .count();
        let _ = writeln!(
            md,
            "# Video clips exported by framepipe {}\n",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(
            md,
            "{} clips ({:.1} s, {:.2} h) from {} outputs in {} {} shards (`{}`); {}{}{} captioned.\n",
            self.clips.len(),
            seconds,
            seconds / 3600.0,
            self.per_output().len(),
            self.shards,
            self.format_name(),
            self.data_files(),
            if self.include_dropped {
                "clips the filters dropped included; "
            } else {
                "only clips every filter kept; "
            },
            match self.deduplicated {
                0 => String::new(),
                n => format!("{n} near-duplicates left out; "),
            },
            captioned
        );
        let _ = writeln!(md, "```python\nfrom datasets import load_dataset\nds = load_dataset(\"path/to/this/folder\", split=\"train\")\n```\n");
        self.sources(&mut md);
        self.columns_table(&mut md);
        md
    }

    fn sources(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "## Sources\n\n| output | input | config | clips |\n|---|---|---|---|"
        );
        for (o, n) in self.per_output() {
            let _ = writeln!(
                md,
                "| {} | {} | `{}` | {n} |",
                cell(&o.dir.display().to_string()),
                cell(&o.marker.input),
                o.marker.config_hash
            );
        }
        let _ = writeln!(
            md,
            "\nEach output's pipeline (filters included) is in its report, `<output>/<name>.json` `config`.\n"
        );
    }

    fn columns_table(&self, md: &mut String) {
        let what = match self.format {
            Format::Parquet => "## Columns\n\n| column | type | nullable |",
            Format::Webdataset => "## Members per sample\n\n| member | holds | optional |",
        };
        let _ = writeln!(md, "{what}\n|---|---|---|");
        for c in self.columns {
            let _ = writeln!(
                md,
                "| `{}` | {} | {} |",
                c.name,
                cell(&c.kind),
                if c.nullable { "yes" } else { "no" }
            );
        }
    }
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The members of a WebDataset sample, as `schema.json` and the card list them.
pub fn webdataset_members() -> Vec<Column> {
    [
        ("mp4", "the clip's H.264 MP4", true),
        (
            "json",
            "the clips.jsonl record plus source {input, output, config_hash}",
            false,
        ),
        (
            "txt",
            "the caption, UTF-8 (empty without one; present when any clip has a caption)",
            true,
        ),
        (
            "npy",
            "the CLIP embedding, float32 [D] ([0] without one; present when any clip has one)",
            true,
        ),
        (
            "latents.npy",
            "the clip's latent rows [n, C, h, w], float16 or float32",
            true,
        ),
    ]
    .into_iter()
    .map(|(name, kind, nullable)| Column {
        name: name.into(),
        kind: kind.into(),
        nullable,
    })
    .collect()
}
