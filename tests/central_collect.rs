//! The Central client and `collect central` against the simulator over real HTTP on
//! 127.0.0.1: paging, tenants, token expiry, throttling, failures, deletes.

mod central_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use central_support::*;
use lastseen::central::client::{
    BulkDeleteOutcome, CentralClient, CentralError, DeleteOutcome, EndpointQuery, TenantTarget,
};
use lastseen::central::collect::{FileSink, Progress, collect};
use lastseen::central::model::IdType;
use lastseen::central::simulator::{Faults, Mode, RetryAfter, SimulatorConfig};
use url::Url;

fn query(page_size: u32) -> EndpointQuery {
    EndpointQuery {
        page_size,
        ..EndpointQuery::default()
    }
}

fn faults(faults: Faults) -> SimulatorConfig {
    SimulatorConfig {
        faults,
        ..SimulatorConfig::default()
    }
}

#[tokio::test]
async fn hundreds_of_pages_are_collected_exactly() {
    let sim = start(2, 5_000, SimulatorConfig::default()).await;
    let client = client(&sim);
    let out = tempfile::tempdir().unwrap();

    let report = collect(
        &client,
        &FileSink::new(out.path()),
        &query(25),
        2,
        &Progress::hidden(),
    )
    .await
    .unwrap();

    assert!(report.is_complete());
    assert_eq!(report.endpoints(), 10_000);
    assert_eq!(report.pages(), 400);
    let collected = read_collected(out.path());
    for tenant in [tenant_id(0), tenant_id(1)] {
        assert_exact(&sim, &collected, &tenant);
        assert_eq!(collected.pages[&tenant], 200);
        let manifest = &collected.manifests[&tenant];
        assert_eq!(manifest["complete"], true);
        assert_eq!(manifest["pages"], 200);
        assert_eq!(manifest["endpoints"], 5_000);
        assert!(manifest.get("error").is_none(), "{manifest}");
    }
    assert_eq!(sim.stats().endpoint_pages.load(Ordering::Relaxed), 400);
    sim.stop().await;
}

#[tokio::test]
async fn pages_are_stored_as_received() {
    let sim = start(1, 30, SimulatorConfig::default()).await;
    let client = client(&sim);
    let out = tempfile::tempdir().unwrap();
    collect(
        &client,
        &FileSink::new(out.path()),
        &query(500),
        1,
        &Progress::hidden(),
    )
    .await
    .unwrap();

    let tenant = tenant_id(0);
    let body: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.path().join(&tenant).join("page-00001.json")).unwrap(),
    )
    .unwrap();
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 30);
    let first_id = items[0]["id"].as_str().unwrap();
    let served: serde_json::Value =
        serde_json::from_str(&sim.endpoint_json(&tenant, first_id).unwrap()).unwrap();
    assert_eq!(items[0], served);
    assert!(body["pages"].get("nextKey").is_none(), "{}", body["pages"]);
    sim.stop().await;
}

#[tokio::test]
async fn a_partner_with_more_than_fifty_tenants_gets_them_all() {
    let sim = start(120, 3, SimulatorConfig::default()).await;
    let client = client(&sim);

    let whoami = client.whoami().await.unwrap();
    assert_eq!(whoami.id_type, IdType::Partner);
    assert!(whoami.api_hosts.data_region.is_none());
    let tenants = client.tenants(&whoami).await.unwrap();
    assert_eq!(tenants.len(), 120);
    // Each tenant is reached on its own regional host.
    let third = TenantTarget::from_tenant(&tenants[2]).unwrap();
    assert_eq!(
        third.api_host.as_str(),
        format!("{}/region/eu02", sim.base_url())
    );

    let out = tempfile::tempdir().unwrap();
    let report = collect(
        &client,
        &FileSink::new(out.path()),
        &query(500),
        8,
        &Progress::hidden(),
    )
    .await
    .unwrap();
    assert_eq!(report.tenants.len(), 120);
    assert!(report.is_complete());
    let collected = read_collected(out.path());
    assert_eq!(collected.manifests.len(), 120);
    for index in 0..120 {
        assert_exact(&sim, &collected, &tenant_id(index));
    }
    assert_eq!(collected.manifests[&tenant_id(7)]["tenant_name"], "T7");
    sim.stop().await;
}

