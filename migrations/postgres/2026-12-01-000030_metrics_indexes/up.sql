-- /metrics reads these at every scrape (db::gauges): forwarding states per provider
-- without the ever-growing `done` rows, and the oldest sync of the orders open upstream.
CREATE INDEX provider_orders_not_done ON provider_orders (provider_id, state) WHERE state <> 'done';
CREATE INDEX provider_orders_open_sync ON provider_orders (last_synced_at, created_at) WHERE state = 'sent';
