//! Clips: every scene becomes training samples. [`record`] is one line of `clips.jsonl`.
pub mod record;
