DROP INDEX refunds_pending_review;
