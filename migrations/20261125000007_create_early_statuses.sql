-- Twilio status callbacks that arrive before the worker has recorded the message's SID (a
-- window of milliseconds): kept here and applied by the worker's sweep once the SID is known.

create table early_statuses (
    sid text not null,
    status text not null,
    error_code integer,
    error_message text,
    received_at timestamptz not null default now(),
    primary key (sid, status)
);
