-- Verification and reset e-mails used to be stored with the raw token in their link. New ones
-- carry it sealed (AES-GCM) and drop it once sent; this removes the tokens from e-mails
-- already sent or finished. E-mails still waiting keep theirs, so they can still be sent;
-- those tokens expire within hours (`auth.*_token_ttl_secs`).
update effects
set payload = jsonb_set(
        payload,
        '{text}',
        to_jsonb(regexp_replace(payload ->> 'text', 'token=[A-Za-z0-9_-]+', 'token=(removed)', 'g'))
    )
where kind = 'email'
  and (idempotency_key like 'verify-email:%' or idempotency_key like 'reset-password:%')
  and state not in ('planned', 'queued', 'sending', 'retrying')
  and payload ->> 'text' ~ 'token=[A-Za-z0-9_-]+';
