-- The deployment's own LLM provider (`[llm.default_provider]` in the configuration): one row
-- with no account, written by herald-api at start, that every account may put models on.
-- Its key is the operator's; accounts see the provider, never the key, and cannot change it.
alter table llm_providers alter column account_id drop not null;
-- a model name is unique per provider and account: two accounts may both price `gpt-4o` on
-- the deployment's provider
drop index llm_models_provider_model;
create unique index llm_models_provider_model on llm_models (provider_id, account_id, model);
