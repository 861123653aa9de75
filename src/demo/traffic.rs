//! The traffic generator: concurrent clients sending a mix of Magma tasks
//! with generated images, some as `/predict` JSON (base64), some as
//! `/predict_from_file` multipart, a few as OpenAI-style streamed chat
//! completions with a `data:` image URL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rand::Rng;
use tokio::sync::watch;

use super::images::{self, EncodedImage, ImageFormat, Look};
use super::prompts::{self, DemoTask, Vocabulary};
use super::sim::multipart;
use crate::shutdown::ShutdownSignal;

/// What the clients send right now (changed at each phase).
#[derive(Debug, Clone)]
pub struct TrafficProfile {
    pub vocabulary: Vocabulary,
    /// Pre-rendered images, per task, reused round-robin (rendering every
    /// request would cost more CPU than the proxy being shown).
    pub images: Arc<ImagePool>,
    /// Weights of robot, UI navigation, trace-of-mark, visual QA.
    pub task_weights: [u32; 4],
}

/// Images per task, rendered once per phase.
#[derive(Debug, Default)]
pub struct ImagePool {
    by_task: [Vec<EncodedImage>; 4],
}

impl ImagePool {
    /// Renders `per_task` images for every task with the given look, mixing PNG and JPEG.
    pub fn render(per_task: usize, look: Look, seed: u64) -> Result<Self, images::EncodeError> {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut pool = ImagePool::default();
        for (slot, task) in pool.by_task.iter_mut().zip(DemoTask::ALL) {
            for i in 0..per_task {
                // UI screenshots are PNG as screens are captured; photos mostly JPEG.
                let format = match (task, i % 3) {
                    (DemoTask::UiNavigation, _) | (_, 0) => ImageFormat::Png,
                    _ => ImageFormat::Jpeg,
                };
                slot.push(images::generate(&mut rng, task.scene(), format, look)?);
            }
        }
        Ok(pool)
    }

    fn pick<R: Rng>(&self, rng: &mut R, task: DemoTask) -> Option<&EncodedImage> {
        let index = DemoTask::ALL.iter().position(|t| *t == task)?;
        let list = &self.by_task[index];
        (!list.is_empty()).then(|| &list[rng.random_range(0..list.len())])
    }
}

/// Client-side counters.
#[derive(Debug, Default)]
pub struct TrafficStats {
    pub sent: AtomicU64,
    pub ok: AtomicU64,
    pub http_errors: AtomicU64,
    pub failed: AtomicU64,
    pub timed_out: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TrafficSnapshot {
    pub sent: u64,
    pub ok: u64,
    pub http_errors: u64,
    pub failed: u64,
    pub timed_out: u64,
}

impl TrafficStats {
    pub fn snapshot(&self) -> TrafficSnapshot {
        TrafficSnapshot {
            sent: self.sent.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            http_errors: self.http_errors.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
        }
    }
}

/// How a request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    PredictJson,
    PredictFromFile,
    ChatStream,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Runs `clients` concurrent clients against `base` (e.g. `http://127.0.0.1:8000`)
/// until `shutdown`; each follows the profile currently in `profile`.
pub async fn run(
    base: String,
    clients: usize,
    request_timeout: Duration,
    profile: watch::Receiver<TrafficProfile>,
    stats: Arc<TrafficStats>,
    shutdown: ShutdownSignal,
) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);
    let mut workers = Vec::with_capacity(clients);
    for _ in 0..clients {
        let client = client.clone();
        let base = base.clone();
        let profile = profile.clone();
        let stats = stats.clone();
        let mut stop = shutdown.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let current = profile.borrow().clone();
                tokio::select! {
                    _ = one_request(&client, &base, &current, request_timeout, &stats) => {}
                    _ = stop.recv() => return,
                }
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
}

