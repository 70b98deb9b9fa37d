//! The one retry policy of every request kubectl-ds sends: an overloaded or restarting
//! apiserver (429 Too Many Requests, 503 Service Unavailable, 504 Gateway Timeout) is asked
//! again after a bounded exponential backoff, or after the server's `Retry-After`.
//!
//! Reads (GET, which is every get and list page, and so every poll of the waits) are retried
//! on all three. Mutations only on 429: the apiserver's max-in-flight and priority-and-fairness
//! filters answer 429 before the request reaches a handler (nothing was done), while a 503 or
//! 504 may come after the change was stored, and a repeated delete or create would then act on
//! a different state. mirrors client-go rest.Request's checkWait/`Retry-After` handling
//! (request.go `retryAfter`), bounded here so a run never backs off for longer than
//! [`MAX_DELAY`] at a time nor more than [`MAX_RETRIES`] times.
//!
//! kube's own retry layer (`Config::default_retry`) is switched off in `client.rs`: it retries
//! every method on 503/504 and backs off for up to 1,000 s.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use tower::retry::Policy;
use tower::BoxError;

/// First backoff; doubled on each retry.
pub const BASE_DELAY: Duration = Duration::from_millis(200);
/// The longest single wait, also the cap on a server's `Retry-After`.
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// Retries after the first attempt (worst case about 30 s of backoff in all).
pub const MAX_RETRIES: u32 = 6;

/// The policy state of one request (tower clones it per call).
#[derive(Clone, Debug, Default)]
pub struct RetryPolicy {
    attempt: u32,
}

/// Should a request with `method` that got `status` be sent again?
pub fn is_retryable(method: &Method, status: StatusCode) -> bool {
    match status {
        StatusCode::TOO_MANY_REQUESTS => true,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => method == Method::GET,
        _ => false,
    }
}

/// The wait before retry number `attempt` (0-based): the server's `Retry-After` seconds when
/// given (capped at [`MAX_DELAY`]), else [`BASE_DELAY`] * 2^attempt capped at [`MAX_DELAY`].
pub fn delay(attempt: u32, retry_after: Option<&str>) -> Duration {
    if let Some(secs) = retry_after.and_then(|v| v.trim().parse::<u64>().ok()) {
        return Duration::from_secs(secs).min(MAX_DELAY);
    }
    BASE_DELAY
        .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
        .min(MAX_DELAY)
}

