//! When each prospect of a campaign gets its first e-mail, and from which sender: the launch
//! plan, computed the same way for the preview (`GET /api/v1/campaigns/{id}/schedule`) and for
//! the launch.
//!
//! Rules:
//! - **The prospect's window, on the prospect's clock.** An e-mail goes out on one of the
//!   window's weekdays between `start` (inclusive) and `end` (exclusive) in the prospect's own
//!   zone (the campaign's for prospects without one), read by DESIGN.md's time rules: a
//!   window opening in a spring-forward gap opens when the gap ends; in a repeated hour, at the
//!   first occurrence.
//! - **Senders' limits.** Each sender sends at most `daily_cap` e-mails in any rolling 24
//!   hours and leaves `min_gap` plus up to a fifth of it again (jitter, so sends do not tick
//!   like a machine) between two sends. Senders take turns: the one free soonest sends next,
//!   the first listed on a tie.
//! - **The campaign's caps**, per calendar day in the campaign's `default_timezone`: at most
//!   `new_prospects_per_day` first e-mails, and at most `daily_cap` e-mails in all (at launch
//!   every planned e-mail is a first one, so the smaller of the two binds).
//! - **Order.** Prospects are served in the order given (the order they were added) among
//!   those whose window is open at the instant; a prospect whose window opens later waits for
//!   it. When caps bind, the plan runs on over the following days.
//!
//! The plan is built by walking time forward: the sender free soonest takes, at that instant,
//! the first prospect whose window is open, or waits for the first window to open or the next
//! campaign day. Sends therefore come in time order per sender, so its gap and rolling cap are
//! checked against its last sends only. The jitter comes from a generator seeded with the
//! campaign, so the preview and the launch give the same plan for the same input.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::time_rules::resolve_local;

/// Nothing is planned further ahead than this: caps so small that a plan would run on for
/// more than a year leave the rest unplanned (and say so).
pub const HORIZON_DAYS: i64 = 366;

/// A weekly send window on a wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// ISO weekdays (Monday = 1) the window opens on.
    pub days: [bool; 7],
    pub start: NaiveTime,
    /// After `start`: the window does not cross midnight.
    pub end: NaiveTime,
}

impl Window {
    /// The window open on ISO weekdays `days` (1 = Monday … 7 = Sunday).
    pub fn new(days: &[i16], start: NaiveTime, end: NaiveTime) -> Self {
        let mut open = [false; 7];
        for day in days {
            if let Some(slot) = usize::try_from(*day - 1).ok().and_then(|i| open.get_mut(i)) {
                *slot = true;
            }
        }
        Self {
            days: open,
            start,
            end,
        }
    }

    fn opens_on(&self, date: NaiveDate) -> bool {
        self.days[date.weekday().num_days_from_monday() as usize]
    }

    /// Whether the window is open at `at` on a clock in `zone`.
    pub fn is_open(&self, zone: Tz, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&zone).naive_local();
        self.opens_on(local.date()) && local.time() >= self.start && local.time() < self.end
    }

    /// The first instant at or after `at` at which the window is open in `zone` (it opens on
    /// at least one weekday, so one is found within eight days).
    pub fn next_open(&self, zone: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_open(zone, at) {
            return Some(at);
        }
        let today = at.with_timezone(&zone).date_naive();
        (0..=8)
            .filter_map(|days| today.checked_add_days(Days::new(days)))
            .filter(|date| self.opens_on(*date))
            .map(|date| resolve_local(zone, date.and_time(self.start)))
            .find(|opens| *opens >= at && self.is_open(zone, *opens))
    }
}

/// The zone a prospect's window is read in: their own (`own`, an IANA name), else the
/// campaign's `default_timezone`; UTC for a stored name that no longer parses.
pub fn prospect_zone(own: Option<&str>, campaign_zone: &str) -> Tz {
    own.and_then(|name| name.parse().ok())
        .or_else(|| campaign_zone.parse().ok())
        .unwrap_or(chrono_tz::UTC)
}

/// A sender's own limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderLimits {
    pub sender_id: Uuid,
    pub daily_cap: u32,
    pub min_gap_secs: u32,
}

/// The campaign's caps and the zone its days are counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignCaps {
    pub zone: Tz,
    pub daily_cap: u32,
    pub new_prospects_per_day: u32,
    /// First e-mails already sent on the campaign's day of the plan's start (a resume on the
    /// day they went): they count against that day's caps.
    pub sent_today: u32,
}

