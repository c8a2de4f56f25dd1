DROP TABLE audit_log_start;
DROP TABLE audit_entries;
