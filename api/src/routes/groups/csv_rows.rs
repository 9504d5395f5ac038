//! Reading an import file: the header (columns in any order), then each row checked like a
//! JSON student, with the line it starts on. Pure, so it is tested without a database.

use std::collections::HashMap;

use csv::StringRecord;
use herald_shared::db::groups::NewStudent;

use super::fields::{RawStudent, check_student};
use super::import::ImportRowError;
use crate::error::{ApiError, FieldError};

/// Most data rows one file may have.
pub const MAX_ROWS: usize = 10_000;

const REQUIRED: [&str; 4] = ["name", "phone", "channel", "timezone"];
const OPTIONAL: [&str; 1] = ["country"];

/// The rows of a file: the valid students (distinct phones) and the rows left out.
pub struct Rows {
    pub students: Vec<NewStudent>,
    pub errors: Vec<ImportRowError>,
}

/// Reads the header (422 on `header` when it is wrong) and every row (413 past `MAX_ROWS`).
pub fn read_rows(bytes: &[u8]) -> Result<Rows, ApiError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = reader.records();
    let header = match records.next() {
        None => {
            return Err(header_error(
                "the file is empty: the first line must be a header",
            ));
        }
        Some(Err(_)) => return Err(header_error("is not UTF-8 text")),
        Some(Ok(record)) => Columns::read(&record)?,
    };
    let mut rows = Rows {
        students: Vec::new(),
        errors: Vec::new(),
    };
    let mut lines = Lines::new(bytes);
    let mut line_of_phone: HashMap<String, u64> = HashMap::new();
    for (count, record) in records.enumerate() {
        if count >= MAX_ROWS {
            return Err(ApiError::PayloadTooLarge(format!(
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
                let line = lines.at(err.position());
                reject(line, "row", "is not UTF-8 text".to_owned());
                continue;
            }
        };
        let line = lines.at(record.position());
        if record.len() != header.width {
            let message = format!(
                "has {} fields; the header has {}",
                record.len(),
                header.width
            );
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
    fn read(record: &StringRecord) -> Result<Self, ApiError> {
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
            return Err(ApiError::Validation(errors));
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

fn header_error(message: &str) -> ApiError {
    ApiError::field("header", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_lines(csv: &str) -> Vec<(u64, String)> {
        let rows = read_rows(csv.as_bytes()).unwrap();
        rows.errors.into_iter().map(|e| (e.line, e.field)).collect()
    }

    #[test]
    fn lines_are_counted_across_crlf_blank_lines_and_quoted_line_breaks() {
        let rows = [
            "name,phone,channel,timezone",
            "Ann,+12015550123,sms,UTC",
            "",
            "Bad,1,sms,UTC",
            "\"Two\nlines\",+12015550124,sms,UTC",
            "Zone,+12015550125,sms,EST",
        ];
        for ending in ["\n", "\r\n", "\r"] {
            let csv = format!("\u{feff}{}", rows.join(ending));
            let expected = [(4, "phone".to_owned()), (7, "timezone".to_owned())];
            assert_eq!(error_lines(&csv), expected, "{ending:?}");
        }
    }

    #[test]
    fn a_repeated_phone_is_reported_on_the_later_line() {
        let csv =
            "phone,name,timezone,channel\n+1 201 555 0123,A,UTC,sms\n+12015550123,B,UTC,sms\n";
        let rows = read_rows(csv.as_bytes()).unwrap();
        assert_eq!(rows.students.len(), 1);
        assert_eq!(rows.errors[0].line, 3);
        assert_eq!(rows.errors[0].message, "repeats the phone of line 2");
    }
}
