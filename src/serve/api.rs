//! OpenAI's request and response shapes for `ember serve`: checking a request body (every
//! field Ember does not support is a 400 naming it, never silently ignored) and building the
//! response objects and stream chunks.

use serde_json::{json, Map, Value};

/// An OpenAI-style error: `{"error": {"message", "type", "param", "code"}}` with an HTTP status.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 400 `invalid_request_error` about `param`.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param.to_string()),
            code: Some("invalid_value"),
        }
    }

    /// A 400 for a field Ember does not support.
    pub fn unsupported(param: &str, message: impl Into<String>) -> Self {
        ApiError {
            code: Some("unsupported_parameter"),
            ..ApiError::invalid(param, message)
        }
    }

    pub fn new(
        status: u16,
        kind: &'static str,
        code: Option<&'static str>,
        message: String,
    ) -> Self {
        ApiError {
            status,
            message,
            kind,
            param: None,
            code,
        }
    }

    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

/// What to generate from: a conversation (rendered by the model's chat template), text, or ids.
#[derive(Clone, Debug, PartialEq)]
pub enum Prompt {
    Chat(Vec<(String, String)>),
    Text(String),
    Ids(Vec<u32>),
}

/// Sampling fields as given; `None` takes the server's default (Ember's CLI defaults).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sampling {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub seed: Option<u64>,
}

/// A checked `/v1/chat/completions` or `/v1/completions` request.
#[derive(Clone, Debug, PartialEq)]
pub struct GenRequest {
    pub prompt: Prompt,
    /// Tokens to generate at most; `None`: until the end of text or a full context.
    pub max_tokens: Option<usize>,
    pub sampling: Sampling,
    pub stops: Vec<String>,
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with `usage` before `[DONE]`.
    pub include_usage: bool,
}

/// Which endpoint a body was sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
}

/// The most stop strings a request may give, and the longest one (bytes).
const MAX_STOPS: usize = 16;
const MAX_STOP_BYTES: usize = 256;

fn number(v: &Value, name: &str) -> Result<f64, ApiError> {
    v.as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| ApiError::invalid(name, format!("'{name}' must be a number, got {v}")))
}

fn in_range(v: &Value, name: &str, lo: f64, hi: f64) -> Result<f32, ApiError> {
    let x = number(v, name)?;
    if !(lo..=hi).contains(&x) {
        return Err(ApiError::invalid(
            name,
            format!("'{name}' must be in [{lo}, {hi}], got {x}"),
        ));
    }
    Ok(x as f32)
}

/// An integer in `lo..=hi` (a JSON number with no fraction).
fn integer(v: &Value, name: &str, lo: i64, hi: i64) -> Result<i64, ApiError> {
    let x = match (v.as_i64(), v.as_u64()) {
        (Some(x), _) => x,
        (None, Some(_)) => i64::MAX,
        _ => {
            return Err(ApiError::invalid(
                name,
                format!("'{name}' must be an integer, got {v}"),
            ))
        }
    };
    if x < lo || x > hi {
        return Err(ApiError::invalid(
            name,
            format!("'{name}' must be in [{lo}, {hi}], got {v}"),
        ));
    }
    Ok(x)
}

fn boolean(v: &Value, name: &str) -> Result<bool, ApiError> {
    v.as_bool()
        .ok_or_else(|| ApiError::invalid(name, format!("'{name}' must be true or false, got {v}")))
}

fn stops(v: &Value) -> Result<Vec<String>, ApiError> {
    let list: Vec<&Value> = match v {
        Value::String(_) => vec![v],
        Value::Array(a) => a.iter().collect(),
        _ => {
            return Err(ApiError::invalid(
                "stop",
                "'stop' must be a string or an array of strings",
            ))
        }
    };
    if list.len() > MAX_STOPS {
        return Err(ApiError::invalid(
            "stop",
            format!("'stop' has {} strings; at most {MAX_STOPS}", list.len()),
        ));
    }
    list.into_iter()
        .map(|s| match s.as_str() {
            Some(s) if !s.is_empty() && s.len() <= MAX_STOP_BYTES => Ok(s.to_string()),
            _ => Err(ApiError::invalid(
                "stop",
                format!("each stop must be a string of 1 to {MAX_STOP_BYTES} bytes, got {s}"),
            )),
        })
        .collect()
}

