-- no-transaction
-- The dispatcher serves accounts in turn (`effects::claim_due`): it finds the accounts with
-- pending rows in a queue by a skip scan over this index, then each account's oldest due
-- rows, one index descent each, however long another account's backlog is. Built
-- concurrently: `effects` is large and written all the time.
create index concurrently if not exists effects_due_by_account
    on effects (queue, account_id, next_attempt_at)
    where state in ('planned', 'retrying');
