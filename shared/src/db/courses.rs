//! Queries on `courses`, `course_days` and `questions`. Every read is scoped to an account;
//! callers lock the course (`lock_course`) before changing its days or questions, so day
//! numbers and question positions stay 1…n under concurrent edits.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

#[derive(Debug, Clone, FromRow)]
pub struct CourseRow {
    pub id: Uuid,
    pub name: String,
    pub author: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub struct CourseSummary {
    pub id: Uuid,
    pub name: String,
    pub author: String,
    pub description: String,
    pub day_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub struct DayRow {
    pub id: Uuid,
    pub day_number: i32,
    pub text: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct QuestionRow {
    pub id: Uuid,
    pub day_id: Uuid,
    pub position: i32,
    pub question: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub options: Option<Json<Vec<String>>>,
    pub correct_answer: Option<String>,
}

/// A question to store.
#[derive(Debug, Clone)]
pub struct NewQuestion {
    pub question: String,
    pub kind: &'static str,
    pub options: Option<Vec<String>>,
    pub correct_answer: Option<String>,
}

impl NewQuestion {
    /// `options` as the `jsonb` array the column holds.
    fn options_json(&self) -> Option<serde_json::Value> {
        self.options.clone().map(serde_json::Value::from)
    }
}

pub async fn insert_course(
    conn: &mut PgConnection,
    account_id: Uuid,
    name: &str,
    author: &str,
    description: &str,
) -> Result<CourseRow, sqlx::Error> {
    sqlx::query_as!(
        CourseRow,
        "insert into courses (account_id, name, author, description) values ($1, $2, $3, $4)
         returning id, name, author, description, created_at, updated_at",
        account_id,
        name,
        author,
        description,
    )
    .fetch_one(conn)
    .await
}

/// The account's course, locked for the rest of the transaction.
pub async fn lock_course(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<CourseRow>, sqlx::Error> {
    sqlx::query_as!(
        CourseRow,
        "select id, name, author, description, created_at, updated_at
         from courses where account_id = $1 and id = $2 for update",
        account_id,
        id,
    )
    .fetch_optional(conn)
    .await
}

pub async fn get_course(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<CourseRow>, sqlx::Error> {
    sqlx::query_as!(
        CourseRow,
        "select id, name, author, description, created_at, updated_at
         from courses where account_id = $1 and id = $2",
        account_id,
        id,
    )
    .fetch_optional(executor)
    .await
}

/// A page of the account's courses, newest first, after `(created_at, id)`.
pub async fn list_courses(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<CourseSummary>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    // count(*) is never null
    sqlx::query_as!(
        CourseSummary,
        r#"select c.id, c.name, c.author, c.description, c.created_at, c.updated_at,
                (select count(*) from course_days d where d.course_id = c.id) as "day_count!"
         from courses c
         where c.account_id = $1 and ($2::timestamptz is null or (c.created_at, c.id) < ($2, $3))
         order by c.created_at desc, c.id desc
         limit $4"#,
        account_id,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(executor)
    .await
}

pub async fn update_course(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    name: &str,
    author: &str,
    description: &str,
) -> Result<CourseRow, sqlx::Error> {
    sqlx::query_as!(
        CourseRow,
        "update courses set name = $2, author = $3, description = $4 where id = $1
         returning id, name, author, description, created_at, updated_at",
        id,
        name,
        author,
        description,
    )
    .fetch_one(executor)
    .await
}

pub async fn delete_course(executor: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from courses where id = $1", id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Appends a day after the course's last one.
pub async fn append_day(
    conn: &mut PgConnection,
    course_id: Uuid,
    text: &str,
) -> Result<DayRow, sqlx::Error> {
    sqlx::query_as!(
        DayRow,
        "insert into course_days (course_id, day_number, text)
         select $1, coalesce(max(day_number), 0) + 1, $2 from course_days where course_id = $1
         returning id, day_number, text",
        course_id,
        text,
    )
    .fetch_one(conn)
    .await
}

/// The course's days from `after_day` on (exclusive), in order.
pub async fn days(
    executor: impl PgExecutor<'_>,
    course_id: Uuid,
    after_day: i32,
    limit: i64,
) -> Result<Vec<DayRow>, sqlx::Error> {
    sqlx::query_as!(
        DayRow,
        "select id, day_number, text from course_days
         where course_id = $1 and day_number > $2 order by day_number limit $3",
        course_id,
        after_day,
        limit,
    )
    .fetch_all(executor)
    .await
}

pub async fn day(
    executor: impl PgExecutor<'_>,
    course_id: Uuid,
    day_number: i32,
) -> Result<Option<DayRow>, sqlx::Error> {
    sqlx::query_as!(
        DayRow,
        "select id, day_number, text from course_days where course_id = $1 and day_number = $2",
        course_id,
        day_number,
    )
    .fetch_optional(executor)
    .await
}

pub async fn update_day_text(
    executor: impl PgExecutor<'_>,
    day_id: Uuid,
    text: &str,
) -> Result<DayRow, sqlx::Error> {
    sqlx::query_as!(
        DayRow,
        "update course_days set text = $2 where id = $1 returning id, day_number, text",
        day_id,
        text,
    )
    .fetch_one(executor)
    .await
}

/// Removes a day and renumbers the days after it.
pub async fn delete_day(
    conn: &mut PgConnection,
    course_id: Uuid,
    day_number: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from course_days where course_id = $1 and day_number = $2",
        course_id,
        day_number,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "update course_days set day_number = day_number - 1 where course_id = $1 and day_number > $2",
        course_id,
        day_number,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends a question after the day's last one.
pub async fn append_question(
    conn: &mut PgConnection,
    day_id: Uuid,
    question: &NewQuestion,
) -> Result<QuestionRow, sqlx::Error> {
    sqlx::query_as!(
        QuestionRow,
        r#"insert into questions (day_id, position, question, type, options, correct_answer)
         select $1, coalesce(max(position), 0) + 1, $2, $3, $4, $5 from questions where day_id = $1
         returning id, day_id, position, question, type as kind,
                   options as "options: Json<Vec<String>>", correct_answer"#,
        day_id,
        question.question,
        question.kind,
        question.options_json(),
        question.correct_answer.as_deref(),
    )
    .fetch_one(conn)
    .await
}

/// The questions of the given days, by day and position.
pub async fn questions_of(
    executor: impl PgExecutor<'_>,
    day_ids: &[Uuid],
) -> Result<Vec<QuestionRow>, sqlx::Error> {
    sqlx::query_as!(
        QuestionRow,
        r#"select id, day_id, position, question, type as kind,
                  options as "options: Json<Vec<String>>", correct_answer
         from questions where day_id = any($1) order by day_id, position"#,
        day_ids,
    )
    .fetch_all(executor)
    .await
}

/// A question of the account, with its course id and day number, locked.
#[derive(Debug, Clone, FromRow)]
pub struct QuestionPlace {
    pub course_id: Uuid,
    pub day_number: i32,
}

pub async fn lock_question(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<(QuestionRow, QuestionPlace)>, sqlx::Error> {
    let place = sqlx::query_as!(
        QuestionPlace,
        "select c.id as course_id, d.day_number from questions q
         join course_days d on d.id = q.day_id
         join courses c on c.id = d.course_id
         where c.account_id = $1 and q.id = $2
         for update of c",
        account_id,
        id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(place) = place else { return Ok(None) };
    let question = sqlx::query_as!(
        QuestionRow,
        r#"select id, day_id, position, question, type as kind,
                  options as "options: Json<Vec<String>>", correct_answer
         from questions where id = $1"#,
        id,
    )
    .fetch_one(conn)
    .await?;
    Ok(Some((question, place)))
}

pub async fn update_question(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    question: &NewQuestion,
) -> Result<QuestionRow, sqlx::Error> {
    sqlx::query_as!(
        QuestionRow,
        r#"update questions set question = $2, type = $3, options = $4, correct_answer = $5
         where id = $1
         returning id, day_id, position, question, type as kind,
                   options as "options: Json<Vec<String>>", correct_answer"#,
        id,
        question.question,
        question.kind,
        question.options_json(),
        question.correct_answer.as_deref(),
    )
    .fetch_one(executor)
    .await
}

/// Removes a question and renumbers the day's later questions.
pub async fn delete_question(
    conn: &mut PgConnection,
    question: &QuestionRow,
) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from questions where id = $1", question.id)
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "update questions set position = position - 1 where day_id = $1 and position > $2",
        question.day_id,
        question.position,
    )
    .execute(conn)
    .await?;
    Ok(())
}