/// A message's content: a string, or an array of `{"type": "text", "text": ...}` parts.
fn content(v: &Value, at: &str) -> Result<String, ApiError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut out = String::new();
            for (j, part) in parts.iter().enumerate() {
                let name = format!("{at}.content[{j}]");
                match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(Value::String(t))) => out.push_str(t),
                    (Some(kind), _) if kind != "text" => {
                        return Err(ApiError::unsupported(
                            &name,
                            format!("content parts of type '{kind}' are not supported: only text"),
                        ))
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            &name,
                            "a content part must be {\"type\": \"text\", \"text\": \"...\"}",
                        ))
                    }
                }
            }
            Ok(out)
        }
        _ => Err(ApiError::invalid(
            &format!("{at}.content"),
            "'content' must be a string or an array of text parts",
        )),
    }
}

fn messages(v: &Value) -> Result<Vec<(String, String)>, ApiError> {
    let Some(list) = v.as_array().filter(|a| !a.is_empty()) else {
        return Err(ApiError::invalid(
            "messages",
            "'messages' must be a non-empty array of {\"role\", \"content\"} objects",
        ));
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let at = format!("messages[{i}]");
        let Some(obj) = m.as_object() else {
            return Err(ApiError::invalid(&at, format!("{at} must be an object")));
        };
        for key in obj.keys() {
            if key != "role" && key != "content" {
                return Err(ApiError::unsupported(
                    &format!("{at}.{key}"),
                    format!(
                        "'{key}' in a message is not supported (messages take role and content)"
                    ),
                ));
            }
        }
        let role = match obj.get("role").and_then(Value::as_str) {
            // OpenAI's newer name for the system role.
            Some("developer") => "system",
            Some(r @ ("system" | "user" | "assistant")) => r,
            Some(r) => {
                return Err(ApiError::unsupported(
                    &format!("{at}.role"),
                    format!("role '{r}' is not supported: system, developer, user or assistant"),
                ))
            }
            None => {
                return Err(ApiError::invalid(
                    &format!("{at}.role"),
                    format!("{at} needs a 'role' string"),
                ))
            }
        };
        let text = match obj.get("content") {
            None | Some(Value::Null) if role == "assistant" => String::new(),
            None | Some(Value::Null) => {
                return Err(ApiError::invalid(
                    &format!("{at}.content"),
                    format!("{at} needs 'content'"),
                ))
            }
            Some(c) => content(c, &at)?,
        };
        out.push((role.to_string(), text));
    }
    Ok(out)
}

/// A completions `prompt`: a string, an array holding one string, an array of token ids, or
/// an array holding one array of ids.
fn completion_prompt(v: &Value) -> Result<Prompt, ApiError> {
    let ids = |a: &[Value]| -> Option<Vec<u32>> {
        a.iter()
            .map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
            .collect()
    };
    match v {
        Value::String(s) => return Ok(Prompt::Text(s.clone())),
        Value::Array(a) => match a.as_slice() {
            [Value::String(s)] => return Ok(Prompt::Text(s.clone())),
            [Value::Array(inner)] => {
                if let Some(ids) = ids(inner) {
                    return Ok(Prompt::Ids(ids));
                }
            }
            a if a.len() > 1 && a.iter().all(|x| x.is_string() || x.is_array()) => {
                return Err(ApiError::unsupported(
                    "prompt",
                    "several prompts in one request are not supported: send one",
                ))
            }
            a => {
                if let Some(ids) = ids(a) {
                    return Ok(Prompt::Ids(ids));
                }
            }
        },
        _ => {}
    }
    Err(ApiError::invalid(
        "prompt",
        "'prompt' must be a string or an array of token ids",
    ))
}

