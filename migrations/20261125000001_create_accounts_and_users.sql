-- Accounts own every row; users sign in to an account.

create or replace function set_updated_at() returns trigger as $$
begin
    new.updated_at = now();
    return new;
end;
$$ language plpgsql;

create table accounts (
    id uuid primary key default gen_random_uuid(),
    name text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create trigger accounts_updated_at before update on accounts
    for each row execute function set_updated_at();

create table users (
    id uuid primary key default gen_random_uuid(),
    account_id uuid not null references accounts (id) on delete cascade,
    -- stored lower-cased; compared lower-cased
    email text not null,
    name text not null,
    password_hash text not null,
    email_verified_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create unique index users_email_key on users (email);
create index users_account_id on users (account_id);
create trigger users_updated_at before update on users
    for each row execute function set_updated_at();

-- A session is one sign-in; its refresh tokens rotate. Logging out or reusing a spent
-- refresh token revokes the session, which also stops its access tokens.
create table sessions (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references users (id) on delete cascade,
    revoked_at timestamptz,
    created_at timestamptz not null default now()
);
create index sessions_user_id on sessions (user_id);

create table refresh_tokens (
    token_hash bytea primary key,
    session_id uuid not null references sessions (id) on delete cascade,
    expires_at timestamptz not null,
    used_at timestamptz,
    created_at timestamptz not null default now()
);
create index refresh_tokens_session_id on refresh_tokens (session_id);

-- Single-use tokens mailed to the user (e-mail verification, password reset); only the
-- SHA-256 of the token is stored.
create table user_tokens (
    token_hash bytea primary key,
    user_id uuid not null references users (id) on delete cascade,
    purpose text not null check (purpose in ('verify_email', 'reset_password')),
    expires_at timestamptz not null,
    used_at timestamptz,
    created_at timestamptz not null default now()
);
create index user_tokens_user_id on user_tokens (user_id, purpose);

-- Saved answers to POSTs sent with an Idempotency-Key, scoped by account and route.
create table idempotency_keys (
    account_id uuid not null references accounts (id) on delete cascade,
    route text not null,
    key text not null,
    request_hash bytea not null,
    response_status smallint,
    response_body jsonb,
    created_at timestamptz not null default now(),
    primary key (account_id, route, key)
);
