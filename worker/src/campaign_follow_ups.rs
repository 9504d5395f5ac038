//! The campaign follow-up pass, in every replica: reads each campaign e-mail once its effect
//! has ended and carries the prospect's sequence on.
//!
//! - **Sent**: the prospect's next step is planned `delay_days` after this one was sent, at the
//!   same time of day on the prospect's clock (by DESIGN.md's time rules), or at the next
//!   opening of their window after that; from the same sender, as a reply in the thread. After
//!   the last step the prospect is `completed`. A next step whose text was never written (its
//!   generation failed) ends the sequence there: `completed`.
//! - **Failed, dead or unknown**: the sequence ends, the prospect `skipped` with the reason
//!   (a follow-up in the thread of an e-mail that may not have gone out would make no sense).
//! - **Canceled**: whoever canceled it (a reply, an unsubscribe, a stop) has ended the
//!   sequence already; one canceled through the jobs API ends it here (`skipped`).
//!
//! Every running campaign with no active prospect left is `completed` (also one whose last
//! prospects were deleted, or that planned nothing). A paused campaign's sends
//! wait for its resume. Sends are claimed with `skip locked`, so replicas share the work, and
//! the next step's effect key makes planning it twice plan one.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Days, Utc};
use chrono_tz::Tz;
use herald_shared::campaign_schedule::{Window, prospect_zone};
use herald_shared::db::campaign_sends::{self, Ended, Ending, NewSend};
use herald_shared::effects::{EffectKind, EffectState};
use herald_shared::time_rules::resolve_local;
use tokio::sync::watch;
use uuid::Uuid;

use crate::context::WorkerContext;

/// The pass's name in `/healthz` and logs.
pub const LOOP: &str = "campaign_follow_ups";

/// Most sends one pass reads (one transaction).
const BATCH: i64 = 500;

/// How often the pass looks for ended sends.
pub fn interval(ctx: &WorkerContext) -> Duration {
    Duration::from_secs(ctx.config.campaigns.follow_up_interval_secs)
}

