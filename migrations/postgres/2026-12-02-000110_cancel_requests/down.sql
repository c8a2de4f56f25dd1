DROP TABLE cancel_requests;
