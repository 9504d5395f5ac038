//! What every CSV import shares: the body (`text/csv`, at most 2 MiB, in `body`), reading a
//! file as a header and rows with the line each row starts on (at most `MAX_ROWS`), and the
//! answer: how many rows were added or updated, and each row left out with its line and
//! field. What the columns mean is each import's own (students, people).

mod body;

use csv::{StringRecord, StringRecordsIntoIter};
use serde::Serialize;
use utoipa::ToSchema;

pub use self::body::CsvBody;
use crate::error::{ApiError, FieldError};

/// Most data rows one file may have.
pub const MAX_ROWS: usize = 10_000;

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportOut {
    /// Rows added.
    pub created: u64,
    /// Rows that matched one already there (a student by phone, a person by e-mail) and
    /// updated it.
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

/// A file being read: its header, then its rows one by one. Rows that cannot be read (not
/// UTF-8, a different number of fields than the header) are left out and recorded in
/// `errors` by [`CsvRows::next_row`]; the caller records its own with [`CsvRows::reject`].
pub struct CsvRows<'a> {
    /// The header's cells, as written.
    pub header: StringRecord,
    /// Rows left out so far.
    pub errors: Vec<ImportRowError>,
    records: StringRecordsIntoIter<&'a [u8]>,
    lines: Lines<'a>,
    count: usize,
}

impl<'a> CsvRows<'a> {
    /// Reads the header (a UTF-8 byte-order mark is skipped); an empty file or an unreadable
    /// header is a 422 on `header`.
    pub fn open(bytes: &'a [u8]) -> Result<Self, ApiError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut records = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes)
            .into_records();
        let header = match records.next() {
            None => {
                return Err(header_error(
                    "the file is empty: the first line must be a header",
                ));
            }
            Some(Err(_)) => return Err(header_error("is not UTF-8 text")),
            Some(Ok(record)) => record,
        };
        Ok(Self {
            header,
            errors: Vec::new(),
            records,
            lines: Lines::new(bytes),
            count: 0,
        })
    }

    /// The next row with as many fields as the header, and its line; 413 past `MAX_ROWS`.
    pub fn next_row(&mut self) -> Result<Option<(u64, StringRecord)>, ApiError> {
        while let Some(record) = self.records.next() {
            if self.count >= MAX_ROWS {
                return Err(ApiError::PayloadTooLarge(format!(
                    "the file has more than {MAX_ROWS} rows; split it"
                )));
            }
            self.count += 1;
            let record = match record {
                Ok(record) => record,
                Err(err) => {
                    let line = self.lines.at(err.position());
                    self.reject(line, "row", "is not UTF-8 text");
                    continue;
                }
            };
            let line = self.lines.at(record.position());
            if record.len() != self.header.len() {
                let message = format!(
                    "has {} fields; the header has {}",
                    record.len(),
                    self.header.len()
                );
                self.reject(line, "row", message);
                continue;
            }
            return Ok(Some((line, record)));
        }
        Ok(None)
    }

    /// Leaves the row at `line` out because of `field`.
    pub fn reject(&mut self, line: u64, field: &str, message: impl Into<String>) {
        self.errors.push(ImportRowError {
            line,
            field: field.to_owned(),
            message: message.into(),
        });
    }
}

/// A 422 on `header`.
pub fn header_error(message: impl Into<String>) -> ApiError {
    ApiError::field("header", message)
}

/// Many 422s on `header`, or none.
pub fn header_errors(messages: Vec<String>) -> Result<(), ApiError> {
    if messages.is_empty() {
        return Ok(());
    }
    let errors = messages
        .into_iter()
        .map(|message| FieldError::new("header", message))
        .collect();
    Err(ApiError::Validation(errors))
}

/// 1-based line numbers of records. `csv`'s own `Position::line` is off by one after CRLF
/// line ends and counts blank lines inconsistently, and a record's byte offset may point at
/// the previous line's end or at skipped blank lines; so the line is counted here, from the
/// first byte of the record itself, incrementally (records come in order).
struct Lines<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            offset: 0,
            line: 1,
        }
    }

    fn at(&mut self, position: Option<&csv::Position>) -> u64 {
        let mut start = position
            .and_then(|p| usize::try_from(p.byte()).ok())
            .unwrap_or(self.offset)
            .clamp(self.offset, self.bytes.len());
        while matches!(self.bytes.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        for (index, byte) in self.bytes[self.offset..start].iter().enumerate() {
            let at = self.offset + index;
            // "\r\n", "\n" and a lone "\r" each end a line
            if *byte == b'\n' || (*byte == b'\r' && self.bytes.get(at + 1) != Some(&b'\n')) {
                self.line += 1;
            }
        }
        self.offset = start;
        self.line
    }
}
