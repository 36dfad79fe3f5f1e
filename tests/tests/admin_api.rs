//! The admin API: key management requires an administrator; probes stay open.

use gatehouse_tests::{GatehouseBuilder, Upstream};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn only_administrators_manage_keys_through_the_admin_api() {
    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .admin_groups(&["gatehouse-admins"])
        .policy("allow-all", "allow-all", None)
        .http_connection("api", &upstream.url(), &["allow-all"], "")
        .start();
    let admin = gh.create_key("root-ops", &["gatehouse-admins"]);
    let dev = gh.create_key("dev-bot", &["dev"]);
    let c = gatehouse_tests::http_client();
    let keys = gh.admin_url("/v1/keys");
    let new_key = json!({"name": "made-by-api", "owner": "alice@example.com", "groups": ["dev"], "expires_in_secs": 3600});

    // Probes need no credential.
    assert_eq!(
        c.get(gh.admin_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // No credential, a bad one, a non-admin: refused.
    assert_eq!(
        c.post(&keys).json(&new_key).send().await.unwrap().status(),
        401
    );
    assert_eq!(
        c.post(&keys)
            .bearer_auth("ghk_nope")
            .json(&new_key)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let resp = c
        .post(&keys)
        .bearer_auth(&dev)
        .json(&new_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(
        resp.json::<Value>().await.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not in an admin group")
    );

    // An administrator creates a key; it works on the data path.
    let resp = c
        .post(&keys)
        .bearer_auth(&admin)
        .json(&new_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let secret = created["key"].as_str().unwrap().to_string();
    let id = created["info"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        c.get(gh.url("api", "/ok"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Listing never shows secrets.
    let listed = c
        .get(&keys)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listed.contains("made-by-api") && !listed.contains(&secret[20..]));

    // Bad input is a 400 that says what is wrong.
    let resp = c
        .post(&keys)
        .bearer_auth(&admin)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(
        resp.json::<Value>().await.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("owner")
    );

    // Revocation through the API stops the key.
    let resp = c
        .delete(format!("{keys}/{id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_eq!(
        c.get(gh.url("api", "/ok"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.delete(format!("{keys}/{id}"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert!(!gh.log().contains(&secret[20..]), "a key secret was logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_admin_groups_the_admin_api_is_read_only() {
    let gh = GatehouseBuilder::new().start();
    let key = gh.create_key("anyone", &["ops"]);
    let c = gatehouse_tests::http_client();
    let resp = c
        .get(gh.admin_url("/v1/keys"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("admin_groups"));
}
