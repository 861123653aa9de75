//! The request tap over real bodies of every format, chunked every way.

use std::sync::Arc;

use base64::Engine;

use super::body_copy::{BodyCopy, CopyBudget, CopyOutcome};
use super::kinds::{Format, Modality, Task};
use super::request_tap::{RequestInfo, RequestTap};
use super::task::TaskClassifier;

/// Compiling the rules once keeps the thousands of taps below cheap.
static CLASSIFIER: std::sync::LazyLock<Arc<TaskClassifier>> =
    std::sync::LazyLock::new(|| Arc::new(TaskClassifier::default()));

fn tap(path: &str, content_type: Option<&str>, pieces: &[&[u8]]) -> RequestInfo {
    let mut tap = RequestTap::new(path, content_type, CLASSIFIER.clone(), None);
    for piece in pieces {
        tap.feed(piece);
    }
    tap.finish()
}

/// The fields that must not depend on chunking.
fn summary(info: &RequestInfo) -> String {
    format!(
        "{:?} {:?} {:?} img={} remote={} vid={} aud={} media={} prompt={:?} pbytes={} model={:?} stream={} malformed={}",
        info.format,
        info.modality,
        info.task,
        info.images,
        info.remote_images,
        info.videos,
        info.audios,
        info.media_bytes,
        info.prompt,
        info.prompt_bytes,
        info.model,
        info.stream,
        info.malformed
    )
}

/// Runs the body whole, split in two at every position, and byte by byte;
/// all must agree. Returns the whole-body answer.
fn every_chunking(path: &str, content_type: Option<&str>, body: &[u8]) -> RequestInfo {
    let whole = tap(path, content_type, &[body]);
    let expected = summary(&whole);
    for cut in 0..=body.len() {
        let got = tap(path, content_type, &[&body[..cut], &body[cut..]]);
        assert_eq!(summary(&got), expected, "cut at {cut}");
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(
        summary(&tap(path, content_type, &bytes)),
        expected,
        "byte by byte"
    );
    whole
}

fn tiny_png() -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    v.extend_from_slice(&2u32.to_be_bytes());
    v.extend_from_slice(&3u32.to_be_bytes());
    v.extend_from_slice(&[8, 2, 0, 0, 0, 1, 2, 3, 4]);
    v
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn magma_predict_json() {
    let png = tiny_png();
    let body = format!(
        r#"{{"image":"{}","prompt":"What action should the robot take to pick up the sponge?"}}"#,
        b64(&png)
    );
    let info = every_chunking("/predict", Some("application/json"), body.as_bytes());
    assert_eq!(info.format, Format::MagmaPredict);
    assert_eq!(info.modality, Modality::Image);
    assert_eq!(info.task, Task::RobotAction);
    assert_eq!(info.images, 1);
    assert_eq!(info.media_bytes, png.len() as u64);
    assert_eq!(
        info.prompt,
        "What action should the robot take to pick up the sponge?"
    );
    assert!(!info.malformed);
}

#[test]
fn magma_predict_file_multipart() {
    let png = tiny_png();
    let mut body = Vec::new();
    body.extend_from_slice(b"--bnd\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n");
    body.extend_from_slice(
        "In this view I need to click a button to \"save\"? Provide the coordinates and the mark index of the containing bounding box if applicable.".as_bytes(),
    );
    body.extend_from_slice(
        b"\r\n--bnd\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s.png\"\r\nContent-Type: application/octet-stream\r\n\r\n",
    );
    body.extend_from_slice(&png);
    body.extend_from_slice(b"\r\n--bnd--\r\n");
    let info = every_chunking(
        "/predict_from_file",
        Some("multipart/form-data; boundary=bnd"),
        &body,
    );
    assert_eq!(info.format, Format::MagmaPredictFile);
    assert_eq!(info.modality, Modality::Image);
    assert_eq!(info.task, Task::UiNavigation);
    assert_eq!(info.images, 1);
    assert_eq!(info.media_bytes, png.len() as u64);
}

#[test]
fn openai_chat_with_parts() {
    let png = tiny_png();
    let body = format!(
        r#"{{"model":"magma-8b","stream":true,"messages":[
            {{"role":"system","content":"You are helpful."}},
            {{"role":"user","content":[
                {{"type":"text","text":"Q: which \"button\" is red?"}},
                {{"type":"image_url","image_url":{{"url":"data:image/png;base64,{}"}}}},
                {{"type":"image_url","image_url":{{"url":"https://example.com/a.jpg"}}}}
            ]}}]}}"#,
        b64(&png)
    );
    let info = every_chunking(
        "/v1/chat/completions",
        Some("application/json"),
        body.as_bytes(),
    );
    assert_eq!(info.format, Format::OpenaiChat);
    assert_eq!(info.modality, Modality::MultiImage);
    assert_eq!(info.task, Task::VisualQa);
    assert_eq!(info.images, 2);
    assert_eq!(info.remote_images, 1);
    assert_eq!(info.media_bytes, png.len() as u64);
    assert_eq!(info.prompt, "Q: which \"button\" is red?");
    assert_eq!(info.model.as_deref(), Some("magma-8b"));
    assert!(info.stream);
}

#[test]
fn openai_chat_string_content_picks_last_user_message() {
    let body = br#"{"messages":[{"role":"user","content":"What action should the robot take to open the drawer?"},{"role":"assistant","content":"ok"},{"content":"Write a poem about the sea.","role":"user"}]}"#;
    let info = every_chunking("/v1/chat/completions", Some("application/json"), body);
    assert_eq!(info.format, Format::OpenaiChat);
    assert_eq!(info.modality, Modality::Text);
    assert_eq!(info.task, Task::Chat);
    assert_eq!(info.prompt, "Write a poem about the sea.");
    assert!(!info.stream);
}

