//! Records what the taps learned into the metric catalogue. Called once per
//! exchange on the forward path, after the bodies ended; every label value
//! comes from a closed set, so the resolved handles are kept (see
//! [`HandleCache`]) instead of looked up in the registry per request.

use std::time::Duration;

use metrics::{Counter, Histogram};

use crate::handle_cache::HandleCache;
use crate::telemetry;

use super::kinds::{Format, Modality, Task};
use super::request_tap::RequestInfo;
use super::response_tap::ResponseInfo;

/// The payload metrics of the forward path with their resolved handles.
///
/// Create it after the recorder is installed (or inside a test's local
/// recorder): a handle belongs to the recorder current when it is resolved.
#[derive(Default)]
pub struct PayloadMetrics {
    requests: HandleCache<(Format, Modality, Task), Counter>,
    images: HandleCache<Modality, Histogram>,
    media_bytes: HandleCache<Modality, Histogram>,
    time_to_first_token: HandleCache<&'static str, Histogram>,
    /// `[input, output]` tokens.
    tokens: HandleCache<bool, Counter>,
    /// `[request, response]` malformed bodies.
    malformed: HandleCache<bool, Counter>,
}

impl PayloadMetrics {
    /// Records a finished request body: image and media-byte histograms, the
    /// format/modality/task counter and malformed bodies.
    pub fn record_request(&self, info: &RequestInfo) {
        let key = (info.format, info.modality, info.task);
        self.requests
            .get(key, || {
                metrics::counter!(
                    telemetry::PAYLOAD_REQUESTS,
                    "format" => key.0.as_str(),
                    "modality" => key.1.as_str(),
                    "task" => key.2.as_str()
                )
            })
            .increment(1);
        if info.malformed {
            self.malformed(true).increment(1);
        }
        if info.body_bytes > 0 {
            let modality = info.modality;
            self.images
                .get(modality, || {
                    metrics::histogram!(telemetry::REQUEST_IMAGES, "modality" => modality.as_str())
                })
                .record(f64::from(info.images));
            self.media_bytes
                .get(modality, || {
                    metrics::histogram!(telemetry::REQUEST_MEDIA_BYTES, "modality" => modality.as_str())
                })
                .record(info.media_bytes as f64);
        }
    }

    /// Records a finished response body: token counts, time to first token
    /// (pass the time from the request's arrival to the chunk for which
    /// `ResponseTap::feed` returned true) and malformed bodies.
    pub fn record_response(
        &self,
        info: &ResponseInfo,
        route: &'static str,
        time_to_first_token: Option<Duration>,
    ) {
        if let Some(tokens) = info.prompt_tokens {
            self.tokens(true).increment(tokens);
        }
        if let Some(tokens) = info.completion_tokens {
            self.tokens(false).increment(tokens);
        }
        if let Some(ttft) = time_to_first_token {
            self.time_to_first_token
                .get(
                    route,
                    || metrics::histogram!(telemetry::TIME_TO_FIRST_TOKEN, "route" => route),
                )
                .record(ttft.as_secs_f64());
        }
        if info.malformed {
            self.malformed(false).increment(1);
        }
    }

    fn tokens(&self, input: bool) -> Counter {
        self.tokens.get(input, || {
            let direction = if input { "input" } else { "output" };
            metrics::counter!(telemetry::TOKENS, "direction" => direction)
        })
    }

    fn malformed(&self, request: bool) -> Counter {
        self.malformed.get(request, || {
            let side = if request { "request" } else { "response" };
            metrics::counter!(telemetry::PAYLOAD_MALFORMED, "side" => side)
        })
    }
}