/// A prospect to plan, in the zone their window is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prospect {
    pub person_id: Uuid,
    pub zone: Tz,
}

/// One planned first e-mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub person_id: Uuid,
    pub sender_id: Uuid,
    pub at: DateTime<Utc>,
}

/// The plan, in time order, and the prospects left out (beyond [`HORIZON_DAYS`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub planned: Vec<Planned>,
    pub unplanned: Vec<Uuid>,
}

/// A sender's state while planning.
struct SenderState {
    limits: SenderLimits,
    /// Its last `daily_cap` sends, oldest first.
    recent: VecDeque<DateTime<Utc>>,
}

impl SenderState {
    /// When it may send next, after a send at `at`.
    fn next_after(&mut self, at: DateTime<Utc>, rng: &mut StdRng) -> DateTime<Utc> {
        self.recent.push_back(at);
        let cap = usize::try_from(self.limits.daily_cap.max(1)).unwrap_or(usize::MAX);
        while self.recent.len() > cap {
            self.recent.pop_front();
        }
        let gap_ms = i64::from(self.limits.min_gap_secs) * 1000;
        let jitter_ms = if gap_ms > 0 {
            rng.gen_range(0..=gap_ms / 5)
        } else {
            0
        };
        let mut next = at + chrono::Duration::milliseconds(gap_ms + jitter_ms);
        if self.recent.len() == cap
            && let Some(oldest) = self.recent.front()
        {
            next = next.max(*oldest + chrono::Duration::hours(24));
        }
        next
    }
}

