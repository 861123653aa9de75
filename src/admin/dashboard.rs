//! The built-in dashboard: one HTML page, its script and stylesheet, all
//! embedded in the binary (no CDN, no network fetch), and `/api/timeseries`
//! which the page polls.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use super::{json_response, AdminState};

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLESHEET: &str = include_str!("dashboard/dashboard.css");

/// Points a single `/api/timeseries` answer carries at most.
const MAX_POINTS_PER_ANSWER: usize = super::timeseries::CAPACITY;

fn asset(content_type: &'static str, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CACHE_CONTROL, "no-cache")
        // The page loads only its own script and style and talks only to this server.
        .header(
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; connect-src 'self'",
        )
        .header("x-content-type-options", "nosniff")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

pub fn page() -> Response<Full<Bytes>> {
    asset("text/html; charset=utf-8", PAGE)
}

pub fn script() -> Response<Full<Bytes>> {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub fn stylesheet() -> Response<Full<Bytes>> {
    asset("text/css; charset=utf-8", STYLESHEET)
}

/// `GET /api/timeseries?since=<unix ms>&limit=<n>`: points newer than `since`.
pub fn timeseries(query: Option<&str>, state: &AdminState) -> Response<Full<Bytes>> {
    let mut since = 0u64;
    let mut limit = MAX_POINTS_PER_ANSWER;
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let parsed = match key {
            "since" => value.parse().map(|v| since = v),
            "limit" => value
                .parse()
                .map(|v: usize| limit = v.min(MAX_POINTS_PER_ANSWER)),
            _ => Ok(()),
        };
        if parsed.is_err() {
            return super::json::error(
                StatusCode::BAD_REQUEST,
                "bad_query",
                "since and limit must be non-negative integers",
            );
        }
    }
    let points = state.timeseries.since(since, limit);
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "interval_seconds": 1,
            "window_seconds": super::timeseries::WINDOW_SECONDS,
            "capacity": super::timeseries::CAPACITY,
            "points": points,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn state() -> AdminState {
        let (_recorder, prometheus) =
            crate::telemetry::build_recorder(&crate::telemetry::Buckets::default()).unwrap();
        AdminState::new(prometheus, "http://127.0.0.1:8080/".into())
    }

    async fn body(response: Response<Full<Bytes>>) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn timeseries_answers_points_after_since() {
        let state = state();
        for t in 1..=5u64 {
            state
                .timeseries
                .sample("magma_requests_total 1\n", t * 1000);
        }
        let all = body(timeseries(None, &state)).await;
        assert_eq!(all["points"].as_array().unwrap().len(), 5);
        assert_eq!(all["interval_seconds"], 1);
        let newer = body(timeseries(Some("since=3000"), &state)).await;
        let times: Vec<u64> = newer["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["t"].as_u64().unwrap())
            .collect();
        assert_eq!(times, [4000, 5000]);
        let last = body(timeseries(Some("limit=1&other=x"), &state)).await;
        assert_eq!(last["points"][0]["t"], 5000);
        let bad = timeseries(Some("since=yesterday"), &state);
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn pages_carry_their_content_type_and_policy() {
        let page = page();
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        assert!(page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'"));
        assert_eq!(
            script().headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            stylesheet().headers()["content-type"],
            "text/css; charset=utf-8"
        );
    }

    #[test]
    fn assets_are_small_and_self_contained() {
        let total = PAGE.len() + SCRIPT.len() + STYLESHEET.len();
        assert!(total < 200 * 1024, "dashboard is {total} bytes");
        for text in [PAGE, SCRIPT, STYLESHEET] {
            assert!(!text.contains("http://"), "no absolute URLs");
            assert!(!text.contains("https://"), "no absolute URLs");
            assert!(!text.contains("//cdn"), "no CDN");
        }
        assert!(PAGE.contains("dashboard.js"));
        assert!(PAGE.contains("dashboard.css"));
    }
}
