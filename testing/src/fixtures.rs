//! Rows a test starts from, written through the same planners and `db` functions the API
//! and the worker use (`outbound_messages::plan`, `deliveries::insert_messages`,
//! `groups::insert_students`, …), so a fixture cannot drift from what production writes.

use chrono::{DateTime, NaiveDate, Utc};
use herald_shared::db::{courses, deliveries, groups, outbound_messages};
use herald_shared::effects::{EffectKind, EmailPayload, MessageSource};
use herald_shared::jobs_config::JobsConfig;
use sqlx::PgPool;
use uuid::Uuid;

/// A fresh account named `name`; its id.
pub async fn create_account(db: &PgPool, name: &str) -> Uuid {
    sqlx::query_scalar("insert into accounts (name) values ($1) returning id")
        .bind(name)
        .fetch_one(db)
        .await
        .unwrap_or_else(|error| panic!("create an account: {error}"))
}

/// A subscribed student on `channel` (`sms` or `whatsapp`) in zone `timezone`, for
/// [`create_group`].
pub fn student(
    name: &str,
    phone: &str,
    channel: &'static str,
    timezone: &str,
) -> groups::NewStudent {
    groups::NewStudent {
        name: name.to_owned(),
        phone: phone.to_owned(),
        channel,
        timezone: timezone.to_owned(),
        subscribed: true,
    }
}

/// One subscribed student on `channel` per zone, named `student {i}`, with phones
/// +14155550000, +14155550001, … in order.
pub fn one_per_zone(zones: &[&str], channel: &'static str) -> Vec<groups::NewStudent> {
    zones
        .iter()
        .enumerate()
        .map(|(index, zone)| {
            let (name, phone) = (format!("student {index}"), format!("+1415555{index:04}"));
            student(&name, &phone, channel, zone)
        })
        .collect()
}

/// A group of the account with `students`, written in one transaction by the functions the
/// groups API uses; the group's id and the students' ids, in order.
pub async fn create_group(
    db: &PgPool,
    account_id: Uuid,
    students: &[groups::NewStudent],
) -> (Uuid, Vec<Uuid>) {
    let mut tx = db
        .begin()
        .await
        .unwrap_or_else(|error| panic!("a transaction: {error}"));
    let group = groups::insert_group(&mut *tx, account_id, "group", "")
        .await
        .unwrap_or_else(|error| panic!("create a group: {error}"));
    let rows = groups::insert_students(&mut tx, group.id, students)
        .await
        .unwrap_or_else(|error| panic!("add students: {error}"));
    tx.commit()
        .await
        .unwrap_or_else(|error| panic!("commit the group: {error}"));
    (group.id, rows.into_iter().map(|row| row.id).collect())
}

/// Adds `students` to an existing group; their ids, in order.
pub async fn join_group(db: &PgPool, group_id: Uuid, students: &[groups::NewStudent]) -> Vec<Uuid> {
    let mut conn = db
        .acquire()
        .await
        .unwrap_or_else(|error| panic!("a connection: {error}"));
    let rows = groups::insert_students(&mut conn, group_id, students)
        .await
        .unwrap_or_else(|error| panic!("add students: {error}"));
    rows.into_iter().map(|row| row.id).collect()
}

/// Plans one e-mail due now with the API's planner (`outbound_messages::plan_email`), on the
/// `email` queue, under idempotency key `key`; its effect id. In one transaction, as the API
/// plans: the planner writes the effect and then its message row, and a running worker could
/// otherwise start the effect in between and find no message.
pub async fn plan_email_now(
    db: &PgPool,
    account_id: Uuid,
    key: &str,
    email: &EmailPayload,
) -> Uuid {
    let mut tx = db
        .begin()
        .await
        .unwrap_or_else(|error| panic!("a transaction: {error}"));
    let id = outbound_messages::plan_email(
        &mut tx,
        account_id,
        MessageSource::AuthEmail,
        "email",
        key.to_owned(),
        email,
    )
    .await
    .unwrap_or_else(|error| panic!("plan an e-mail: {error}"))
    .unwrap_or_else(|| panic!("an e-mail with key {key} was planned already"));
    tx.commit()
        .await
        .unwrap_or_else(|error| panic!("commit the e-mail: {error}"));
    id
}

