//! Clips: every scene becomes training samples. [`plan`] decides which frames (in the
//! finished scene list, and live while encoding); [`record`] is one line of `clips.jsonl`.
pub mod assemble;
pub mod motion;
pub mod plan;
pub mod record;