impl<Res> Policy<Request<Body>, Response<Res>, BoxError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request<Body>,
        result: &mut Result<Response<Res>, BoxError>,
    ) -> Option<Self::Future> {
        let response = result.as_ref().ok()?;
        if self.attempt >= MAX_RETRIES || !is_retryable(req.method(), response.status()) {
            return None;
        }
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok());
        let wait = delay(self.attempt, retry_after);
        self.attempt += 1;
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        // Only bodies held in memory can be sent twice (all of kubectl-ds's are).
        let body = req.body().try_clone()?;
        let mut copy = Request::builder()
            .method(req.method().clone())
            .uri(req.uri().clone())
            .version(req.version())
            .body(body)
            .ok()?;
        *copy.headers_mut() = req.headers().clone();
        *copy.extensions_mut() = req.extensions().clone();
        Some(copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_answers_are_retried() {
        for s in [429, 503, 504] {
            assert!(is_retryable(&Method::GET, StatusCode::from_u16(s).unwrap()));
        }
        assert!(is_retryable(&Method::DELETE, StatusCode::TOO_MANY_REQUESTS));
        assert!(is_retryable(&Method::POST, StatusCode::TOO_MANY_REQUESTS));
        for m in [Method::DELETE, Method::POST, Method::PATCH, Method::PUT] {
            assert!(!is_retryable(&m, StatusCode::SERVICE_UNAVAILABLE), "{m}");
            assert!(!is_retryable(&m, StatusCode::GATEWAY_TIMEOUT), "{m}");
        }
        for s in [200, 404, 409, 410, 500] {
            assert!(!is_retryable(
                &Method::GET,
                StatusCode::from_u16(s).unwrap()
            ));
        }
    }

    #[test]
    fn backoff_is_exponential_bounded_and_honours_retry_after() {
        let waits: Vec<u128> = (0..8).map(|a| delay(a, None).as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 6400, 10000, 10000]);
        assert_eq!(delay(u32::MAX, None), MAX_DELAY);
        assert_eq!(delay(0, Some("3")), Duration::from_secs(3));
        assert_eq!(delay(5, Some(" 0 ")), Duration::ZERO);
        assert_eq!(delay(0, Some("86400")), MAX_DELAY);
        // An HTTP date or garbage: the exponential backoff.
        assert_eq!(
            delay(1, Some("Wed, 21 Oct 2015 07:28:00 GMT")).as_millis(),
            400
        );
    }

    // Request-level: a scripted local HTTP server, the client kubectl-ds builds.

    use crate::cluster::mock::{self, Reply};
    use k8s_openapi::api::apps::v1::DaemonSet;
    use kube::api::{Api, DeleteParams};
    use serde_json::json;

    fn ds_json() -> serde_json::Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "ns", "uid": "u1", "resourceVersion": "7"}})
    }

    #[tokio::test]
    async fn reads_retry_429_503_504_and_honour_retry_after() {
        let (url, seen) = mock::serve(vec![
            Reply::status(429, "TooManyRequests").header("Retry-After", "1"),
            Reply::status(503, "ServiceUnavailable"),
            Reply::status(504, "Timeout"),
            Reply::json(200, ds_json()),
        ])
        .await;
        let api: Api<DaemonSet> = Api::namespaced(mock::client(&url), "ns");
        let ds = api
            .get("agent")
            .await
            .expect("answered after three retries");
        assert_eq!(ds.metadata.uid.as_deref(), Some("u1"));
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(seen
            .iter()
            .all(|r| r.line == "GET /apis/apps/v1/namespaces/ns/daemonsets/agent"));
        // Retry-After: 1 was honoured; then the backoff of retries 2 and 3 (400 ms, 800 ms).
        let gap = |i: usize| seen[i].at - seen[i - 1].at;
        assert!(gap(1) >= Duration::from_secs(1), "{:?}", gap(1));
        assert!(gap(2) >= Duration::from_millis(400), "{:?}", gap(2));
        assert!(gap(3) >= Duration::from_millis(800), "{:?}", gap(3));
    }

    #[tokio::test]
    async fn reads_give_up_after_the_bounded_retries() {
        let replies = (0..10)
            .map(|_| Reply::status(503, "ServiceUnavailable").header("Retry-After", "0"))
            .collect();
        let (url, seen) = mock::serve(replies).await;
        let api: Api<DaemonSet> = Api::namespaced(mock::client(&url), "ns");
        let err = api.get("agent").await.unwrap_err();
        assert!(
            matches!(&err, kube::Error::Api(s) if s.code == 503),
            "{err:?}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1 + MAX_RETRIES as usize);
    }

    #[tokio::test]
    async fn mutations_retry_429_only() {
        // 503 on a delete: it may have been done; not sent again.
        let (url, seen) = mock::serve(vec![Reply::status(503, "ServiceUnavailable")]).await;
        let api: Api<DaemonSet> = Api::namespaced(mock::client(&url), "ns");
        assert!(api.delete("agent", &DeleteParams::orphan()).await.is_err());
        assert_eq!(seen.lock().unwrap().len(), 1);
        // 429 on a delete: refused before any handler ran; sent again, same body.
        let (url, seen) = mock::serve(vec![
            Reply::status(429, "TooManyRequests").header("Retry-After", "0"),
            Reply::json(200, ds_json()),
        ])
        .await;
        let api: Api<DaemonSet> = Api::namespaced(mock::client(&url), "ns");
        api.delete("agent", &DeleteParams::orphan()).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert!(seen.iter().all(|r| r.line.starts_with("DELETE ")));
        assert_eq!(
            seen[0].header("content-length"),
            seen[1].header("content-length")
        );
    }
}
