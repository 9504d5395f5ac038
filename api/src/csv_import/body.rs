//! The body of an import: `Content-Type: text/csv`, read up to `MAX_BYTES` (413 beyond).

use std::future::poll_fn;
use std::pin::Pin;

use axum::body::HttpBody;
use axum::extract::{FromRequest, Request};
use axum::http::header;

use crate::error::ApiError;

/// Largest file accepted: 2 MiB.
pub const MAX_BYTES: usize = 2 * 1024 * 1024;

/// A `text/csv` body of at most `MAX_BYTES`.
pub struct CsvBody(pub Vec<u8>);

impl<S: Send + Sync> FromRequest<S> for CsvBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let is_csv = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.to_ascii_lowercase().starts_with("text/csv"));
        if !is_csv {
            return Err(ApiError::UnsupportedMediaType(
                "send the file as CSV with `Content-Type: text/csv`".to_owned(),
            ));
        }
        let too_large =
            || ApiError::PayloadTooLarge("the file is larger than 2 MiB; split it".into());
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|length| length > MAX_BYTES) {
            return Err(too_large());
        }
        // Read frame by frame so a body without (or lying about) its length is cut off at
        // the limit rather than buffered whole.
        let mut body = req.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            let frame = frame.map_err(|err| ApiError::BadRequest {
                code: "unreadable_body",
                detail: format!("the body could not be read: {err}"),
                errors: Vec::new(),
            })?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > MAX_BYTES {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(Self(bytes))
    }
}