#[tokio::test]
async fn organizations_and_single_tenants_are_collected_too() {
    let organization = SimulatorConfig {
        mode: Mode::Organization,
        whoami_region_absent: true,
        ..SimulatorConfig::default()
    };
    let sim = start(3, 40, organization).await;
    let client = client(&sim);
    let out = tempfile::tempdir().unwrap();
    let report = collect(
        &client,
        &FileSink::new(out.path()),
        &query(10),
        2,
        &Progress::hidden(),
    )
    .await
    .unwrap();
    assert_eq!((report.tenants.len(), report.endpoints()), (3, 120));
    sim.stop().await;

    let tenant = SimulatorConfig {
        mode: Mode::Tenant,
        tenant_id: Some(tenant_id(1)),
        ..SimulatorConfig::default()
    };
    let sim = start(3, 40, tenant).await;
    let client = central_support::client(&sim);
    let whoami = client.whoami().await.unwrap();
    assert_eq!(whoami.id_type, IdType::Tenant);
    assert_eq!(whoami.id, tenant_id(1));
    let out = tempfile::tempdir().unwrap();
    let report = collect(
        &client,
        &FileSink::new(out.path()),
        &query(10),
        2,
        &Progress::hidden(),
    )
    .await
    .unwrap();
    assert_eq!(report.tenants.len(), 1);
    assert_eq!(report.tenants[0].tenant_id, tenant_id(1));
    assert_exact(&sim, &read_collected(out.path()), &tenant_id(1));
    sim.stop().await;
}

#[tokio::test]
async fn a_token_that_expires_mid_collection_is_refreshed_ahead() {
    let config = SimulatorConfig {
        token_lifetime_secs: 1,
        faults: Faults {
            latency_ms: 15,
            ..Faults::default()
        },
        ..SimulatorConfig::default()
    };
    let sim = start(2, 1_000, config).await;
    let client = client(&sim);
    let out = tempfile::tempdir().unwrap();

    let started = Instant::now();
    let report = collect(
        &client,
        &FileSink::new(out.path()),
        &query(10),
        1,
        &Progress::hidden(),
    )
    .await
    .unwrap();

    assert!(
        started.elapsed() > Duration::from_secs(2),
        "too fast to outlive a token"
    );
    assert!(report.is_complete());
    assert!(client.stats().tokens.load(Ordering::Relaxed) >= 3);
    let collected = read_collected(out.path());
    assert_exact(&sim, &collected, &tenant_id(0));
    assert_exact(&sim, &collected, &tenant_id(1));
    sim.stop().await;
}

#[tokio::test]
async fn a_token_revoked_early_gets_one_fresh_token_on_401() {
    let config = SimulatorConfig {
        token_lifetime_secs: 3600,
        token_valid_ms: Some(300),
        faults: Faults {
            latency_ms: 10,
            ..Faults::default()
        },
        ..SimulatorConfig::default()
    };
    let sim = start(1, 1_000, config).await;
    let client = client(&sim);
    let out = tempfile::tempdir().unwrap();

    let report = collect(
        &client,
        &FileSink::new(out.path()),
        &query(10),
        1,
        &Progress::hidden(),
    )
    .await
    .unwrap();

    assert!(report.is_complete(), "{:?}", report.tenants[0].outcome);
    let unauthorized = sim.stats().unauthorized.load(Ordering::Relaxed);
    assert!(
        unauthorized >= 2,
        "expected several 401s, saw {unauthorized}"
    );
    assert_eq!(
        client.stats().unauthorized.load(Ordering::Relaxed),
        unauthorized
    );
    assert_eq!(
        client.stats().tokens.load(Ordering::Relaxed),
        unauthorized + 1
    );
    assert_exact(&sim, &read_collected(out.path()), &tenant_id(0));
    sim.stop().await;
}

#[tokio::test]
async fn wrong_credentials_fail_without_printing_the_secret() {
    let sim = start(1, 1, SimulatorConfig::default()).await;
    let client = CentralClient::new(settings(&sim, "wrong-secret-value")).unwrap();
    let error = client.whoami().await.unwrap_err();
    let text = error.to_string();
    assert_eq!(error.status(), Some(401));
    assert!(text.contains("oauth.invalid_client_secret"), "{text}");
    assert!(!text.contains("wrong-secret-value"), "{text}");
    assert!(!format!("{client:?}").contains("wrong-secret-value"));
    sim.stop().await;
}

#[tokio::test]
async fn bursts_of_429_without_retry_after_are_retried() {
    let config = faults(Faults {
        throttle_every: 5,
        throttle_burst: 2,
        ..Faults::default()
    });
    let sim = start(3, 300, config).await;
    let client = client(&sim);
    let out = tempfile::tempdir().unwrap();

    let report = collect(
        &client,
        &FileSink::new(out.path()),
        &query(20),
        3,
        &Progress::hidden(),
    )
    .await
    .unwrap();

    assert!(report.is_complete());
    let throttled = sim.stats().throttled.load(Ordering::Relaxed);
    assert!(throttled >= 20, "only {throttled} throttled");
    assert_eq!(client.stats().retries.load(Ordering::Relaxed), throttled);
    let collected = read_collected(out.path());
    for index in 0..3 {
        assert_exact(&sim, &collected, &tenant_id(index));
    }
    sim.stop().await;
}

