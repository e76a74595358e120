//! What slow and greedy clients can hold, over real TCP on loopback: a half-sent request is cut
//! off after the header timeout, and connections above the cap are closed on accept while the
//! service keeps answering the others.

use std::time::{Duration, Instant};

use nhm_server::Config;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::common::*;

/// Starts the service on a loopback port; returns its address (the temp dir lives in the task).
async fn start(cfg: Config) -> std::net::SocketAddr {
    let dir = tempfile::tempdir().unwrap();
    let state = open(dir.path(), cfg, None).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _dir = dir;
        nhm_server::server::serve_on(listener, state).await
    });
    addr
}

/// Reads until the server closes the connection (or `limit` passes): what it sent, and whether
/// it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

async fn health(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    read_until_closed(&mut s, Duration::from_secs(5)).await.0
}

#[tokio::test]
async fn half_sent_requests_are_cut_off_after_the_header_timeout() {
    let addr = start(Config {
        header_read_timeout_ms: 300,
        ..config()
    })
    .await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    let t0 = Instant::now();
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(closed, "a half-sent request was held for 5 s");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "closed only after {:?}",
        t0.elapsed()
    );
    // A whole request is still answered.
    assert!(health(addr).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_above_the_cap_are_closed_and_the_rest_served() {
    let addr = start(Config {
        max_connections: 2,
        header_read_timeout_ms: 10_000,
        ..config()
    })
    .await;
    let idle_a = TcpStream::connect(addr).await.unwrap();
    let _idle_b = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    let _ = third.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let (reply, closed) = read_until_closed(&mut third, Duration::from_secs(3)).await;
    assert!(
        closed && reply.is_empty(),
        "the third connection was served: {reply:?}"
    );
    // Once one idle connection goes, a new one is served.
    drop(idle_a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(health(addr).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_normal_client_is_served_while_two_thousand_slow_ones_hold_connections() {
    // Client and server sides of every connection live in this process: 2 × 2 000 descriptors.
    let _ = rlimit::increase_nofile_limit(8_192);
    let addr = start(Config {
        header_read_timeout_ms: 30_000,
        ..config()
    })
    .await;
    let mut slow = Vec::with_capacity(2_000);
    for _ in 0..2_000 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    let reply = tokio::time::timeout(Duration::from_secs(10), health(addr))
        .await
        .expect("the normal client was not answered within 10 s");
    let took = t0.elapsed();
    eprintln!("normal client answered in {took:?} with 2000 slow connections open");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
    // The slow ones are all still held (none was closed to make room).
    let mut probe = [0u8; 1];
    let still_open = slow
        .iter_mut()
        .take(50)
        .filter(|s| matches!(s.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock))
        .count();
    assert_eq!(still_open, 50);
}
