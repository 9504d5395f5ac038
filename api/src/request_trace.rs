//! Request ids and request spans. Every request gets an `x-request-id` (the caller's, or a
//! new UUID), answered back in the response, logged in the request's span with the matched
//! route, and recorded on everything the request plans (`telemetry::request_id`), so a
//! message's worker logs lead back to the API call that planned it.

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use herald_shared::telemetry;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The header carrying the id.
const REQUEST_ID: &str = "x-request-id";

/// Wraps `router` with the request-id and tracing layers.
pub fn layer<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    let header = axum::http::HeaderName::from_static(REQUEST_ID);
    router
        .layer(middleware::from_fn(scope))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", MatchedPath::as_str);
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    route,
                    request_id = request_id(request).unwrap_or_default(),
                )
            }),
        )
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(SetRequestIdLayer::new(header, MakeRequestUuid))
}

/// Serves the request with its id as the task's request id.
async fn scope(request: Request, next: Next) -> Response {
    match request_id(&request) {
        Some(id) => telemetry::with_request_id(id.to_owned(), next.run(request)).await,
        None => next.run(request).await,
    }
}

fn request_id(request: &Request) -> Option<&str> {
    request.headers().get(REQUEST_ID)?.to_str().ok()
}
