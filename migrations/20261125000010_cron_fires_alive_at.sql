-- The replica running a fire touches `alive_at` while its job runs, so a long job (a big
-- housekeeping run) is not mistaken for one whose replica died and run a second time.
alter table cron_fires add column alive_at timestamptz;
