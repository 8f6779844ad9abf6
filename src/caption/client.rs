//! The HTTP side of captioning: one chat-completions call with its retries, and the start-up
//! check of the endpoint. Every wait is bounded: an attempt by `caption.timeout_seconds`, the
//! attempts by `1 + caption.retries`, a pause between them by [`MAX_PAUSE`].
//!
//! Retried: 429 and 5xx answers (after the server's `Retry-After` when it sends one, else
//! exponential backoff with jitter), timeouts, refused or dropped connections and answers that
//! are not chat-completions JSON. Anything else (401, 404, 400…) fails at once. Errors name the
//! URL and the HTTP status; the key is sent only in the `Authorization` header and never
//! appears in an error (a server echoing it back is redacted).
use std::time::Duration;

use super::request::{Answer, ChatRequest, ChatResponse, ModelList};
use crate::config::CaptionConfig;

/// The longest pause between two attempts, whatever the server's `Retry-After` says.
pub const MAX_PAUSE: Duration = Duration::from_secs(60);
/// The first backoff pause (doubling after each failed attempt, up to [`MAX_PAUSE`]).
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// Most of a failed answer's body quoted in an error.
const BODY_EXCERPT: usize = 300;
/// Most of an answer read (a caption is a few hundred bytes).
const MAX_BODY: u64 = 4 << 20;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("{url} answered HTTP {status}{detail}")]
    Status {
        url: String,
        status: u16,
        /// `: <body excerpt>`, or empty.
        detail: String,
        retry_after: Option<Duration>,
    },
    #[error("{url} did not answer within {seconds} s")]
    Timeout { url: String, seconds: f64 },
    #[error("cannot reach {url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("{url} dropped the connection: {why}")]
    Dropped { url: String, why: String },
    #[error(
        "{url} answered HTTP 200 with something that is not an OpenAI-compatible response ({why})"
    )]
    NotOpenAi { url: String, why: String },
}

impl CallError {
    /// Whether another attempt may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Status { status, .. } => *status == 429 || *status >= 500,
            CallError::Timeout { .. }
            | CallError::Unreachable { .. }
            | CallError::Dropped { .. }
            | CallError::NotOpenAi { .. } => true,
        }
    }
}

/// A failed call after all its attempts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{last} (after {attempts} attempt{s})", s = if *.attempts == 1 { "" } else { "s" })]
pub struct Failed {
    pub last: CallError,
    pub attempts: u32,
}

/// A client of one endpoint (cheap to clone: the connection pool is shared).
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    key: Option<String>,
    /// Where the key came from, for messages (`$OPENAI_API_KEY`).
    key_source: Option<String>,
    timeout: Duration,
    retries: u32,
}

impl Client {
    /// `key`: the bearer key and the environment variable it was read from.
    pub fn new(config: &CaptionConfig, key: Option<(String, String)>) -> Client {
        let timeout = Duration::from_secs_f64(config.timeout_seconds);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_idle_connections_per_host(config.concurrency.max(1))
            .build()
            .into();
        let (key, key_source) = match key {
            Some((key, var)) => (Some(key), Some(var)),
            None => (None, None),
        };
        Client {
            agent,
            base: config.endpoint.trim().trim_end_matches('/').to_string(),
            key,
            key_source,
            timeout,
            retries: config.retries,
        }
    }

    pub fn completions_url(&self) -> String {
        format!("{}/chat/completions", self.base)
    }

