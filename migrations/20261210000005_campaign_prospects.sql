-- The people a campaign writes to, once each. A suppressed person is added `skipped` with the
-- suppression's reason, so the user sees why nobody will write to them; later states record
-- why a sequence ended (a reply, an unsubscribe, a bounce) or that it ran to its end.
create table campaign_prospects (
    campaign_id uuid not null references campaigns (id) on delete cascade,
    person_id uuid not null references people (id) on delete cascade,
    state text not null default 'active' check (state in (
        'active', 'skipped', 'replied', 'unsubscribed', 'bounced', 'completed')),
    -- why a `skipped` prospect is skipped
    skip_reason text,
    added_at timestamptz not null default now(),
    primary key (campaign_id, person_id),
    check ((state = 'skipped') = (skip_reason is not null))
);
create index campaign_prospects_page on campaign_prospects (campaign_id, added_at, person_id);
create index campaign_prospects_person on campaign_prospects (person_id);
