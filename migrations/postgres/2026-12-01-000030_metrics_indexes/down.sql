DROP INDEX provider_orders_open_sync;
DROP INDEX provider_orders_not_done;
