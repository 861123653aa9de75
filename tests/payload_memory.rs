//! The request and response taps hold bounded memory whatever the body size:
//! a 20 MiB base64-image request streams through the request tap (sampling
//! off) while the heap grows by less than 64 KiB, and a long SSE answer does
//! the same through the response tap. Measured with a counting allocator, in
//! steady state (after one warm-up pass that initialises lazily built regexes).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use magma_monitor::payload::{Format, Modality, RequestTap, ResponseTap, TaskClassifier};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const LIMIT: usize = 64 * 1024;

/// The counters are process-wide: tests in this file run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Heap growth at its peak while `f` runs.
fn peak_growth<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst).saturating_sub(base))
}

#[test]
fn twenty_mib_image_request_streams_in_bounded_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // Build the body first: it is the client's, not the tap's.
    let encoded_len = 20 * 1024 * 1024;
    let mut body = Vec::with_capacity(encoded_len + 256);
    body.extend_from_slice(
        br#"{"prompt":"What action should the robot take to pick up the cup?","image":""#,
    );
    body.extend(std::iter::repeat_n(b'A', encoded_len));
    body.extend_from_slice(b"\"}");
    let classifier = Arc::new(TaskClassifier::default());
    // Warm up once: regex caches are allocated on first use, not per request.
    let mut warm = RequestTap::new(
        "/predict",
        Some("application/json"),
        classifier.clone(),
        None,
    );
    warm.feed(&body[..200]);
    warm.feed(b"\"}");
    drop(warm.finish());

    let (info, growth) = peak_growth(|| {
        let mut tap = RequestTap::new(
            "/predict",
            Some("application/json"),
            classifier.clone(),
            None,
        );
        for chunk in body.chunks(64 * 1024) {
            tap.feed(chunk);
        }
        tap.finish()
    });
    assert_eq!(info.format, Format::MagmaPredict);
    assert_eq!(info.modality, Modality::Image);
    assert_eq!(info.media_bytes, (encoded_len / 4 * 3) as u64);
    eprintln!("request tap, 20 MiB body: peak heap growth {growth} bytes");
    assert!(
        growth < LIMIT,
        "request tap grew the heap by {growth} bytes"
    );
}

#[test]
fn long_sse_answer_streams_in_bounded_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut stream = Vec::new();
    for _ in 0..50_000 {
        stream.extend_from_slice(b"data: {\"choices\":[{\"delta\":{\"content\":\"word \"}}]}\n\n");
    }
    // Warm up with one full pass: the Set-of-Mark patterns compile on first
    // use and the regex engines size their per-thread caches once.
    let mut warm = ResponseTap::new(200, Some("text/event-stream"), None);
    warm.feed(&stream);
    drop(warm.finish());

    let (info, growth) = peak_growth(|| {
        let mut tap = ResponseTap::new(200, Some("text/event-stream"), None);
        for chunk in stream.chunks(16 * 1024) {
            tap.feed(chunk);
        }
        tap.finish()
    });
    assert_eq!(info.events, 50_000);
    assert_eq!(info.text.len(), 16 * 1024);
    eprintln!("response tap, 50000 events: peak heap growth {growth} bytes");
    assert!(
        growth < LIMIT,
        "response tap grew the heap by {growth} bytes"
    );
}
