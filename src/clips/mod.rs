//! Clips: every scene becomes training samples. [`plan`] decides which frames (in the
//! finished scene list, and live while encoding); [`assemble`] makes their
//! records (`crate::output::clip_record`).
pub mod assemble;
pub mod filters;
pub mod looks;
pub mod motion;
pub mod plan;
pub mod signature;
