DROP TABLE revocation_generation;
