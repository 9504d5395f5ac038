//! Launching and resuming a campaign: its first e-mails written as outbound messages at the
//! instants of the launch plan (`campaign_schedule`), in the caller's transaction with the
//! campaign locked. The API's launch and resume call these, and so do tests that launch a
//! campaign without the API.
//!
//! At launch, an active prospect whose first e-mail is not written (failed, blocked) or whom
//! the caps would carry beyond a year is `skipped` with the reason, so the campaign completes
//! once every prospect's sequence has ended. On resume, held first e-mails are planned again
//! by the launch rules from then; held follow-ups at their planned time, or at the window's
//! next opening when that has passed.

use std::collections::HashMap;

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::campaign_schedule::{
    self as schedule, CampaignCaps, Plan, Prospect, SenderLimits, Window, prospect_zone,
};
use crate::db::campaign_sends::{self, NewSend};
use crate::db::campaigns::{self, Campaign};
use crate::time_rules::resolve_local;

const BEYOND_A_YEAR: &str = "the campaign's caps would carry the first e-mail beyond a year";

/// What a launch plan is made from: the campaign's window, caps and senders, and what the
/// senders have booked already (their sends of the last 24 hours and those planned, by any
/// campaign: a sender's cap is shared by all).
#[derive(Debug, Clone)]
pub struct PlanInputs {
    pub zone: Tz,
    pub window: Window,
    caps: CampaignCaps,
    senders: Vec<SenderLimits>,
    booked: Vec<(Uuid, DateTime<Utc>)>,
    seed: u64,
}

impl PlanInputs {
    pub async fn read(conn: &mut PgConnection, campaign: &Campaign) -> Result<Self, sqlx::Error> {
        let row = &campaign.row;
        let zone = prospect_zone(None, &row.default_timezone);
        let senders: Vec<SenderLimits> = campaigns::sender_limits(&mut *conn, row.id)
            .await?
            .into_iter()
            .map(|sender| SenderLimits {
                sender_id: sender.sender_id,
                daily_cap: u32::try_from(sender.daily_cap).unwrap_or(1),
                min_gap_secs: u32::try_from(sender.min_gap_secs).unwrap_or(0),
            })
            .collect();
        let ids: Vec<Uuid> = senders.iter().map(|sender| sender.sender_id).collect();
        let booked = campaign_sends::booked(&mut *conn, &ids).await?;
        Ok(Self {
            zone,
            window: Window::new(&row.window_days, row.window_start, row.window_end),
            caps: CampaignCaps {
                zone,
                daily_cap: u32::try_from(row.daily_cap).unwrap_or(1),
                new_prospects_per_day: u32::try_from(row.new_prospects_per_day).unwrap_or(1),
                sent_today: 0,
            },
            senders,
            booked,
            // the jitter is seeded with the campaign: the preview and the launch agree
            seed: row.id.as_u64_pair().0,
        })
    }

    /// The zone a prospect's window is read in: their own, else the campaign's.
    pub fn zone_of(&self, own: Option<&str>) -> Tz {
        own.and_then(|name| name.parse().ok()).unwrap_or(self.zone)
    }

    /// The plan of `prospects`' first e-mails from `starts_at`, off the async threads (30,000
    /// prospects take a good part of a second in a debug build).
    pub async fn plan(
        &self,
        starts_at: DateTime<Utc>,
        prospects: Vec<Prospect>,
    ) -> Result<Plan, tokio::task::JoinError> {
        let inputs = self.clone();
        tokio::task::spawn_blocking(move || {
            schedule::plan_first_steps(
                starts_at,
                &inputs.window,
                &inputs.caps,
                &inputs.senders,
                &inputs.booked,
                &prospects,
                inputs.seed,
            )
        })
        .await
    }
}

/// Why a launch or resume could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("planning failed: {0}")]
    Planning(#[from] tokio::task::JoinError),
}

/// What a launch or resume planned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Launched {
    pub planned: usize,
    pub skipped: u64,
    pub first_at: Option<DateTime<Utc>>,
    pub last_at: Option<DateTime<Utc>>,
}

impl Launched {
    fn span(mut self, ats: impl Iterator<Item = DateTime<Utc>> + Clone) -> Self {
        self.first_at = ats.clone().min();
        self.last_at = ats.max();
        self
    }
}

