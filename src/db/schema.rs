// Kept by hand to match both `migrations/sqlite` and `migrations/postgres`, in the column
// types both backends share through `DbConnection` (`diesel print-schema` reads one
// backend at a time); `tests/api/schema.rs` checks it against both migrated databases.

diesel::table! {
    accounts (id) {
        id -> BigInt,
        name -> Text,
        role -> Text,
        status -> Text,
        currency -> Text,
        balance_micros -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        refund_allowlisted_until -> Nullable<Timestamp>,
        held_micros -> BigInt,
    }
}

diesel::table! {
    api_keys (id) {
        id -> BigInt,
        account_id -> BigInt,
        key_hash -> Text,
        prefix -> Text,
        scopes -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    jwt_keys (kid) {
        kid -> Text,
        secret -> Text,
        created_at -> Timestamp,
        retire_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    revocation_generation (id) {
        id -> BigInt,
        generation -> BigInt,
    }
}

diesel::table! {
    services (id) {
        id -> BigInt,
        name -> Text,
        category -> Text,
        kind -> Text,
        rate_micros -> BigInt,
        min_quantity -> BigInt,
        max_quantity -> BigInt,
        refill -> Bool,
        cancel -> Bool,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        provider_id -> Nullable<BigInt>,
        provider_service_id -> Nullable<Text>,
        refill_days -> BigInt,
        dripfeed -> Bool,
        description -> Nullable<Text>,
        subscription_posts_max -> BigInt,
        subscription_delays -> Text,
        subscription_old_posts -> Bool,
    }
}

diesel::table! {
    providers (id) {
        id -> BigInt,
        name -> Text,
        url -> Text,
        api_key -> Text,
        enabled -> Bool,
        timeout_ms -> BigInt,
        batch_size -> BigInt,
        idempotent_add -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        min_balance_micros -> Nullable<BigInt>,
        balance_micros -> Nullable<BigInt>,
        balance_currency -> Nullable<Text>,
        balance_checked_at -> Nullable<Timestamp>,
        balance_error -> Nullable<Text>,
        markup_percent_micros -> BigInt,
        auto_sync -> Bool,
        allow_private_network -> Nullable<Bool>,
        currency -> Text,
        exchange_rate_micros -> Nullable<BigInt>,
        exchange_rate_set_at -> Nullable<Timestamp>,
        currency_mismatch -> Nullable<Text>,
        currency_mismatch_at -> Nullable<Timestamp>,
        credit_mode -> Text,
    }
}

diesel::table! {
    provider_orders (order_id) {
        order_id -> BigInt,
        provider_id -> BigInt,
        provider_service_id -> Text,
        state -> Text,
        provider_order_id -> Nullable<Text>,
        idempotency_key -> Text,
        attempts -> BigInt,
        failures -> BigInt,
        next_at -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        quarantined_status -> Nullable<Text>,
        last_synced_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        lease_token -> BigInt,
    }
}

diesel::table! {
    provider_attempts (id) {
        id -> BigInt,
        provider_id -> BigInt,
        order_id -> Nullable<BigInt>,
        action -> Text,
        outcome -> Text,
        http_status -> Nullable<Integer>,
        body -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    refills (id) {
        id -> BigInt,
        order_id -> BigInt,
        account_id -> BigInt,
        status -> Text,
        created_at -> Timestamp,
        provider_id -> Nullable<BigInt>,
        provider_order_id -> Nullable<Text>,
        provider_refill_id -> Nullable<Text>,
        state -> Nullable<Text>,
        attempts -> BigInt,
        failures -> BigInt,
        next_at -> Nullable<Timestamp>,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        lease_token -> BigInt,
        last_error -> Nullable<Text>,
        quarantined_status -> Nullable<Text>,
        last_synced_at -> Nullable<Timestamp>,
        note -> Nullable<Text>,
        decided_by -> Nullable<BigInt>,
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    cancel_requests (id) {
        id -> BigInt,
        order_id -> BigInt,
        account_id -> BigInt,
        provider_id -> BigInt,
        provider_order_id -> Text,
        source -> Text,
        status -> Text,
        state -> Text,
        attempts -> BigInt,
        failures -> BigInt,
        next_at -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        lease_token -> BigInt,
        last_error -> Nullable<Text>,
        reason -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    orders (id) {
        id -> BigInt,
        account_id -> BigInt,
        service_id -> BigInt,
        link -> Text,
        quantity -> BigInt,
        runs -> Nullable<BigInt>,
        run_interval -> Nullable<BigInt>,
        comments -> Nullable<Text>,
        charge_micros -> BigInt,
        refunded_micros -> BigInt,
        status -> Text,
        start_count -> Nullable<BigInt>,
        remains -> Nullable<BigInt>,
        external_ref -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        approved_dispute_micros -> BigInt,
        service_type -> Text,
        order_fields -> Nullable<Text>,
        subscription_id -> Nullable<BigInt>,
        subscription_post_key -> Nullable<Text>,
    }
}

diesel::table! {
    refunds (id) {
        id -> BigInt,
        account_id -> BigInt,
        order_id -> Nullable<BigInt>,
        top_up_id -> Nullable<BigInt>,
        amount_micros -> BigInt,
        reason -> Text,
        status -> Text,
        source -> Text,
        note -> Nullable<Text>,
        decision_reason -> Nullable<Text>,
        decided_by -> Nullable<BigInt>,
        decided_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        policy_outcome -> Nullable<Text>,
        policy_rule -> Nullable<Text>,
        policy_detail -> Nullable<Text>,
    }
}

diesel::table! {
    dispute_refusals (id) {
        id -> BigInt,
        account_id -> BigInt,
        order_id -> BigInt,
        rule -> Text,
        detail -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    top_ups (id) {
        id -> BigInt,
        account_id -> BigInt,
        amount_micros -> BigInt,
        refunded_micros -> BigInt,
        gateway -> Text,
        gateway_ref -> Text,
        status -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    ledger_entries (id) {
        id -> BigInt,
        account_id -> BigInt,
        kind -> Text,
        amount_micros -> BigInt,
        balance_after_micros -> BigInt,
        order_id -> Nullable<BigInt>,
        refund_id -> Nullable<BigInt>,
        top_up_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        held_amount_micros -> BigInt,
        held_after_micros -> BigInt,
        subscription_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    subscriptions (id) {
        id -> BigInt,
        account_id -> BigInt,
        service_id -> BigInt,
        username -> Text,
        min_quantity -> BigInt,
        max_quantity -> BigInt,
        posts -> BigInt,
        old_posts -> BigInt,
        delay_minutes -> BigInt,
        expires_at -> Nullable<Timestamp>,
        status -> Text,
        rate_micros -> BigInt,
        post_charge_micros -> BigInt,
        hold_micros -> BigInt,
        captured_micros -> BigInt,
        released_micros -> BigInt,
        posts_served -> BigInt,
        status_reason -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    provider_subscriptions (subscription_id) {
        subscription_id -> BigInt,
        provider_id -> BigInt,
        provider_service_id -> Text,
        state -> Text,
        provider_subscription_id -> Nullable<Text>,
        idempotency_key -> Text,
        cancel -> Nullable<Text>,
        attempts -> BigInt,
        failures -> BigInt,
        next_at -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        lease_token -> BigInt,
        last_error -> Nullable<Text>,
        quarantined_status -> Nullable<Text>,
        last_synced_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    subscription_children (provider_id, provider_order_id) {
        provider_id -> BigInt,
        provider_order_id -> Text,
        subscription_id -> BigInt,
        order_id -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    idempotency_keys (id) {
        id -> BigInt,
        account_id -> BigInt,
        scope -> Text,
        idem_key -> Text,
        request_hash -> Text,
        status -> Text,
        response_status -> Nullable<Integer>,
        response_body -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    events (id) {
        id -> BigInt,
        event_type -> Text,
        account_id -> Nullable<BigInt>,
        data -> Text,
        dispatched -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> BigInt,
        account_id -> BigInt,
        url -> Text,
        event_types -> Text,
        description -> Nullable<Text>,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_until -> Nullable<Timestamp>,
        status -> Text,
        disabled_reason -> Nullable<Text>,
        failing_since -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> BigInt,
        event_id -> BigInt,
        endpoint_id -> BigInt,
        state -> Text,
        attempts -> BigInt,
        next_at -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        lease_token -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_breakers (endpoint_id) {
        endpoint_id -> BigInt,
        failures -> BigInt,
        open_until -> Nullable<Timestamp>,
        opened -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> BigInt,
        delivery_id -> BigInt,
        event_id -> BigInt,
        endpoint_id -> BigInt,
        attempt -> BigInt,
        status_code -> Nullable<Integer>,
        duration_ms -> BigInt,
        response_body -> Nullable<Text>,
        error -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    alerts (id) {
        id -> BigInt,
        scope -> Text,
        subject_id -> BigInt,
        window_name -> Text,
        measure -> Text,
        level -> Text,
        active -> Bool,
        rate_ppm -> BigInt,
        threshold_ppm -> BigInt,
        orders -> BigInt,
        refunded_orders -> BigInt,
        charged_micros -> BigInt,
        refunded_micros -> BigInt,
        pauses_orders -> Bool,
        raised_at -> Timestamp,
        escalated_at -> Nullable<Timestamp>,
        cleared_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    alert_rules (scope, subject_id) {
        scope -> Text,
        subject_id -> BigInt,
        warning_rate_ppm -> Nullable<BigInt>,
        critical_rate_ppm -> Nullable<BigInt>,
        min_orders -> Nullable<BigInt>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    job_leases (name) {
        name -> Text,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        last_run_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    secret_seal (id) {
        id -> BigInt,
        key_id -> Text,
        key_check -> Text,
        sealed_at -> Timestamp,
    }
}

diesel::table! {
    account_quota_cells (account_id) {
        account_id -> BigInt,
        tat_us -> BigInt,
        granted -> BigInt,
    }
}

diesel::table! {
    audit_entries (id) {
        id -> BigInt,
        created_at -> Timestamp,
        actor_kind -> Text,
        actor_account_id -> Nullable<BigInt>,
        actor_api_key_id -> Nullable<BigInt>,
        actor_role -> Nullable<Text>,
        action -> Text,
        target_type -> Text,
        target_id -> Nullable<BigInt>,
        account_id -> Nullable<BigInt>,
        client_addr -> Nullable<Text>,
        request_id -> Nullable<Text>,
        before_data -> Nullable<Text>,
        after_data -> Nullable<Text>,
        secret_fields -> Text,
    }
}

diesel::table! {
    audit_log_start (id) {
        id -> BigInt,
        began_at -> Timestamp,
    }
}

diesel::table! {
    panel_settings (id) {
        id -> BigInt,
        currency -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    provider_exchange_rates (id) {
        id -> BigInt,
        provider_id -> BigInt,
        currency -> Text,
        rate_micros -> Nullable<BigInt>,
        set_by -> Nullable<BigInt>,
        set_at -> Timestamp,
    }
}

diesel::table! {
    service_costs (service_id) {
        service_id -> BigInt,
        provider_id -> BigInt,
        currency -> Text,
        provider_rate_micros -> BigInt,
        exchange_rate_micros -> BigInt,
        converted_rate_micros -> BigInt,
        at_loss -> Bool,
        synced_at -> Timestamp,
    }
}

diesel::table! {
    order_costs (order_id) {
        order_id -> BigInt,
        provider_id -> BigInt,
        service_id -> BigInt,
        currency -> Text,
        exchange_rate_micros -> BigInt,
        expected_cost_provider_micros -> Nullable<BigInt>,
        expected_cost_micros -> Nullable<BigInt>,
        first_charge_provider_micros -> Nullable<BigInt>,
        first_charge_micros -> Nullable<BigInt>,
        latest_charge_provider_micros -> Nullable<BigInt>,
        latest_charge_micros -> Nullable<BigInt>,
        charge_reported_at -> Nullable<Timestamp>,
        provider_refunded_micros -> BigInt,
        recovery -> Nullable<Text>,
        watch_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        baseline_charge_provider_micros -> Nullable<BigInt>,
    }
}

diesel::joinable!(api_keys -> accounts (account_id));
diesel::joinable!(orders -> accounts (account_id));
diesel::joinable!(orders -> services (service_id));
diesel::joinable!(ledger_entries -> accounts (account_id));
diesel::joinable!(top_ups -> accounts (account_id));
diesel::joinable!(refunds -> orders (order_id));
diesel::joinable!(provider_orders -> orders (order_id));
diesel::joinable!(services -> providers (provider_id));
diesel::joinable!(webhook_deliveries -> events (event_id));
diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));

diesel::table! {
    rollup_changes (id) {
        id -> BigInt,
        bucket -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    rollup_orders (bucket, service_id, account_id) {
        bucket -> BigInt,
        service_id -> BigInt,
        account_id -> BigInt,
        orders -> BigInt,
        charged_micros -> BigInt,
        refunded_orders -> BigInt,
    }
}

diesel::table! {
    rollup_refunds (bucket, service_id, account_id, reason) {
        bucket -> BigInt,
        service_id -> BigInt,
        account_id -> BigInt,
        reason -> Text,
        refunds -> BigInt,
        refunded_micros -> BigInt,
        refunded_orders -> BigInt,
    }
}

diesel::table! {
    rollup_money (bucket, provider_id, service_id) {
        bucket -> BigInt,
        provider_id -> BigInt,
        service_id -> BigInt,
        orders -> BigInt,
        revenue_micros -> BigInt,
        provider_cost_micros -> BigInt,
        orders_without_cost -> BigInt,
        refunds_paid_micros -> BigInt,
        expected_credits_micros -> BigInt,
        credits_recovered_micros -> BigInt,
        unrecovered_micros -> BigInt,
        awaiting_credit_micros -> BigInt,
        recovery_cases -> BigInt,
        unrecovered_cases -> BigInt,
        credited_to_balance_micros -> BigInt,
    }
}

diesel::table! {
    rollup_time_orders (span, bucket) {
        span -> BigInt,
        bucket -> BigInt,
        orders -> BigInt,
        charged_micros -> BigInt,
        refunded_orders -> BigInt,
    }
}

diesel::table! {
    rollup_time_refunds (span, bucket, reason) {
        span -> BigInt,
        bucket -> BigInt,
        reason -> Text,
        refunds -> BigInt,
        refunded_micros -> BigInt,
        refunded_orders -> BigInt,
    }
}

diesel::table! {
    rollup_service_orders (span, bucket, service_id) {
        span -> BigInt,
        bucket -> BigInt,
        service_id -> BigInt,
        orders -> BigInt,
        charged_micros -> BigInt,
        refunded_orders -> BigInt,
    }
}

diesel::table! {
    rollup_service_refunds (span, bucket, service_id, reason) {
        span -> BigInt,
        bucket -> BigInt,
        service_id -> BigInt,
        reason -> Text,
        refunds -> BigInt,
        refunded_micros -> BigInt,
        refunded_orders -> BigInt,
    }
}

diesel::table! {
    rollup_service_money (span, bucket, provider_id, service_id) {
        span -> BigInt,
        bucket -> BigInt,
        provider_id -> BigInt,
        service_id -> BigInt,
        orders -> BigInt,
        revenue_micros -> BigInt,
        provider_cost_micros -> BigInt,
        orders_without_cost -> BigInt,
        refunds_paid_micros -> BigInt,
        expected_credits_micros -> BigInt,
        credits_recovered_micros -> BigInt,
        unrecovered_micros -> BigInt,
        awaiting_credit_micros -> BigInt,
        recovery_cases -> BigInt,
        unrecovered_cases -> BigInt,
        credited_to_balance_micros -> BigInt,
    }
}

diesel::table! {
    rollup_account_orders (span, bucket, account_id, service_id) {
        span -> BigInt,
        bucket -> BigInt,
        account_id -> BigInt,
        service_id -> BigInt,
        orders -> BigInt,
        charged_micros -> BigInt,
        refunded_orders -> BigInt,
    }
}

diesel::table! {
    rollup_account_refunds (span, bucket, account_id, service_id, reason) {
        span -> BigInt,
        bucket -> BigInt,
        account_id -> BigInt,
        service_id -> BigInt,
        reason -> Text,
        refunds -> BigInt,
        refunded_micros -> BigInt,
        refunded_orders -> BigInt,
    }
}

diesel::table! {
    rollup_account_totals (span, bucket, account_id) {
        span -> BigInt,
        bucket -> BigInt,
        account_id -> BigInt,
        orders -> BigInt,
        charged_micros -> BigInt,
        refunded_orders -> BigInt,
    }
}

diesel::table! {
    rollup_account_reasons (span, bucket, account_id, reason) {
        span -> BigInt,
        bucket -> BigInt,
        account_id -> BigInt,
        reason -> Text,
        refunds -> BigInt,
        refunded_micros -> BigInt,
        refunded_orders -> BigInt,
    }
}

diesel::table! {
    rollup_zones (phase) {
        phase -> BigInt,
        next_bucket -> BigInt,
        end_bucket -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    rollup_zone_orders (phase, bucket) {
        phase -> BigInt,
        bucket -> BigInt,
        orders -> BigInt,
        charged_micros -> BigInt,
        refunded_orders -> BigInt,
    }
}

diesel::table! {
    rollup_zone_refunds (phase, bucket, reason) {
        phase -> BigInt,
        bucket -> BigInt,
        reason -> Text,
        refunds -> BigInt,
        refunded_micros -> BigInt,
        refunded_orders -> BigInt,
    }
}

diesel::table! {
    rollup_zone_account_orders (phase, bucket, account_id) {
        phase -> BigInt,
        bucket -> BigInt,
        account_id -> BigInt,
        orders -> BigInt,
        charged_micros -> BigInt,
        refunded_orders -> BigInt,
    }
}

diesel::table! {
    rollup_zone_account_refunds (phase, bucket, account_id, reason) {
        phase -> BigInt,
        bucket -> BigInt,
        account_id -> BigInt,
        reason -> Text,
        refunds -> BigInt,
        refunded_micros -> BigInt,
        refunded_orders -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    api_keys,
    jwt_keys,
    revocation_generation,
    services,
    orders,
    top_ups,
    ledger_entries,
    idempotency_keys,
    refunds,
    dispute_refusals,
    providers,
    provider_orders,
    provider_attempts,
    refills,
    events,
    webhook_endpoints,
    webhook_deliveries,
    webhook_attempts,
    webhook_breakers,
    alerts,
    alert_rules,
    job_leases,
    cancel_requests,
    account_quota_cells,
    audit_entries,
    audit_log_start,
    panel_settings,
    provider_exchange_rates,
    service_costs,
    order_costs,
    rollup_changes,
    rollup_orders,
    rollup_refunds,
    rollup_money,
    rollup_time_orders,
    rollup_time_refunds,
    rollup_service_orders,
    rollup_service_refunds,
    rollup_service_money,
    rollup_account_orders,
    rollup_account_refunds,
    rollup_account_totals,
    rollup_account_reasons,
    rollup_zones,
    rollup_zone_orders,
    rollup_zone_refunds,
    rollup_zone_account_orders,
    rollup_zone_account_refunds,
    subscriptions,
    provider_subscriptions,
    subscription_children,
);
