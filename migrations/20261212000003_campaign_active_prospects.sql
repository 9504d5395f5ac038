-- The follow-up pass completes running campaigns with no active prospect left, on every pass:
-- found by this index, not a scan of every prospect.
create index campaign_prospects_active on campaign_prospects (campaign_id) where state = 'active';
