//! What each source says about sending its message now. A message is sent only while its
//! source still wants it: a delivery that is running, a schedule that is active and still
//! sends to the student at this instant. A new source with rules of its own adds a gate here.

use std::time::Duration;

use chrono::Utc;
use herald_shared::cron::Schedule;
use herald_shared::db::effects::Started;
use herald_shared::db::outbound_messages::ToSend;
use herald_shared::db::schedules;
use herald_shared::effects::MessageSource;
use herald_shared::time_rules::parse_zone;

use super::{JobError, Outcome};
use crate::context::WorkerContext;

/// Why the message is not sent now, if its source says so.
pub async fn check(
    ctx: &WorkerContext,
    started: &Started,
    message: &ToSend,
) -> Result<Option<Outcome>, JobError> {
    match message.source {
        MessageSource::Delivery => Ok(delivery(message)),
        MessageSource::Schedule => {
            if let Some(outcome) = missed(ctx, started).await? {
                return Ok(Some(outcome));
            }
            Ok(schedule(message))
        }
        // a campaign e-mail is its own kind (`campaign_email`), with its own checks
        MessageSource::AuthEmail | MessageSource::Campaign => Ok(None),
    }
}

/// Why a course message is not sent now, by its delivery's status.
fn delivery(message: &ToSend) -> Option<Outcome> {
    match message.delivery_status.as_deref() {
        Some("scheduled") => None,
        Some("paused") => Some(Outcome::Held {
            reason: "not sent: the delivery is paused; resuming re-plans it".to_owned(),
        }),
        Some(status) => Some(Outcome::Skipped {
            reason: format!("not sent: the delivery is {status}"),
        }),
        None => Some(Outcome::Skipped {
            reason: "not sent: the delivery no longer exists".to_owned(),
        }),
    }
}

/// A schedule message whose attempt is picked up more than `schedules.catch_up_secs` after
/// it was due (every worker was down) is not sent late: its fire is recorded `missed`, as
/// the planner records fires it finds that late. (A retry or a rate-limit deferral is due
/// at its own new time, so it is not affected.)
async fn missed(ctx: &WorkerContext, started: &Started) -> Result<Option<Outcome>, JobError> {
    let late = (Utc::now() - started.due).to_std().unwrap_or_default();
    if late <= Duration::from_secs(ctx.config.schedules.catch_up_secs) {
        return Ok(None);
    }
    schedules::mark_fire_missed(&ctx.db, started.id)
        .await
        .map_err(|err| JobError::failed_to("record a missed fire", err))?;
    Ok(Some(Outcome::Skipped {
        reason: format!(
            "missed: picked up {}s after it was due, more than schedules.catch_up_secs",
            late.as_secs()
        ),
    }))
}

/// Why a schedule message is not sent now: a paused schedule skips its fires (resuming
/// plans only later ones), and a student who moved to another group or zone after the fire
/// was planned gets the fires planned for where they are now instead. A move to a zone where
/// the schedule fires at this same instant (one with the same offset, say New York to
/// Toronto) keeps the message: the new zone's fire has the same message key, so this message
/// is the one that fire sends.
fn schedule(message: &ToSend) -> Option<Outcome> {
    let skip = |reason: &str| {
        Some(Outcome::Skipped {
            reason: format!("not sent: {reason}"),
        })
    };
    match message.schedule_status.as_deref() {
        Some("active") => {}
        Some(_) => return skip("the schedule is paused"),
        None => return skip("the schedule no longer exists"),
    }
    if message.student_group_id.is_some() && message.student_group_id != message.schedule_group_id {
        return skip("the student is no longer in the schedule's group");
    }
    if message.per_recipient_zone == Some(true)
        && let (Some(zone), Some(fire_zone)) = (&message.student_timezone, &message.fire_timezone)
        && zone != fire_zone
        && !fires_then_in(message, zone)
    {
        return skip("the student moved to another time zone after this fire was planned");
    }
    None
}

/// Whether the message's schedule also fires at the message's instant on `zone`'s clock.
fn fires_then_in(message: &ToSend, zone: &str) -> bool {
    let (Some(cron), Some(fire_at)) = (&message.cron, message.fire_at) else {
        return false;
    };
    let (Ok(cron), Ok(zone)) = (Schedule::parse(cron), parse_zone(zone)) else {
        return false;
    };
    cron.fires_at(zone, fire_at)
}
