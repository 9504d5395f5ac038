//! Queries on `groups` and `students`. Every read is scoped to an account, through the group
//! for students; callers lock the group (`lock_group`, `lock_student`) before changing its
//! students, so "is this phone already in the group" answers stay true until commit.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

#[derive(Debug, Clone, FromRow)]
pub struct GroupRow {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub struct GroupSummary {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub student_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub struct StudentRow {
    pub id: Uuid,
    pub group_id: Uuid,
    pub name: String,
    /// E.164.
    pub phone: String,
    pub channel: String,
    /// IANA zone name.
    pub timezone: String,
    pub subscribed: bool,
    /// Why an unsubscribed student is: `api` (the account) or `opt_out_keyword` (STOP).
    pub unsubscribe_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A validated student to store.
#[derive(Debug, Clone)]
pub struct NewStudent {
    pub name: String,
    /// E.164.
    pub phone: String,
    /// `sms` or `whatsapp`.
    pub channel: &'static str,
    /// IANA zone name.
    pub timezone: String,
    pub subscribed: bool,
}

/// What an import did: students added, and students whose phone was already in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upserted {
    pub created: u64,
    pub updated: u64,
}

pub async fn insert_group(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    name: &str,
    description: &str,
) -> Result<GroupRow, sqlx::Error> {
    sqlx::query_as!(
        GroupRow,
        "insert into groups (account_id, name, description) values ($1, $2, $3)
         returning id, name, description, created_at, updated_at",
        account_id,
        name,
        description,
    )
    .fetch_one(executor)
    .await
}

/// The account's group, locked for the rest of the transaction.
pub async fn lock_group(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<GroupRow>, sqlx::Error> {
    sqlx::query_as!(
        GroupRow,
        "select id, name, description, created_at, updated_at
         from groups where account_id = $1 and id = $2 for update",
        account_id,
        id,
    )
    .fetch_optional(conn)
    .await
}

/// The account's group with its student count.
pub async fn get_group(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<GroupSummary>, sqlx::Error> {
    // count(*) is never null
    sqlx::query_as!(
        GroupSummary,
        r#"select g.id, g.name, g.description, g.created_at, g.updated_at,
                (select count(*) from students s where s.group_id = g.id) as "student_count!"
         from groups g where g.account_id = $1 and g.id = $2"#,
        account_id,
        id,
    )
    .fetch_optional(executor)
    .await
}

/// A page of the account's groups, newest first, after `(created_at, id)`.
pub async fn list_groups(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<GroupSummary>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        GroupSummary,
        r#"select g.id, g.name, g.description, g.created_at, g.updated_at,
                (select count(*) from students s where s.group_id = g.id) as "student_count!"
         from groups g
         where g.account_id = $1 and ($2::timestamptz is null or (g.created_at, g.id) < ($2, $3))
         order by g.created_at desc, g.id desc
         limit $4"#,
        account_id,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(executor)
    .await
}

/// Renames a group and, when `description` is given, replaces its description.
pub async fn update_group(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    name: &str,
    description: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update groups set name = $2, description = coalesce($3, description) where id = $1",
        id,
        name,
        description,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Deletes a group and (by cascade) its students.
pub async fn delete_group(executor: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from groups where id = $1", id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Adds students in the given order. A phone already in the group fails the whole insert with
/// a unique violation on `students_group_phone`.
pub async fn insert_students(
    conn: &mut PgConnection,
    group_id: Uuid,
    students: &[NewStudent],
) -> Result<Vec<StudentRow>, sqlx::Error> {
    let columns = Columns::of(students);
    // One statement shares one `now()`; adding each row's ordinal in microseconds keeps the
    // roster, listed by creation time, in the order given (as in `upsert_students`).
    let mut rows = sqlx::query_as!(
        StudentRow,
        "insert into students (group_id, name, phone, channel, timezone, subscribed, created_at)
         select $1, t.name, t.phone, t.channel, t.timezone, t.subscribed,
                now() + t.ord * interval '1 microsecond'
         from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bool[])
              with ordinality as t(name, phone, channel, timezone, subscribed, ord)
         returning id, group_id, name, phone, channel, timezone, subscribed,
                   unsubscribe_reason, created_at, updated_at",
        group_id,
        &columns.names,
        &columns.phones,
        &columns.channels,
        &columns.timezones,
        &columns.subscribed,
    )
    .fetch_all(conn)
    .await?;
    // `returning` promises no order; creation times follow the input.
    rows.sort_by_key(|row| (row.created_at, row.id));
    Ok(rows)
}

/// Adds new students and updates the name, channel and time zone of those whose phone is
/// already in the group; `subscribed` of an existing student is left alone. Phones must be
/// distinct; lock the group first so the counts are exact.
pub async fn upsert_students(
    conn: &mut PgConnection,
    group_id: Uuid,
    students: &[NewStudent],
) -> Result<Upserted, sqlx::Error> {
    let columns = Columns::of(students);
    let existing = existing_phones(&mut *conn, group_id, &columns.phones).await?;
    // the insert of `insert_students`, with its creation-time ordering
    sqlx::query!(
        "insert into students (group_id, name, phone, channel, timezone, subscribed, created_at)
         select $1, t.name, t.phone, t.channel, t.timezone, t.subscribed,
                now() + t.ord * interval '1 microsecond'
         from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bool[])
              with ordinality as t(name, phone, channel, timezone, subscribed, ord)
         on conflict on constraint students_group_phone do update
            set name = excluded.name, channel = excluded.channel, timezone = excluded.timezone
            where (students.name, students.channel, students.timezone)
                  is distinct from (excluded.name, excluded.channel, excluded.timezone)",
        group_id,
        &columns.names,
        &columns.phones,
        &columns.channels,
        &columns.timezones,
        &columns.subscribed,
    )
    .execute(conn)
    .await?;
    let updated = existing.len() as u64;
    Ok(Upserted {
        created: students.len() as u64 - updated,
        updated,
    })
}

/// The group's students with any of `phones`.
pub async fn students_by_phone(
    executor: impl PgExecutor<'_>,
    group_id: Uuid,
    phones: &[String],
) -> Result<Vec<StudentRow>, sqlx::Error> {
    sqlx::query_as!(
        StudentRow,
        "select id, group_id, name, phone, channel, timezone, subscribed,
                unsubscribe_reason, created_at, updated_at
         from students where group_id = $1 and phone = any($2)",
        group_id,
        phones,
    )
    .fetch_all(executor)
    .await
}

/// Which of `phones` the group already has.
pub async fn existing_phones(
    executor: impl PgExecutor<'_>,
    group_id: Uuid,
    phones: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "select phone from students where group_id = $1 and phone = any($2)",
        group_id,
        phones,
    )
    .fetch_all(executor)
    .await
}

/// A page of the group's students, oldest first, after `(created_at, id)`; `subscribed`
/// filters when given.
pub async fn list_students(
    executor: impl PgExecutor<'_>,
    group_id: Uuid,
    subscribed: Option<bool>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<StudentRow>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        StudentRow,
        "select id, group_id, name, phone, channel, timezone, subscribed,
                unsubscribe_reason, created_at, updated_at
         from students
         where group_id = $1 and ($2::boolean is null or subscribed = $2)
           and ($3::timestamptz is null or (created_at, id) > ($3, $4))
         order by created_at, id
         limit $5",
        group_id,
        subscribed,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(executor)
    .await
}

/// The account's student.
pub async fn get_student(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<StudentRow>, sqlx::Error> {
    sqlx::query_as!(
        StudentRow,
        "select s.id, s.group_id, s.name, s.phone, s.channel, s.timezone, s.subscribed,
                s.unsubscribe_reason, s.created_at, s.updated_at
         from students s join groups g on g.id = s.group_id
         where g.account_id = $1 and s.id = $2",
        account_id,
        id,
    )
    .fetch_optional(executor)
    .await
}

/// The account's student, with its group locked for the rest of the transaction.
pub async fn lock_student(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<StudentRow>, sqlx::Error> {
    sqlx::query_as!(
        StudentRow,
        "select s.id, s.group_id, s.name, s.phone, s.channel, s.timezone, s.subscribed,
                s.unsubscribe_reason, s.created_at, s.updated_at
         from students s join groups g on g.id = s.group_id
         where g.account_id = $1 and s.id = $2
         for update of g",
        account_id,
        id,
    )
    .fetch_optional(conn)
    .await
}

/// Replaces a student's fields. A phone another student of the group has fails with a unique
/// violation on `students_group_phone`.
pub async fn update_student(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    student: &NewStudent,
) -> Result<StudentRow, sqlx::Error> {
    sqlx::query_as!(
        StudentRow,
        "update students set name = $2, phone = $3, channel = $4, timezone = $5, subscribed = $6
         where id = $1
         returning id, group_id, name, phone, channel, timezone, subscribed,
                   unsubscribe_reason, created_at, updated_at",
        id,
        student.name,
        student.phone,
        student.channel,
        student.timezone,
        student.subscribed,
    )
    .fetch_one(executor)
    .await
}

pub async fn delete_student(executor: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from students where id = $1", id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Students as parallel arrays, for `unnest`.
struct Columns {
    names: Vec<String>,
    phones: Vec<String>,
    channels: Vec<String>,
    timezones: Vec<String>,
    subscribed: Vec<bool>,
}

impl Columns {
    fn of(students: &[NewStudent]) -> Self {
        Self {
            names: students.iter().map(|s| s.name.clone()).collect(),
            phones: students.iter().map(|s| s.phone.clone()).collect(),
            channels: students.iter().map(|s| s.channel.to_owned()).collect(),
            timezones: students.iter().map(|s| s.timezone.clone()).collect(),
            subscribed: students.iter().map(|s| s.subscribed).collect(),
        }
    }
}