/// Runs until `shutdown` turns true; a failed pass ends the run with the error, for the
/// supervisor to restart it.
pub async fn run(ctx: WorkerContext, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let interval = interval(&ctx);
    loop {
        // a full batch: more sends may be waiting
        while pass(&ctx).await?.looked_at == usize::try_from(BATCH).unwrap_or(usize::MAX) {}
        ctx.loops.passed(LOOP);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = crate::context::stopped(&mut shutdown) => return Ok(()),
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Ended sends read.
    pub looked_at: usize,
    /// Next steps planned.
    pub planned: usize,
    /// Sequences ended (completed, or skipped after a failed send).
    pub ended: usize,
    /// Campaigns completed.
    pub completed: usize,
}

/// One pass over up to [`BATCH`] ended sends, in one transaction.
pub async fn pass(ctx: &WorkerContext) -> Result<Pass, sqlx::Error> {
    let queue = &ctx.jobs.get(EffectKind::CampaignEmail).queue;
    let mut tx = ctx.db.begin().await?;
    let ended = campaign_sends::ended(&mut tx, BATCH).await?;
    let mut pass = Pass {
        looked_at: ended.len(),
        ..Pass::default()
    };
    let mut next: BTreeMap<(Uuid, Uuid), Vec<NewSend>> = BTreeMap::new();
    for send in &ended {
        if send.campaign_state != "running" || send.prospect_state != "active" {
            continue;
        }
        let ending = match send.effect_state {
            EffectState::Sent | EffectState::Sandboxed => match next_step(send) {
                Some(step) => {
                    next.entry((send.account_id, send.campaign_id))
                        .or_default()
                        .push(step);
                    None
                }
                None if send.has_next_step => Some((
                    Ending::Completed,
                    format!("step {} was not written", send.position + 1),
                )),
                None => Some((Ending::Completed, "every step was sent".to_owned())),
            },
            EffectState::Failed | EffectState::Dead | EffectState::Unknown => Some((
                Ending::Skipped,
                format!(
                    "step {} could not be sent: {}",
                    send.position,
                    send.last_error.as_deref().unwrap_or("no reason recorded")
                ),
            )),
            // canceled while the prospect is still active: by an operator through the jobs
            // API (every other cancel ends the sequence itself)
            EffectState::Canceled => Some((
                Ending::Skipped,
                format!(
                    "step {} was canceled: {}",
                    send.position,
                    send.last_error.as_deref().unwrap_or("no reason recorded")
                ),
            )),
            _ => None,
        };
        if let Some((ending, reason)) = ending
            && campaign_sends::end_sequence(
                &mut tx,
                send.campaign_id,
                send.person_id,
                ending,
                &reason,
            )
            .await?
        {
            pass.ended += 1;
        }
    }
    for ((account_id, campaign_id), sends) in &next {
        pass.planned +=
            campaign_sends::plan(&mut tx, *account_id, *campaign_id, queue, sends).await?;
    }
    let ids: Vec<Uuid> = ended.iter().map(|send| send.effect_id).collect();
    campaign_sends::mark_followed_up(&mut tx, &ids).await?;
    pass.completed = campaign_sends::complete_finished(&mut tx).await?.len();
    tx.commit().await?;
    if pass.planned + pass.ended + pass.completed > 0 {
        tracing::info!(
            planned = pass.planned,
            ended = pass.ended,
            completed = pass.completed,
            "campaign follow-ups"
        );
    }
    Ok(pass)
}

/// The prospect's next step after a sent one, if there is one and it is written.
fn next_step(send: &Ended) -> Option<NewSend> {
    let (Some(delay), Some(subject), Some(body)) =
        (send.next_delay_days, &send.next_subject, &send.next_body)
    else {
        return None;
    };
    let zone = prospect_zone(send.timezone.as_deref(), &send.default_timezone);
    let window = Window::new(&send.window_days, send.window_start, send.window_end);
    let sent_at = send.finished_at.unwrap_or_else(Utc::now);
    let at = follow_up_at(&window, zone, sent_at, delay)?;
    Some(NewSend {
        person_id: send.person_id,
        position: send.position + 1,
        sender_id: send.sender_id,
        sender_email: send.sender_email.clone(),
        at,
        recipient: send.email.clone(),
        subject: subject.clone(),
        body: body.clone(),
    })
}

/// `delay_days` calendar days after `sent_at` on `zone`'s clock, at the same wall time, or the
/// window's next opening after that.
pub fn follow_up_at(
    window: &Window,
    zone: Tz,
    sent_at: DateTime<Utc>,
    delay_days: i32,
) -> Option<DateTime<Utc>> {
    let local = sent_at.with_timezone(&zone).naive_local();
    let later = local.checked_add_days(Days::new(u64::try_from(delay_days).ok()?))?;
    window.next_open(zone, resolve_local(zone, later))
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveTime, TimeZone};

    use super::*;

    fn weekdays_9_to_17() -> Window {
        Window::new(
            &[1, 2, 3, 4, 5],
            NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
        )
    }

    #[test]
    fn a_follow_up_keeps_the_wall_time_across_a_dst_change() {
        let zone: Tz = "America/New_York".parse().unwrap();
        // Friday 6 March 2026, 10:00 EST; DST starts Sunday 8 March
        let sent = zone
            .with_ymd_and_hms(2026, 3, 6, 10, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        let at = follow_up_at(&weekdays_9_to_17(), zone, sent, 3).unwrap();
        // Monday 9 March, 10:00 EDT
        assert_eq!(at, zone.with_ymd_and_hms(2026, 3, 9, 10, 0, 0).unwrap());
    }

    #[test]
    fn a_follow_up_due_on_a_weekend_waits_for_monday_morning() {
        let zone: Tz = "Pacific/Auckland".parse().unwrap();
        // Thursday 16:30 on the prospect's clock, two days later is Saturday
        let sent = zone
            .with_ymd_and_hms(2026, 7, 9, 16, 30, 0)
            .unwrap()
            .with_timezone(&Utc);
        let at = follow_up_at(&weekdays_9_to_17(), zone, sent, 2).unwrap();
        assert_eq!(at, zone.with_ymd_and_hms(2026, 7, 13, 9, 0, 0).unwrap());
    }
}
