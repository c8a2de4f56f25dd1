-- Nothing to undo: a final order's row is `done` either way, and putting it back in the
-- poll would only poll it again.
SELECT 1;
