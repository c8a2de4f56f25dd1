ALTER TABLE providers DROP COLUMN allow_private_network;