/// Sends one request and reads its answer; outcomes go to `stats`.
async fn one_request(
    client: &HttpClient,
    base: &str,
    profile: &TrafficProfile,
    timeout: Duration,
    stats: &TrafficStats,
) {
    let request = {
        let mut rng = rand::rng();
        build_request(&mut rng, base, profile)
    };
    let Some(request) = request else {
        // No image in the pool yet: wait instead of spinning.
        tokio::time::sleep(Duration::from_millis(100)).await;
        return;
    };
    stats.sent.fetch_add(1, Ordering::Relaxed);
    let exchange = async {
        let response = client.request(request).await.map_err(|_| ())?;
        let status = response.status();
        Limited::new(response.into_body(), 4 * 1024 * 1024)
            .collect()
            .await
            .map_err(|_| ())?;
        Ok::<_, ()>(status)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(status)) if status.is_success() => stats.ok.fetch_add(1, Ordering::Relaxed),
        Ok(Ok(_)) => stats.http_errors.fetch_add(1, Ordering::Relaxed),
        Ok(Err(())) => {
            // Connection refused and the like: back off a little.
            tokio::time::sleep(Duration::from_millis(200)).await;
            stats.failed.fetch_add(1, Ordering::Relaxed)
        }
        Err(_) => stats.timed_out.fetch_add(1, Ordering::Relaxed),
    };
}

fn build_request<R: Rng>(
    rng: &mut R,
    base: &str,
    profile: &TrafficProfile,
) -> Option<Request<Full<Bytes>>> {
    let task = DemoTask::pick(rng, &profile.task_weights);
    let image = profile.images.pick(rng, task)?;
    let prompt = prompts::prompt(rng, task, profile.vocabulary);
    let route = match rng.random_range(0..100) {
        0..=54 => Route::PredictJson,
        55..=89 => Route::PredictFromFile,
        // Chat completions carry no action vectors: robot prompts stay on Magma's routes.
        _ if task == DemoTask::Robot => Route::PredictJson,
        _ => Route::ChatStream,
    };
    let (path, content_type, body) = match route {
        Route::PredictJson => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&image.bytes);
            let body = serde_json::to_vec(&serde_json::json!({"image": encoded, "prompt": prompt}))
                .ok()?;
            ("/predict", "application/json".to_string(), body)
        }
        Route::PredictFromFile => {
            let boundary = format!("magma-demo-{:016x}", rng.random::<u64>());
            let filename = format!("frame.{}", image.format.extension());
            let (content_type, body) = multipart::build(
                &boundary,
                &[
                    (
                        "file",
                        Some((&filename, image.format.content_type())),
                        &image.bytes,
                    ),
                    ("prompt", None, prompt.as_bytes()),
                ],
            );
            ("/predict_from_file", content_type, body)
        }
        Route::ChatStream => {
            let data_url = format!(
                "data:{};base64,{}",
                image.format.content_type(),
                base64::engine::general_purpose::STANDARD.encode(&image.bytes)
            );
            let body = serde_json::to_vec(&serde_json::json!({
                "model": "magma-8b",
                "stream": true,
                "stream_options": {"include_usage": true},
                "logprobs": true,
                "messages": [{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": data_url}},
                    {"type": "text", "text": prompt},
                ]}],
            }))
            .ok()?;
            ("/v1/chat/completions", "application/json".to_string(), body)
        }
    };
    Request::builder()
        .method(Method::POST)
        .uri(format!("{base}{path}"))
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn requests_cover_every_route_and_task() {
        let pool = Arc::new(ImagePool::render(2, Look::NORMAL, 1).unwrap());
        let profile = TrafficProfile {
            vocabulary: Vocabulary::Normal,
            images: pool,
            task_weights: [1, 1, 1, 1],
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let mut paths = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let request = build_request(&mut rng, "http://127.0.0.1:1", &profile).unwrap();
            paths.insert(request.uri().path().to_string());
        }
        assert_eq!(
            paths.into_iter().collect::<Vec<_>>(),
            ["/predict", "/predict_from_file", "/v1/chat/completions"]
        );
    }
}
