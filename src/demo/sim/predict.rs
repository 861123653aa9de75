//! `/predict` and `/predict_from_file`: validate like FastAPI, then answer
//! like the model, with the faults that are switched on.

use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use rand::Rng;

use super::reply::{self, SimBody};
use super::{answers, faults, multipart, Server};

/// `POST /predict` with `{"image": "<base64>", "prompt": "..."}`.
pub async fn predict_json(req: Request<Incoming>, server: &Server) -> Response<SimBody> {
    if server.warming_up() {
        return reply::detail(StatusCode::SERVICE_UNAVAILABLE, "Model not loaded yet");
    }
    let value = match reply::read_json(req, server.config.max_body_bytes).await {
        Ok(value) => value,
        Err(response) => return response,
    };
    let Some(object) = value.as_object() else {
        return reply::validation_error(
            "body",
            "model_attributes_type",
            "Input should be an object",
        );
    };
    let image = match object.get("image") {
        Some(serde_json::Value::String(image)) => image,
        Some(_) => {
            return reply::validation_error(
                "image",
                "string_type",
                "Input should be a valid string",
            )
        }
        None => return reply::validation_error("image", "missing", "Field required"),
    };
    let prompt = match object.get("prompt") {
        Some(serde_json::Value::String(prompt)) => prompt,
        Some(_) => {
            return reply::validation_error(
                "prompt",
                "string_type",
                "Input should be a valid string",
            )
        }
        None => return reply::validation_error("prompt", "missing", "Field required"),
    };
    let image = match base64::engine::general_purpose::STANDARD.decode(image.trim()) {
        Ok(bytes) => bytes,
        Err(error) => {
            return reply::detail(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("Error processing request: {error}"),
            )
        }
    };
    answer(server, prompt, &image).await
}

/// `POST /predict_from_file`, multipart fields `file` and `prompt`.
pub async fn predict_from_file(req: Request<Incoming>, server: &Server) -> Response<SimBody> {
    if server.warming_up() {
        return reply::detail(StatusCode::SERVICE_UNAVAILABLE, "Model not loaded yet");
    }
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = match reply::read_body(req, server.config.max_body_bytes).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let parts = match multipart::boundary(&content_type).and_then(|b| multipart::parse(&body, &b)) {
        Ok(parts) => parts,
        Err(error) => {
            return reply::validation_error("file", "missing", &format!("Field required ({error})"))
        }
    };
    let Some(file) = parts.iter().find(|p| p.name == "file") else {
        return reply::validation_error("file", "missing", "Field required");
    };
    let Some(prompt) = parts.iter().find(|p| p.name == "prompt") else {
        return reply::validation_error("prompt", "missing", "Field required");
    };
    let prompt = String::from_utf8_lossy(prompt.body).into_owned();
    answer(server, &prompt, file.body).await
}

/// Recognises the image formats PIL would open for Magma.
pub fn looks_like_image(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        || bytes.starts_with(b"\xff\xd8\xff")
        || bytes.starts_with(b"GIF8")
        || bytes.starts_with(b"BM")
        || (bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP")
}

/// What a fault roll decided for one request.
enum Fate {
    Answer { degenerate: bool },
    Unavailable,
    ServerError,
    Hang(Duration),
}

fn roll(server: &Server) -> Fate {
    let faults = server.config.control.faults();
    let mut rng = rand::rng();
    if faults.hang_rate > 0.0 && rng.random_bool(faults.hang_rate.clamp(0.0, 1.0)) {
        return Fate::Hang(faults::hang_duration(&faults));
    }
    if faults.error_rate > 0.0 && rng.random_bool(faults.error_rate.clamp(0.0, 1.0)) {
        return if rng.random_bool(0.5) {
            Fate::Unavailable
        } else {
            Fate::ServerError
        };
    }
    let degenerate =
        faults.degenerate_rate > 0.0 && rng.random_bool(faults.degenerate_rate.clamp(0.0, 1.0));
    Fate::Answer { degenerate }
}

/// The model part: waits the model's time and answers for `prompt`.
pub(super) async fn answer(server: &Server, prompt: &str, image: &[u8]) -> Response<SimBody> {
    if !looks_like_image(image) {
        return reply::detail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error processing request: cannot identify image file",
        );
    }
    let counters = server.config.control.counters();
    match roll(server) {
        Fate::Hang(duration) => {
            counters.hung.fetch_add(1, Ordering::Relaxed);
            server.sleep(duration).await;
            reply::detail(StatusCode::GATEWAY_TIMEOUT, "Request hung in the model")
        }
        Fate::Unavailable => {
            server.sleep(server.scaled(0.05)).await;
            reply::detail(StatusCode::SERVICE_UNAVAILABLE, "Model not loaded yet")
        }
        Fate::ServerError => {
            server.sleep(server.model_latency()).await;
            reply::detail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error processing request: CUDA error: an illegal memory access was encountered",
            )
        }
        Fate::Answer { degenerate } => {
            server.sleep(server.model_latency()).await;
            server.config.control.fault_state().leak_step();
            let body = answers::answer(&mut rand::rng(), prompt, degenerate);
            counters.answered.fetch_add(1, Ordering::Relaxed);
            if degenerate {
                counters.degenerate.fetch_add(1, Ordering::Relaxed);
            }
            reply::json(StatusCode::OK, &body)
        }
    }
}
