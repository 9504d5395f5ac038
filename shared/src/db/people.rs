//! Queries on `people`, the account's CRM contacts. Every query is scoped to an account; an
//! e-mail is unique per account whatever its case (`people_account_email`, on
//! `lower(email)`), and callers pass it already lower-cased (`domain::EmailAddress`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

/// The unique index a second person with the same e-mail violates.
pub const UNIQUE_EMAIL: &str = "people_account_email";

/// A person's free-form attributes (for templates): names to text.
pub type Attributes = BTreeMap<String, String>;

#[derive(Debug, Clone, FromRow)]
pub struct PersonRow {
    pub id: Uuid,
    /// Lower-cased.
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    pub title: String,
    /// IANA zone name; `None`: the campaign's zone applies.
    pub timezone: Option<String>,
    pub attributes: Json<Attributes>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A validated person to store. Text fields are empty when not given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewPerson {
    /// Lower-cased.
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    pub title: String,
    pub timezone: Option<String>,
    pub attributes: Attributes,
}

/// What an import did: people added, and people whose e-mail the account already had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upserted {
    pub created: u64,
    pub updated: u64,
}

/// Adds a person. An e-mail the account already has fails with a unique violation on
/// [`UNIQUE_EMAIL`].
pub async fn insert_person(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    person: &NewPerson,
) -> Result<PersonRow, sqlx::Error> {
    sqlx::query_as!(
        PersonRow,
        r#"insert into people
             (account_id, email, first_name, last_name, company, title, timezone, attributes)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         returning id, email, first_name, last_name, company, title, timezone,
                   attributes as "attributes: Json<Attributes>", created_at, updated_at"#,
        account_id,
        person.email,
        person.first_name,
        person.last_name,
        person.company,
        person.title,
        person.timezone,
        Json(&person.attributes) as _,
    )
    .fetch_one(executor)
    .await
}

/// The account's person.
pub async fn get_person(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<PersonRow>, sqlx::Error> {
    sqlx::query_as!(
        PersonRow,
        r#"select id, email, first_name, last_name, company, title, timezone,
                  attributes as "attributes: Json<Attributes>", created_at, updated_at
         from people where account_id = $1 and id = $2"#,
        account_id,
        id,
    )
    .fetch_optional(executor)
    .await
}

/// Replaces every field of the account's person; `None` when it has no such person. An
/// e-mail another person of the account has fails with a unique violation on
/// [`UNIQUE_EMAIL`].
pub async fn update_person(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
    person: &NewPerson,
) -> Result<Option<PersonRow>, sqlx::Error> {
    sqlx::query_as!(
        PersonRow,
        r#"update people
         set email = $3, first_name = $4, last_name = $5, company = $6, title = $7,
             timezone = $8, attributes = $9
         where account_id = $1 and id = $2
         returning id, email, first_name, last_name, company, title, timezone,
                   attributes as "attributes: Json<Attributes>", created_at, updated_at"#,
        account_id,
        id,
        person.email,
        person.first_name,
        person.last_name,
        person.company,
        person.title,
        person.timezone,
        Json(&person.attributes) as _,
    )
    .fetch_optional(executor)
    .await
}

/// Deletes the account's person; false when it has no such person.
pub async fn delete_person(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "delete from people where account_id = $1 and id = $2",
        account_id,
        id
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A page of the account's people, newest first, after `(created_at, id)`. With `search`,
/// only those whose e-mail, first, last or full name or company contains it, in any case
/// (`%` and `_` in it match themselves).
pub async fn list_people(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    search: Option<&str>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<PersonRow>, sqlx::Error> {
    let pattern = search.map(like_pattern);
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        PersonRow,
        r#"select id, email, first_name, last_name, company, title, timezone,
                  attributes as "attributes: Json<Attributes>", created_at, updated_at
         from people
         where account_id = $1
           and ($2::text is null
                or email ilike $2 or first_name ilike $2 or last_name ilike $2
                or (first_name || ' ' || last_name) ilike $2 or company ilike $2)
           and ($3::timestamptz is null or (created_at, id) < ($3, $4))
         order by created_at desc, id desc
         limit $5"#,
        account_id,
        pattern,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(executor)
    .await
}

/// `%text%` for `ilike`, with the pattern's own characters (`%`, `_`, `\`) escaped.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The account's people with any of `emails` (lower-cased), locked for the rest of the
/// transaction: `email` → its current attributes.
pub async fn lock_by_email(
    conn: &mut PgConnection,
    account_id: Uuid,
    emails: &[String],
) -> Result<BTreeMap<String, Attributes>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select lower(email) as "email!", attributes as "attributes: Json<Attributes>"
         from people where account_id = $1 and lower(email) = any($2)
         order by id
         for update"#,
        account_id,
        emails,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.email, row.attributes.0))
        .collect())
}

