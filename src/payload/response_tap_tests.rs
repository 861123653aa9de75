//! The response tap over real answers, chunked every way.

use super::kinds::{FinishReason, ResponseFormat};
use super::response_tap::{ResponseInfo, ResponseTap};

fn tap(content_type: &str, pieces: &[&[u8]]) -> (ResponseInfo, Vec<usize>) {
    let mut tap = ResponseTap::new(200, Some(content_type), None);
    let mut first = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        if tap.feed(piece) {
            first.push(i);
        }
    }
    (tap.finish(), first)
}

fn summary(info: &ResponseInfo) -> String {
    format!(
        "{:?} text={:?} tb={} na={:?} dv={:?} marks={:?} fr={:?} pt={:?} ct={:?} lp={:?}/{} ev={} bad={} done={} err={:?} model={:?} malformed={}",
        info.format, info.text, info.text_bytes, info.normalized_actions, info.delta_values,
        info.marks, info.finish_reason, info.prompt_tokens, info.completion_tokens,
        info.logprob_mean, info.logprob_count, info.events, info.bad_events, info.done,
        info.error, info.model, info.malformed
    )
}

fn every_chunking(content_type: &str, body: &[u8]) -> ResponseInfo {
    let (whole, _) = tap(content_type, &[body]);
    let expected = summary(&whole);
    for cut in 0..=body.len() {
        let (got, _) = tap(content_type, &[&body[..cut], &body[cut..]]);
        assert_eq!(summary(&got), expected, "cut at {cut}");
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(summary(&tap(content_type, &bytes).0), expected);
    whole
}

#[test]
fn magma_answer_with_actions() {
    let body = br#"{"text_response":"Coordinate: (0.52, 0.31). Mark: 12","normalized_actions":[0.1,-0.2,0.3,0.0,1.5e-1,-3.0,1],"delta_values":[0.01,0.02,-0.05,0.1,0.2,0.3,0]}"#;
    let info = every_chunking("application/json", body);
    assert_eq!(info.format, ResponseFormat::MagmaJson);
    assert_eq!(
        info.normalized_actions,
        Some([0.1, -0.2, 0.3, 0.0, 0.15, -3.0, 1.0])
    );
    assert_eq!(info.delta_values.map(|d| d[2]), Some(-0.05));
    assert_eq!(info.marks.mark, Some(12));
    assert_eq!(info.marks.point, Some((0.52, 0.31)));
}

#[test]
fn magma_actions_of_wrong_length_are_dropped() {
    let (info, _) = tap(
        "application/json",
        &[br#"{"text_response":"x","normalized_actions":[1,2,3]}"#],
    );
    assert_eq!(info.normalized_actions, None);
}

#[test]
fn magma_errors() {
    let mut t = ResponseTap::new(503, Some("application/json"), None);
    t.feed(br#"{"detail":"Model not loaded yet"}"#);
    let info = t.finish();
    assert_eq!(info.format, ResponseFormat::ErrorJson);
    assert_eq!(info.error.as_deref(), Some("Model not loaded yet"));
    assert_eq!(info.status, 503);
    let (v, _) = tap(
        "application/json",
        &[br#"{"detail":[{"loc":["body","prompt"],"msg":"field required","type":"missing"}]}"#],
    );
    assert_eq!(v.error.as_deref(), Some("field required"));
}

#[test]
fn openai_json_with_usage_and_logprobs() {
    let body = br#"{"id":"c1","model":"magma-8b","choices":[{"index":0,"message":{"role":"assistant","content":"A red \"cup\"."},"logprobs":{"content":[{"token":"A","logprob":-0.5,"top_logprobs":[{"token":"A","logprob":-0.5},{"token":"The","logprob":-2.0}]},{"token":" red","logprob":-1.5}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":812,"completion_tokens":4,"total_tokens":816}}"#;
    let info = every_chunking("application/json", body);
    assert_eq!(info.format, ResponseFormat::OpenaiJson);
    assert_eq!(info.text, "A red \"cup\".");
    assert_eq!(info.finish_reason, Some(FinishReason::Stop));
    assert_eq!(info.prompt_tokens, Some(812));
    assert_eq!(info.completion_tokens, Some(4));
    assert_eq!(info.logprob_count, 2);
    assert_eq!(info.logprob_mean, Some(-1.0));
    assert_eq!(info.model.as_deref(), Some("magma-8b"));
}

const STREAM: &[u8] = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"logprobs\":{\"content\":[{\"token\":\"Hel\",\"logprob\":-0.25}]}}]}\r\n\r\n\
: comment\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\u00e9\"},\"logprobs\":{\"content\":[{\"token\":\"lo\",\"logprob\":-0.75}]}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2}}\n\n\
data: [DONE]\n\n";

#[test]
fn openai_sse_stream() {
    let info = every_chunking("text/event-stream; charset=utf-8", STREAM);
    assert_eq!(info.format, ResponseFormat::OpenaiSse);
    assert_eq!(info.text, "Hello é");
    assert_eq!(info.finish_reason, Some(FinishReason::Length));
    assert_eq!(info.completion_tokens, Some(2));
    assert_eq!(info.logprob_mean, Some(-0.5));
    assert_eq!(info.events, 5);
    assert_eq!(info.bad_events, 0);
    assert!(info.done);
}

#[test]
fn first_content_is_flagged_once_on_the_right_chunk() {
    // The role-only first event carries no text; the second does.
    let second_event = STREAM.windows(3).position(|w| w == b"Hel").unwrap();
    for cut in 0..STREAM.len() {
        let (_, first) = tap("text/event-stream", &[&STREAM[..cut], &STREAM[cut..]]);
        let expected = if cut > second_event { 0 } else { 1 };
        assert_eq!(first, vec![expected], "cut at {cut}");
    }
    let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
    assert_eq!(tap("text/event-stream", &bytes).1, vec![second_event]);
    let (_, none) = tap("application/json", &[br#"{"text_response":"x"}"#]);
    assert!(none.is_empty());
}

#[test]
fn answer_text_is_bounded() {
    let mut stream = Vec::new();
    for _ in 0..5000 {
        stream.extend_from_slice(b"data: {\"choices\":[{\"delta\":{\"content\":\"the \"}}]}\n\n");
    }
    let (info, first) = tap("text/event-stream", &[&stream]);
    assert_eq!(first, vec![0]);
    assert_eq!(info.text.len(), 16 * 1024);
    assert!(info.text_truncated);
    assert_eq!(info.text_bytes, 20_000);
}

#[test]
fn bad_answers() {
    for (ct, body) in [
        ("application/json", &b"{\"text_response\": \"cut"[..]),
        ("application/json", b"Internal Server Error"),
        ("application/json", b"{\"a\":\"\xff\"}"),
        ("text/event-stream", b"data: not json\n\n"),
    ] {
        let info = every_chunking(ct, body);
        assert_eq!(
            info.format,
            ResponseFormat::Unknown,
            "{:?}",
            String::from_utf8_lossy(body)
        );
        assert!(info.malformed);
    }
    let (html, _) = tap("text/html", &[b"<html>"]);
    assert_eq!(html.format, ResponseFormat::Unknown);
    assert!(!html.malformed);
}
