-- Deleting a schedule cascades to its messages by `schedule_id`, and changing its text
-- rewrites its unsent messages by `schedule_id`: both need this index to avoid scanning the
-- largest schedule table.
create index schedule_messages_schedule on schedule_messages (schedule_id);
