-- LLM providers an account adds (OpenAI-compatible chat completions) and the models it prices
-- on them (`/api/v1/llm/providers`, `/api/v1/llm/models`). The API key is sealed with
-- `secrets.encryption_key` (AES-256-GCM) and never leaves the database in clear. Prices are
-- micro-dollars per million tokens, exact (0.15 USD per million tokens is 150000).
create table llm_providers (
    id uuid primary key default gen_random_uuid(),
    account_id uuid not null references accounts (id) on delete cascade,
    name text not null,
    base_url text not null,
    sealed_api_key text not null,
    requests_per_minute integer not null check (requests_per_minute > 0),
    tokens_per_minute integer not null check (tokens_per_minute > 0),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create unique index llm_providers_account_name on llm_providers (account_id, lower(name));
create index llm_providers_account_page on llm_providers (account_id, created_at desc, id desc);
create trigger llm_providers_updated_at before update on llm_providers
    for each row execute function set_updated_at();

create table llm_models (
    id uuid primary key default gen_random_uuid(),
    account_id uuid not null references accounts (id) on delete cascade,
    -- a provider with models cannot be deleted: campaigns name models, not providers (`no
    -- action`, not `restrict`: checked at the end of the statement, so deleting the account
    -- deletes both through their cascades)
    provider_id uuid not null references llm_providers (id) on delete no action,
    model text not null,
    input_microusd_per_mtok bigint not null check (input_microusd_per_mtok >= 0),
    output_microusd_per_mtok bigint not null check (output_microusd_per_mtok >= 0),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create unique index llm_models_provider_model on llm_models (provider_id, model);
create index llm_models_account_page on llm_models (account_id, created_at desc, id desc);
create trigger llm_models_updated_at before update on llm_models
    for each row execute function set_updated_at();
