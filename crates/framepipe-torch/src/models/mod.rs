//! The models, in tch: transformers' CLIP (`clip`), the VAEs (`vae`: diffusers'
//! AutoencoderKL, TAESD) and the shot-transition detector TransNetV2 (`transnet`).
pub mod clip;
pub mod transnet;
pub mod vae;
