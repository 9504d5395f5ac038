//! CSV import of a group's students: `name,phone,channel,timezone` (and optionally
//! `country`), in any column order. Valid rows are added, or update the student with the same
//! phone; invalid rows are reported by line and the rest still go in, all in one transaction.

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;

use axum::Json;
use axum::body::HttpBody;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use csv::StringRecord;
use herald_shared::db::groups::{self as db, NewStudent};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::fields::{RawStudent, check_student};
use super::parse_group_id;
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::AuthUser;
use crate::state::AppState;

/// Most data rows one file may have.
pub const MAX_ROWS: usize = 10_000;
/// Largest file accepted: 2 MiB.
pub const MAX_BYTES: usize = 2 * 1024 * 1024;

const REQUIRED: [&str; 4] = ["name", "phone", "channel", "timezone"];
const OPTIONAL: [&str; 1] = ["country"];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(import_students))
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportOut {
    /// Students added.
    pub created: u64,
    /// Rows whose phone was already in the group: that student's name, channel and time
    /// zone were replaced.
    pub updated: u64,
    /// Rows left out, by line (the header is line 1).
    pub errors: Vec<ImportRowError>,
}

/// A row left out of an import, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportRowError {
    /// 1-based line of the file where the row starts (the header is line 1).
    pub line: u64,
    /// The column at fault, or `row` for the row as a whole.
    pub field: String,
    pub message: String,
}

/// Imports students from CSV (`Content-Type: text/csv`, UTF-8). The first line is the
/// header: `name`, `phone`, `channel` and `timezone` in any order, optionally `country` (a
/// region to read national phones in); other or missing columns answer 422 on `header`.
/// Each valid row adds a student, or — when its phone is already in the group — replaces
/// that student's name, channel and time zone (their subscription stays as it was, so an
/// import never re-subscribes someone who opted out). Invalid rows, and rows repeating an
/// earlier row's phone, are skipped and reported by line; the valid rows are committed
/// together, all or none. At most 10,000 rows and 2 MiB (413 beyond).
#[utoipa::path(post, path = "/api/v1/groups/{id}/students/import", tag = "groups",
    operation_id = "v1.groups.students.import", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body(content = String, content_type = "text/csv",
        description = "name,phone,channel,timezone[,country] with a header row"),
    responses((status = 200, body = ImportOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "more than 10,000 rows or 2 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "the header is wrong", body = Problem, content_type = "application/problem+json")))]
async fn import_students(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    CsvBody(bytes): CsvBody,
) -> Result<Json<ImportOut>, ImportRefused> {
    let group_id = parse_group_id(&id)?;
    let rows = read_rows(&bytes)?;
    let mut tx = state.db.begin().await.map_err(ApiError::from)?;
    db::lock_group(&mut tx, auth.account_id, group_id)
        .await
        .map_err(ApiError::from)?
        .ok_or(ApiError::NotFound("group"))?;
    let mut out = ImportOut {
        created: 0,
        updated: 0,
        errors: rows.errors,
    };
    if !rows.students.is_empty() {
        let done = db::upsert_students(&mut tx, group_id, &rows.students)
            .await
            .map_err(ApiError::from)?;
        (out.created, out.updated) = (done.created, done.updated);
    }
    tx.commit().await.map_err(ApiError::from)?;
    Ok(Json(out))
}

/// The rows of a file: the valid students (distinct phones) and the rows left out.
struct Rows {
    students: Vec<NewStudent>,
    errors: Vec<ImportRowError>,
}

fn read_rows(bytes: &[u8]) -> Result<Rows, ImportRefused> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = reader.records();
    let header = match records.next() {
        None => return Err(header_error("the file is empty: the first line must be a header")),
        Some(Err(_)) => return Err(header_error("is not UTF-8 text")),
        Some(Ok(record)) => Columns::read(&record)?,
    };
    let mut rows = Rows {
        students: Vec::new(),
        errors: Vec::new(),
    };
    let mut line_of_phone: HashMap<String, u64> = HashMap::new();
    for (count, record) in records.enumerate() {
        if count >= MAX_ROWS {
            return Err(ImportRefused::TooLarge(format!(
                "the file has more than {MAX_ROWS} rows; split it"
            )));
        }
        let mut reject = |line: u64, field: &str, message: String| {
            rows.errors.push(ImportRowError {
                line,
                field: field.to_owned(),
                message,
            });
        };
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                let line = err.position().map_or(0, csv::Position::line);
                reject(line, "row", "is not UTF-8 text".to_owned());
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        if record.len() != header.width {
            let message = format!("has {} fields; the header has {}", record.len(), header.width);
            reject(line, "row", message);
            continue;
        }
        let student = match check_student(header.student(&record)) {
            Ok(student) => student,
            Err(found) => {
                for FieldError { field, message } in found {
                    reject(line, &field, message);
                }
                continue;
            }
        };
        if let Some(first) = line_of_phone.get(&student.phone) {
            reject(line, "phone", format!("repeats the phone of line {first}"));
            continue;
        }
        line_of_phone.insert(student.phone.clone(), line);
        rows.students.push(student);
    }
    Ok(rows)
}

/// Where each column is.
struct Columns {
    width: usize,
    name: usize,
    phone: usize,
    channel: usize,
    timezone: usize,
    country: Option<usize>,
}

impl Columns {
    fn read(record: &StringRecord) -> Result<Self, ImportRefused> {
        let names: Vec<String> = record.iter().map(|c| c.trim().to_lowercase()).collect();
        let mut errors = Vec::new();
        for (index, name) in names.iter().enumerate() {
            if !REQUIRED.contains(&name.as_str()) && !OPTIONAL.contains(&name.as_str()) {
                errors.push(format!(
                    "unknown column `{name}`; the columns are name, phone, channel, timezone \
                     and optionally country"
                ));
            } else if names[..index].contains(name) {
                errors.push(format!("column `{name}` appears twice"));
            }
        }
        let position = |wanted: &str| names.iter().position(|name| name == wanted);
        for wanted in REQUIRED {
            if position(wanted).is_none() {
                errors.push(format!("missing column `{wanted}`"));
            }
        }
        if !errors.is_empty() {
            let errors = errors
                .into_iter()
                .map(|message| FieldError::new("header", message))
                .collect();
            return Err(ApiError::Validation(errors).into());
        }
        let required = |wanted: &str| position(wanted).unwrap_or_default();
        Ok(Self {
            width: names.len(),
            name: required("name"),
            phone: required("phone"),
            channel: required("channel"),
            timezone: required("timezone"),
            country: position("country"),
        })
    }

    fn student<'a>(&self, record: &'a StringRecord) -> RawStudent<'a> {
        let cell = |index: usize| record.get(index).unwrap_or_default();
        RawStudent {
            name: cell(self.name),
            phone: cell(self.phone),
            channel: cell(self.channel),
            timezone: cell(self.timezone),
            country: self.country.map(cell),
            subscribed: true,
        }
    }
}

