//! framepipe: videos in, normalized and scene-annotated training data out, in one pass.
//!
//! ```text
//! INPUT ──► probe ──► decode ──┬──► scenes (HSV content detector, or 48x27 → TransNetV2) ┐ cuts
//!          (CPU, or NVDEC)     ├──► normalize (720p/1080p canvas, fit/fill/stretch,   │
//!                              │    rotation, SAR, pts kept or fps-resampled)         │
//!                              │     ├──► encode (libx264) + mux ◄────────────────────┤ chapters
//!                              │     ├──► tagging (CLIP: sampled areas → libtorch) ◄──┘ per_scene
//!                              │     └──► vae (sampled canvases → libtorch) ──► latents/*.safetensors
//!                              └──► audio packets ──► mux (copied, or AAC) ──► <stem>.mp4
//!                                          annotate ──► <stem>.json, embeddings.safetensors
//!          clips: the encoder starts each clip on an IDR frame ──► clips/<id>.mp4, clips.jsonl
//!          curation: blank/frozen per decoded frame (scenes stage), text read from each clip's
//!          frames as the encoder cuts it (Tesseract), heads on clip embeddings ──► `filters` drop clips, with their reasons
//!          captions: each clip's frames as it closes ──► a pool of HTTP clients of an
//!          OpenAI-compatible VLM server (retried, cached in captions.jsonl) ──► clips.jsonl `caption`
//! ```
//! Each stage is a thread; stages are joined by bounded channels (back-pressure, flat memory);
//! decoded frames are shared by `Arc`. The model stages hand libtorch RGB made by swscale, or on
//! CUDA the YUV planes to convert there; when they are the frames' only consumers and NVDEC
//! decodes for a CUDA device, normalize itself runs on the GPU and the canvases stay there
//! (`runtime.device_frames`). Afterwards `search`/`describe` read the stored
//! embeddings of finished outputs (no decoding), `dedup` groups near-duplicate clips by their
//! signatures (`clips.jsonl` `phash`: 16 frames' pHashes, taken by the scenes stage) or
//! embeddings into a persisted index, `caption` captions finished outputs' clip files, and
//! `search` ranks scenes by CLIP, by BM25 over their captions, or both. See
//! `docs/architecture.md` for the design.
pub mod batch;
pub mod bench;
pub mod caption;
pub mod caption_outputs;
pub mod check;
pub mod cli;
pub mod clips;
pub mod commands;
pub mod config;
pub mod cpu_memory;
pub mod dedup;
pub mod device;
pub mod error;
pub mod export;
pub mod gpu;
pub mod heads;
pub mod job;
pub mod latent_shard;
pub mod logging;
pub mod media;
pub mod model_id;
pub mod ocr;
pub mod output;
pub mod pipeline;
pub mod reconstruction;
pub mod report_page;
pub mod scenes;
pub mod search;
pub mod session;
pub mod strict_json;
pub mod tagging;
pub mod torch;
pub mod vae_decode;
pub mod vae_video;

/// The built-in pipeline used when `run` gets no `--pipeline` (identical to `pipelines/default.json`).
pub const DEFAULT_PIPELINE: &str = include_str!("../pipelines/default.json");