    /// A caption for `request`, retrying transient failures, with the attempts it took.
    pub fn complete(&self, request: &ChatRequest) -> Result<(Answer, u32), Failed> {
        let body = serde_json::to_vec(request).expect("a request serializes");
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.attempt(&body, request.model) {
                Ok(answer) => return Ok((answer, attempts)),
                Err(last) if !last.is_transient() || attempts > self.retries => {
                    return Err(Failed { last, attempts })
                }
                Err(e) => {
                    let pause = pause_before(attempts, &e);
                    tracing::debug!(error = %e, attempt = attempts, pause = ?pause, "retrying a caption");
                    std::thread::sleep(pause);
                }
            }
        }
    }

    fn attempt(&self, body: &[u8], model: &str) -> Result<Answer, CallError> {
        let url = self.completions_url();
        let mut request = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json");
        if let Some(key) = &self.key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let response = request.send(body).map_err(|e| self.transport(&url, e))?;
        let text = self.body(&url, response)?;
        let parsed: ChatResponse =
            serde_json::from_str(&text).map_err(|e| CallError::NotOpenAi {
                url: url.clone(),
                why: format!("{e}: {}", self.excerpt(&text)),
            })?;
        parsed
            .answer(model)
            .map_err(|why| CallError::NotOpenAi { url, why })
    }

    /// Checks the endpoint before any frame is sent: `GET <endpoint>/models` must answer with a
    /// model list. Returns whether `model` is in it.
    pub fn check(&self, model: &str) -> Result<bool, CallError> {
        let url = format!("{}/models", self.base);
        let mut request = self.agent.get(&url);
        if let Some(key) = &self.key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let response = request.call().map_err(|e| self.transport(&url, e))?;
        let text = self.body(&url, response)?;
        let list: ModelList = serde_json::from_str(&text).map_err(|e| CallError::NotOpenAi {
            url: url.clone(),
            why: format!("no model list: {e}: {}", self.excerpt(&text)),
        })?;
        Ok(list.data.iter().any(|m| m.id == model))
    }

    /// What a refused key means here, for messages.
    pub fn key_hint(&self) -> String {
        match &self.key_source {
            Some(var) => format!("the key in ${var} was refused"),
            None => "no key was sent (caption.api_key_env is not set)".into(),
        }
    }

    /// A 200 answer's body, or the status as an error.
    fn body(
        &self,
        url: &str,
        mut response: ureq::http::Response<ureq::Body>,
    ) -> Result<String, CallError> {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string();
        if status == 200 {
            return text.map_err(|e| self.transport(url, e));
        }
        let detail = match text {
            Ok(t) if !t.trim().is_empty() => format!(": {}", self.excerpt(&t)),
            _ => String::new(),
        };
        Err(CallError::Status {
            url: url.to_string(),
            status,
            detail,
            retry_after,
        })
    }

    fn transport(&self, url: &str, e: ureq::Error) -> CallError {
        let url = url.to_string();
        match e {
            ureq::Error::Timeout(_) => CallError::Timeout {
                url,
                seconds: self.timeout.as_secs_f64(),
            },
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => CallError::Unreachable {
                url,
                why: e.to_string(),
            },
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                CallError::Unreachable {
                    url,
                    why: io.to_string(),
                }
            }
            other => CallError::Dropped {
                url,
                why: self.redact(&other.to_string()),
            },
        }
    }

    /// The start of a body for an error message, on one line, without the key.
    fn excerpt(&self, text: &str) -> String {
        let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let cut: String = one_line.chars().take(BODY_EXCERPT).collect();
        self.redact(&cut)
    }

    fn redact(&self, text: &str) -> String {
        match &self.key {
            Some(key) if !key.is_empty() => text.replace(key.as_str(), "<key>"),
            _ => text.to_string(),
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is left to the backoff).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(60.0)))
}

/// The pause after the `attempts`-th failed attempt: the server's `Retry-After` (plus up to a
/// tenth, so that clips told the same thing do not return at once), else
/// `FIRST_PAUSE × 2^(attempts-1)` scaled by a random factor in [0.5, 1]; never over [`MAX_PAUSE`].
pub fn pause_before(attempts: u32, error: &CallError) -> Duration {
    let jitter = jitter();
    let pause = match error {
        CallError::Status {
            retry_after: Some(after),
            ..
        } => after.mul_f64(1.0 + 0.1 * jitter),
        _ => {
            let doubling = 2f64.powi(attempts.saturating_sub(1).min(16) as i32);
            FIRST_PAUSE.mul_f64(doubling.min(120.0) * (0.5 + 0.5 * jitter))
        }
    };
    pause.min(MAX_PAUSE)
}

/// A number in [0, 1) that differs between threads and calls (no need for a real generator).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, retry_after: Option<Duration>) -> CallError {
        CallError::Status {
            url: "u".into(),
            status,
            detail: String::new(),
            retry_after,
        }
    }

    #[test]
    fn only_429_5xx_and_transport_failures_are_retried() {
        assert!(status(429, None).is_transient());
        assert!(status(503, None).is_transient());
        for s in [400, 401, 403, 404, 422] {
            assert!(!status(s, None).is_transient(), "{s}");
        }
    }

    #[test]
    fn pauses_double_are_jittered_and_bounded() {
        let t = CallError::Timeout {
            url: "u".into(),
            seconds: 1.0,
        };
        for attempts in 1..40 {
            let p = pause_before(attempts, &t);
            let full = FIRST_PAUSE.mul_f64(2f64.powi(attempts as i32 - 1).min(120.0));
            assert!(p <= MAX_PAUSE && p <= full && p >= full.mul_f64(0.5).min(MAX_PAUSE));
        }
        let told = pause_before(1, &status(429, Some(Duration::from_secs(2))));
        assert!(told >= Duration::from_secs(2) && told <= Duration::from_millis(2200));
        let huge = pause_before(1, &status(429, parse_retry_after("100000")));
        assert_eq!(huge, MAX_PAUSE);
    }

    #[test]
    fn retry_after_is_seconds() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
