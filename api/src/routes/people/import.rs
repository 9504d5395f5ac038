//! CSV import of people: an `email` column, optionally `first_name`, `last_name`, `company`,
//! `title` and `timezone` (any order and case), and any other column as an attribute named as
//! its header. Valid rows add a person or update the one with the same e-mail (in any case);
//! invalid rows are reported by line and the rest still go in, all in one transaction — as a
//! group's student import does.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use csv::StringRecord;
use herald_shared::db::people::{self as db, Attributes, NewPerson};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::fields::{
    MAX_ATTRIBUTES, RawPerson, check_attribute_name, check_attribute_value, check_person,
};
use crate::csv_import::{CsvBody, CsvRows, ImportOut, ImportRowError, header_errors};
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::AuthUser;
use crate::state::AppState;

const KNOWN: [&str; 6] = [
    "email",
    "first_name",
    "last_name",
    "company",
    "title",
    "timezone",
];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(import_people))
}

/// Imports people from CSV (`Content-Type: text/csv`, UTF-8). The first line is the header:
/// `email` (required), optionally `first_name`, `last_name`, `company`, `title` and
/// `timezone`, in any order and case; every other column is an attribute named as written
/// (at most 50). A missing `email`, a column named twice or a blank column name answers 422
/// on `header` and imports nothing.
///
/// Each valid row adds a person, or — when the account has a person with that e-mail, in
/// any case — updates them: a non-blank cell replaces the field, a blank one keeps it, and
/// the row's attributes are merged into theirs (so an import never erases anything). Invalid
/// rows, rows repeating an earlier row's e-mail, and rows that would leave a person with more
/// than 50 attributes are skipped and reported by line and field; the valid rows are
/// committed together, all or none. At most 10,000 rows and 2 MiB (413 beyond).
#[utoipa::path(post, path = "/api/v1/people/import", tag = "people",
    operation_id = "v1.people.import", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv",
        description = "email[,first_name,last_name,company,title,timezone,<attribute>…] with a header row"),
    responses((status = 200, body = ImportOut),
        (status = 413, description = "more than 10,000 rows or 2 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "the header is wrong", body = Problem, content_type = "application/problem+json")))]
async fn import_people(
    State(state): State<AppState>,
    auth: AuthUser,
    CsvBody(bytes): CsvBody,
) -> Result<Json<ImportOut>, ApiError> {
    let mut tx = state.db.begin().await?;
    let (out, _) = import(&mut tx, auth.account_id, bytes).await?;
    tx.commit().await?;
    Ok(Json(out))
}

/// Reads a people CSV and upserts its valid rows in the caller's transaction (see
/// [`import_people`]); the answer, and the (lower-cased) e-mails of the people written.
pub async fn import(
    tx: &mut sqlx::PgConnection,
    account_id: uuid::Uuid,
    bytes: Vec<u8>,
) -> Result<(ImportOut, Vec<String>), ApiError> {
    // checking 10,000 rows takes a moment of CPU: keep it off the threads serving requests
    let Rows { people, mut errors } = tokio::task::spawn_blocking(move || read_rows(&bytes))
        .await
        .map_err(|err| ApiError::Internal(err.into()))??;
    let emails: Vec<String> = people.iter().map(|(_, p)| p.email.clone()).collect();
    let existing = db::lock_by_email(&mut *tx, account_id, &emails).await?;
    let mut valid = Vec::with_capacity(people.len());
    for (line, person) in people {
        let current = existing.get(&person.email);
        let added = person
            .attributes
            .keys()
            .filter(|name| current.is_none_or(|current| !current.contains_key(*name)))
            .count();
        if current.map_or(0, Attributes::len) + added > MAX_ATTRIBUTES {
            errors.push(ImportRowError {
                line,
                field: "attributes".to_owned(),
                message: format!("would give the person more than {MAX_ATTRIBUTES} attributes"),
            });
            continue;
        }
        valid.push(person);
    }
    errors.sort_by_key(|error| error.line);
    let done = if valid.is_empty() {
        db::Upserted {
            created: 0,
            updated: 0,
        }
    } else {
        db::upsert_people(&mut *tx, account_id, &valid).await?
    };
    let written = valid.into_iter().map(|person| person.email).collect();
    Ok((
        ImportOut {
            created: done.created,
            updated: done.updated,
            errors,
        },
        written,
    ))
}

/// The rows of a file: the valid people (distinct e-mails) with their lines, and the rows
/// left out.
struct Rows {
    people: Vec<(u64, NewPerson)>,
    errors: Vec<ImportRowError>,
}

fn read_rows(bytes: &[u8]) -> Result<Rows, ApiError> {
    let mut rows = CsvRows::open(bytes)?;
    let columns = Columns::read(&rows.header)?;
    let mut people = Vec::new();
    let mut line_of_email: HashMap<String, u64> = HashMap::new();
    while let Some((line, record)) = rows.next_row()? {
        let person = match columns.person(&record) {
            Ok(person) => person,
            Err(found) => {
                for FieldError { field, message } in found {
                    rows.reject(line, &field, message);
                }
                continue;
            }
        };
        if let Some(first) = line_of_email.get(&person.email) {
            rows.reject(line, "email", format!("repeats the e-mail of line {first}"));
            continue;
        }
        line_of_email.insert(person.email.clone(), line);
        people.push((line, person));
    }
    Ok(Rows {
        people,
        errors: rows.errors,
    })
}

/// Where each column is: the known ones by name, the attributes with their names.
struct Columns {
    known: [Option<usize>; KNOWN.len()],
    attributes: Vec<(usize, String)>,
}

impl Columns {
    fn read(header: &StringRecord) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        let mut known = [None; KNOWN.len()];
        let mut attributes: Vec<(usize, String)> = Vec::new();
        for (index, cell) in header.iter().enumerate() {
            let name = cell.trim();
            let lowered = name.to_lowercase();
            if let Some(at) = KNOWN.iter().position(|known| *known == lowered) {
                if known[at].replace(index).is_some() {
                    errors.push(format!("column `{lowered}` appears twice"));
                }
            } else if let Err(message) = check_attribute_name(name) {
                errors.push(format!("column {}: {message}", index + 1));
            } else if attributes.iter().any(|(_, other)| other == name) {
                errors.push(format!("column `{name}` appears twice"));
            } else {
                attributes.push((index, name.to_owned()));
            }
        }
        if known[0].is_none() {
            errors.push("missing column `email`".to_owned());
        }
        if attributes.len() > MAX_ATTRIBUTES {
            errors.push(format!(
                "{} attribute columns; a person may have at most {MAX_ATTRIBUTES}",
                attributes.len()
            ));
        }
        header_errors(errors)?;
        Ok(Self { known, attributes })
    }

    /// The row's person, or every field at fault (an attribute by its column's name).
    fn person(&self, record: &StringRecord) -> Result<NewPerson, Vec<FieldError>> {
        let cell = |at: usize| {
            self.known[at]
                .and_then(|index| record.get(index))
                .unwrap_or_default()
        };
        let mut errors = Vec::new();
        let mut attributes = Attributes::new();
        for (index, name) in &self.attributes {
            let value = record.get(*index).unwrap_or_default().trim();
            if value.is_empty() {
                continue;
            }
            match check_attribute_value(value) {
                Ok(()) => {
                    attributes.insert(name.clone(), value.to_owned());
                }
                Err(message) => errors.push(FieldError::new(name, message)),
            }
        }
        let zone = cell(5).trim();
        let raw = RawPerson {
            email: cell(0),
            first_name: cell(1),
            last_name: cell(2),
            company: cell(3),
            title: cell(4),
            timezone: (!zone.is_empty()).then_some(zone),
        };
        match check_person(raw, attributes) {
            Ok(person) if errors.is_empty() => Ok(person),
            Ok(_) => Err(errors),
            Err(found) => Err([found, errors].concat()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_columns_become_attributes_and_blank_cells_are_left_out() {
        let csv = "Email,LinkedIn,first_name,Plan\r\nADA@example.com,https://l/ada,Ada,\r\n";
        let rows = read_rows(csv.as_bytes()).unwrap();
        assert!(rows.errors.is_empty());
        let (line, person) = &rows.people[0];
        assert_eq!(*line, 2);
        assert_eq!(person.email, "ada@example.com");
        assert_eq!(person.first_name, "Ada");
        assert_eq!(
            person.attributes,
            Attributes::from([("LinkedIn".to_owned(), "https://l/ada".to_owned())])
        );
    }

    #[test]
    fn a_repeated_email_in_any_case_is_reported_on_the_later_line() {
        let csv = "email\nada@example.com\n\nAda@Example.com\n";
        let rows = read_rows(csv.as_bytes()).unwrap();
        assert_eq!(rows.people.len(), 1);
        assert_eq!(
            (rows.errors[0].line, rows.errors[0].field.as_str()),
            (4, "email")
        );
        assert_eq!(rows.errors[0].message, "repeats the e-mail of line 2");
    }
}
