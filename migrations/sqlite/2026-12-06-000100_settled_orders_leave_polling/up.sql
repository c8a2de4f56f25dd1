-- Orders settled while their provider row stayed `sent` (an operator's outcome after an
-- unknown status word, a dispute refunded in full) were polled until the give-up horizon.
-- Since this release every final settlement takes its row out of the poll; this takes out
-- the rows left behind before it.
UPDATE provider_orders
SET state = 'done'
WHERE state = 'sent'
  AND order_id IN (SELECT id FROM orders WHERE status IN ('completed', 'partial', 'canceled'));
