//! Captions for clips from an OpenAI-compatible vision-language server (`caption` section).
//!
//! ```text
//! clip frames ─► pool worker ─► images (picture only, JPEG) ─► cache? ─► client ─► cache
//!  (run: the encoder's canvases;      (caption.concurrency workers)   (retries)   (captions.jsonl)
//!   `framepipe caption`: clip files)                  └──► outcome by clip, never by arrival
//! ```
//! [`Captioner`] is settled once per command (the key read, the endpoint checked); a
//! [`pool::CaptionPool`] per output takes clips as they close and answers each with an
//! [`Outcome`] under the clip's own number, whatever order answers come in.
pub mod cache;
pub mod client;
pub mod images;
pub mod pool;
pub mod request;

use cache::{request_key, CachedCaption, CaptionCache};
use client::{CallError, Client};
use request::ChatRequest;

use crate::config::{CaptionConfig, OnError};

/// What became of one clip's caption.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Captioned {
        caption: CachedCaption,
        /// Answered from `captions.jsonl` (no request sent).
        from_cache: bool,
        /// Requests sent for it (0 from the cache; more than 1 after retries).
        attempts: u32,
    },
    /// Why there is no caption (`caption_error`), after how many requests.
    Failed { error: String, attempts: u32 },
}

/// The caption settings of a command, with the endpoint checked.
pub struct Captioner {
    pub config: CaptionConfig,
    client: Client,
    settings_id: String,
    /// Why no request is sent at all (the endpoint was unreachable at start and
    /// `on_error` is `skip`): cached captions are still used.
    unavailable: Option<String>,
}

impl Captioner {
    /// Reads the key from `caption.api_key_env` and checks the endpoint (`GET /models`). A
    /// refused key or an endpoint that is not OpenAI-compatible is an error; an unreachable one
    /// too, unless `on_error` is `skip` (then clips record why they have no caption).
    pub fn connect(config: &CaptionConfig) -> Result<Captioner, String> {
        let key = match &config.api_key_env {
            Some(var) => match std::env::var(var) {
                Ok(key) if !key.trim().is_empty() => Some((key.trim().to_string(), var.clone())),
                _ => {
                    return Err(format!(
                        "caption.api_key_env: the environment variable {var} is not set"
                    ))
                }
            },
            None => None,
        };
        let client = Client::new(config, key);
        let unavailable = match client.check(&config.model) {
            Ok(true) => None,
            Ok(false) => {
                tracing::warn!(
                    model = %config.model,
                    endpoint = %config.endpoint,
                    "the server does not list the caption model; asking for it anyway"
                );
                None
            }
            Err(e) => match refusal(&client, &e) {
                Some(why) => return Err(why),
                None if config.on_error == OnError::Skip => {
                    tracing::warn!(error = %e, "the caption endpoint is unreachable: clips get caption_error (run `framepipe caption` later)");
                    Some(format!("not attempted: {e}"))
                }
                None => return Err(format!("{e} (checked before decoding)")),
            },
        };
        Ok(Captioner {
            settings_id: config.settings_id(),
            config: config.clone(),
            client,
            unavailable,
        })
    }

    pub fn settings_id(&self) -> &str {
        &self.settings_id
    }

    /// The cache key of a request sending `jpegs` with these settings.
    pub fn key(&self, jpegs: &[Vec<u8>]) -> String {
        request_key(&self.settings_id, jpegs)
    }

    /// The caption of the request `key` (see [`Self::key`]) from `cache`, or why none will be asked
    /// for (the server was unreachable at start); `None`: ask the server ([`Self::ask`]).
    pub fn cached(&self, cache: &CaptionCache, key: &str) -> Option<Outcome> {
        if let Some(caption) = cache.get(key) {
            return Some(Outcome::Captioned {
                caption,
                from_cache: true,
                attempts: 0,
            });
        }
        self.unavailable.as_ref().map(|why| Outcome::Failed {
            error: why.clone(),
            attempts: 0,
        })
    }

    /// The server's caption of a clip whose frames are `jpegs`; the answer goes into `cache`.
    pub fn ask(&self, cache: &CaptionCache, key: String, jpegs: &[Vec<u8>]) -> Outcome {
        match self.client.complete(&ChatRequest::new(&self.config, jpegs)) {
            Ok((answer, attempts)) => {
                let caption = CachedCaption {
                    key,
                    caption: answer.text,
                    model: answer.model,
                    settings: self.settings_id.clone(),
                };
                match cache.put(caption.clone()) {
                    Ok(()) => Outcome::Captioned {
                        caption,
                        from_cache: false,
                        attempts,
                    },
                    Err(e) => Outcome::Failed {
                        error: e.to_string(),
                        attempts,
                    },
                }
            }
            Err(failed) => Outcome::Failed {
                error: failed.to_string(),
                attempts: failed.attempts,
            },
        }
    }
}

/// Why the endpoint check's failure is a configuration error (a refused key, something that is
/// not an OpenAI-compatible API); `None` when the server is merely not there now.
fn refusal(client: &Client, e: &CallError) -> Option<String> {
    match e {
        CallError::Status {
            status: 401 | 403, ..
        } => Some(format!("{e}: {}", client.key_hint())),
        CallError::Status { status, .. } if *status < 500 && *status != 429 => Some(format!(
            "{e}: not an OpenAI-compatible endpoint (GET /models must list the models)"
        )),
        CallError::NotOpenAi { .. } => Some(e.to_string()),
        _ => None,
    }
}
