//! The chat-completions exchange, typed: the request framepipe sends (the prompt and a clip's
//! frames as base64 JPEG `image_url` parts, in time order, then the prompt) and the parts of the
//! response it reads. This is the format OpenAI's API defines and vLLM, SGLang, llama.cpp's
//! server, Ollama and LM Studio accept.
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::config::CaptionConfig;

/// `POST <endpoint>/chat/completions` body.
#[derive(Debug, Serialize)]
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<Message<'a>>,
    pub max_tokens: u32,
    pub temperature: f64,
}

#[derive(Debug, Serialize)]
pub struct Message<'a> {
    pub role: &'static str,
    pub content: Vec<Part<'a>>,
}

/// One part of a message's content.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl },
}

#[derive(Debug, Serialize)]
pub struct ImageUrl {
    /// `data:image/jpeg;base64,…`
    pub url: String,
}

impl<'a> ChatRequest<'a> {
    /// One user message: each JPEG in order, then the prompt.
    pub fn new(config: &'a CaptionConfig, jpegs: &[Vec<u8>]) -> ChatRequest<'a> {
        let engine = base64::engine::general_purpose::STANDARD;
        let mut content: Vec<Part> = jpegs
            .iter()
            .map(|jpeg| Part::ImageUrl {
                image_url: ImageUrl {
                    url: format!("data:image/jpeg;base64,{}", engine.encode(jpeg)),
                },
            })
            .collect();
        content.push(Part::Text {
            text: &config.prompt,
        });
        ChatRequest {
            model: &config.model,
            messages: vec![Message {
                role: "user",
                content,
            }],
            max_tokens: config.max_tokens,
            temperature: config.temperature,
        }
    }
}

/// What framepipe reads of a chat-completions response.
#[derive(Debug, Deserialize)]
pub struct ChatResponse {
    pub choices: Vec<ResponseChoice>,
    /// The model that answered, as the server names it.
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ResponseChoice {
    pub message: ResponseMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ResponseMessage {
    #[serde(default)]
    pub content: Option<String>,
}

/// A caption the server gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    /// The model that answered (the configured name when the server does not say).
    pub model: String,
}

impl ChatResponse {
    /// The first choice's text, trimmed; why not when there is none.
    pub fn answer(self, configured_model: &str) -> Result<Answer, String> {
        let Some(choice) = self.choices.into_iter().next() else {
            return Err("the response has no choices".into());
        };
        let text = choice
            .message
            .content
            .unwrap_or_default()
            .trim()
            .to_string();
        if text.is_empty() {
            return Err(format!(
                "the response's message is empty (finish_reason {:?})",
                choice.finish_reason.unwrap_or_default()
            ));
        }
        Ok(Answer {
            text,
            model: self.model.unwrap_or_else(|| configured_model.to_string()),
        })
    }
}

/// `GET <endpoint>/models`: what the start-up check reads (the model ids the server serves).
#[derive(Debug, Deserialize)]
pub struct ModelList {
    pub data: Vec<ModelEntry>,
}

#[derive(Debug, Deserialize)]
pub struct ModelEntry {
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_has_the_images_then_the_prompt() {
        let config: CaptionConfig = serde_json::from_str(
            r#"{"endpoint": "http://h/v1", "model": "qwen", "prompt": "Say it.", "max_tokens": 9}"#,
        )
        .unwrap();
        let body = serde_json::to_value(ChatRequest::new(&config, &[vec![1, 2], vec![3]])).unwrap();
        assert_eq!(body["model"], "qwen");
        assert_eq!(body["max_tokens"], 9);
        let content = &body["messages"][0]["content"];
        assert_eq!(body["messages"][0]["role"], "user");
        assert_eq!(content[0]["type"], "image_url");
        assert_eq!(
            content[0]["image_url"]["url"],
            "data:image/jpeg;base64,AQI="
        );
        assert_eq!(
            content[1]["image_url"]["url"],
            "data:image/jpeg;base64,Aw=="
        );
        assert_eq!(
            content[2],
            serde_json::json!({"type": "text", "text": "Say it."})
        );
    }

    #[test]
    fn an_answer_is_the_first_choices_text() {
        let r: ChatResponse = serde_json::from_str(
            r#"{"choices": [{"message": {"role": "assistant", "content": " red \n"}, "finish_reason": "stop"}]}"#,
        )
        .unwrap();
        assert_eq!(
            r.answer("m").unwrap(),
            Answer {
                text: "red".into(),
                model: "m".into()
            }
        );
        let empty: ChatResponse = serde_json::from_str(r#"{"choices": [], "model": "x"}"#).unwrap();
        assert_eq!(
            empty.answer("m").unwrap_err(),
            "the response has no choices"
        );
    }
}
