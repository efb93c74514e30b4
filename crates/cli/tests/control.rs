//! `vqa monitor --control`: the real binary refuses to open its control endpoint to other
//! machines without a token, and bounds what it reads from clients. (The limits in time
//! are tested on the library's server, with short timeouts.)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on every address (closed again; the caller binds it right away).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn monitor(listen: &str, token: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vqa"));
    cmd.args(["monitor", "--control", "--listen", listen])
        // Stops by itself should it start when it must not.
        .args(["--duration", "20"])
        .env_remove("VQA_CONTROL_TOKEN")
        .stdin(Stdio::null());
    if let Some(token) = token {
        cmd.env("VQA_CONTROL_TOKEN", token);
    }
    cmd
}

/// Kills the monitor when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `request` on a new connection; the status and body answered.
fn call(addr: SocketAddr, request: &[u8]) -> Option<(u16, String)> {
    let mut c = TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    c.write_all(request).ok()?;
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let (_, body) = answer.split_once("\r\n\r\n")?;
    Some((status, body.to_string()))
}

fn get(addr: SocketAddr, path: &str, headers: &str) -> Option<(u16, String)> {
    call(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes(),
    )
}

/// Starts a monitor and waits for its `/healthz` on loopback.
fn started(listen: &str, token: Option<&str>, port: u16) -> (Running, SocketAddr) {
    let child = monitor(listen, token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vqa monitor");
    let running = Running(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let until = Instant::now() + Duration::from_secs(30);
    while get(addr, "/healthz", "").map(|(s, _)| s) != Some(200) {
        assert!(
            Instant::now() < until,
            "the monitor did not start on {listen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (running, addr)
}

#[test]
fn control_off_loopback_without_a_token_refuses_to_start() {
    for token in [None, Some("")] {
        let out = monitor("0.0.0.0:0", token)
            .output()
            .expect("run vqa monitor");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started without a token: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].contains("--listen 0.0.0.0:0")
                && lines[0].contains("set VQA_CONTROL_TOKEN")
                && lines[0].contains("or listen on 127.0.0.1"),
            "{stderr}"
        );
    }
    // With a token, it starts there; on loopback, it starts without one.
    let port = free_port();
    let (_open, addr) = started(&format!("0.0.0.0:{port}"), Some("s3cret"), port);
    assert_eq!(get(addr, "/streams", "").map(|(s, _)| s), Some(401));
    let port = free_port();
    let (_local, addr) = started(&format!("127.0.0.1:{port}"), None, port);
    assert_eq!(get(addr, "/streams", "").map(|(s, _)| s), Some(200));
}

#[test]
fn the_control_endpoint_refuses_oversized_lists_and_ids_that_are_not_stream_ids() {
    let port = free_port();
    let (_monitor, addr) = started(&format!("127.0.0.1:{port}"), Some("s3cret"), port);
    let auth = "Authorization: Bearer s3cret\r\n";
    let list = "[[stream]]\nid = \"a\"\nurl = \"udp://127.0.0.1:9\"\n";
    let put = |body: &str| {
        call(
            addr,
            format!(
                "PUT /streams HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    assert_eq!(put(list).map(|(s, _)| s), Some(200));
    let big = list
        .replace("\"a\"", "\"b\"")
        .repeat((4 << 20) / list.len() + 1);
    let (status, body) = put(&big).expect("an answer to the oversized list");
    assert_eq!(status, 413, "{body}");
    assert_eq!(body.lines().count(), 1, "{body}");
    assert_eq!(get(addr, "/streams", auth), Some((200, list.to_string())));
    for path in [
        "/reports/..%2F..%2Fetc%2Fpasswd",
        "/reports/../../etc/passwd",
        "/reports/%2e%2e",
        "/reports/a%00",
    ] {
        let (status, body) = get(addr, path, auth).expect("an answer");
        assert_eq!(status, 400, "{path}: {body}");
        assert!(!body.contains("root:"), "{path}: {body}");
    }
    // The stream runs: no finished report yet.
    assert_eq!(get(addr, "/reports/a", auth).map(|(s, _)| s), Some(404));
    assert_eq!(get(addr, "/reports/a", "").map(|(s, _)| s), Some(401));
}
