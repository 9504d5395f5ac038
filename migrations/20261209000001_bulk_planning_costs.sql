-- Planning writes messages in bulk (a delivery to 10,000 students over 10 days is 100,000
-- effects, message rows and delivery rows, 5,000 a statement). Work done per row that serves
-- nothing goes.

-- 1. The insert trigger called a function for each planned row only for PostgreSQL to fold
--    the identical notifications; one call per statement, over the rows it inserted, wakes
--    the dispatchers the same way. (Updates keep their row trigger: `after update of state,
--    next_attempt_at` cannot have a transition table, and its `when` clause already skips the
--    many updates that leave a row not due.)
drop trigger effects_notify_insert on effects;

create function notify_effects_inserted() returns trigger as $$
begin
    perform pg_notify('herald_effects', queues.queue)
    from (select distinct queue from inserted where state in ('planned', 'retrying')) queues;
    return null;
end;
$$ language plpgsql;

create trigger effects_notify_insert after insert on effects
    referencing new table as inserted
    for each statement execute function notify_effects_inserted();

-- 2. A message's account is its effect's: deleting an account deletes its effects, and they
--    their messages (`effect_id … on delete cascade`). The second foreign key was a lookup
--    and a row lock on the account for every message planned.
alter table outbound_messages drop constraint outbound_messages_account_id_fkey;

-- 3. No query reads messages by account (the jobs API lists effects, by `effects_account`);
--    the index cost an insert for every message planned.
drop index outbound_messages_account;
