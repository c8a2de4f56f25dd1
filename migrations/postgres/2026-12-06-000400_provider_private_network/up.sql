-- A provider on a loopback, private, link-local or metadata address is called only when
-- an operator opted it in. NULL: a provider that existed before this column; it keeps
-- working as before (read as opted in) until `serve` checks its address at start and
-- records what it found (true if the URL is or resolves to such an address).
ALTER TABLE providers ADD COLUMN allow_private_network BOOLEAN;
