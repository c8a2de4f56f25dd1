ALTER TABLE providers DROP COLUMN markup_percent_micros;
