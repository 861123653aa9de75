//! `POST /v1/chat/completions` in the OpenAI format that vLLM and SGLang
//! serve, so the sidecar's SSE handling can be exercised against a model-like
//! upstream: a JSON answer, or with `stream: true` a `text/event-stream` of
//! `data: {chunk}` events ending in `data: [DONE]`.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use rand::Rng;

use super::reply::{self, SimBody};
use super::{answers, Server};

/// The last user message's text parts, joined.
fn prompt_of(messages: &[serde_json::Value]) -> Option<String> {
    let message = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))?;
    match message.get("content")? {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Array(parts) => Some(
            parts
                .iter()
                .filter(|p| p.get("type").and_then(|t| t.as_str()) == Some("text"))
                .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
}

pub async fn chat_completions(req: Request<Incoming>, server: &Server) -> Response<SimBody> {
    if server.warming_up() {
        return reply::detail(StatusCode::SERVICE_UNAVAILABLE, "Model not loaded yet");
    }
    let value = match reply::read_json(req, server.config.max_body_bytes).await {
        Ok(value) => value,
        Err(response) => return response,
    };
    let Some(messages) = value.get("messages").and_then(|m| m.as_array()) else {
        return reply::validation_error("messages", "missing", "Field required");
    };
    let Some(prompt) = prompt_of(messages) else {
        return reply::validation_error("messages", "value_error", "no user message with text");
    };
    let model = value
        .get("model")
        .and_then(|m| m.as_str())
        .unwrap_or("magma-8b")
        .chars()
        .take(64)
        .collect::<String>();
    let stream = value
        .get("stream")
        .and_then(|s| s.as_bool())
        .unwrap_or(false);
    let include_usage = value
        .pointer("/stream_options/include_usage")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let want_logprobs = value
        .get("logprobs")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);

    let faults = server.config.control.faults();
    let (degenerate, failed) = {
        let mut rng = rand::rng();
        let failed = faults.error_rate > 0.0 && rng.random_bool(faults.error_rate.clamp(0.0, 1.0));
        let degenerate =
            faults.degenerate_rate > 0.0 && rng.random_bool(faults.degenerate_rate.clamp(0.0, 1.0));
        (degenerate, failed)
    };
    if failed {
        server.sleep(server.scaled(0.05)).await;
        return reply::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"error": {"message": "model overloaded", "type": "server_error"}}),
        );
    }
    let text = answers::answer(&mut rand::rng(), &prompt, degenerate).text_response;
    let tokens: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
    let logprobs: Vec<f64> = {
        let mut rng = rand::rng();
        tokens
            .iter()
            .map(|_| {
                if degenerate {
                    -0.01
                } else {
                    -rng.random_range(0.02..1.2)
                }
            })
            .collect()
    };
    let prompt_tokens = prompt.split_whitespace().count() as u64 + 256;
    let usage = serde_json::json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": tokens.len(),
        "total_tokens": prompt_tokens + tokens.len() as u64,
    });
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let id = format!("chatcmpl-sim{:016x}", rand::rng().random::<u64>());
    let counters = server.config.control.counters();
    counters.answered.fetch_add(1, Ordering::Relaxed);
    if degenerate {
        counters.degenerate.fetch_add(1, Ordering::Relaxed);
    }
    let total = server.model_latency();
    if !stream {
        server.sleep(total).await;
        server.config.control.fault_state().leak_step();
        let mut choice = serde_json::json!({
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        });
        if want_logprobs {
            choice["logprobs"] = serde_json::json!({
                "content": tokens.iter().zip(&logprobs)
                    .map(|(t, l)| serde_json::json!({"token": t, "logprob": l}))
                    .collect::<Vec<_>>()
            });
        }
        return reply::json(
            StatusCode::OK,
            &serde_json::json!({
                "id": id, "object": "chat.completion", "created": created, "model": model,
                "choices": [choice], "usage": usage,
            }),
        );
    }

    // Streaming: the first token after ~30% of the model time (prefill), the
    // rest spread over the remainder (decode).
    let first = total.mul_f64(0.3);
    let per_token = total
        .saturating_sub(first)
        .checked_div(tokens.len().max(1) as u32)
        .unwrap_or(Duration::ZERO);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(8);
    let mut shutdown = server.shutdown.clone();
    let leak = server.config.control.clone();
    tokio::spawn(async move {
        let chunk = |delta: serde_json::Value,
                     finish: Option<&str>,
                     extra: Option<(String, serde_json::Value)>| {
            let mut value = serde_json::json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            });
            if let Some((key, extra)) = extra {
                value[key] = extra;
            }
            Bytes::from(format!("data: {value}\n\n"))
        };
        let mut events = vec![(
            first,
            chunk(
                serde_json::json!({"role": "assistant", "content": ""}),
                None,
                None,
            ),
        )];
        for (token, logprob) in tokens.iter().zip(&logprobs) {
            let mut value = chunk(serde_json::json!({"content": token}), None, None);
            if want_logprobs {
                value = Bytes::from(
                    String::from_utf8_lossy(&value).replace(
                        "\"finish_reason\":null",
                        &format!(
                            "\"finish_reason\":null,\"logprobs\":{{\"content\":[{{\"token\":{},\"logprob\":{logprob}}}]}}",
                            serde_json::Value::String(token.clone())
                        ),
                    ),
                );
            }
            events.push((per_token, value));
        }
        events.push((
            Duration::ZERO,
            chunk(serde_json::json!({}), Some("stop"), None),
        ));
        if include_usage {
            let mut value = serde_json::json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [],
            });
            value["usage"] = usage;
            events.push((Duration::ZERO, Bytes::from(format!("data: {value}\n\n"))));
        }
        events.push((Duration::ZERO, Bytes::from_static(b"data: [DONE]\n\n")));
        for (delay, event) in events {
            if !delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.recv() => return,
                }
            }
            if sender.send(event).await.is_err() {
                return;
            }
        }
        leak.fault_state().leak_step();
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|bytes| {
            (
                Ok::<_, std::convert::Infallible>(Frame::data(bytes)),
                receiver,
            )
        })
    });
    let mut response = Response::new(StreamBody::new(stream).boxed());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    response
}