#[tokio::test]
async fn retry_after_in_seconds_is_honoured() {
    let config = faults(Faults {
        throttle_every: 4,
        throttle_burst: 1,
        retry_after: RetryAfter::Seconds(1),
        ..Faults::default()
    });
    let sim = start(1, 30, config).await;
    let client = client(&sim);
    let out = tempfile::tempdir().unwrap();

    let started = Instant::now();
    let report = collect(
        &client,
        &FileSink::new(out.path()),
        &query(10),
        1,
        &Progress::hidden(),
    )
    .await
    .unwrap();

    // whoami is request 0 and throttled, then every fourth request: two waits of a second at
    // least, where the backoff alone would have waited milliseconds.
    let throttled = sim.stats().throttled.load(Ordering::Relaxed);
    assert_eq!(throttled, 2);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(report.is_complete());
    assert_exact(&sim, &read_collected(out.path()), &tenant_id(0));
    sim.stop().await;
}

#[tokio::test]
async fn retry_after_as_a_date_is_honoured() {
    let config = faults(Faults {
        throttle_every: 3,
        throttle_burst: 1,
        retry_after: RetryAfter::Date(1),
        ..Faults::default()
    });
    let sim = start(1, 30, config).await;
    let client = client(&sim);
    let out = tempfile::tempdir().unwrap();
    let report = collect(
        &client,
        &FileSink::new(out.path()),
        &query(10),
        1,
        &Progress::hidden(),
    )
    .await
    .unwrap();
    assert!(report.is_complete());
    assert!(sim.stats().throttled.load(Ordering::Relaxed) >= 2);
    assert_exact(&sim, &read_collected(out.path()), &tenant_id(0));
    sim.stop().await;
}

#[tokio::test]
async fn retries_are_capped() {
    let config = faults(Faults {
        throttle_every: 1,
        throttle_burst: 1,
        ..Faults::default()
    });
    let sim = start(1, 10, config).await;
    let client = client(&sim);
    let out = tempfile::tempdir().unwrap();

    let error = collect(
        &client,
        &FileSink::new(out.path()),
        &query(10),
        1,
        &Progress::hidden(),
    )
    .await
    .unwrap_err();

    let text = error.to_string();
    assert!(text.contains("gave up after 10 attempts"), "{text}");
    assert!(text.contains("HTTP 429"), "{text}");
    assert!(text.contains("/whoami/v1"), "{text}");
    assert_eq!(sim.stats().throttled.load(Ordering::Relaxed), 10);
    sim.stop().await;
}

#[tokio::test]
async fn server_errors_are_retried_and_nothing_is_lost() {
    let config = faults(Faults {
        error_rate: 0.25,
        seed: 7,
        ..Faults::default()
    });
    let sim = start(4, 200, config).await;
    let client = client(&sim);
    let out = tempfile::tempdir().unwrap();

    let report = collect(
        &client,
        &FileSink::new(out.path()),
        &query(10),
        4,
        &Progress::hidden(),
    )
    .await
    .unwrap();

    assert!(report.is_complete());
    let injected = sim.stats().injected_errors.load(Ordering::Relaxed);
    assert!(injected >= 10, "only {injected} failures injected");
    let collected = read_collected(out.path());
    for index in 0..4 {
        assert_exact(&sim, &collected, &tenant_id(index));
    }
    sim.stop().await;
}

#[tokio::test]
async fn a_forbidden_tenant_is_reported_and_the_others_go_on() {
    let config = faults(Faults {
        forbidden_tenants: vec![tenant_id(1)],
        ..Faults::default()
    });
    let sim = start(3, 50, config).await;
    let client = client(&sim);
    let out = tempfile::tempdir().unwrap();

    let report = collect(
        &client,
        &FileSink::new(out.path()),
        &query(10),
        3,
        &Progress::hidden(),
    )
    .await
    .unwrap();

    assert!(!report.is_complete());
    let failed: Vec<_> = report
        .failed()
        .map(|tenant| tenant.tenant_id.clone())
        .collect();
    assert_eq!(failed, [tenant_id(1)]);
    // A 403 is not retried.
    assert_eq!(sim.stats().forbidden.load(Ordering::Relaxed), 1);

    let collected = read_collected(out.path());
    let manifest = &collected.manifests[&tenant_id(1)];
    assert_eq!(manifest["complete"], false);
    assert_eq!(manifest["pages"], 0);
    let error = manifest["error"].as_str().unwrap();
    assert!(
        error.contains("HTTP 403") && error.contains("Access is denied"),
        "{error}"
    );
    assert_eq!(collected.pages[&tenant_id(1)], 0);
    for index in [0, 2] {
        assert_eq!(collected.manifests[&tenant_id(index)]["complete"], true);
        assert_exact(&sim, &collected, &tenant_id(index));
    }
    sim.stop().await;
}

