-- Subscriptions (issue 24): the money is held, captured by each post's child order and
-- released when the subscription ends. Every move is one ledger entry; an entry now says
-- which balance it moves: `amount_micros` the available balance (`accounts.balance_micros`),
-- `held_amount_micros` the held one (`accounts.held_micros`), each with its balance after.
-- A hold moves available → held, a child's charge is paid from held (its own order_charge
-- entry, so one charge entry per order still holds), a release moves held → available.

-- What a subscriptions service offers (meaningless on other types).
ALTER TABLE services ADD COLUMN subscription_posts_max BIGINT NOT NULL DEFAULT 100
    CHECK (subscription_posts_max >= 1);
ALTER TABLE services ADD COLUMN subscription_delays TEXT NOT NULL DEFAULT '0,5,10,15,30,60,90';
ALTER TABLE services ADD COLUMN subscription_old_posts BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE accounts ADD COLUMN held_micros BIGINT NOT NULL DEFAULT 0 CHECK (held_micros >= 0);

-- The id comes from the orders' sequence (one id space: API v2 `status` is asked with the
-- id `add` answered), so it has no sequence of its own.
CREATE TABLE subscriptions (
    id BIGINT PRIMARY KEY NOT NULL,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    service_id BIGINT NOT NULL REFERENCES services (id),
    username TEXT NOT NULL,
    min_quantity BIGINT NOT NULL CHECK (min_quantity >= 1),
    max_quantity BIGINT NOT NULL CHECK (max_quantity >= min_quantity),
    posts BIGINT NOT NULL CHECK (posts >= 1),
    old_posts BIGINT NOT NULL DEFAULT 0 CHECK (old_posts >= 0),
    delay_minutes BIGINT NOT NULL CHECK (delay_minutes >= 0),
    -- The start (00:00 UTC) of the expiry date the reseller gave; NULL: none.
    expires_at TIMESTAMP,
    status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'paused', 'completed',
        'expired', 'canceled', 'error')),
    -- The service's rate when it was created: every child is priced at it.
    rate_micros BIGINT NOT NULL CHECK (rate_micros >= 0),
    post_charge_micros BIGINT NOT NULL CHECK (post_charge_micros >= 0),
    hold_micros BIGINT NOT NULL CHECK (hold_micros >= 0),
    captured_micros BIGINT NOT NULL DEFAULT 0 CHECK (captured_micros >= 0),
    released_micros BIGINT NOT NULL DEFAULT 0 CHECK (released_micros >= 0),
    posts_served BIGINT NOT NULL DEFAULT 0 CHECK (posts_served >= 0),
    status_reason TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    CHECK (captured_micros + released_micros <= hold_micros)
);
CREATE INDEX subscriptions_account ON subscriptions (account_id, id);
CREATE INDEX subscriptions_open ON subscriptions (id) WHERE status IN ('pending', 'active', 'paused');

-- A child order names its subscription and the post it serves (one child per post key).
ALTER TABLE orders ADD COLUMN subscription_id BIGINT REFERENCES subscriptions (id);
ALTER TABLE orders ADD COLUMN subscription_post_key TEXT;
CREATE UNIQUE INDEX orders_subscription_post ON orders (subscription_id, subscription_post_key)
    WHERE subscription_id IS NOT NULL;

ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN ('top_up',
    'order_charge', 'refund', 'top_up_refund', 'chargeback', 'adjustment',
    'subscription_hold', 'subscription_release'));
ALTER TABLE ledger_entries ADD COLUMN held_amount_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ledger_entries ADD COLUMN held_after_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ledger_entries ADD COLUMN subscription_id BIGINT REFERENCES subscriptions (id);
CREATE INDEX ledger_entries_subscription ON ledger_entries (subscription_id)
    WHERE subscription_id IS NOT NULL;
