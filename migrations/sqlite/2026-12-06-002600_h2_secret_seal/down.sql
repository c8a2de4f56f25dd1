DROP TABLE secret_seal;
