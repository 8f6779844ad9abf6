//! The models, in tch: transformers' CLIP (`clip`) and the VAEs (`vae`: diffusers'
//! AutoencoderKL, TAESD).
pub mod clip;
pub mod vae;
