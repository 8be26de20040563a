//! A connection that drops in the middle of a collection is retried, and the retry reads the
//! same estate. A TCP relay on 127.0.0.1 between lastseen and the Samba DC cuts the first
//! connection after a few kilobytes from the server, mid-search, and passes later ones whole.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{ESTATE, TestDc, VIP_GROUP};
use indicatif::ProgressBar;
use lastseen::ad::AdError;
use lastseen::ad::collect::collect_snapshot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Enough for the TLS handshake, the bind and the rootDSE, not for the computers.
const FIRST_CONNECTION_BYTES: usize = 6_000;

/// Relays to `upstream`; the first connection is cut after `FIRST_CONNECTION_BYTES` from the
/// server. Returns the relay's address and its count of accepted connections.
async fn start_relay(upstream: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();

    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let index = counter.fetch_add(1, Ordering::SeqCst);
            let limit = if index == 0 {
                Some(FIRST_CONNECTION_BYTES)
            } else {
                None
            };
            tokio::spawn(relay(client, upstream, limit));
        }
    });
    (address, accepted)
}

async fn relay(client: TcpStream, upstream: SocketAddr, limit: Option<usize>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();

    let upward = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
    });

    // Server to client, counted; past the limit both sides are dropped without a goodbye.
    let mut sent = 0;
    let mut buffer = vec![0; 4096];
    while let Ok(read) = server_read.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        let allowed = limit.map_or(read, |limit| read.min(limit.saturating_sub(sent)));
        if client_write.write_all(&buffer[..allowed]).await.is_err() || allowed < read {
            break;
        }
        sent += allowed;
    }
    upward.abort();
}

#[tokio::test]
#[ignore = "needs samba: run .ci/run (or tests/services/samba.sh up)"]
async fn a_dropped_connection_is_retried() {
    let dc = TestDc::from_env();
    let direct = dc.ad_config(&[ESTATE], "page_size = 2");
    let expected = collect_snapshot(&direct, &[VIP_GROUP.to_owned()], &ProgressBar::hidden())
        .await
        .unwrap();

    let upstream: SocketAddr = "127.0.0.1:636".parse().unwrap();
    let (relay, accepted) = start_relay(upstream).await;
    let mut through_relay = direct.clone();
    through_relay.url = format!("ldaps://127.0.0.1:{}", relay.port());

    let snapshot = collect_snapshot(
        &through_relay,
        &[VIP_GROUP.to_owned()],
        &ProgressBar::hidden(),
    )
    .await
    .unwrap();
    assert_eq!(snapshot.stats.retries, 1);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    assert_eq!(snapshot.objects, expected.objects);
}

#[tokio::test]
#[ignore = "needs samba: run .ci/run (or tests/services/samba.sh up)"]
async fn a_controller_that_stays_away_fails_after_the_retries() {
    let dc = TestDc::from_env();
    let mut config = dc.ad_config(&[ESTATE], "retries = 1\nconnect_timeout_secs = 2");

    // A port nobody listens on: bind one, note it, close it.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    config.url = format!("ldaps://127.0.0.1:{port}");

    let started = std::time::Instant::now();
    let error = collect_snapshot(&config, &[], &ProgressBar::hidden())
        .await
        .unwrap_err();
    assert!(matches!(error, AdError::Connect { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains(&format!("cannot connect to ldaps://127.0.0.1:{port}"))
    );
    // One retry after the first one-second backoff.
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
}
