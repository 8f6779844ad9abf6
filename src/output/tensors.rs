//! The safetensors files of an output folder: their tensor names and metadata keys, shared by
//! the writers (job, vae stage, `vae encode VIDEO`, reconstruction) and the readers (`vae
//! decode`, export, search, report page).
//!
//! - `latents/*.safetensors`: [`LATENTS`] `[N, C, h, w]` and [`FRAME_INDEX`] `[N]` i64 (output
//!   frames), metadata [`META_FPS`], [`META_EVERY`], [`META_FINGERPRINT`] and the rest below.
//! - `embeddings.safetensors`: [`IMAGE_EMBEDS`] `[N, D]` f16 and [`FRAME_INDEX`].
//! - `transitions.safetensors`: [`SINGLE`], [`MANY_HOT`] (f16), [`FRAME_INDEX`] (source frames),
//!   [`TIME`] (f64).
//! - `reconstruction.safetensors`: [`FRAME_INDEX`] and [`PSNR`] (f32).

/// The folder of latent shards in an output folder.
pub const LATENTS_DIR: &str = "latents";

/// VAE latents, `[N, C, h, w]`.
pub const LATENTS: &str = "latents";
/// The frame each row belongs to, i64.
pub const FRAME_INDEX: &str = "frame_index";
/// CLIP image embeddings, `[N, D]` f16.
pub const IMAGE_EMBEDS: &str = "image_embeds";
/// TransNetV2's single-frame transition probability.
pub const SINGLE: &str = "single";
/// TransNetV2's many-hot transition probability.
pub const MANY_HOT: &str = "many_hot";
/// Seconds of each probability's frame.
pub const TIME: &str = "time";
/// Reconstruction PSNR in dB.
pub const PSNR: &str = "psnr";

/// Latents metadata: frames per second of the frames they were made from.
pub const META_FPS: &str = "fps";
/// Latents metadata: one latent every this many frames.
pub const META_EVERY: &str = "every_n_frames";
/// Latents metadata: the VAE folder's fingerprint (`model_id::fingerprint`).
pub const META_FINGERPRINT: &str = "model_fingerprint";
/// Latents and transitions metadata: the model folder.
pub const META_MODEL: &str = "model";
/// Latents metadata: the input video.
pub const META_SOURCE: &str = "source";
/// Latents metadata: the VAE's scaling factor.
pub const META_SCALING_FACTOR: &str = "scaling_factor";
/// Latents metadata: the VAE's shift factor (`none` when it has none).
pub const META_SHIFT_FACTOR: &str = "shift_factor";
/// Latents metadata: the pixel range the VAE takes.
pub const META_INPUT_RANGE: &str = "input_range";
/// Latents metadata: the posterior's mean, or a seeded sample.
pub const META_POSTERIOR: &str = "posterior";
/// Latents metadata: whether tiled encoding was on.
pub const META_TILING: &str = "tiling";
/// Latents metadata: the canvas size, `WxH`.
pub const META_RESOLUTION: &str = "resolution";
/// Transitions metadata: the detector.
pub const META_DETECTOR: &str = "detector";

/// How latents were drawn from the posterior, as the report and shard metadata say it.
pub fn posterior(config: &crate::config::VaeConfig) -> String {
    match config.sample_seed {
        None => "mean".into(),
        Some(seed) => format!("sample, seed {seed} + frame index"),
    }
}
