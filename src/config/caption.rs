//! The `caption` section: captions for every clip file from an OpenAI-compatible vision-language
//! server (chat completions with `image_url` parts), and how the client behaves towards it.
use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CaptionConfig {
    /// The API's base URL, e.g. `http://127.0.0.1:8000/v1` (requests go to
    /// `<endpoint>/chat/completions`).
    pub endpoint: String,
    /// The model name the server knows.
    pub model: String,
    /// The environment variable that holds the bearer key (`null`: no key is sent). The key
    /// itself is never written anywhere.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default = "default_prompt")]
    pub prompt: String,
    /// Frames sent per clip, spread evenly from its first to its last.
    #[serde(default = "default_frames")]
    pub frames: u32,
    /// Each frame's long side in pixels (the picture only: letterbox bars are left out).
    #[serde(default = "default_size")]
    pub size: u32,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    #[serde(default)]
    pub temperature: f64,
    /// Requests in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// One attempt's limit; an attempt that runs past it is retried.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: f64,
    /// Further attempts after a 429, a 5xx, a timeout or a dropped connection.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// What a clip whose caption could not be made does to its input.
    #[serde(default)]
    pub on_error: OnError,
}

/// `caption.on_error`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The input fails, naming the clip.
    #[default]
    Fail,
    /// The clip records `caption_error` and the input completes.
    Skip,
}

fn default_prompt() -> String {
    "Describe this video clip in one or two sentences: the main subjects, the setting, what \
     happens and how the camera moves. The images are frames in time order."
        .into()
}
fn default_frames() -> u32 {
    4
}
fn default_size() -> u32 {
    448
}
fn default_max_tokens() -> u32 {
    256
}
fn default_concurrency() -> usize {
    8
}
fn default_timeout_seconds() -> f64 {
    120.0
}
fn default_retries() -> u32 {
    4
}

impl CaptionConfig {
    /// `clips`, `encode`: whether the pipeline has those sections (captions are made from the
    /// clip files' frames).
    pub fn validate(&self, clips: bool, encode: bool) -> Result<(), ConfigError> {
        if !(clips && encode) {
            return Err(ConfigError::Requires {
                key: "caption",
                needs: "the clips and encode sections (captions are made from the clip files)",
            });
        }
        let url = self.endpoint.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
            return Err(ConfigError::Named {
                key: "caption.endpoint".into(),
                why: format!(
                    "{:?} is not an http:// or https:// URL (e.g. \"http://127.0.0.1:8000/v1\")",
                    self.endpoint
                ),
            });
        }
        if self.model.trim().is_empty() {
            return Err(ConfigError::Empty {
                key: "caption.model",
                what: "give the model name the server serves",
            });
        }
        if self.prompt.trim().is_empty() {
            return Err(ConfigError::Empty {
                key: "caption.prompt",
                what: "give the instruction sent with the frames",
            });
        }
        if self
            .api_key_env
            .as_deref()
            .is_some_and(|v| v.trim().is_empty())
        {
            return Err(ConfigError::Empty {
                key: "caption.api_key_env",
                what: "give an environment variable's name, or null for no key",
            });
        }
        self.validate_numbers()
    }

    fn validate_numbers(&self) -> Result<(), ConfigError> {
        let ranges: [(&'static str, u64, u64, u64, &'static str); 5] = [
            (
                "caption.frames",
                self.frames.into(),
                1,
                16,
                "must be in [1, 16]",
            ),
            (
                "caption.size",
                self.size.into(),
                64,
                2048,
                "must be in [64, 2048]",
            ),
            (
                "caption.max_tokens",
                self.max_tokens.into(),
                1,
                32768,
                "must be in [1, 32768]",
            ),
            (
                "caption.concurrency",
                self.concurrency as u64,
                1,
                256,
                "must be in [1, 256]",
            ),
            (
                "caption.retries",
                self.retries.into(),
                0,
                20,
                "must be in [0, 20]",
            ),
        ];
        for (key, value, lo, hi, expected) in ranges {
            if !(lo..=hi).contains(&value) {
                return Err(ConfigError::OutOfRange {
                    key,
                    actual: value.to_string(),
                    expected,
                });
            }
        }
        let t = self.temperature;
        if !(t.is_finite() && (0.0..=2.0).contains(&t)) {
            return Err(ConfigError::OutOfRange {
                key: "caption.temperature",
                actual: t.to_string(),
                expected: "must be in [0, 2]",
            });
        }
        let s = self.timeout_seconds;
        if !(s.is_finite() && s > 0.0 && s <= 3600.0) {
            return Err(ConfigError::OutOfRange {
                key: "caption.timeout_seconds",
                actual: s.to_string(),
                expected: "must be in (0, 3600]",
            });
        }
        Ok(())
    }

    /// What makes two captions of the same frames comparable: the model, the prompt and the
    /// generation settings (not the endpoint, the key or the client's behaviour), as a short
    /// hex digest recorded with every caption.
    pub fn settings_id(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical = serde_json::json!({
            "model": self.model,
            "prompt": self.prompt,
            "frames": self.frames,
            "size": self.size,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        });
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> CaptionConfig {
        serde_json::from_str(&format!(
            r#"{{"endpoint": "http://127.0.0.1:8000/v1", "model": "m"{extra}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn defaults_validate_with_clips_and_encode_only() {
        let c = parse("");
        assert_eq!((c.frames, c.size, c.concurrency, c.retries), (4, 448, 8, 4));
        assert_eq!(c.on_error, OnError::Fail);
        c.validate(true, true).unwrap();
        assert_eq!(
            c.validate(true, false).unwrap_err().to_string(),
            "caption needs the clips and encode sections (captions are made from the clip files)"
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        for (extra, expected) in [
            (r#", "frames": 0"#, "caption.frames = 0: must be in [1, 16]"),
            (
                r#", "size": 32"#,
                "caption.size = 32: must be in [64, 2048]",
            ),
            (
                r#", "concurrency": 0"#,
                "caption.concurrency = 0: must be in [1, 256]",
            ),
            (
                r#", "temperature": 3"#,
                "caption.temperature = 3: must be in [0, 2]",
            ),
            (
                r#", "timeout_seconds": 0"#,
                "caption.timeout_seconds = 0: must be in (0, 3600]",
            ),
            (
                r#", "prompt": " ""#,
                "caption.prompt: give the instruction sent with the frames",
            ),
        ] {
            let err = parse(extra).validate(true, true).unwrap_err().to_string();
            assert_eq!(err, expected, "{extra}");
        }
        let mut c = parse("");
        c.endpoint = "127.0.0.1:8000".into();
        let err = c.validate(true, true).unwrap_err().to_string();
        assert!(
            err.starts_with("caption.endpoint: \"127.0.0.1:8000\" is not"),
            "{err}"
        );
    }

    #[test]
    fn settings_id_follows_model_and_prompt_not_the_endpoint() {
        let a = parse("");
        let mut b = a.clone();
        b.endpoint = "https://example.com/v1".into();
        b.concurrency = 2;
        assert_eq!(a.settings_id(), b.settings_id());
        b.prompt = "Say the colour.".into();
        assert_ne!(a.settings_id(), b.settings_id());
        let mut c = a.clone();
        c.model = "other".into();
        assert_ne!(a.settings_id(), c.settings_id());
    }
}