/// Plans the first e-mails of a ready campaign from `starts_at` and moves it to `running`
/// (the caller holds its lock and checked its state). `None`, with nothing written, when no
/// prospect has a written first e-mail.
pub async fn launch(
    conn: &mut PgConnection,
    account_id: Uuid,
    campaign: &Campaign,
    queue: &str,
    starts_at: DateTime<Utc>,
) -> Result<Option<Launched>, LaunchError> {
    let id = campaign.row.id;
    let inputs = PlanInputs::read(conn, campaign).await?;
    let written = campaign_sends::first_steps(&mut *conn, id).await?;
    if written.is_empty() {
        return Ok(None);
    }
    let prospects: Vec<Prospect> = written
        .iter()
        .map(|step| Prospect {
            person_id: step.person_id,
            zone: inputs.zone_of(step.timezone.as_deref()),
        })
        .collect();
    let plan = inputs.plan(starts_at, prospects).await?;
    let emails: HashMap<Uuid, String> = campaigns::sender_addresses(&mut *conn, id)
        .await?
        .into_iter()
        .collect();
    let by_person: HashMap<Uuid, &campaign_sends::FirstStep> =
        written.iter().map(|step| (step.person_id, step)).collect();
    let sends: Vec<NewSend> = plan
        .planned
        .iter()
        .filter_map(|planned| {
            let step = by_person.get(&planned.person_id)?;
            Some(NewSend {
                person_id: planned.person_id,
                position: 1,
                sender_id: planned.sender_id,
                sender_email: emails.get(&planned.sender_id)?.clone(),
                at: planned.at,
                recipient: step.email.clone(),
                subject: step.subject.clone(),
                body: step.body.clone(),
            })
        })
        .collect();
    let planned = campaign_sends::plan(conn, account_id, id, queue, &sends).await?;
    let mut skipped =
        campaign_sends::skip_prospects(conn, id, &plan.unplanned, BEYOND_A_YEAR).await?;
    skipped +=
        campaign_sends::skip_unlaunched(conn, id, "the first e-mail was not written").await?;
    campaigns::set_state(conn, id, "running").await?;
    campaigns::mark_launched(conn, id).await?;
    let launched = Launched {
        planned,
        skipped,
        ..Launched::default()
    };
    Ok(Some(launched.span(sends.iter().map(|send| send.at))))
}

/// Plans a paused campaign's held e-mails again from `starts_at` and moves it to `running`
/// (the caller holds its lock and checked its state).
pub async fn resume(
    conn: &mut PgConnection,
    campaign: &Campaign,
    starts_at: DateTime<Utc>,
) -> Result<Launched, LaunchError> {
    let id = campaign.row.id;
    let mut inputs = PlanInputs::read(conn, campaign).await?;
    // the first e-mails that went today, before the pause, count against today's caps
    let midnight = resolve_local(
        inputs.zone,
        starts_at
            .with_timezone(&inputs.zone)
            .date_naive()
            .and_time(NaiveTime::MIN),
    );
    let sent_today = campaign_sends::first_sent_since(&mut *conn, id, midnight).await?;
    inputs.caps.sent_today = u32::try_from(sent_today).unwrap_or(u32::MAX);
    let held = campaign_sends::held(&mut *conn, id).await?;
    let (first, later): (Vec<_>, Vec<_>) = held.iter().partition(|send| send.position == 1);
    let prospects: Vec<Prospect> = first
        .iter()
        .map(|send| Prospect {
            person_id: send.person_id,
            zone: inputs.zone_of(send.timezone.as_deref()),
        })
        .collect();
    let plan = inputs.plan(starts_at, prospects).await?;
    let effect_of: HashMap<Uuid, Uuid> = first
        .iter()
        .map(|send| (send.person_id, send.effect_id))
        .collect();
    let mut released: Vec<(Uuid, Uuid, DateTime<Utc>)> = plan
        .planned
        .iter()
        .filter_map(|planned| {
            Some((
                *effect_of.get(&planned.person_id)?,
                planned.sender_id,
                planned.at,
            ))
        })
        .collect();
    for send in &later {
        let zone = inputs.zone_of(send.timezone.as_deref());
        if let Some(at) = inputs.window.next_open(zone, send.due_at.max(starts_at)) {
            released.push((send.effect_id, send.sender_id, at));
        }
    }
    let planned = campaign_sends::release(conn, &released).await?;
    let skipped = campaign_sends::skip_prospects(conn, id, &plan.unplanned, BEYOND_A_YEAR).await?;
    campaigns::set_state(conn, id, "running").await?;
    let resumed = Launched {
        planned: usize::try_from(planned).unwrap_or(usize::MAX),
        skipped,
        ..Launched::default()
    };
    Ok(resumed.span(released.iter().map(|(_, _, at)| *at)))
}
