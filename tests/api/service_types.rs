//! Every service type of the panel dialect, in both directions: imported by service sync,
//! ordered through REST and API v2, charged by its rule, forwarded upstream with exactly
//! its fields, synced back and refunded by the one refund rule.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::helpers::{empty_database, micros, spawn_app_on, spawn_app_with, StandIn, TestApp};

/// API v2 form fields.
type Form = Vec<(&'static str, &'static str)>;

/// One type: its catalog entry upstream, one order of it (REST body fields, API v2 form
/// fields), and what it must cost, count and forward.
struct Case {
    kind: &'static str,
    /// The provider's service id and type word (as panels spell it).
    remote: &'static str,
    word: &'static str,
    rate: &'static str,
    rest: Value,
    v2: Form,
    quantity: i64,
    charge: i64,
    /// The `add` fields besides key, action, service, link and idempotency_key.
    forwarded: Form,
}

fn cases() -> Vec<Case> {
    let case = |kind, remote, word, rate, rest, v2, quantity, charge, forwarded| Case {
        kind,
        remote,
        word,
        rate,
        rest,
        v2,
        quantity,
        charge,
        forwarded,
    };
    vec![
        case(
            "default",
            "1",
            "Default",
            "1.2",
            json!({"quantity": 1000}),
            vec![("quantity", "1000")],
            1000,
            1_200_000,
            vec![("quantity", "1000")],
        ),
        case(
            "package",
            "2",
            "package",
            "5",
            json!({}),
            vec![],
            1,
            5_000_000,
            vec![],
        ),
        case(
            "seo",
            "3",
            "SEO",
            "2",
            json!({"quantity": 500, "keywords": ["pizza, pasta", " near me "]}),
            vec![
                ("quantity", "500"),
                ("keywords", "pizza, pasta\r\n near me \n"),
            ],
            500,
            1_000_000,
            vec![("quantity", "500"), ("keywords", "pizza\npasta\nnear me")],
        ),
        case(
            "custom_comments",
            "4",
            " custom_comments ",
            "10",
            json!({"comments": ["Nice!", "", " Great "]}),
            vec![("comments", "Nice!\n\n Great ")],
            2,
            20_000,
            vec![("comments", "Nice!\nGreat")],
        ),
        case(
            "custom_comments_package",
            "5",
            "Custom Comments Package",
            "7.5",
            json!({"comments": "one\ntwo\nthree"}),
            vec![("comments", "one\ntwo\nthree")],
            1,
            7_500_000,
            vec![("comments", "one\ntwo\nthree")],
        ),
        case(
            "mentions",
            "6",
            "mentions",
            "1",
            json!({"quantity": 100, "usernames": ["@alice", "bob"]}),
            vec![("quantity", "100"), ("usernames", "@alice\nbob")],
            100,
            100_000,
            vec![("quantity", "100"), ("usernames", "alice\nbob")],
        ),
        case(
            "mentions_with_hashtags",
            "7",
            "Mentions with Hashtags",
            "1",
            json!({"quantity": 100, "usernames": ["u1"], "hashtags": ["#h1", "h2"]}),
            vec![
                ("quantity", "100"),
                ("usernames", "u1"),
                ("hashtags", "#h1\nh2"),
            ],
            100,
            100_000,
            vec![
                ("quantity", "100"),
                ("usernames", "u1"),
                ("hashtags", "h1\nh2"),
            ],
        ),
        case(
            "mentions_custom_list",
            "8",
            "Mentions Custom List",
            "4",
            json!({"usernames": ["a", "b", "c", "d"]}),
            vec![("usernames", "a\nb\nc\nd"), ("quantity", "4")],
            4,
            16_000,
            vec![("usernames", "a\nb\nc\nd")],
        ),
        case(
            "mentions_hashtag",
            "9",
            "Mentions Hashtag",
            "1",
            json!({"quantity": 200, "hashtag": "#sale"}),
            vec![("quantity", "200"), ("hashtag", "#sale")],
            200,
            200_000,
            vec![("quantity", "200"), ("hashtag", "sale")],
        ),
        case(
            "mentions_user_followers",
            "10",
            "Mentions User Followers",
            "1",
            json!({"quantity": 300, "username": "https://instagram.com/star"}),
            vec![("quantity", "300"), ("username", "@star")],
            300,
            300_000,
            vec![("quantity", "300"), ("username", "*")],
        ),
        case(
            "mentions_media_likers",
            "11",
            "Mentions Media Likers",
            "1",
            json!({"quantity": 400, "media": "https://instagram.com/p/xyz"}),
            vec![
                ("quantity", "400"),
                ("media", "https://instagram.com/p/xyz"),
            ],
            400,
            400_000,
            vec![
                ("quantity", "400"),
                ("media", "https://instagram.com/p/xyz"),
            ],
        ),
        case(
            "comment_likes",
            "12",
            "Comment Likes",
            "1",
            json!({"quantity": 50, "username": "@author"}),
            vec![("quantity", "50"), ("username", "@author")],
            50,
            50_000,
            vec![("quantity", "50"), ("username", "author")],
        ),
        case(
            "comment_replies",
            "13",
            "comment_replies",
            "6",
            json!({"username": "author", "comments": ["r1", "r2", "r3"]}),
            vec![("username", "author"), ("comments", "r1\nr2\nr3")],
            3,
            18_000,
            vec![("username", "author"), ("comments", "r1\nr2\nr3")],
        ),
        case(
            "poll",
            "14",
            "Poll",
            "3",
            json!({"quantity": 100, "answer_number": 2}),
            vec![("quantity", "100"), ("answer_number", "2")],
            100,
            300_000,
            vec![("quantity", "100"), ("answer_number", "2")],
        ),
        case(
            "invites_from_groups",
            "15",
            "Invites from Groups",
            "1",
            json!({"quantity": 100, "groups": ["g1", "g2"]}),
            vec![("quantity", "100"), ("groups", "g1\ng2")],
            100,
            100_000,
            vec![("quantity", "100"), ("groups", "g1\ng2")],
        ),
        case(
            "web_traffic",
            "16",
            "Web Traffic",
            "1",
            json!({"quantity": 1000, "runs": 2, "interval": 30, "country": "US", "device": 5,
                   "type_of_traffic": 1, "google_keyword": "best pizza"}),
            vec![
                ("quantity", "1000"),
                ("runs", "2"),
                ("interval", "30"),
                ("country", "US"),
                ("device", "5"),
                ("type_of_traffic", "1"),
                ("google_keyword", "best pizza"),
            ],
            1000,
            2_000_000,
            vec![
                ("quantity", "1000"),
                ("runs", "2"),
                ("interval", "30"),
                ("country", "US"),
                ("device", "5"),
                ("type_of_traffic", "1"),
                ("google_keyword", "best pizza"),
            ],
        ),
    ]
}