/// Plans the first e-mail of each of `prospects` from `now` on (see the module doc). `seed`
/// fixes the jitter (the campaign's id). `booked` holds the senders' sends of the last 24
/// hours and those already planned, by any campaign, in time order: a sender's rolling cap
/// counts them, and its first send here comes a gap after the last of them (other
/// campaigns' planned sends keep their places; this plan fits in after them).
pub fn plan_first_steps(
    now: DateTime<Utc>,
    window: &Window,
    caps: &CampaignCaps,
    senders: &[SenderLimits],
    booked: &[(Uuid, DateTime<Utc>)],
    prospects: &[Prospect],
    seed: u64,
) -> Plan {
    let mut plan = Plan::default();
    if senders.is_empty() {
        plan.unplanned = prospects.iter().map(|p| p.person_id).collect();
        return plan;
    }
    let horizon = now + chrono::Duration::days(HORIZON_DAYS);
    let per_day = caps.daily_cap.min(caps.new_prospects_per_day);
    let mut rng = StdRng::seed_from_u64(seed);
    // each zone's prospects, in the order given (their position in `prospects`)
    let mut waiting: BTreeMap<String, (Tz, VecDeque<usize>)> = BTreeMap::new();
    for (index, prospect) in prospects.iter().enumerate() {
        waiting
            .entry(prospect.zone.name().to_owned())
            .or_insert_with(|| (prospect.zone, VecDeque::new()))
            .1
            .push_back(index);
    }
    let mut states: Vec<SenderState> = senders
        .iter()
        .map(|limits| SenderState {
            limits: *limits,
            recent: VecDeque::new(),
        })
        .collect();
    let mut free: BinaryHeap<Reverse<(DateTime<Utc>, usize)>> = BinaryHeap::new();
    for (index, state) in states.iter_mut().enumerate() {
        let mut starts = now;
        let sender_id = state.limits.sender_id;
        for (_, at) in booked.iter().filter(|(id, _)| *id == sender_id) {
            starts = state.next_after(*at, &mut rng).max(now);
        }
        free.push(Reverse((starts, index)));
    }
    let mut sent_on: HashMap<NaiveDate, u32> = HashMap::new();
    if caps.sent_today > 0 {
        sent_on.insert(now.with_timezone(&caps.zone).date_naive(), caps.sent_today);
    }
    let mut left = prospects.len();
    while left > 0 {
        let Some(Reverse((at, sender))) = free.pop() else {
            break;
        };
        if at > horizon {
            break;
        }
        let day = at.with_timezone(&caps.zone).date_naive();
        if sent_on.get(&day).copied().unwrap_or(0) >= per_day {
            let next_day = day
                .succ_opt()
                .map(|date| resolve_local(caps.zone, date.and_time(NaiveTime::MIN)));
            match next_day {
                Some(next_day) => free.push(Reverse((next_day.max(at), sender))),
                None => break,
            }
            continue;
        }
        let open = waiting
            .values()
            .filter(|(zone, queue)| !queue.is_empty() && window.is_open(*zone, at))
            .filter_map(|(_, queue)| queue.front().copied())
            .min();
        let Some(index) = open else {
            // nobody's window is open: wait for the first to open
            let opens = waiting
                .values()
                .filter(|(_, queue)| !queue.is_empty())
                .filter_map(|(zone, _)| window.next_open(*zone, at))
                .min();
            match opens {
                Some(opens) if opens > at => free.push(Reverse((opens, sender))),
                _ => break,
            }
            continue;
        };
        let prospect = prospects[index];
        if let Some((_, queue)) = waiting.get_mut(prospect.zone.name()) {
            queue.pop_front();
        }
        left -= 1;
        *sent_on.entry(day).or_insert(0) += 1;
        plan.planned.push(Planned {
            person_id: prospect.person_id,
            sender_id: states[sender].limits.sender_id,
            at,
        });
        let next = states[sender].next_after(at, &mut rng);
        free.push(Reverse((next, sender)));
    }
    plan.unplanned = waiting
        .values()
        .flat_map(|(_, queue)| queue.iter().map(|index| prospects[*index].person_id))
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Timelike, Weekday};

    use super::*;

    fn time(hour: u32, minute: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(hour, minute, 0).unwrap()
    }

    fn weekdays_9_to_17() -> Window {
        Window::new(&[1, 2, 3, 4, 5], time(9, 0), time(17, 0))
    }

    fn caps(zone: Tz, per_day: u32) -> CampaignCaps {
        CampaignCaps {
            zone,
            daily_cap: per_day,
            new_prospects_per_day: per_day,
            sent_today: 0,
        }
    }

    fn sender(daily_cap: u32, min_gap_secs: u32) -> SenderLimits {
        SenderLimits {
            sender_id: Uuid::new_v4(),
            daily_cap,
            min_gap_secs,
        }
    }

    fn prospects(zone: Tz, count: usize) -> Vec<Prospect> {
        (0..count)
            .map(|_| Prospect {
                person_id: Uuid::new_v4(),
                zone,
            })
            .collect()
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    /// Every send is inside the window on the prospect's own clock.
    fn assert_in_window(plan: &Plan, window: &Window, zone_of: &HashMap<Uuid, Tz>) {
        for planned in &plan.planned {
            let zone = zone_of[&planned.person_id];
            assert!(
                window.is_open(zone, planned.at),
                "{} is outside the window in {zone}",
                planned.at.with_timezone(&zone)
            );
        }
    }

    #[test]
    fn each_prospect_gets_a_slot_in_their_own_window_across_zones() {
        // Friday 2026-12-11 20:00 UTC: 15:00 in New York (open), Saturday 05:00 in Tokyo
        let now = utc(2026, 12, 11, 20, 0);
        let mut all = prospects(chrono_tz::America::New_York, 3);
        all.extend(prospects(chrono_tz::Asia::Tokyo, 2));
        let zone_of: HashMap<Uuid, Tz> = all.iter().map(|p| (p.person_id, p.zone)).collect();
        let window = weekdays_9_to_17();
        let plan = plan_first_steps(
            now,
            &window,
            &caps(chrono_tz::UTC, 1000),
            &[sender(200, 60)],
            &[],
            &all,
            7,
        );
        assert_eq!(plan.planned.len(), 5);
        assert!(plan.unplanned.is_empty());
        assert_in_window(&plan, &window, &zone_of);
        // New York now; Tokyo on Monday 09:00 JST (Monday 00:00 UTC), not at the weekend
        assert_eq!(plan.planned[0].at, now);
        let tokyo: Vec<DateTime<Utc>> = plan
            .planned
            .iter()
            .filter(|p| zone_of[&p.person_id] == chrono_tz::Asia::Tokyo)
            .map(|p| p.at)
            .collect();
        assert_eq!(tokyo[0], utc(2026, 12, 14, 0, 0));
        // a minute apart at least, and at most a fifth more (jitter)
        let gap = plan.planned[1].at - plan.planned[0].at;
        assert!(gap >= chrono::Duration::seconds(60) && gap <= chrono::Duration::seconds(72));
    }

    #[test]
    fn the_same_instant_is_a_different_weekday_on_each_side_of_the_date_line() {
        // Thursday 2026-12-10 23:00 UTC is Friday 13:00 in Kiritimati (+14) and Thursday
        // 12:00 in Pago Pago (−11); a Thursday-only window is open in Pago Pago only
        let now = utc(2026, 12, 10, 23, 0);
        let window = Window::new(&[4], time(9, 0), time(17, 0));
        assert!(window.is_open(chrono_tz::Pacific::Pago_Pago, now));
        assert!(!window.is_open(chrono_tz::Pacific::Kiritimati, now));
        let mut all = prospects(chrono_tz::Pacific::Kiritimati, 1);
        all.extend(prospects(chrono_tz::Pacific::Pago_Pago, 1));
        let plan = plan_first_steps(
            now,
            &window,
            &caps(chrono_tz::UTC, 100),
            &[sender(100, 0)],
            &[],
            &all,
            1,
        );
        let at: HashMap<Uuid, DateTime<Utc>> =
            plan.planned.iter().map(|p| (p.person_id, p.at)).collect();
        assert_eq!(at[&all[1].person_id], now);
        // Kiritimati's next Thursday 09:00 (+14) is Wednesday 19:00 UTC, six days on
        assert_eq!(at[&all[0].person_id], utc(2026, 12, 16, 19, 0));
    }

    #[test]
    fn windows_follow_the_local_clock_across_a_dst_change() {
        // New York springs forward on Sunday 2027-03-14: 09:00 is 14:00 UTC the Friday
        // before and 13:00 UTC the Monday after
        let window = weekdays_9_to_17();
        let zone = chrono_tz::America::New_York;
        assert_eq!(
            window.next_open(zone, utc(2027, 3, 12, 12, 0)),
            Some(utc(2027, 3, 12, 14, 0))
        );
        assert_eq!(
            window.next_open(zone, utc(2027, 3, 13, 0, 0)),
            Some(utc(2027, 3, 15, 13, 0))
        );
        // a window opening at 02:30, inside the gap on 2027-03-14, opens at 03:30 EDT
        let sunday = Window::new(&[7], time(2, 30), time(4, 0));
        assert_eq!(
            sunday.next_open(zone, utc(2027, 3, 14, 5, 0)),
            Some(utc(2027, 3, 14, 7, 30))
        );
        let plan = plan_first_steps(
            utc(2027, 3, 13, 0, 0),
            &window,
            &caps(zone, 100),
            &[sender(100, 60)],
            &[],
            &prospects(zone, 2),
            3,
        );
        for planned in &plan.planned {
            assert_eq!(planned.at.with_timezone(&zone).hour(), 9);
            assert_eq!(planned.at.with_timezone(&zone).weekday(), Weekday::Mon);
        }
    }

    #[test]
    fn caps_that_bind_spread_the_plan_over_the_following_days() {
        // 25 prospects; the campaign takes 10 new ones a day; two senders of 4 and 3 a day
        // (rolling 24 h): 7 a day bind, so 4 weekdays
        let zone = chrono_tz::Europe::Berlin;
        let now = utc(2026, 12, 7, 8, 0); // Monday 09:00 in Berlin
        let all = prospects(zone, 25);
        let senders = [sender(4, 600), sender(3, 600)];
        let plan = plan_first_steps(
            now,
            &weekdays_9_to_17(),
            &caps(zone, 10),
            &senders,
            &[],
            &all,
            9,
        );
        assert_eq!(plan.planned.len(), 25);
        let mut per_day: BTreeMap<NaiveDate, usize> = BTreeMap::new();
        for planned in &plan.planned {
            *per_day
                .entry(planned.at.with_timezone(&zone).date_naive())
                .or_default() += 1;
        }
        assert_eq!(per_day.values().copied().collect::<Vec<_>>(), [7, 7, 7, 4]);
        for sender in &senders {
            let mine: Vec<DateTime<Utc>> = plan
                .planned
                .iter()
                .filter(|p| p.sender_id == sender.sender_id)
                .map(|p| p.at)
                .collect();
            for pair in mine.windows(2) {
                assert!(pair[1] - pair[0] >= chrono::Duration::seconds(600));
            }
            let cap = sender.daily_cap as usize;
            for (index, at) in mine.iter().enumerate().skip(cap) {
                assert!(*at - mine[index - cap] >= chrono::Duration::hours(24));
            }
        }
        // the campaign's own cap binds when the senders could do more
        let big = [sender(1000, 1)];
        let plan = plan_first_steps(
            now,
            &weekdays_9_to_17(),
            &caps(zone, 10),
            &big,
            &[],
            &all,
            9,
        );
        let first_day = plan
            .planned
            .iter()
            .filter(|p| p.at.with_timezone(&zone).date_naive() == now.date_naive())
            .count();
        assert_eq!(first_day, 10);
        // prospects are served in the order given
        let order: Vec<Uuid> = plan.planned.iter().map(|p| p.person_id).collect();
        assert_eq!(order, all.iter().map(|p| p.person_id).collect::<Vec<_>>());
    }

    #[test]
    fn the_plan_is_the_same_for_the_same_input_and_leaves_out_what_a_year_cannot_hold() {
        let zone = chrono_tz::Europe::Berlin;
        let now = utc(2026, 12, 7, 8, 0);
        let all = prospects(zone, 30);
        let senders = [sender(5, 300)];
        let once = plan_first_steps(
            now,
            &weekdays_9_to_17(),
            &caps(zone, 5),
            &senders,
            &[],
            &all,
            4,
        );
        let again = plan_first_steps(
            now,
            &weekdays_9_to_17(),
            &caps(zone, 5),
            &senders,
            &[],
            &all,
            4,
        );
        assert_eq!(once, again);
        // one e-mail a day on Mondays only: 53 Mondays at most in the horizon
        let mondays = Window::new(&[1], time(9, 0), time(17, 0));
        let many = prospects(zone, 60);
        let plan = plan_first_steps(now, &mondays, &caps(zone, 1), &senders, &[], &many, 4);
        assert!(
            (52..=53).contains(&plan.planned.len()),
            "{}",
            plan.planned.len()
        );
        assert_eq!(plan.planned.len() + plan.unplanned.len(), 60);
        let none = plan_first_steps(now, &mondays, &caps(zone, 1), &[], &[], &many, 4);
        assert_eq!(none.unplanned.len(), 60);
    }

    /// A sender another campaign uses: its sends of the last day count against its rolling
    /// cap, and this plan starts a gap after its last booked send.
    #[test]
    fn senders_bookings_by_other_campaigns_count() {
        let zone = chrono_tz::UTC;
        let now = utc(2027, 3, 1, 9, 0); // a Monday
        let window = Window::new(&[1, 2, 3, 4, 5, 6, 7], time(0, 0), time(23, 59));
        let shared = sender(3, 60);
        // two sends an hour ago and one planned in ten minutes
        let booked = [
            (shared.sender_id, now - chrono::Duration::hours(1)),
            (shared.sender_id, now - chrono::Duration::minutes(59)),
            (shared.sender_id, now + chrono::Duration::minutes(10)),
        ];
        let all = prospects(zone, 2);
        let plan = plan_first_steps(now, &window, &caps(zone, 100), &[shared], &booked, &all, 1);
        assert_eq!(plan.planned.len(), 2);
        // the cap of three in 24 hours is full with the bookings: the first new send waits
        // until the oldest booking is a day old, the next until the second is
        assert_eq!(plan.planned[0].at, now + chrono::Duration::hours(23));
        assert!(
            plan.planned[1].at >= now + chrono::Duration::hours(23) + chrono::Duration::minutes(1)
        );
        // with no bookings the first goes at once
        let free = plan_first_steps(now, &window, &caps(zone, 100), &[shared], &[], &all, 1);
        assert_eq!(free.planned[0].at, now);
    }

    /// A plan made on a day whose first e-mails already went (a resume) gives that day only
    /// what is left of its cap.
    #[test]
    fn first_emails_already_sent_today_count_against_the_day() {
        let zone = chrono_tz::UTC;
        let now = utc(2027, 3, 1, 9, 0); // a Monday
        let window = Window::new(&[1, 2, 3, 4, 5, 6, 7], time(0, 0), time(23, 59));
        let mut resumed = caps(zone, 5);
        resumed.sent_today = 3;
        let all = prospects(zone, 4);
        let plan = plan_first_steps(now, &window, &resumed, &[sender(100, 0)], &[], &all, 1);
        let today = plan
            .planned
            .iter()
            .filter(|planned| planned.at.date_naive() == now.date_naive())
            .count();
        assert_eq!(today, 2, "{:?}", plan.planned);
        assert_eq!(plan.planned.len(), 4, "the other two the next day");
    }
}
