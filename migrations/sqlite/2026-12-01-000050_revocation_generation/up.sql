-- One row, one number: revoking an API key bumps it in the revocation's own transaction.
-- Every process re-reads it about once a second and, when it moved, forgets the access
-- tokens it had validated, so a revoked key's tokens are refused within seconds.
CREATE TABLE revocation_generation (
    id BIGINT PRIMARY KEY NOT NULL,
    generation BIGINT NOT NULL
);
INSERT INTO revocation_generation (id, generation) VALUES (1, 0);
