//! Stored values the code does not know are errors, never replaced by a default.

use diesel::connection::SimpleConnection;
use reseller_api::db::DbConnection;

use crate::helpers::spawn_app;

#[actix_rt::test]
async fn an_unknown_stored_order_status_is_a_server_error_not_a_pending_order() {
    let app = spawn_app().await;
    let reseller = app.funded_reseller("Acme", "10").await;
    let service = app.service("1").await;
    let id = app.order_id(&reseller.token, service, 100).await;

    // What a bad manual fix or a newer release's status would leave behind: the CHECK
    // constraint has to be stepped around to store it at all.
    let tamper = format!("UPDATE orders SET status = 'teleported' WHERE id = {id}");
    let mut conn = app.pool.get().unwrap();
    match &mut *conn {
        DbConnection::Sqlite(conn) => conn.batch_execute(&format!(
            "PRAGMA ignore_check_constraints = ON; {tamper}; PRAGMA ignore_check_constraints = OFF;"
        )),
        DbConnection::Pg(conn) => conn.batch_execute(&format!(
            "ALTER TABLE orders DROP CONSTRAINT orders_status_check; {tamper};"
        )),
    }
    .unwrap();
    drop(conn);

    let reply = app.get(&format!("/v1/orders/{id}"), &reseller.token).await;
    reply.assert_problem(500, "internal_error");
    for leak in ["teleported", "OrderStatus", "database", "deserializ"] {
        assert!(
            !reply.text.to_lowercase().contains(&leak.to_lowercase()),
            "the problem tells the client nothing internal: {}",
            reply.text
        );
    }
}
