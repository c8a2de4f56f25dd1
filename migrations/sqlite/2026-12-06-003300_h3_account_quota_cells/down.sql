DROP TABLE account_quota_cells;
