-- The child orders stay ordinary child orders (their post key names the provider's id);
-- only the upstream bookkeeping goes.
DROP TABLE subscription_children;
DROP TABLE provider_subscriptions;
