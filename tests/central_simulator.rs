//! The simulator itself, over raw HTTP, against the reference's checklist: token, whoami,
//! tenant pages, key paging, filters, errors, expiry, throttling, deletes.

mod central_support;

use std::time::Duration;

use central_support::*;
use chrono::{SecondsFormat, Utc};
use lastseen::central::simulator::{Estate, Faults, Mode, RetryAfter, Simulator, SimulatorConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Raw {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Raw {
    async fn new(sim: &Simulator) -> Raw {
        lastseen::central::client::install_crypto_provider();
        let http = reqwest::Client::new();
        let token = token(&http, sim).await;
        Raw {
            http,
            base: sim.base_url().to_owned(),
            token,
        }
    }

    /// GET on the global host (`path` starting with `/`) with the partner header.
    async fn global(&self, sim: &Simulator, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("X-Partner-ID", sim.caller_id())
            .send()
            .await
            .unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// GET on a tenant's regional host; `query` is sent as written.
    async fn endpoints(&self, tenant: usize, region: &str, query: &str) -> (StatusCode, Value) {
        let url = format!(
            "{}/region/{region}/endpoint/v1/endpoints?{query}",
            self.base
        );
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .header("X-Tenant-ID", tenant_id(tenant))
            .send()
            .await
            .unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }
}

async fn token(http: &reqwest::Client, sim: &Simulator) -> String {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "lastseen-simulator"),
        ("client_secret", "simulator-secret"),
        ("scope", "token"),
    ];
    let response = http.post(sim.auth_url()).form(&form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn assert_error_body(body: &Value) {
    for field in [
        "error",
        "message",
        "correlationId",
        "requestId",
        "createdAt",
    ] {
        assert!(body[field].is_string(), "{field} missing in {body}");
    }
}

#[tokio::test]
async fn token_endpoint_checks_form_and_credentials() {
    let sim = start(
        1,
        1,
        SimulatorConfig {
            token_lifetime_secs: 120,
            ..Default::default()
        },
    )
    .await;
    lastseen::central::client::install_crypto_provider();
    let http = reqwest::Client::new();
    let good = [
        ("grant_type", "client_credentials"),
        ("client_id", "lastseen-simulator"),
        ("client_secret", "simulator-secret"),
        ("scope", "token"),
    ];

    let response = http.post(sim.auth_url()).form(&good).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 120);
    assert_eq!(body["errorCode"], "success");
    assert_eq!(body["message"], "OK");
    assert!(body["refresh_token"].is_string() && body["trackingId"].is_string());

    let mut wrong = good;
    wrong[2].1 = "nope";
    let response = http.post(sim.auth_url()).form(&wrong).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorCode"], "oauth.invalid_client_secret");
    assert!(body["trackingId"].is_string());

    let mut no_scope = good;
    no_scope[3].1 = "other";
    let response = http
        .post(sim.auth_url())
        .form(&no_scope)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let as_json = json!({"grant_type": "client_credentials"});
    let response = http
        .post(sim.auth_url())
        .json(&as_json)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    sim.stop().await;
}

#[tokio::test]
async fn whoami_lives_on_the_global_host_only() {
    let sim = start(2, 1, SimulatorConfig::default()).await;
    let raw = Raw::new(&sim).await;

    let (status, body) = raw.global(&sim, "/whoami/v1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["idType"], "partner");
    assert_eq!(body["id"], sim.caller_id());
    assert_eq!(body["apiHosts"]["global"], sim.base_url());
    assert!(
        body["apiHosts"]
            .as_object()
            .unwrap()
            .contains_key("dataRegion")
    );
    assert!(body["apiHosts"]["dataRegion"].is_null());

    let (status, body) = raw.global(&sim, "/region/eu01/whoami/v1").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_error_body(&body);
    sim.stop().await;

    let absent = SimulatorConfig {
        whoami_region_absent: true,
        ..Default::default()
    };
    let sim = start(2, 1, absent).await;
    let raw = Raw::new(&sim).await;
    let (_, body) = raw.global(&sim, "/whoami/v1").await;
    assert!(
        !body["apiHosts"]
            .as_object()
            .unwrap()
            .contains_key("dataRegion"),
        "{body}"
    );
    sim.stop().await;

    let tenant = SimulatorConfig {
        mode: Mode::Tenant,
        tenant_id: Some(tenant_id(1)),
        ..Default::default()
    };
    let sim = start(2, 1, tenant).await;
    let raw = Raw::new(&sim).await;
    let (_, body) = raw.global(&sim, "/whoami/v1").await;
    assert_eq!(body["idType"], "tenant");
    assert_eq!(
        body["apiHosts"]["dataRegion"],
        format!("{}/region/us03", sim.base_url())
    );
    // A tenant's credentials reach no other tenant.
    let (status, _) = raw.endpoints(0, "eu01", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = raw.global(&sim, "/partner/v1/tenants").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    sim.stop().await;
}

#[tokio::test]
async fn calls_need_a_valid_token_and_the_right_headers() {
    let sim = start(1, 3, SimulatorConfig::default()).await;
    let raw = Raw::new(&sim).await;

    let response = raw
        .http
        .get(format!("{}/whoami/v1", raw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_error_body(&response.json().await.unwrap());

    let response = raw
        .http
        .get(format!("{}/whoami/v1", raw.base))
        .bearer_auth("made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let url = format!("{}/region/eu01/endpoint/v1/endpoints", raw.base);
    let response = raw
        .http
        .get(&url)
        .bearer_auth(&raw.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "no X-Tenant-ID"
    );

    let response = raw
        .http
        .get(&url)
        .bearer_auth(&raw.token)
        .header("X-Tenant-ID", "00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "a tenant not managed"
    );

    let response = raw
        .http
        .get(format!("{}/partner/v1/tenants", raw.base))
        .bearer_auth(&raw.token)
        .header("X-Partner-ID", "someone-else")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (status, _) = raw.global(&sim, "/organization/v1/tenants").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "partner credentials on the organization list"
    );
    let (status, body) = raw.global(&sim, "/endpoint/v1/endpoints").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "endpoints live on regional hosts"
    );
    assert_error_body(&body);
    sim.stop().await;
}

#[tokio::test]
async fn tokens_expire() {
    let config = SimulatorConfig {
        token_valid_ms: Some(200),
        ..Default::default()
    };
    let sim = start(1, 1, config).await;
    let raw = Raw::new(&sim).await;
    assert_eq!(raw.global(&sim, "/whoami/v1").await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = raw.global(&sim, "/whoami/v1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "token expired");
    sim.stop().await;
}

#[tokio::test]
async fn tenants_page_by_number_with_totals_on_request() {
    let sim = start(120, 0, SimulatorConfig::default()).await;
    let raw = Raw::new(&sim).await;

    let (status, body) = raw.global(&sim, "/partner/v1/tenants").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["items"].as_array().unwrap().len(),
        50,
        "default page size"
    );
    assert!(body["pages"].get("total").is_none() && body["pages"].get("items").is_none());
    assert_eq!(body["pages"]["current"], 1);

    let (_, body) = raw
        .global(
            &sim,
            "/partner/v1/tenants?page=3&pageSize=50&pageTotal=true",
        )
        .await;
    assert_eq!(body["items"].as_array().unwrap().len(), 20);
    assert_eq!(body["pages"]["total"], 3);
    assert_eq!(body["pages"]["items"], 120);
    let tenant = &body["items"][0];
    assert_eq!(tenant["id"], tenant_id(100));
    assert_eq!(tenant["apiHost"], format!("{}/region/us03", sim.base_url()));
    assert_eq!(tenant["dataRegion"], "us03");
    assert_eq!(tenant["partner"]["id"], sim.caller_id());

    let (status, _) = raw.global(&sim, "/partner/v1/tenants?pageSize=101").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = raw
        .global(&sim, &format!("/partner/v1/tenants/{}", tenant_id(5)))
        .await;
    assert_eq!(
        (status, body["showAs"].as_str()),
        (StatusCode::OK, Some("T5"))
    );
    let (status, _) = raw.global(&sim, "/partner/v1/tenants/unknown").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sim.stop().await;
}

#[tokio::test]
async fn endpoint_keys_are_opaque_encoded_and_absent_on_the_last_page() {
    let sim = start(1, 25, SimulatorConfig::default()).await;
    let raw = Raw::new(&sim).await;

    let (status, first) = raw.endpoints(0, "eu01", "pageSize=10&view=full").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["items"].as_array().unwrap().len(), 10);
    assert_eq!(first["pages"]["size"], 10);
    assert_eq!(first["pages"]["maxSize"], 500);
    assert!(first["pages"].get("total").is_none() && first["pages"].get("items").is_none());
    let key = first["pages"]["nextKey"].as_str().unwrap().to_owned();
    assert!(
        key.contains('+') && key.contains('/') && key.contains('='),
        "{key}"
    );

    // Sent unencoded, the `+` turns into a space and the key is refused.
    let (status, body) = raw
        .endpoints(
            0,
            "eu01",
            &format!("pageSize=10&view=full&pageFromKey={key}"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("percent-encoded"),
        "{body}"
    );

    // A key used with other filters is refused: the query must stay the same on every page.
    let other = format!(
        "pageSize=10&view=full&healthStatus=good&pageFromKey={}",
        encode(&key)
    );
    assert_eq!(
        raw.endpoints(0, "eu01", &other).await.0,
        StatusCode::BAD_REQUEST
    );

    let (status, second) = raw
        .endpoints(
            0,
            "eu01",
            &format!(
                "pageSize=10&view=full&pageTotal=true&pageFromKey={}",
                encode(&key)
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["pages"]["fromKey"], key);
    assert_eq!(second["pages"]["total"], 3);
    assert_eq!(second["pages"]["items"], 25);
    let key = second["pages"]["nextKey"].as_str().unwrap().to_owned();

    let (_, last) = raw
        .endpoints(
            0,
            "eu01",
            &format!("pageSize=10&view=full&pageFromKey={}", encode(&key)),
        )
        .await;
    assert_eq!(last["items"].as_array().unwrap().len(), 5);
    assert!(last["pages"].get("nextKey").is_none(), "{}", last["pages"]);

    let ids: Vec<String> = [&first, &second, &last]
        .iter()
        .flat_map(|page| page["items"].as_array().unwrap().iter())
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, sim.endpoint_ids(&tenant_id(0)));

    // An empty pageFromKey is a first page, as Sophos's own samples send it.
    let (status, again) = raw
        .endpoints(0, "eu01", "pageSize=10&view=full&pageFromKey=")
        .await;
    assert_eq!((status, &again["items"]), (StatusCode::OK, &first["items"]));
    sim.stop().await;
}

#[tokio::test]
async fn endpoint_parameters_are_checked() {
    let sim = start(1, 5, SimulatorConfig::default()).await;
    let raw = Raw::new(&sim).await;
    let refused = [
        ("pageSize=501", "above the maximum 500"),
        ("pageSize=0", "at least 1"),
        ("lastSeenBefore=2024-01-15T10:30:00", "no zone designator"),
        ("lastSeenAfter=P30D", "without a sign"),
        ("pageKey=abc", "unknown query parameter"),
        ("healthStatus=great", "is not one of"),
        ("view=everything", "view must be"),
        ("online=yes", "true or false"),
        ("sort=id", "not supported by the simulator"),
    ];
    for (query, problem) in refused {
        let (status, body) = raw.endpoints(0, "eu01", query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_error_body(&body);
        assert!(
            body["message"].as_str().unwrap().contains(problem),
            "{query}: {body}"
        );
    }

    let clamp = SimulatorConfig {
        clamp_page_size: true,
        ..Default::default()
    };
    let clamped = start(1, 5, clamp).await;
    let raw = Raw::new(&clamped).await;
    let (status, body) = raw.endpoints(0, "eu01", "pageSize=900").await;
    assert_eq!(
        (status, body["pages"]["size"].as_u64()),
        (StatusCode::OK, Some(500))
    );
    sim.stop().await;
    clamped.stop().await;
}

#[tokio::test]
async fn endpoint_filters_select_what_they_say() {
    let now = Utc::now();
    let boundary = now - chrono::Duration::days(10);
    let stamp = |at: chrono::DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let items = vec![
        json!({"id": "a", "tenant": {"id": tenant_id(0)}, "hostname": "FIN-LT-01", "lastSeenAt": stamp(boundary),
               "health": {"overall": "good"}, "type": "computer", "online": true, "tamperProtectionEnabled": true}),
        json!({"id": "b", "tenant": {"id": tenant_id(0)}, "hostname": "fin-lt-02",
               "lastSeenAt": stamp(boundary - chrono::Duration::milliseconds(1)),
               "health": {"overall": "bad"}, "type": "server", "online": false, "tamperProtectionEnabled": false}),
        json!({"id": "c", "tenant": {"id": tenant_id(0)}, "hostname": "HR-PC", "lastSeenAt": stamp(now - chrono::Duration::days(100)),
               "health": {"overall": "suspicious"}, "type": "computer"}),
        json!({"id": "d", "tenant": {"id": tenant_id(0)}}),
    ];
    let estate = Estate::from_values(tenant_records(1), items).unwrap();
    let sim = Simulator::start(estate, SimulatorConfig::default(), loopback())
        .await
        .unwrap();
    let raw = Raw::new(&sim).await;

    let ids = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let cases = [
        // Before is exclusive and after inclusive, at the millisecond.
        (
            format!("lastSeenBefore={}", encode(&stamp(boundary))),
            vec!["b", "c"],
        ),
        (
            format!("lastSeenAfter={}", encode(&stamp(boundary))),
            vec!["a"],
        ),
        ("lastSeenBefore=-P30D".to_owned(), vec!["c"]),
        ("lastSeenAfter=-P30D".to_owned(), vec!["a", "b"]),
        (
            "lastSeenBefore=-PT1H&lastSeenAfter=-P11D".to_owned(),
            vec!["a", "b"],
        ),
        ("ids=a,c".to_owned(), vec!["a", "c"]),
        ("ids=a&ids=d".to_owned(), vec!["a", "d"]),
        ("hostnameContains=fin-LT".to_owned(), vec!["a", "b"]),
        ("healthStatus=bad,suspicious".to_owned(), vec!["b", "c"]),
        ("type=server".to_owned(), vec!["b"]),
        ("tamperProtectionEnabled=false".to_owned(), vec!["b"]),
        ("online=true".to_owned(), vec!["a"]),
    ];
    for (query, expected) in cases {
        let (status, body) = raw.endpoints(0, "eu01", &query).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(ids(&body), expected, "{query}");
    }

    let (_, basic) = raw.endpoints(0, "eu01", "view=basic&ids=a").await;
    let fields: Vec<&String> = basic["items"][0].as_object().unwrap().keys().collect();
    assert_eq!(fields, ["hostname", "id", "tenant", "type"]);
    let (_, full) = raw.endpoints(0, "eu01", "view=full&ids=a").await;
    assert_eq!(full["items"][0]["online"], true);
    sim.stop().await;
}

#[tokio::test]
async fn throttling_sends_retry_after_as_configured() {
    for (retry_after, expect) in [
        (RetryAfter::None, None),
        (RetryAfter::Seconds(2), Some("2".to_owned())),
        (RetryAfter::Date(5), Some("date".to_owned())),
    ] {
        let faults = Faults {
            throttle_every: 2,
            throttle_burst: 1,
            retry_after,
            ..Faults::default()
        };
        let sim = start(
            1,
            1,
            SimulatorConfig {
                faults,
                ..Default::default()
            },
        )
        .await;
        let raw = Raw::new(&sim).await;
        let response = raw
            .http
            .get(format!("{}/whoami/v1", raw.base))
            .bearer_auth(&raw.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let header = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        match expect.as_deref() {
            None => assert!(header.is_none()),
            Some("date") => {
                let when = httpdate::parse_http_date(header.as_deref().unwrap()).unwrap();
                let ahead = when.duration_since(std::time::SystemTime::now()).unwrap();
                assert!(ahead > Duration::from_secs(3) && ahead <= Duration::from_secs(5));
            }
            Some(seconds) => assert_eq!(header.as_deref(), Some(seconds)),
        }
        // The second request of each pair goes through.
        assert_eq!(raw.global(&sim, "/whoami/v1").await.0, StatusCode::OK);
        sim.stop().await;
    }
}

#[tokio::test]
async fn deletes_single_and_bulk_and_tamper_protection() {
    let sim = start(1, 4, SimulatorConfig::default()).await;
    let raw = Raw::new(&sim).await;
    let ids = sim.endpoint_ids(&tenant_id(0));
    let endpoint_url = |id: &str| format!("{}/region/eu01/endpoint/v1/endpoints/{id}", raw.base);
    let send = |request: reqwest::RequestBuilder| {
        request
            .bearer_auth(&raw.token)
            .header("X-Tenant-ID", tenant_id(0))
            .send()
    };

    let response = send(raw.http.delete(endpoint_url(&ids[0]))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"deleted": true})
    );
    let response = send(raw.http.delete(endpoint_url(&ids[0]))).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "can't find endpoint");
    assert_eq!(
        send(raw.http.get(endpoint_url(&ids[0])))
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    let bulk_url = format!("{}/region/eu01/endpoint/v1/endpoints/delete", raw.base);
    let body = json!({"endpointIds": [ids[1], ids[0], "unknown"]});
    let response = send(raw.http.post(&bulk_url).json(&body)).await.unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"endpointIds": [ids[1]]})
    );
    let response = send(raw.http.post(&bulk_url).json(&json!({"ids": []})))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let (_, list) = raw.endpoints(0, "eu01", "").await;
    let left: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(left, [ids[2].as_str(), ids[3].as_str()]);

    let tamper_url = format!("{}/tamper-protection", endpoint_url(&ids[3]));
    let response = send(raw.http.get(&tamper_url)).await.unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["enabled"], false,
        "endpoint index 3 of the estate has it off: {body}"
    );
    assert_eq!(body["previousPasswords"], json!([]));
    let change = json!({"enabled": true, "regeneratePassword": false});
    let response = send(raw.http.post(&tamper_url).json(&change))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = send(raw.http.get(&tamper_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["enabled"], true);
    sim.stop().await;
}