/// Checks a request body for `endpoint`. `max_context` bounds `max_tokens`.
pub fn parse(body: &[u8], endpoint: Endpoint, max_context: usize) -> Result<GenRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            "invalid_request_error",
            Some("invalid_json"),
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(ApiError::new(
            400,
            "invalid_request_error",
            Some("invalid_json"),
            "the body must be a JSON object".into(),
        ));
    };
    parse_object(&obj, endpoint, max_context)
}

fn parse_object(
    obj: &Map<String, Value>,
    endpoint: Endpoint,
    max_context: usize,
) -> Result<GenRequest, ApiError> {
    let mut req = GenRequest {
        prompt: Prompt::Text(String::new()),
        // OpenAI's completions default is 16 tokens; a chat reply runs to its end.
        max_tokens: (endpoint == Endpoint::Completions).then_some(16),
        sampling: Sampling::default(),
        stops: Vec::new(),
        stream: false,
        include_usage: false,
    };
    let mut have_prompt = false;
    let mut max_given: Option<&str> = None;
    for (key, v) in obj {
        let key = key.as_str();
        // OpenAI treats null as "not given".
        if v.is_null() {
            continue;
        }
        match (key, endpoint) {
            ("model", _) => {
                if !v.is_string() {
                    return Err(ApiError::invalid("model", "'model' must be a string"));
                }
            }
            ("user", _) => {
                if !v.is_string() {
                    return Err(ApiError::invalid("user", "'user' must be a string"));
                }
            }
            ("messages", Endpoint::Chat) => {
                req.prompt = Prompt::Chat(messages(v)?);
                have_prompt = true;
            }
            ("prompt", Endpoint::Completions) => {
                req.prompt = completion_prompt(v)?;
                have_prompt = true;
            }
            ("max_tokens", _) | ("max_completion_tokens", Endpoint::Chat) => {
                if let Some(other) = max_given {
                    return Err(ApiError::invalid(
                        key,
                        format!("give one of '{other}' and '{key}'"),
                    ));
                }
                max_given = Some(key);
                let n = integer(v, key, 1, i64::MAX).map_err(|_| {
                    ApiError::invalid(
                        key,
                        format!("'{key}' must be an integer from 1 to the context length {max_context}, got {v}"),
                    )
                })?;
                if n as u64 > max_context as u64 {
                    return Err(ApiError::invalid(
                        key,
                        format!("'{key}' is {n} but the context holds {max_context} tokens (the server's --ctx)"),
                    ));
                }
                req.max_tokens = Some(n as usize);
            }
            ("temperature", _) => req.sampling.temperature = Some(in_range(v, key, 0.0, 2.0)?),
            ("top_p", _) => req.sampling.top_p = Some(in_range(v, key, 0.0, 1.0)?),
            ("min_p", _) => req.sampling.min_p = Some(in_range(v, key, 0.0, 1.0)?),
            ("top_k", _) => req.sampling.top_k = Some(integer(v, key, 0, 1 << 30)? as usize),
            ("repeat_penalty", _) => {
                let r = number(v, key)?;
                if !(r > 0.0 && r <= 10.0) {
                    return Err(ApiError::invalid(
                        key,
                        format!("'repeat_penalty' must be in (0, 10], got {r}"),
                    ));
                }
                req.sampling.repeat_penalty = Some(r as f32);
            }
            ("frequency_penalty" | "presence_penalty", _) => {
                let p = in_range(v, key, -2.0, 2.0)?;
                if p != 0.0 {
                    return Err(ApiError::unsupported(
                        key,
                        format!("'{key}' is not supported (only 0): Ember's sampler has llama.cpp's multiplicative 'repeat_penalty' over the last 64 tokens; send that instead, e.g. 1.1"),
                    ));
                }
            }
            ("seed", _) => req.sampling.seed = Some(integer(v, key, 0, i64::MAX)? as u64),
            ("stop", _) => req.stops = stops(v)?,
            ("stream", _) => req.stream = boolean(v, key)?,
            ("stream_options", _) => {
                let Some(o) = v.as_object() else {
                    return Err(ApiError::invalid(key, "'stream_options' must be an object"));
                };
                for (k, x) in o {
                    match k.as_str() {
                        "include_usage" => {
                            req.include_usage = boolean(x, "stream_options.include_usage")?
                        }
                        _ => {
                            return Err(ApiError::unsupported(
                                &format!("stream_options.{k}"),
                                format!("'stream_options.{k}' is not supported"),
                            ))
                        }
                    }
                }
            }
            ("n", _) | ("best_of", Endpoint::Completions) => {
                if v.as_u64() != Some(1) {
                    return Err(ApiError::unsupported(
                        key,
                        format!("'{key}' must be 1: one choice per request"),
                    ));
                }
            }
            ("logprobs", _) => {
                if *v != Value::Bool(false) {
                    return Err(ApiError::unsupported(key, "'logprobs' are not supported"));
                }
            }
            ("echo", Endpoint::Completions) => {
                if *v != Value::Bool(false) {
                    return Err(ApiError::unsupported(key, "'echo' is not supported"));
                }
            }
            ("response_format", Endpoint::Chat) => {
                if v.get("type").and_then(Value::as_str) != Some("text") {
                    return Err(ApiError::unsupported(
                        key,
                        "only 'response_format' {\"type\": \"text\"} is supported",
                    ));
                }
            }
            _ => {
                return Err(ApiError::unsupported(
                    key,
                    format!("'{key}' is not supported by ember serve"),
                ))
            }
        }
    }
    if !have_prompt {
        let name = match endpoint {
            Endpoint::Chat => "messages",
            Endpoint::Completions => "prompt",
        };
        return Err(ApiError::invalid(name, format!("'{name}' is required")));
    }
    Ok(req)
}