fn header_error(message: &str) -> ImportRefused {
    ApiError::field("header", message).into()
}

/// A `text/csv` body of at most `MAX_BYTES`.
pub struct CsvBody(pub Vec<u8>);

impl<S: Send + Sync> FromRequest<S> for CsvBody {
    type Rejection = ImportRefused;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let is_csv = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.to_ascii_lowercase().starts_with("text/csv"));
        if !is_csv {
            return Err(ApiError::UnsupportedMediaType(
                "send the file as CSV with `Content-Type: text/csv`".to_owned(),
            )
            .into());
        }
        let too_large = || ImportRefused::TooLarge("the file is larger than 2 MiB; split it".into());
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

/// An import's failure: any `ApiError`, or 413 for a file over the limits (which `ApiError`
/// has no variant for, as only imports take bodies this large).
pub enum ImportRefused {
    Api(ApiError),
    TooLarge(String),
}

impl From<ApiError> for ImportRefused {
    fn from(err: ApiError) -> Self {
        Self::Api(err)
    }
}

impl IntoResponse for ImportRefused {
    fn into_response(self) -> Response {
        let detail = match self {
            Self::Api(err) => return err.into_response(),
            Self::TooLarge(detail) => detail,
        };
        let status = StatusCode::PAYLOAD_TOO_LARGE;
        let problem = Problem {
            type_: "/problems/too_large".to_owned(),
            title: "Content too large".to_owned(),
            status: status.as_u16(),
            detail,
            errors: Vec::new(),
        };
        let mut response = (status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

#[cfg(test)]
mod probe {
    #[test]
    fn probe() {
        for data in ["h1,h2\r\na,b\r\nc,d\r\n\r\ne,f\r\n", "h1,h2\na,b\nc,d\n\ne,f\n\"x\ny\",z\nlast,1"] {
            let mut r = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(data.as_bytes());
            for rec in r.records() {
                let rec = rec.unwrap();
                let p = rec.position().unwrap();
                println!("{:?} line={} byte={} rec={}", rec, p.line(), p.byte(), p.record());
            }
        }
    }
}
