//! Why a pipeline config is refused: one variant per kind of check, each naming the key, the
//! value as written and what is allowed. The texts are the ones `validate` has always printed
//! (tests and users match on them), so a variant's `Display` must not change.
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// A number outside its range; `actual` is the value as `Display` prints it.
    #[error("{key} = {actual}: {expected}")]
    OutOfRange {
        key: &'static str,
        actual: String,
        expected: &'static str,
    },
    /// A name outside its fixed set; `actual` is the value quoted (`Debug`).
    #[error("{key} = {actual}: allowed: {allowed}")]
    NotOneOf {
        key: &'static str,
        actual: String,
        allowed: String,
    },
    /// A setting that only works together with another section.
    #[error("{key} needs {needs}")]
    Requires {
        key: &'static str,
        needs: &'static str,
    },
    /// Nothing usable given where something must be (an empty list, none of several keys);
    /// `what` says what to give.
    #[error("{key}: {what}")]
    Empty {
        key: &'static str,
        what: &'static str,
    },
    /// A prompt template without exactly one `{}` placeholder.
    #[error("{key}: {template:?} must contain exactly one {{}} for the label")]
    Template { key: &'static str, template: String },
    /// A model path that does not hold a model; `path` is the path as displayed.
    #[error("{key} = {path:?}: {why}")]
    NoModel {
        key: &'static str,
        path: String,
        why: &'static str,
    },
    /// `limits.max_pixels` below `limits.min_side` squared: no input could pass both.
    #[error(
        "limits.max_pixels = {max_pixels}: must be at least limits.min_side squared ({min_side_squared})"
    )]
    MaxPixelsBelowMinSide {
        max_pixels: u64,
        min_side_squared: u64,
    },
    /// `runtime.device_frames = "on"` although something needs frames in host memory.
    #[error(
        "runtime.device_frames = \"on\": frames stay on the model device only when the model stages are their only consumers, and this pipeline has {why} (use \"auto\" or \"off\")"
    )]
    DeviceFramesOn { why: &'static str },
    /// A setting under a key the user named (a head's name, say).
    #[error("{key}: {why}")]
    Named { key: String, why: String },
    /// A `device` the device parser refuses; `why` is its message.
    #[error("device = {value:?}: {why}")]
    Device { value: String, why: String },
}
