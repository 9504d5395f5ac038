//! Reading an import file: the header (columns in any order), then each row checked like a
//! JSON student, with the line it starts on. Pure, so it is tested without a database.

use std::collections::HashMap;

use csv::StringRecord;
use herald_shared::db::groups::NewStudent;

use super::fields::{RawStudent, check_student};
use crate::csv_import::{CsvRows, ImportRowError, header_errors};
use crate::error::{ApiError, FieldError};

const REQUIRED: [&str; 4] = ["name", "phone", "channel", "timezone"];
const OPTIONAL: [&str; 1] = ["country"];

/// The rows of a file: the valid students (distinct phones) and the rows left out.
pub struct Rows {
    pub students: Vec<NewStudent>,
    pub errors: Vec<ImportRowError>,
}

/// Reads the header (422 on `header` when it is wrong) and every row (413 past `MAX_ROWS`).
pub fn read_rows(bytes: &[u8]) -> Result<Rows, ApiError> {
    let mut rows = CsvRows::open(bytes)?;
    let header = Columns::read(&rows.header)?;
    let mut students = Vec::new();
    let mut line_of_phone: HashMap<String, u64> = HashMap::new();
    while let Some((line, record)) = rows.next_row()? {
        let student = match check_student(header.student(&record)) {
            Ok(student) => student,
            Err(found) => {
                for FieldError { field, message } in found {
                    rows.reject(line, &field, message);
                }
                continue;
            }
        };
        if let Some(first) = line_of_phone.get(&student.phone) {
            rows.reject(line, "phone", format!("repeats the phone of line {first}"));
            continue;
        }
        line_of_phone.insert(student.phone.clone(), line);
        students.push(student);
    }
    Ok(Rows {
        students,
        errors: rows.errors,
    })
}

/// Where each column is.
struct Columns {
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
        header_errors(errors)?;
        let required = |wanted: &str| position(wanted).unwrap_or_default();
        Ok(Self {
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