/// Adds the people whose e-mail the account does not have yet and updates the others, in one
/// statement: a text field left empty keeps the current value, a `None` zone keeps the
/// current zone, and the attributes given are merged into the current ones (an attribute
/// not given is kept). E-mails must be distinct and lower-cased.
pub async fn upsert_people(
    conn: &mut PgConnection,
    account_id: Uuid,
    people: &[NewPerson],
) -> Result<Upserted, sqlx::Error> {
    let column = |field: fn(&NewPerson) -> &str| -> Vec<String> {
        people.iter().map(|p| field(p).to_owned()).collect()
    };
    let timezones: Vec<Option<String>> = people.iter().map(|p| p.timezone.clone()).collect();
    let attributes: Vec<serde_json::Value> = people
        .iter()
        .map(|p| {
            let fields = p.attributes.iter();
            serde_json::Value::Object(fields.map(|(k, v)| (k.clone(), v.clone().into())).collect())
        })
        .collect();
    // One statement shares one `now()`; each row's ordinal in microseconds keeps the list,
    // newest first, in the file's order reversed (as a student import keeps its order).
    // `xmax = 0` tells a row this statement inserted from one it updated.
    let inserted = sqlx::query_scalar!(
        r#"insert into people (account_id, email, first_name, last_name, company, title,
                               timezone, attributes, created_at)
         select $1, t.email, t.first_name, t.last_name, t.company, t.title, t.timezone,
                t.attributes, now() + t.ord * interval '1 microsecond'
         from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::jsonb[])
              with ordinality as t(email, first_name, last_name, company, title, timezone,
                                   attributes, ord)
         on conflict (account_id, lower(email)) do update
            set first_name = coalesce(nullif(excluded.first_name, ''), people.first_name),
                last_name = coalesce(nullif(excluded.last_name, ''), people.last_name),
                company = coalesce(nullif(excluded.company, ''), people.company),
                title = coalesce(nullif(excluded.title, ''), people.title),
                timezone = coalesce(excluded.timezone, people.timezone),
                attributes = people.attributes || excluded.attributes
         returning (xmax = 0) as "inserted!""#,
        account_id,
        &column(|p| p.email.as_str()),
        &column(|p| p.first_name.as_str()),
        &column(|p| p.last_name.as_str()),
        &column(|p| p.company.as_str()),
        &column(|p| p.title.as_str()),
        &timezones as &[Option<String>],
        &attributes,
    )
    .fetch_all(conn)
    .await?;
    let created = inserted.iter().filter(|inserted| **inserted).count() as u64;
    Ok(Upserted {
        created,
        updated: inserted.len() as u64 - created,
    })
}

/// The ids of the account's people with these (lower-cased) e-mails.
pub async fn ids_by_email(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    emails: &[String],
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "select id from people where account_id = $1 and lower(email) = any($2)",
        account_id,
        emails,
    )
    .fetch_all(executor)
    .await
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn a_search_matches_its_own_wildcard_characters_literally() {
        assert_eq!(like_pattern("ada"), "%ada%");
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
