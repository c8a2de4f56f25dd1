DROP TABLE job_leases;
DROP TABLE alert_rules;
DROP TABLE alerts;
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP TABLE events;
