//! Command-line flags (clap derive). Raw flags only; turning them into a validated run is
//! `main.rs`'s job.
use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

#[derive(Debug, Subcommand)]
pub enum VaeAction {
    /// Images (same size, sides multiples of 8), or one video (every frame at its own size) →
    /// FILE.safetensors with `latents` [N, C, h, w] (and `frame_index` for a video).
    Encode {
        #[arg(required = true, value_name = "IMAGE|VIDEO")]
        images: Vec<PathBuf>,
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Stored precision.
        #[arg(long, default_value = "f32", value_parser = latent_dtype)]
        dtype: framepipe_proto::ops::LatentDtype,
        /// Also decode and report PSNR / SSIM of the round trip per image.
        #[arg(long)]
        check: bool,
    },
    /// Latents (a .safetensors file with `latents` [N, C, h, w], or a run's `latents/` folder of
    /// shards) → OUT.mp4 (H.264) or OUT/000000.png, ...
    Decode {
        #[arg(value_name = "LATENTS")]
        latents: PathBuf,
        /// A path ending in .mp4 writes a video; anything else is a folder of PNGs.
        #[arg(short, long, value_name = "OUT")]
        output: PathBuf,
        /// The MP4's frame rate (default: the rate the latents record).
        #[arg(long)]
        fps: Option<f64>,
        /// x264 constant rate factor of the MP4.
        #[arg(long, default_value_t = 18.0)]
        crf: f64,
        /// x264 preset of the MP4.
        #[arg(long, default_value = "medium")]
        preset: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
    Github,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

#[derive(Debug, Parser)]
#[command(
    name = "framepipe",
    version,
    about = "Turn videos into normalized, scene-annotated, training-ready data in one pass"
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr, no progress bar.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// stderr's format: `text` (colours only on a terminal without NO_COLOR) or `json` (one
    /// object per line: timestamp, level, target, input, message, fields; for log collectors).
    #[arg(long, global = true, value_enum, default_value_t)]
    pub log_format: crate::logging::LogFormat,
    /// Model precision (overrides the pipeline's runtime.precision): auto = fp16 on CUDA, fp32
    /// on the CPU.
    #[arg(long, global = true, value_parser = precision_flag)]
    pub precision: Option<crate::config::Precision>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Process videos with a pipeline config: normalized MP4 + JSON per input under OUTDIR/<stem>/.
    Run {
        /// Pipeline config (JSON). Default: the built-in pipelines/default.json.
        #[arg(short, long, value_name = "FILE")]
        pipeline: Option<PathBuf>,
        /// Output folder (created if missing).
        #[arg(short, long, value_name = "OUTDIR")]
        output: PathBuf,
        /// Compute device: auto, cpu, cuda or cuda:N (overrides the config's `device`).
        #[arg(long, value_name = "DEVICE")]
        device: Option<String>,
        /// Also write an HTML page of the outputs made into OUTDIR/report/ (see `report`).
        #[arg(long)]
        report: bool,
        /// Input videos.
        #[arg(required = true, value_name = "INPUT")]
        inputs: Vec<PathBuf>,
    },
    /// Process many videos: resumable, retried, shardable across machines (`--shard I/N`).
    Batch {
        /// Pipeline config (JSON). Default: the built-in pipelines/default.json.
        #[arg(short, long, value_name = "FILE")]
        pipeline: Option<PathBuf>,
        /// Output folder; each input's folder mirrors its relative path.
        #[arg(short, long, value_name = "OUTDIR")]
        output: PathBuf,
        /// Inputs listed in a file: .txt (a path per line), .jsonl ({"path", "id"}), .csv (path[,id]).
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        /// Inputs processed at once (they share the cores).
        #[arg(short, long, default_value_t = 1)]
        jobs: usize,
        /// Take the I-th of N deterministic slices (0-based); default from JOB_COMPLETION_INDEX +
        /// FRAMEPIPE_SHARDS (Kubernetes) or SLURM_ARRAY_TASK_ID/COUNT (Slurm). `none`: no slice
        /// (ignore those variables): workers sharing OUTDIR share the inputs by claiming them.
        #[arg(long, value_name = "I/N|none")]
        shard: Option<String>,
        /// Seconds an input's claim holds without renewal (renewed every quarter of it); a
        /// worker that dies leaves its input to be taken over after this. Default 60, or
        /// FRAMEPIPE_CLAIM_LEASE_SECONDS.
        #[arg(long, value_name = "SECONDS", hide = true)]
        claim_lease: Option<f64>,
        /// Extra attempts for an input that fails for a reason other than the input itself.
        #[arg(long, default_value_t = 1)]
        retries: u32,
        /// Redo inputs whose output was made with another config.
        #[arg(long)]
        redo_stale: bool,
        /// Redo every input, done or not.
        #[arg(long)]
        force: bool,
        /// Compute device: auto, cpu, cuda or cuda:N.
        #[arg(long, value_name = "DEVICE", conflicts_with = "devices")]
        device: Option<String>,
        /// Several devices (`0,1,2` for cuda:0..2, or names): one model replica per device,
        /// inputs spread across them (at least one input at a time per device).
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        devices: Vec<String>,
        /// Also write an HTML page of OUTDIR's finished outputs into OUTDIR/report/ (see `report`).
        #[arg(long)]
        report: bool,
        /// Files or folders (searched recursively for videos).
        #[arg(value_name = "INPUT")]
        inputs: Vec<PathBuf>,
    },
    /// An HTML page of finished outputs (DIR/index.html + thumbnails), opening offline in any
    /// browser: per output its facts, a scene timeline, and per scene thumbnails, times, tags
    /// and links that play it. Exit 0 written, 1 no finished output found.
    Report {
        /// Output folders (searched recursively for finished outputs).
        #[arg(required = true, value_name = "OUTDIR")]
        dirs: Vec<PathBuf>,
        /// The page's folder (created if missing).
        #[arg(short, long, value_name = "DIR")]
        output: PathBuf,
    },
    /// Merge the per-shard summaries of a batch output folder into summary.json.
    BatchSummary {
        #[arg(value_name = "OUTDIR")]
        output: PathBuf,
    },
    /// Check media against a rules file (for CI): exit 0 all pass, 1 a rule failed, 2 cannot run.
    Check {
        /// Rules file (JSON); see pipelines/ci-check.json.
        #[arg(long, value_name = "FILE")]
        rules: PathBuf,
        /// Also write JUnit XML here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// What stdout gets.
        #[arg(long, value_enum, default_value = "text")]
        format: CheckFormat,
        /// Files checked at once (default: the number of cores).
        #[arg(short, long)]
        jobs: Option<usize>,
        /// Files, or folders searched recursively for videos.
        #[arg(required = true, value_name = "INPUT")]
        inputs: Vec<PathBuf>,
    },
    /// Embed images and texts with a CLIP model folder (Hugging Face layout) and score them:
    /// JSON with L2-normalized `image_embeds`/`text_embeds` rows and softmax probabilities.
    Clip {
        /// Model folder: config.json, model.safetensors (or sharded), tokenizer.json.
        #[arg(long, value_name = "DIR")]
        model: PathBuf,
        /// Image files (PNG, JPEG).
        #[arg(long = "image", value_name = "FILE")]
        images: Vec<PathBuf>,
        /// Texts.
        #[arg(long = "text", value_name = "STR")]
        texts: Vec<String>,
        /// auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Encode images to VAE latents (as the pipeline stores them) or decode latents to PNGs.
    Vae {
        /// diffusers AutoencoderKL/AutoencoderTiny folder, or a TAESD encoder+decoder pair folder.
        #[arg(long, value_name = "DIR")]
        model: PathBuf,
        /// auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
        #[command(subcommand)]
        action: VaeAction,
    },
    /// Print what libtorch sees (CUDA devices, cuDNN, threads) as JSON; loads libtorch.
    Devices,
    /// Print what an input is (container, codec, size, rate, frames, rotation, audio) as JSON.
    Probe {
        #[arg(value_name = "INPUT")]
        input: PathBuf,
    },
    /// Run a pipeline on one input and print each stage's frames/s, the slowest stage and (on
    /// CUDA) GPU utilization, to size jobs. Output goes to a scratch folder, removed after.
    Bench {
        /// Pipeline config (JSON). Default: the built-in pipelines/default.json.
        #[arg(short, long, value_name = "FILE")]
        pipeline: Option<PathBuf>,
        /// auto, cpu or cuda:N (overrides the pipeline's `device`).
        #[arg(long)]
        device: Option<String>,
        /// Also time decode + normalize + x264 alone on the same input.
        #[arg(long, conflicts_with = "models")]
        encode_baseline: bool,
        /// Measure only the model stages (clip, vae), on synthetic frames of INPUT's size (or
        /// 1080p) on the pipeline's canvas: their device work alone and each whole stage, so
        /// neither decoding nor the encoder bounds them.
        #[arg(long)]
        models: bool,
        /// Seconds per device measurement with --models.
        #[arg(long, default_value_t = 3.0, requires = "models")]
        seconds: f64,
        #[arg(long, value_enum, default_value = "text")]
        format: ListFormat,
        /// The input video (optional with --models).
        #[arg(value_name = "INPUT", required_unless_present = "models")]
        input: Option<PathBuf>,
    },
    /// Write random weights for the model FOLDER/config.json describes (CLIP or AutoencoderKL),
    /// for benchmarks of real shapes without downloading weights.
    #[command(hide = true)]
    MakeRandomModel {
        #[arg(value_name = "FOLDER")]
        folder: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: i64,
    },
    /// Find scenes (or sampled frames) across processed outputs by text, by picture, or by a
    /// moment of a video: cosine similarity of CLIP embeddings, no decoding of the corpus.
    Search(SearchArgs),
    /// Pack finished outputs' clips into training shards: WebDataset tars (clip MP4, JSON record,
    /// embedding and latents as .npy) or Parquet tables (one typed row per clip).
    Export(ExportArgs),
    /// Find near-duplicate clips across finished outputs by their perceptual signatures: groups
    /// of the same footage (re-encoded, rescaled, cropped, letterboxed, sped up, with a logo),
    /// one clip kept per group, written to DIR/duplicates.jsonl; a persisted index makes the
    /// next batch compare with everything deduplicated before.
    Dedup(DedupArgs),
    /// Add or refresh the captions of finished outputs' clips from their clip files, with a
    /// pipeline's `caption` section (the server may be up only after `run`, or elsewhere): clips
    /// already captioned with the same model, prompt and settings are left as they are.
    Caption {
        /// Finished output folders, or folders searched recursively for them; unfinished ones
        /// are skipped with a warning.
        #[arg(required = true, value_name = "OUTDIR")]
        dirs: Vec<PathBuf>,
        /// The pipeline config whose `caption` section says how.
        #[arg(short, long, value_name = "FILE")]
        pipeline: PathBuf,
        /// Ask again for clips captioned with these settings already (answers in an output's
        /// captions.jsonl are still reused: nothing is paid twice).
        #[arg(long)]
        refresh: bool,
    },
    /// Rank any labels for each scene of a processed output, from its stored CLIP embeddings.
    Describe {
        /// A finished output folder (OUT/<stem>) or its report JSON.
        #[arg(value_name = "OUTPUT")]
        output: PathBuf,
        /// The CLIP model folder that made the embeddings.
        #[arg(long, value_name = "DIR")]
        model: PathBuf,
        /// Labels, or files with one label per line.
        #[arg(long, required = true, num_args = 1.., value_name = "FILE|STR")]
        labels: Vec<String>,
        /// Prompt templates with one `{}` (default: the templates the run used).
        #[arg(long = "template", value_name = "STR")]
        templates: Vec<String>,
        /// Labels listed per scene (default: all).
        #[arg(long)]
        top: Option<usize>,
        #[arg(long, value_enum, default_value = "text")]
        format: ListFormat,
        /// auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
    },
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("query").required(true).multiple(true)))]
pub struct SearchArgs {
    /// Output folders (searched recursively for finished outputs).
    #[arg(required = true, value_name = "OUTDIR")]
    pub dirs: Vec<PathBuf>,
    /// The CLIP model folder that made the embeddings.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Text queries.
    #[arg(long = "text", value_name = "STR", group = "query")]
    pub texts: Vec<String>,
    /// Image queries (PNG, JPEG).
    #[arg(long = "image", value_name = "FILE", group = "query")]
    pub images: Vec<PathBuf>,
    /// A moment of a video as the query: VIDEO@SECONDS or VIDEO@HH:MM:SS(.mmm).
    #[arg(long = "like", value_name = "VIDEO@TIME", group = "query")]
    pub like: Vec<String>,
    /// A file of text queries, one per line (# comments and blank lines skipped).
    #[arg(long, value_name = "FILE", group = "query")]
    pub queries: Option<PathBuf>,
    /// Results per query.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Only results scoring at least this cosine similarity.
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub min_score: Option<f32>,
    /// Rank sampled frames instead of scenes.
    #[arg(long)]
    pub frames: bool,
    /// Cut each hit out of its output video into DIR (stream copy where a keyframe allows).
    #[arg(long, value_name = "DIR")]
    pub export_clips: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: ListFormat,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Which score orders the hits: CLIP's cosine (`clip`), BM25 over the scenes' clip captions
    /// (`captions`: text queries, scene rows), or both rankings fused (`hybrid`). Hits show both
    /// scores whenever the outputs have captions.
    #[arg(long, value_enum, default_value = "clip")]
    pub rank: crate::search::captions::Rank,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Finished output folders, or folders searched recursively for them (a folder holding
    /// clips.jsonl); unfinished ones are skipped with a warning.
    #[arg(required = true, value_name = "OUTDIR")]
    pub dirs: Vec<PathBuf>,
    /// The folder the shards go to (created if missing; shards of an earlier export of the
    /// same format are replaced).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    #[arg(long, value_enum)]
    pub format: crate::export::Format,
    /// Clips per shard (at least 1).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clips_per_shard)]
    pub clips_per_shard: usize,
    /// Also export the clips `clips.filters` dropped (with their `dropped` reasons; they have
    /// no clip file).
    #[arg(long)]
    pub include_dropped: bool,
    /// A `duplicates.jsonl` from `framepipe dedup`: each group's members other than its kept
    /// clip are left out.
    #[arg(long, value_name = "FILE")]
    pub dedup: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct DedupArgs {
    /// Finished output folders, or folders searched recursively for them; unfinished ones are
    /// skipped with a warning.
    #[arg(required = true, value_name = "OUTDIR")]
    pub dirs: Vec<PathBuf>,
    /// The folder duplicates.jsonl goes to (created if missing).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// The index folder: the clips deduplicated before, which this batch is compared with and
    /// added to (default DIR/index; made when missing).
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// What clips are compared by: their perceptual signatures (the same footage, re-encoded,
    /// rescaled, cropped, letterboxed, sped up, with a logo), their CLIP embeddings (the same
    /// scene; needs outputs of a pipeline with a clip stage), or either.
    #[arg(long, value_enum, default_value = "hash")]
    pub by: crate::dedup::index::By,
    /// The least signature similarity (0..1) of two clips that count as the same footage; an
    /// index keeps the thresholds it was made with.
    #[arg(long, value_name = "S", default_value_t = crate::dedup::DEFAULT_THRESHOLD)]
    pub threshold: f64,
    /// The least cosine (0..1] of two clips' mean CLIP embeddings that count as the same scene.
    #[arg(long, value_name = "C", default_value_t = crate::dedup::DEFAULT_EMBEDDING_THRESHOLD)]
    pub embedding_threshold: f64,
}

/// `--clips-per-shard`: a whole number, at least 1.
fn clips_per_shard(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{text:?}: {e}")),
    }
}

/// `--precision`'s values are the boundary's names (auto, fp32, fp16, bf16).
fn precision_flag(text: &str) -> Result<crate::config::Precision, String> {
    text.parse()
}

/// `--dtype`: `f32` or `f16`.
fn latent_dtype(text: &str) -> Result<framepipe_proto::ops::LatentDtype, String> {
    use framepipe_proto::ops::LatentDtype;
    match text {
        "f32" => Ok(LatentDtype::F32),
        "f16" => Ok(LatentDtype::F16),
        other => Err(format!("{other:?}: f32 or f16")),
    }
}