/// The `finish_reason` OpenAI gives: "stop" for the end of text or a stop string, "length"
/// for the token budget or a full context.
pub fn finish_reason(f: ember_runtime::generate::Finish) -> &'static str {
    use ember_runtime::generate::Finish;
    match f {
        Finish::EndOfText | Finish::StopString => "stop",
        _ => "length",
    }
}

/// Token counts, as OpenAI's `usage`.
pub fn usage(prompt: usize, completion: usize) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

/// The identity every response and chunk of one request carries.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub endpoint: Endpoint,
}

impl Envelope {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.endpoint, chunk) {
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Completions, _) => "text_completion",
        }
    }

    fn wrap(&self, chunk: bool, choices: Value) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("object".into(), json!(self.object(chunk)));
        m.insert("created".into(), json!(self.created));
        m.insert("model".into(), json!(self.model));
        m.insert("choices".into(), choices);
        m
    }

    /// The whole response of a request that did not stream.
    pub fn response(&self, text: &str, finish: &str, usage: Value) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => json!({
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": null,
                "finish_reason": finish,
            }),
            Endpoint::Completions => json!({
                "index": 0,
                "text": text,
                "logprobs": null,
                "finish_reason": finish,
            }),
        };
        let mut m = self.wrap(false, json!([choice]));
        m.insert("usage".into(), usage);
        Value::Object(m)
    }

    /// A stream chunk: `text` of the reply (the first chat chunk also gives the role), or the
    /// last one with `finish` and no text.
    pub fn chunk(&self, text: Option<&str>, first: bool, finish: Option<&str>) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => {
                let delta = match (first, text) {
                    (true, t) => json!({"role": "assistant", "content": t.unwrap_or("")}),
                    (false, Some(t)) => json!({"content": t}),
                    (false, None) => json!({}),
                };
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
            }
            Endpoint::Completions => json!({
                "index": 0,
                "text": text.unwrap_or(""),
                "logprobs": null,
                "finish_reason": finish,
            }),
        };
        Value::Object(self.wrap(true, json!([choice])))
    }

    /// The chunk with `usage` and no choices that `stream_options.include_usage` asks for.
    pub fn usage_chunk(&self, usage: Value) -> Value {
        let mut m = self.wrap(true, json!([]));
        m.insert("usage".into(), usage);
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<GenRequest, ApiError> {
        parse(body.as_bytes(), Endpoint::Chat, 1024)
    }

    fn completion(body: &str) -> Result<GenRequest, ApiError> {
        parse(body.as_bytes(), Endpoint::Completions, 1024)
    }

    fn param(r: Result<GenRequest, ApiError>) -> (u16, Option<String>) {
        let e = r.unwrap_err();
        (e.status, e.param)
    }

    #[test]
    fn chat_fields_map_onto_the_sampler() {
        let r = chat(r#"{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"}]}],
            "temperature":0,"top_p":0.9,"max_tokens":8,"stop":"\n","seed":3,"stream":true,
            "stream_options":{"include_usage":true},"frequency_penalty":0,"n":1,"top_k":5,"user":"u","logprobs":false}"#)
        .unwrap();
        assert_eq!(
            r.prompt,
            Prompt::Chat(vec![
                ("system".into(), "Be brief.".into()),
                ("user".into(), "Hi".into())
            ])
        );
        assert_eq!(r.max_tokens, Some(8));
        assert_eq!(r.sampling.temperature, Some(0.0));
        assert_eq!(r.sampling.top_p, Some(0.9));
        assert_eq!(r.sampling.top_k, Some(5));
        assert_eq!(r.sampling.seed, Some(3));
        assert_eq!(r.stops, vec!["\n".to_string()]);
        assert!(r.stream && r.include_usage);
        // A chat reply runs to its end by default; a completion to OpenAI's 16 tokens.
        assert_eq!(
            chat(r#"{"messages":[{"role":"user","content":"x"}]}"#)
                .unwrap()
                .max_tokens,
            None
        );
        assert_eq!(
            completion(r#"{"prompt":"x"}"#).unwrap().max_tokens,
            Some(16)
        );
    }

    #[test]
    fn completion_prompts() {
        assert_eq!(
            completion(r#"{"prompt":"a"}"#).unwrap().prompt,
            Prompt::Text("a".into())
        );
        assert_eq!(
            completion(r#"{"prompt":["a"]}"#).unwrap().prompt,
            Prompt::Text("a".into())
        );
        assert_eq!(
            completion(r#"{"prompt":[1,2]}"#).unwrap().prompt,
            Prompt::Ids(vec![1, 2])
        );
        assert_eq!(
            completion(r#"{"prompt":[[1,2]]}"#).unwrap().prompt,
            Prompt::Ids(vec![1, 2])
        );
        assert_eq!(
            param(completion(r#"{"prompt":["a","b"]}"#)),
            (400, Some("prompt".into()))
        );
        assert_eq!(
            param(completion(r#"{"prompt":[1,-2]}"#)),
            (400, Some("prompt".into()))
        );
        assert_eq!(
            param(completion(r#"{"prompt":3}"#)),
            (400, Some("prompt".into()))
        );
    }

    #[test]
    fn bad_requests_name_the_field() {
        let m = r#""messages":[{"role":"user","content":"x"}]"#;
        let cases = [
            ("{", None),
            ("[]", None),
            (r#"{"model":"m"}"#, Some("messages")),
            (&format!(r#"{{{m},"max_tokens":-1}}"#), Some("max_tokens")),
            (&format!(r#"{{{m},"max_tokens":0}}"#), Some("max_tokens")),
            (&format!(r#"{{{m},"max_tokens":1025}}"#), Some("max_tokens")),
            (&format!(r#"{{{m},"max_tokens":1e30}}"#), Some("max_tokens")),
            (
                &format!(r#"{{{m},"max_tokens":99999999999999999999}}"#),
                Some("max_tokens"),
            ),
            (&format!(r#"{{{m},"max_tokens":"8"}}"#), Some("max_tokens")),
            (
                &format!(r#"{{{m},"max_tokens":8,"max_completion_tokens":8}}"#),
                Some("max_tokens"),
            ),
            (
                &format!(r#"{{{m},"temperature":"hot"}}"#),
                Some("temperature"),
            ),
            (
                &format!(r#"{{{m},"temperature":2.5}}"#),
                Some("temperature"),
            ),
            (&format!(r#"{{{m},"top_p":-0.1}}"#), Some("top_p")),
            (&format!(r#"{{{m},"seed":-3}}"#), Some("seed")),
            (&format!(r#"{{{m},"stop":["a",1]}}"#), Some("stop")),
            (&format!(r#"{{{m},"stop":[""]}}"#), Some("stop")),
            (&format!(r#"{{{m},"stream":"yes"}}"#), Some("stream")),
            (&format!(r#"{{{m},"n":2}}"#), Some("n")),
            (&format!(r#"{{{m},"tools":[]}}"#), Some("tools")),
            (&format!(r#"{{{m},"logit_bias":{{}}}}"#), Some("logit_bias")),
            (
                &format!(r#"{{{m},"presence_penalty":0.5}}"#),
                Some("presence_penalty"),
            ),
            (&format!(r#"{{{m},"logprobs":true}}"#), Some("logprobs")),
            (&format!(r#"{{{m},"model":3}}"#), Some("model")),
            (r#"{"messages":[]}"#, Some("messages")),
            (r#"{"messages":"hi"}"#, Some("messages")),
            (
                r#"{"messages":[{"role":"tool","content":"x"}]}"#,
                Some("messages[0].role"),
            ),
            (
                r#"{"messages":[{"content":"x"}]}"#,
                Some("messages[0].role"),
            ),
            (
                r#"{"messages":[{"role":"user"}]}"#,
                Some("messages[0].content"),
            ),
            (
                r#"{"messages":[{"role":"user","content":7}]}"#,
                Some("messages[0].content"),
            ),
            (
                r#"{"messages":[{"role":"user","content":"x","name":"a"}]}"#,
                Some("messages[0].name"),
            ),
            (
                r#"{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
                Some("messages[0].content[0]"),
            ),
            (
                r#"{"prompt":"x","messages":[{"role":"user","content":"x"}]}"#,
                Some("prompt"),
            ),
        ];
        for (body, want) in cases {
            let e = chat(body).expect_err(body);
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.param.as_deref(), want, "{body}: {}", e.message);
            let b = e.body();
            assert!(b["error"]["message"].is_string() && b["error"]["type"].is_string());
        }
    }

    #[test]
    fn nulls_are_not_given() {
        let r = chat(r#"{"messages":[{"role":"user","content":"x"}],"temperature":null,"stop":null,"tools":null}"#)
            .unwrap();
        assert_eq!(r.sampling, Sampling::default());
    }

    #[test]
    fn shapes() {
        let env = Envelope {
            id: "chatcmpl-1".into(),
            created: 5,
            model: "m".into(),
            endpoint: Endpoint::Chat,
        };
        let r = env.response("hi", "stop", usage(3, 1));
        assert_eq!(r["object"], "chat.completion");
        assert_eq!(r["choices"][0]["message"]["content"], "hi");
        assert_eq!(r["usage"]["total_tokens"], 4);
        let c = env.chunk(Some("a"), true, None);
        assert_eq!(c["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(
            env.chunk(None, false, Some("length"))["choices"][0]["finish_reason"],
            "length"
        );
        assert_eq!(env.usage_chunk(usage(1, 2))["choices"], json!([]));
    }
}