#[test]
fn openai_chat_audio_and_video_are_mixed() {
    let body = br#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}},{"type":"video_url","video_url":{"url":"https://x/v.mp4"}},{"type":"text","text":"what happens?"}]}]}"#;
    let info = every_chunking("/v1/chat/completions", None, body);
    assert_eq!(info.format, Format::OpenaiChat);
    assert_eq!(info.modality, Modality::Mixed);
    assert_eq!(info.audios, 1);
    assert_eq!(info.videos, 1);
    assert_eq!(info.media_bytes, 3);
    assert_eq!(info.task, Task::VisualQa);
}

#[test]
fn openai_completions() {
    let body = br#"{"model":"m","prompt":["Tell me a joke", "about cats"],"max_tokens":5}"#;
    let info = every_chunking(
        "/v1/completions",
        Some("application/json; charset=utf-8"),
        body,
    );
    assert_eq!(info.format, Format::OpenaiCompletions);
    assert_eq!(info.modality, Modality::Text);
    assert_eq!(info.task, Task::Chat);
    assert_eq!(info.prompt, "Tell me a joke\nabout cats");
}

#[test]
fn raw_media() {
    let png = tiny_png();
    let info = every_chunking("/predict", Some("image/png"), &png);
    assert_eq!(info.format, Format::RawMedia);
    assert_eq!(info.modality, Modality::Image);
    assert_eq!(info.task, Task::Unknown);
    assert_eq!(info.media_bytes, png.len() as u64);
    let sniffed = tap("/x", Some("application/octet-stream"), &[&png]);
    assert_eq!(sniffed.modality, Modality::Image);
    let video = tap("/x", Some("video/mp4"), &[b"\0\0\0\x18ftypmp42"]);
    assert_eq!(video.modality, Modality::Video);
    let noise = tap("/x", Some("application/octet-stream"), &[b"abcdefgh"]);
    assert_eq!(noise.format, Format::Unknown);
}

#[test]
fn bad_bodies_are_unknown() {
    for (ct, body) in [
        (
            Some("application/json"),
            &b"{\"prompt\": \"unterminated"[..],
        ),
        (Some("application/json"), b"{\"prompt\": 1,}"),
        (Some("application/json"), b"{\"prompt\": \"caf\xe9\"}"),
        (Some("application/json"), b"this is not json at all"),
        (Some("application/json"), b"<html><body>hi</body></html>"),
        (
            Some("multipart/form-data; boundary=b"),
            b"--b\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nhello",
        ),
        (
            Some("multipart/form-data; boundary=b"),
            b"--b\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n\xff\xfe\r\n--b--",
        ),
    ] {
        let info = every_chunking("/predict", ct, body);
        assert_eq!(
            info.format,
            Format::Unknown,
            "{:?}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(info.modality, Modality::Unknown);
        assert_eq!(info.task, Task::Unknown);
        assert!(info.malformed);
        assert_eq!(info.body_bytes, body.len() as u64);
    }
    // Valid JSON of another schema is unknown but not malformed.
    let other = tap(
        "/v1/embeddings",
        Some("application/json"),
        &[b"{\"input\":\"x\"}"],
    );
    assert_eq!(other.format, Format::Unknown);
    assert!(!other.malformed);
    // A body of no declared type that is not JSON is unknown, not malformed.
    let plain = tap("/x", Some("text/plain"), &[b"hello there"]);
    assert_eq!(plain.format, Format::Unknown);
    assert!(!plain.malformed);
    let empty = tap("/health", None, &[]);
    assert_eq!(empty.format, Format::Unknown);
}

#[test]
fn text_prefix_is_bounded() {
    let long = "word ".repeat(10_000);
    let body = format!(r#"{{"prompt":"{long}","image":""}}"#);
    let info = tap("/predict", Some("application/json"), &[body.as_bytes()]);
    assert_eq!(info.prompt.len(), 4096);
    assert!(info.prompt_truncated);
    assert_eq!(info.prompt_bytes, long.len() as u64);
    assert_eq!(info.modality, Modality::Text);
}

#[test]
fn sampled_copy_is_the_exact_body() {
    let budget = CopyBudget::new(1 << 20);
    let body = br#"{"prompt":"hi","image":"iVBORw0KGgo="}"#;
    let copy = BodyCopy::new(budget.clone(), 1024, Some(body.len() as u64));
    let mut t = RequestTap::new(
        "/predict",
        Some("application/json"),
        CLASSIFIER.clone(),
        Some(copy),
    );
    for piece in body.chunks(5) {
        t.feed(piece);
    }
    let info = t.finish();
    let copy = info.copy.as_ref().unwrap();
    assert_eq!(copy.outcome, CopyOutcome::Complete);
    assert_eq!(&copy.bytes[..], &body[..]);
    assert!(budget.used() >= body.len());
    drop(info);
    assert_eq!(budget.used(), 0);
}

#[test]
fn big_image_request_classifies_in_one_pass() {
    let image = vec![0xABu8; 3 * 1024 * 1024];
    let encoded = b64(&image);
    let body = format!(
        r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":[{{"type":"text","text":"Describe."}},{{"type":"image_url","image_url":{{"url":"data:image/jpeg;base64,{encoded}"}}}}]}}]}}"#
    );
    let pieces: Vec<&[u8]> = body.as_bytes().chunks(16 * 1024 + 7).collect();
    let info = tap("/v1/chat/completions", Some("application/json"), &pieces);
    assert_eq!(info.format, Format::OpenaiChat);
    assert_eq!(info.media_bytes, image.len() as u64);
    assert_eq!(info.modality, Modality::Image);
    assert_eq!(info.task, Task::VisualQa);
}