/// A `scheduled` course delivery to a fresh group: the rows a `message` effect refers to.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryFixture {
    pub group_id: Uuid,
    pub delivery_id: Uuid,
}

/// One planned delivery message: its effect (and outbound message) id.
#[derive(Debug, Clone, Copy)]
pub struct PlannedMessage {
    pub effect_id: Uuid,
}

/// Fixtures of one account on one database, planned on the queues of `jobs`.
#[derive(Clone, Copy)]
pub struct Fixtures<'a> {
    pub db: &'a PgPool,
    pub account_id: Uuid,
    pub jobs: &'a JobsConfig,
}

impl Fixtures<'_> {
    /// Plans `count` e-mails in one transaction (so the dispatcher sees them all at once),
    /// due at `due_at`; `to(i)` names the recipient of the i-th. Their effect ids, in order.
    pub async fn plan_emails(
        &self,
        count: usize,
        to: impl Fn(usize) -> String,
        due_at: DateTime<Utc>,
    ) -> Vec<Uuid> {
        let queue = self.jobs.get(EffectKind::Email).queue.clone();
        let batch = outbound_messages::Batch {
            account_id: self.account_id,
            source: MessageSource::AuthEmail,
            kind: EffectKind::Email,
            queue: &queue,
            revive_canceled: None,
        };
        let messages: Vec<outbound_messages::NewMessage> = (0..count)
            .map(|i| outbound_messages::NewMessage {
                key: format!("test:{}", Uuid::new_v4()),
                due_at,
                payload: serde_json::json!({}),
                channel: Some("email"),
                student_id: None,
                recipient: Some(to(i)),
                subject: Some(format!("test {i}")),
                body: format!("body of test e-mail {i}"),
            })
            .collect();
        let planned = self
            .in_transaction(async |tx| outbound_messages::plan(tx, &batch, &messages).await)
            .await;
        assert_eq!(planned.len(), count, "fresh keys always plan");
        let mut ids = vec![Uuid::nil(); count];
        for (id, index) in planned {
            ids[index] = id;
        }
        ids
    }

    /// Plans one e-mail to `to`, due at `due_at`.
    pub async fn plan_email(&self, to: &str, due_at: DateTime<Utc>) -> Uuid {
        self.plan_emails(1, |_| to.to_owned(), due_at).await[0]
    }

    /// A group, a one-day course and a `scheduled` delivery of the course to the group.
    pub async fn create_delivery(&self) -> DeliveryFixture {
        let account_id = self.account_id;
        self.in_transaction(async |tx| {
            let group = groups::insert_group(&mut *tx, account_id, "group", "").await?;
            let course =
                courses::insert_course(&mut *tx, account_id, "course", "author", "description")
                    .await?;
            let start = NaiveDate::from_ymd_opt(2026, 12, 1)
                .and_then(|day| day.and_hms_opt(9, 0, 0))
                .unwrap_or_default();
            let delivery = deliveries::insert(
                tx,
                account_id,
                group.id,
                course.id,
                start,
                Some("UTC"),
                false,
            )
            .await?;
            Ok(DeliveryFixture {
                group_id: group.id,
                delivery_id: delivery.id,
            })
        })
        .await
    }

    /// A subscribed student of the delivery's group on `channel` (`sms` or `whatsapp`),
    /// in UTC; the student's id.
    pub async fn add_student(
        &self,
        delivery: DeliveryFixture,
        phone: &str,
        channel: &'static str,
    ) -> Uuid {
        let student = student("student", phone, channel, "UTC");
        let rows = self
            .in_transaction(async |tx| {
                groups::insert_students(tx, delivery.group_id, std::slice::from_ref(&student)).await
            })
            .await;
        rows[0].id
    }

    /// Subscribed students of the delivery's group on `channel`, one per phone, in UTC,
    /// written in one statement; their ids, in order.
    pub async fn add_students(
        &self,
        delivery: DeliveryFixture,
        phones: &[String],
        channel: &'static str,
    ) -> Vec<Uuid> {
        let students: Vec<groups::NewStudent> = phones
            .iter()
            .map(|phone| student("student", phone, channel, "UTC"))
            .collect();
        let rows = self
            .in_transaction(async |tx| {
                groups::insert_students(tx, delivery.group_id, &students).await
            })
            .await;
        rows.into_iter().map(|row| row.id).collect()
    }

    /// Plans the first message of day 1 to each of `students`, all due at `due_at`, in one
    /// transaction with the planner the API uses; the effect ids of the delivery's messages.
    pub async fn plan_messages(
        &self,
        delivery: DeliveryFixture,
        students: &[Uuid],
        body: &str,
        due_at: DateTime<Utc>,
    ) -> Vec<Uuid> {
        let queue = self.jobs.get(EffectKind::Message).queue.clone();
        let messages: Vec<deliveries::NewMessage> = students
            .iter()
            .map(|student_id| deliveries::NewMessage {
                student_id: *student_id,
                day: 1,
                seq: 0,
                question_id: None,
                body: body.to_owned(),
                at: due_at,
            })
            .collect();
        let account_id = self.account_id;
        self.in_transaction(async |tx| {
            deliveries::insert_messages(tx, account_id, delivery.delivery_id, &queue, &messages)
                .await
        })
        .await;
        sqlx::query_scalar("select effect_id from delivery_messages where delivery_id = $1")
            .bind(delivery.delivery_id)
            .fetch_all(self.db)
            .await
            .unwrap_or_else(|error| panic!("find the planned messages: {error}"))
    }

    /// Plans message `seq` of day 1 to `student_id`, due at `due_at`, with the planner the
    /// API uses (`deliveries::insert_messages`).
    pub async fn plan_message(
        &self,
        delivery: DeliveryFixture,
        student_id: Uuid,
        seq: i32,
        body: &str,
        due_at: DateTime<Utc>,
    ) -> PlannedMessage {
        let queue = self.jobs.get(EffectKind::Message).queue.clone();
        let message = deliveries::NewMessage {
            student_id,
            day: 1,
            seq,
            question_id: None,
            body: body.to_owned(),
            at: due_at,
        };
        let account_id = self.account_id;
        self.in_transaction(async |tx| {
            deliveries::insert_messages(
                tx,
                account_id,
                delivery.delivery_id,
                &queue,
                std::slice::from_ref(&message),
            )
            .await
        })
        .await;
        let effect_id: Uuid = sqlx::query_scalar(
            "select m.effect_id from delivery_messages m
             join outbound_messages o on o.effect_id = m.effect_id
             where m.delivery_id = $1 and o.student_id = $2 and m.day = 1 and m.seq = $3",
        )
        .bind(delivery.delivery_id)
        .bind(student_id)
        .bind(seq)
        .fetch_one(self.db)
        .await
        .unwrap_or_else(|error| panic!("find the planned message: {error}"));
        PlannedMessage { effect_id }
    }

    /// Runs `write` in a transaction and commits; panics on any error.
    async fn in_transaction<T>(
        &self,
        write: impl AsyncFnOnce(&mut sqlx::PgConnection) -> Result<T, sqlx::Error>,
    ) -> T {
        let mut tx = self
            .db
            .begin()
            .await
            .unwrap_or_else(|error| panic!("begin: {error}"));
        let written = write(&mut *tx)
            .await
            .unwrap_or_else(|error| panic!("write the fixture: {error}"));
        tx.commit()
            .await
            .unwrap_or_else(|error| panic!("commit: {error}"));
        written
    }
}
