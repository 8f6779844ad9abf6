//! The output contract: what framepipe writes and what its readers (search, export, report
//! page, batch, `vae decode`) read back, each name and shape defined once here. Nothing here
//! runs a stage; it depends only on config, device and media descriptions.
//!
//! `OUT/<stem>/`: `<stem>.json` ([`report::Report`], its scenes [`scene::Scene`]),
//! `<stem>.mp4`, [`files::EMBEDDINGS_FILE`], [`files::TRANSITIONS_FILE`],
//! `latents/*.safetensors` ([`tensors`]), [`files::RECONSTRUCTION_FILE`], `thumbs/`,
//! `clips/` and `clips.jsonl` ([`clip_record::ClipRecord`]), and last [`files::DONE_MARKER`].
pub mod clip_record;
pub mod files;
pub mod report;
pub mod scene;
pub mod tensors;