fn catalog(cases: &[Case]) -> Value {
    let mut list: Vec<Value> = cases
        .iter()
        .map(|c| {
            let flat = matches!(c.kind, "package" | "custom_comments_package");
            json!({"service": c.remote, "name": format!("{} service", c.kind), "type": c.word,
                   "category": "Types", "rate": c.rate, "min": "1",
                   "max": if flat { "1" } else { "10000" },
                   "dripfeed": c.kind == "web_traffic", "desc": format!("About {}", c.kind)})
        })
        .collect();
    list.push(
        json!({"service": "17", "name": "Auto likes", "type": "Subscriptions",
                     "category": "Auto", "rate": "1", "min": "10", "max": "100"}),
    );
    Value::Array(list)
}

/// An app with every type imported from a stand-in panel: (app, panel, stand-in, our
/// service id by type).
async fn imported() -> (
    TestApp,
    crate::helpers::Panel,
    StandIn,
    HashMap<String, i64>,
) {
    let (upstream, panel) = StandIn::panel().await;
    panel.lock().unwrap().services = catalog(&cases());
    let app = spawn_app_with(|c| {
        c.worker.sync_interval_secs = 0;
        c.worker.max_backoff_secs = 0;
    })
    .await;
    let provider = app
        .post(
            "/v1/admin/providers",
            &app.admin_token,
            json!({"allow_private_network": true, "name": "Types", "url": upstream.url, "key": "k"}),
        )
        .await;
    assert_eq!(provider.status, 201, "{}", provider.text);
    let path = format!("/v1/admin/providers/{}/sync-services", provider.body["id"]);

    let dry = app
        .post(&path, &app.admin_token, json!({"dry_run": true}))
        .await;
    assert_eq!(dry.status, 200, "{}", dry.text);
    let would: Vec<&str> = dry.body["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    let mut kinds: Vec<&str> = cases().iter().map(|c| c.kind).collect();
    // And the provider's Subscriptions service (tests/api/subscription_upstream.rs).
    kinds.push("subscriptions");
    assert_eq!(
        would, kinds,
        "all sixteen types and subscriptions, read whatever their spelling"
    );
    assert_eq!(dry.body["skipped"], json!([]), "{}", dry.text);

    let synced = app.post(&path, &app.admin_token, json!({})).await;
    assert_eq!(synced.status, 200, "{}", synced.text);
    assert_eq!(synced.body["created"].as_array().unwrap().len(), 17);
    let listed = app
        .get("/v1/admin/services?limit=100", &app.admin_token)
        .await;
    let mut ids = HashMap::new();
    for service in listed.body["data"].as_array().unwrap() {
        let kind = service["type"].as_str().unwrap().to_string();
        ids.insert(kind, service["id"].as_i64().unwrap());
    }
    (app, panel, upstream, ids)
}

#[actix_rt::test]
async fn every_type_is_imported_charged_forwarded_exactly_and_refunded_by_its_rule() {
    let (app, panel, upstream, ids) = imported().await;
    assert_eq!(ids.len(), 17, "{ids:?}");

    // What a dashboard needs to render each type's form.
    let services = app.get("/v1/services?limit=100", &app.admin_token).await;
    let by_type: HashMap<String, Value> = services.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["type"].as_str().unwrap().to_string(), s.clone()))
        .collect();
    let poll = &by_type["poll"];
    assert_eq!(poll["pricing"], "per_thousand");
    assert_eq!(poll["quantity_from"], Value::Null);
    assert_eq!(poll["description"], "About poll");
    assert_eq!(
        poll["fields"],
        json!([{"name": "answer_number", "required": true, "shape": "integer", "minimum": 1,
                "maximum": 1000, "max_items": null, "max_length": null, "note": null}])
    );
    assert_eq!(
        by_type["mentions_custom_list"]["quantity_from"],
        "usernames"
    );
    assert_eq!(by_type["comment_replies"]["quantity_from"], "comments");
    assert_eq!(by_type["package"]["pricing"], "flat");
    assert_eq!(
        (
            by_type["package"]["min"].as_i64(),
            by_type["package"]["max"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(by_type["web_traffic"]["dripfeed"], true);
    assert_eq!(by_type["default"]["dripfeed"], false);
    let traffic: Vec<(&str, bool)> = by_type["web_traffic"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap(),
                f["required"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        traffic,
        vec![
            ("country", true),
            ("device", true),
            ("type_of_traffic", true),
            ("google_keyword", false),
            ("referring_url", false),
        ]
    );

    // API v2 lists each with the dialect's type name.
    let reseller = app.funded_reseller("Types", "100").await;
    let listed = app
        .api_v2(&[("key", &reseller.key), ("action", "services")])
        .await;
    let names: BTreeMap<String, (String, bool)> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                (
                    s["type"].as_str().unwrap().to_string(),
                    s["dripfeed"].as_bool().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(
        names["mentions_with_hashtags service"],
        ("Mentions with Hashtags".into(), false)
    );
    assert_eq!(names["seo service"], ("SEO".into(), false));
    assert_eq!(names["web_traffic service"], ("Web Traffic".into(), true));
    assert_eq!(
        names["invites_from_groups service"],
        ("Invites from Groups".into(), false)
    );

    // One order of each type through REST and one through API v2 `add`.
    let mut placed: Vec<(i64, &Case)> = Vec::new();
    let all = cases();
    let mut spent: i64 = 0;
    for case in &all {
        let service = ids[case.kind];
        let mut body = case.rest.clone();
        body["service_id"] = json!(service);
        body["link"] = json!("https://example.com/p/1");
        let order = app.post("/v1/orders", &reseller.token, body).await;
        assert_eq!(order.status, 201, "{}: {}", case.kind, order.text);
        assert_eq!(micros(&order.body["charge"]), case.charge, "{}", case.kind);
        assert_eq!(order.body["quantity"], case.quantity, "{}", case.kind);
        assert_eq!(order.body["service_type"], case.kind);
        placed.push((order.body["id"].as_i64().unwrap(), case));

        let service_text = service.to_string();
        let mut form = vec![
            ("key", reseller.key.as_str()),
            ("action", "add"),
            ("service", service_text.as_str()),
            ("link", "https://example.com/p/1"),
        ];
        form.extend(case.v2.iter().copied());
        let added = app.api_v2(&form).await;
        let id = added.body["order"]
            .as_i64()
            .unwrap_or_else(|| panic!("{}: {}", case.kind, added.text));
        let order = app.order_json(&reseller.token, id).await;
        assert_eq!(micros(&order["charge"]), case.charge, "{} v2", case.kind);
        assert_eq!(order["quantity"], case.quantity, "{} v2", case.kind);
        placed.push((id, case));
        spent += 2 * case.charge;
    }
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        100_000_000 - spent
    );
    app.assert_books_balance();

    // The order returns the fields it was placed with, cleaned.
    let mentions = placed.iter().find(|(_, c)| c.kind == "mentions").unwrap().0;
    let order = app.order_json(&reseller.token, mentions).await;
    assert_eq!(order["usernames"], json!(["alice", "bob"]));
    assert!(order.get("comments").is_none(), "{order}");
    let traffic = placed
        .iter()
        .find(|(_, c)| c.kind == "web_traffic")
        .unwrap()
        .0;
    let order = app.order_json(&reseller.token, traffic).await;
    assert_eq!(
        (
            &order["country"],
            &order["device"],
            &order["type_of_traffic"],
            &order["google_keyword"]
        ),
        (&json!("US"), &json!(5), &json!(1), &json!("best pizza"))
    );

    // Forwarded with exactly the type's fields.
    for _ in 0..20 {
        if upstream.calls_of("add").len() >= placed.len() {
            break;
        }
        app.make_due();
        app.worker_pass().await;
    }
    let adds = upstream.calls_of("add");
    assert_eq!(adds.len(), placed.len());
    for (order_id, case) in &placed {
        let job = app.provider_order(*order_id);
        let sent = adds
            .iter()
            .find(|a| a.get("idempotency_key") == Some(&job.idempotency_key))
            .unwrap_or_else(|| panic!("order {order_id} was not sent"));
        let mut expected: BTreeMap<&str, &str> = [
            ("key", "k"),
            ("action", "add"),
            ("service", case.remote),
            ("link", "https://example.com/p/1"),
            ("idempotency_key", job.idempotency_key.as_str()),
        ]
        .into_iter()
        .collect();
        expected.extend(case.forwarded.iter().copied());
        let mut got: BTreeMap<&str, &str> =
            sent.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        // The profile URL and the username both forward as given (REST sent the URL).
        if expected.get("username") == Some(&"*") {
            let username = got.remove("username").unwrap();
            assert!(
                username == "https://instagram.com/star" || username == "star",
                "{username}"
            );
            expected.remove("username");
        }
        assert_eq!(got, expected, "{} (order {order_id})", case.kind);
    }

    // Synced back: a Partial of a list-based order refunds the undelivered share; a flat
    // order's Partial goes to review; a flat order canceled is refunded whole.
    let find = |kind: &str| placed.iter().find(|(_, c)| c.kind == kind).unwrap().0;
    let custom_list = find("mentions_custom_list");
    let package = find("package");
    let comments_package = find("custom_comments_package");
    {
        let mut state = panel.lock().unwrap();
        for (order, status, remains) in [
            (custom_list, "Partial", "1"),
            (package, "Partial", "300"),
            (comments_package, "Canceled", "3"),
        ] {
            let remote = app.provider_order(order).provider_order_id.unwrap();
            state.statuses.insert(
                remote,
                json!({"charge": "0.5", "start_count": "10", "status": status, "remains": remains, "currency": "USD"}),
            );
        }
    }
    for _ in 0..5 {
        app.make_due();
        app.worker_pass().await;
    }
    let list_order = app.order_json(&reseller.token, custom_list).await;
    assert_eq!(list_order["status"], "partial");
    // 16000 × 1/4 undelivered.
    assert_eq!(micros(&list_order["refunded"]), 4_000);
    let package_order = app.order_json(&reseller.token, package).await;
    assert_eq!(package_order["status"], "partial");
    assert_eq!(micros(&package_order["refunded"]), 0);
    let queue = app.get("/v1/admin/review-queue", &app.admin_token).await;
    let waiting: Vec<&Value> = queue.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["order_id"] == package)
        .collect();
    assert_eq!(waiting.len(), 1, "{}", queue.text);
    assert_eq!(micros(&waiting[0]["amount"]), 5_000_000);
    assert_eq!(waiting[0]["source"], "automatic");
    let canceled = app.order_json(&reseller.token, comments_package).await;
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(micros(&canceled["refunded"]), 7_500_000);
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        100_000_000 - spent + 4_000 + 7_500_000
    );

    // A mass order takes the same fields, line by line.
    let batch = app
        .post(
            "/v1/orders/batch",
            &reseller.token,
            json!({"orders": [
                {"service_id": ids["poll"], "link": "https://t.me/c/1/9", "quantity": 10, "answer_number": 3},
                {"service_id": ids["poll"], "link": "https://t.me/c/1/9", "quantity": 10},
            ]}),
        )
        .await;
    assert_eq!(batch.status, 200, "{}", batch.text);
    assert_eq!(batch.body["results"][0]["order"]["answer_number"], 3);
    assert_eq!(micros(&batch.body["results"][0]["order"]["charge"]), 30_000);
    assert_eq!(batch.body["results"][1]["error"]["param"], "answer_number");
    spent += 30_000;

    // An operator decides the package's partial: half of it back.
    let review = waiting[0]["id"].as_i64().unwrap();
    let approved = app
        .post(
            &format!("/v1/admin/refunds/{review}/approve"),
            &app.admin_token,
            json!({"amount": "2.5"}),
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    assert_eq!(
        app.balance_micros(&reseller.token).await,
        100_000_000 - spent + 4_000 + 7_500_000 + 2_500_000
    );
    app.assert_books_balance();

    // The provider changes a type: the dry run shows it, from and to.
    {
        let mut state = panel.lock().unwrap();
        let list = state.services.as_array_mut().unwrap();
        list[0]["type"] = json!("Poll");
    }
    let provider = app.get("/v1/admin/providers", &app.admin_token).await;
    let path = format!(
        "/v1/admin/providers/{}/sync-services",
        provider.body["data"][0]["id"]
    );
    let dry = app
        .post(&path, &app.admin_token, json!({"dry_run": true}))
        .await;
    assert_eq!(dry.status, 200, "{}", dry.text);
    let updated = dry.body["updated"].as_array().unwrap();
    assert_eq!(updated.len(), 1, "{}", dry.text);
    assert_eq!(
        (&updated[0]["previous_type"], &updated[0]["type"]),
        (&json!("default"), &json!("poll"))
    );
    assert!(updated[0]["changes"]
        .as_array()
        .unwrap()
        .contains(&json!("type")));
}

#[actix_rt::test]
async fn missing_extra_and_malformed_fields_are_refused_naming_the_field_and_change_nothing() {
    let (app, _panel, _upstream, ids) = imported().await;
    let reseller = app.funded_reseller("Strict", "50").await;
    let link = "https://example.com/p/1";
    let long_list: Vec<String> = (0..10_001).map(|i| format!("u{i}")).collect();
    let rest_cases: Vec<(&str, Value, &str)> = vec![
        ("poll", json!({"quantity": 100}), "answer_number"),
        (
            "poll",
            json!({"quantity": 100, "answer_number": 0}),
            "answer_number",
        ),
        (
            "poll",
            json!({"quantity": 100, "answer_number": 1, "usernames": ["a"]}),
            "usernames",
        ),
        (
            "mentions",
            json!({"quantity": 100, "usernames": [" ", ""]}),
            "usernames",
        ),
        (
            "mentions",
            json!({"quantity": 100, "usernames": long_list}),
            "usernames",
        ),
        (
            "mentions_with_hashtags",
            json!({"quantity": 100, "usernames": ["a"], "hashtags": ["two words"]}),
            "hashtags",
        ),
        (
            "mentions_media_likers",
            json!({"quantity": 100, "media": "not a url"}),
            "media",
        ),
        (
            "mentions_hashtag",
            json!({"quantity": 100, "hashtag": "x".repeat(256)}),
            "hashtag",
        ),
        (
            "mentions_custom_list",
            json!({"usernames": ["a", "b"], "quantity": 3}),
            "quantity",
        ),
        ("comment_replies", json!({"comments": ["a"]}), "username"),
        ("package", json!({"quantity": 100}), "quantity"),
        ("package", json!({"comments": ["a"]}), "comments"),
        (
            "default",
            json!({"quantity": 100, "runs": 2, "interval": 5}),
            "runs",
        ),
        (
            "web_traffic",
            json!({"quantity": 100, "country": "US", "device": 9, "type_of_traffic": 3}),
            "device",
        ),
        (
            "web_traffic",
            json!({"quantity": 100, "country": "US", "device": 1, "type_of_traffic": 2}),
            "referring_url",
        ),
        (
            "web_traffic",
            json!({"quantity": 100, "country": "US", "device": 1, "type_of_traffic": 3,
                   "google_keyword": "pizza"}),
            "google_keyword",
        ),
        (
            "web_traffic",
            json!({"quantity": 100, "country": "U$", "device": 1, "type_of_traffic": 3}),
            "country",
        ),
        ("seo", json!({"quantity": 100}), "keywords"),
        (
            "invites_from_groups",
            json!({"quantity": 100, "groups": ["a\u{7}b"]}),
            "groups",
        ),
    ];
    for (kind, fields, param) in rest_cases {
        let mut body = fields.clone();
        body["service_id"] = json!(ids[kind]);
        body["link"] = json!(link);
        let reply = app.post("/v1/orders", &reseller.token, body).await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(
            reply.body["param"], param,
            "{kind} {fields}: {}",
            reply.text
        );
    }
    let v2_cases: Vec<(&str, Form, &str)> = vec![
        ("poll", vec![("quantity", "100")], "Incorrect answer_number"),
        (
            "poll",
            vec![("quantity", "100"), ("answer_number", "two")],
            "Incorrect answer_number",
        ),
        ("mentions", vec![("quantity", "100")], "Incorrect usernames"),
        (
            "poll",
            vec![
                ("quantity", "100"),
                ("answer_number", "1"),
                ("usernames", "a"),
            ],
            "Incorrect usernames",
        ),
        (
            "mentions_custom_list",
            vec![("usernames", "a\nb"), ("quantity", "5")],
            "Quantity must equal",
        ),
        (
            "web_traffic",
            vec![
                ("quantity", "100"),
                ("country", "US"),
                ("device", "1"),
                ("type_of_traffic", "4"),
            ],
            "Incorrect type_of_traffic",
        ),
        (
            "mentions_media_likers",
            vec![("quantity", "100"), ("media", "ftp://x")],
            "Incorrect media",
        ),
    ];
    for (kind, fields, error) in v2_cases {
        let service = ids[kind].to_string();
        let mut form = vec![
            ("key", reseller.key.as_str()),
            ("action", "add"),
            ("service", service.as_str()),
            ("link", link),
        ];
        form.extend(fields.iter().copied());
        let reply = app.api_v2(&form).await;
        assert_eq!(reply.status, 200);
        let text = reply.body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{kind} {fields:?}: {}", reply.text));
        assert!(text.starts_with(error), "{kind} {fields:?}: {text}");
    }
    assert_eq!(app.order_count(), 0);
    assert_eq!(app.balance_micros(&reseller.token).await, 50_000_000);
    app.assert_books_balance();

    // A full list fits an order's body: 10000 usernames of 5 characters (59999 joined).
    let full: Vec<String> = (0..10_000).map(|i| format!("{i:05}")).collect();
    let reply = app
        .post(
            "/v1/orders",
            &reseller.token,
            json!({"service_id": ids["mentions_custom_list"], "link": link, "usernames": full}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    // 10000 × 4 / 1000 = 40.
    assert_eq!(micros(&reply.body["charge"]), 40_000_000);
    assert_eq!(reply.body["usernames"].as_array().unwrap().len(), 10_000);
    app.assert_books_balance();
}

#[actix_rt::test]
async fn operators_create_each_type_with_its_rules_and_drip_feed_stays_a_rest_word() {
    let app = crate::helpers::spawn_app().await;
    let create = |body: Value| {
        let app = &app;
        async move { app.post("/v1/admin/services", &app.admin_token, body).await }
    };
    let base = json!({"name": "S", "category": "C", "rate": "1", "min": 10, "max": 1000});
    let with = |extra: Value| {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let drip = create(with(json!({"type": "drip_feed"}))).await;
    assert_eq!(drip.status, 201, "{}", drip.text);
    assert_eq!(
        (&drip.body["type"], &drip.body["dripfeed"]),
        (&json!("drip_feed"), &json!(true))
    );
    let flagged = create(with(json!({"type": "default", "dripfeed": true}))).await;
    assert_eq!(flagged.body["type"], "drip_feed");
    let traffic = create(with(json!({"type": "web_traffic", "dripfeed": true}))).await;
    assert_eq!(
        (&traffic.body["type"], &traffic.body["dripfeed"]),
        (&json!("web_traffic"), &json!(true))
    );
    let poll = create(with(json!({"type": "poll", "dripfeed": true}))).await;
    poll.assert_problem(422, "validation_failed");
    assert_eq!(poll.body["param"], "dripfeed");
    let package = create(with(json!({"type": "package"}))).await;
    package.assert_problem(422, "validation_failed");
    assert_eq!(package.body["param"], "min");
    let package = create(json!({"name": "P", "category": "C", "type": "package", "rate": "12.5", "min": 1, "max": 1})).await;
    assert_eq!(package.status, 201, "{}", package.text);
    assert_eq!(package.body["pricing"], "flat");
    // Subscriptions is a type of its own now (tests/api/subscriptions.rs); a word that
    // is none of the types is refused.
    let unknown = create(with(json!({"type": "auto_likes"}))).await;
    unknown.assert_problem(422, "validation_failed");
    assert_eq!(unknown.body["param"], "type");

    // Turning drip-feed off by the type word, and on by the flag.
    let id = drip.body["id"].as_i64().unwrap();
    let off = app
        .patch(
            &format!("/v1/admin/services/{id}"),
            &app.admin_token,
            json!({"type": "default"}),
        )
        .await;
    assert_eq!(
        (&off.body["type"], &off.body["dripfeed"]),
        (&json!("default"), &json!(false))
    );
    let on = app
        .patch(
            &format!("/v1/admin/services/{id}"),
            &app.admin_token,
            json!({"dripfeed": true}),
        )
        .await;
    assert_eq!(
        (&on.body["type"], &on.body["dripfeed"]),
        (&json!("drip_feed"), &json!(true))
    );

    // `dripfeed` sent alone keeps the type.
    let off = app
        .patch(
            &format!("/v1/admin/services/{id}"),
            &app.admin_token,
            json!({"dripfeed": false}),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.text);
    assert_eq!(
        (&off.body["type"], &off.body["dripfeed"]),
        (&json!("default"), &json!(false))
    );

    // A flat order charges the price once, whatever the package holds.
    let reseller = app.funded_reseller("Flat", "20").await;
    let order = app
        .post(
            "/v1/orders",
            &reseller.token,
            json!({"service_id": package.body["id"], "link": "https://example.com/p/1"}),
        )
        .await;
    assert_eq!(order.status, 201, "{}", order.text);
    assert_eq!(micros(&order.body["charge"]), 12_500_000);
    assert_eq!(app.balance_micros(&reseller.token).await, 7_500_000);
    let order_id = order.body["id"].as_i64().unwrap();
    let id_text = order_id.to_string();
    let form = [
        ("key", reseller.key.as_str()),
        ("action", "status"),
        ("order", id_text.as_str()),
    ];

    // Delivered in part: nothing automatic, a review opens; API v2 says nothing is
    // undelivered yet, so a client panel refunds nothing either.
    let partial = app
        .outcome(order_id, json!({"status": "partial", "remains": 300}))
        .await;
    assert_eq!(partial.status, 200, "{}", partial.text);
    assert_eq!(app.balance_micros(&reseller.token).await, 7_500_000);
    let queue = app.get("/v1/admin/review-queue", &app.admin_token).await;
    let review = queue.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["order_id"] == order_id)
        .cloned()
        .unwrap_or_else(|| panic!("{}", queue.text));
    assert_eq!(micros(&review["amount"]), 12_500_000);
    let v2 = app.api_v2(&form).await;
    assert_eq!(
        (&v2.body["status"], &v2.body["remains"]),
        (&json!("Partial"), &json!("0"))
    );

    // Canceled after all: refunded whole, once, and the review closes by itself.
    let canceled = app.outcome(order_id, json!({"status": "canceled"})).await;
    assert_eq!(canceled.status, 200, "{}", canceled.text);
    assert_eq!(app.balance_micros(&reseller.token).await, 20_000_000);
    let closed = app
        .get(&format!("/v1/refunds/{}", review["id"]), &reseller.token)
        .await;
    assert_eq!(closed.body["status"], "canceled", "{}", closed.text);
    let v2 = app.api_v2(&form).await;
    assert_eq!(
        (&v2.body["status"], &v2.body["remains"]),
        (&json!("Canceled"), &json!("1"))
    );
    app.assert_books_balance();
}

/// A database as the version before service types left it: a drip-feed service, a
/// per-1000 package and a custom-comments order. The upgrade makes drip-feed a flag,
/// prices the package flat at what its `min` cost, and keeps every order's charge.
#[actix_rt::test]
async fn the_upgrade_turns_drip_feed_into_a_flag_and_packages_flat_and_keeps_orders() {
    use diesel::prelude::*;
    let (url, _db) = empty_database();
    reseller_api::db::migrate_through(&url, Some("2026-12-06-003300")).unwrap();
    {
        let pool = reseller_api::db::connect(&url, 1).expect("connect");
        let mut conn = pool.get().unwrap();
        let now = "2026-12-01 10:00:00";
        for sql in [
            format!("INSERT INTO accounts (name, role, status, currency, balance_micros, created_at, updated_at) VALUES ('old', 'reseller', 'active', 'USD', 0, '{now}', '{now}')"),
            format!("INSERT INTO services (name, category, kind, rate_micros, min_quantity, max_quantity, refill, cancel, status, created_at, updated_at) VALUES ('Drip', 'C', 'drip_feed', 1000000, 10, 1000, false, false, 'active', '{now}', '{now}')"),
            format!("INSERT INTO services (name, category, kind, rate_micros, min_quantity, max_quantity, refill, cancel, status, created_at, updated_at) VALUES ('Pack', 'C', 'package', 2000001, 100, 1000, false, false, 'active', '{now}', '{now}')"),
            format!("INSERT INTO services (name, category, kind, rate_micros, min_quantity, max_quantity, refill, cancel, status, created_at, updated_at) VALUES ('Comments', 'C', 'custom_comments', 5000000, 1, 100, false, false, 'active', '{now}', '{now}')"),
            format!("INSERT INTO orders (account_id, service_id, link, quantity, comments, charge_micros, refunded_micros, status, created_at, updated_at, approved_dispute_micros) VALUES (1, 3, 'https://x.example/p', 2, 'nice\ngreat', 10000, 0, 'pending', '{now}', '{now}', 0)"),
            format!("INSERT INTO orders (account_id, service_id, link, quantity, charge_micros, refunded_micros, status, created_at, updated_at, approved_dispute_micros) VALUES (1, 2, 'https://x.example/p', 300, 600000, 0, 'pending', '{now}', '{now}', 0)"),
        ] {
            diesel::sql_query(sql).execute(&mut *conn).unwrap();
        }
    }
    let app = spawn_app_on(&url).await;
    let services = app.get("/v1/admin/services", &app.admin_token).await;
    let data = services.body["data"].as_array().unwrap();
    assert_eq!(
        (&data[0]["type"], &data[0]["dripfeed"]),
        (&json!("drip_feed"), &json!(true))
    );
    // 2.000001 × 100 / 1000 = 0.2000001, half-up to 0.200000.
    assert_eq!(data[1]["type"], "package");
    assert_eq!(micros(&data[1]["rate"]), 200_000);
    assert_eq!(
        (data[1]["min"].as_i64(), data[1]["max"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(data[2]["type"], "custom_comments");
    let orders = app.get("/v1/admin/orders?limit=10", &app.admin_token).await;
    assert_eq!(orders.status, 200, "{}", orders.text);
    let rows = orders.body["data"].as_array().unwrap();
    let comments = rows.iter().find(|o| o["id"] == 1).unwrap();
    assert_eq!(comments["service_type"], "custom_comments");
    assert_eq!(comments["comments"], json!(["nice", "great"]));
    assert_eq!(micros(&comments["charge"]), 10_000);
    // Placed per unit before packages were flat: it keeps the per-unit rule.
    let package = rows.iter().find(|o| o["id"] == 2).unwrap();
    assert_eq!(package["service_type"], "default");
    assert_eq!(micros(&package["charge"]), 600_000);
}
