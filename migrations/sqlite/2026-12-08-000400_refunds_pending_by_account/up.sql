-- A reseller's refund report counts the reseller's refunds awaiting review
-- (`status = 'pending_review' AND account_id = ?`). With only `refunds (status, id)` and
-- `refunds (account_id, created_at)`, SQLite's planner took the account index and read
-- every refund row of the reseller to test its status (a busy reseller's year: ~20 ms of
-- each report); this index answers the count from the index alone.
CREATE INDEX refunds_status_account ON refunds (status, account_id);