#[tokio::test]
async fn server_side_filters_go_on_every_page() {
    let sim = start(1, 1_000, SimulatorConfig::default()).await;
    let client = client(&sim);
    let out = tempfile::tempdir().unwrap();
    let mut filtered = query(7);
    filtered.filters = vec![("lastSeenBefore".to_owned(), "-P30D".to_owned())];

    let report = collect(
        &client,
        &FileSink::new(out.path()),
        &filtered,
        1,
        &Progress::hidden(),
    )
    .await
    .unwrap();

    // Endpoint i was last seen i % 100 days (and a few milliseconds) before the estate was
    // built, so those of day 30 and older are strictly before "now - 30 days" when asked.
    let expected = (0..1000usize).filter(|i| i % 100 >= 30).count();
    assert!(report.is_complete(), "{:?}", report.tenants[0].outcome);
    assert_eq!(report.endpoints(), expected as u64);
    assert!(report.pages() > 50);
    sim.stop().await;
}

#[tokio::test]
async fn delete_then_delete_again_and_bulk_delete() {
    let sim = start(2, 5, SimulatorConfig::default()).await;
    let client = client(&sim);
    let whoami = client.whoami().await.unwrap();
    let tenants = client.tenants(&whoami).await.unwrap();
    let target = TenantTarget::from_tenant(&tenants[0]).unwrap();
    let ids = sim.endpoint_ids(&target.id);

    let endpoint = client.get_endpoint(&target, &ids[0]).await.unwrap();
    assert_eq!(endpoint.id, ids[0]);
    assert!(endpoint.last_seen_at.is_some());

    let protection = client.tamper_protection(&target, &ids[1]).await.unwrap();
    assert_eq!(protection.enabled, Some(true));
    assert_eq!(
        protection.password.as_ref().map(|p| p.expose().len()),
        Some(16)
    );
    assert!(!format!("{protection:?}").contains(protection.password.as_ref().unwrap().expose()));

    assert_eq!(
        client.delete_endpoint(&target, &ids[0]).await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        client.delete_endpoint(&target, &ids[0]).await.unwrap(),
        DeleteOutcome::AlreadyGone
    );
    let error = client.get_endpoint(&target, &ids[0]).await.unwrap_err();
    assert_eq!(error.status(), Some(404));

    let bulk = vec![ids[1].clone(), ids[0].clone(), ids[2].clone()];
    let outcome = client.delete_endpoints(&target, &bulk).await.unwrap();
    assert_eq!(
        outcome,
        BulkDeleteOutcome {
            deleted: vec![ids[1].clone(), ids[2].clone()],
            not_deleted: vec![ids[0].clone()]
        }
    );

    // Deleted endpoints leave the listing; the other tenant is untouched.
    assert_eq!(sim.endpoint_ids(&target.id), ids[3..].to_vec());
    let mut pager = client.endpoint_pages(target.clone(), query(500));
    let page = pager.next_page().await.unwrap().unwrap();
    assert_eq!(page.endpoints, 2);
    assert!(pager.next_page().await.unwrap().is_none());
    assert_eq!(sim.endpoint_ids(&tenant_id(1)).len(), 5);
    assert_eq!(sim.stats().deleted.load(Ordering::Relaxed), 3);

    // An endpoint of another tenant is not found through this one.
    let foreign = sim.endpoint_ids(&tenant_id(1))[0].clone();
    let gone = client.delete_endpoint(&target, &foreign).await.unwrap();
    assert_eq!(gone, DeleteOutcome::AlreadyGone);
    assert_eq!(sim.endpoint_ids(&tenant_id(1)).len(), 5);
    sim.stop().await;
}

#[tokio::test]
async fn a_tenant_on_the_wrong_host_is_not_found() {
    let sim = start(2, 5, SimulatorConfig::default()).await;
    let client = client(&sim);
    let wrong_host = Url::parse(&format!("{}/region/us03", sim.base_url())).unwrap();
    let target = TenantTarget {
        id: tenant_id(0),
        name: None,
        api_host: wrong_host,
    };

    let error = client
        .endpoint_pages(target, query(10))
        .next_page()
        .await
        .unwrap_err();
    assert!(
        matches!(error, CentralError::Api { status: 404, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("hosted in region eu01"),
        "{error}"
    );
    sim.stop().await;
}
