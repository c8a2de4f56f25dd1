-- Provider-backed subscriptions (issue 24, upstream): where each subscription of a
-- provider-backed service stands with its provider, leased like `provider_orders` (one
-- worker sends its `add`, polls its `status` or forwards its cancel at a time, every write
-- of an attempt fenced by its claim's `lease_token`).
CREATE TABLE provider_subscriptions (
    subscription_id BIGINT PRIMARY KEY NOT NULL REFERENCES subscriptions (id),
    provider_id BIGINT NOT NULL REFERENCES providers (id),
    provider_service_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'ambiguous', 'failed',
        'done', 'given_up')),
    -- The provider's id for the subscription, once it took the `add`.
    provider_subscription_id TEXT,
    -- Sent with the `add` to providers that deduplicate by it.
    idempotency_key TEXT NOT NULL,
    -- A cancel waiting to be forwarded ('requested'), refused by the provider ('refused';
    -- its words in subscriptions.status_reason), or accepted ('accepted': the next status
    -- poll books the children made until then and ends it). NULL: none asked.
    cancel TEXT CHECK (cancel IN ('requested', 'refused', 'accepted')),
    attempts BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    next_at TIMESTAMP NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    lease_token BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    -- A status word the provider used that we do not know: kept, never mapped to a default.
    quarantined_status TEXT,
    last_synced_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX provider_subscriptions_due ON provider_subscriptions (provider_id, state, next_at);

-- Each child order the provider reported for a subscription, by the provider's order id:
-- the primary key makes one local child per upstream child, however often (and by however
-- many workers at once) it is reported.
CREATE TABLE subscription_children (
    provider_id BIGINT NOT NULL REFERENCES providers (id),
    provider_order_id TEXT NOT NULL,
    subscription_id BIGINT NOT NULL REFERENCES subscriptions (id),
    order_id BIGINT NOT NULL REFERENCES orders (id),
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (provider_id, provider_order_id)
);
CREATE INDEX subscription_children_subscription ON subscription_children (subscription_id);
