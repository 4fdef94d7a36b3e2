//! `vigil scan` and `vigil signatures`, run as the real binary against loopback listeners.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;

fn vigil() -> Command {
    Command::cargo_bin("vigil").expect("the vigil binary is built for tests")
}

/// Accept-and-close listeners on random loopback ports, served by background threads that end
/// with the test process.
fn listeners(n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            std::thread::spawn(move || {
                for s in l.incoming() {
                    drop(s);
                }
            });
            port
        })
        .collect()
}

/// An SSH-like service offering `diffie-hellman-group1-sha1`.
fn weak_ssh() -> u16 {
    let mut payload = vec![20u8];
    payload.extend_from_slice(&[7; 16]);
    for list in [
        "curve25519-sha256,diffie-hellman-group1-sha1",
        "ssh-ed25519",
        "aes128-ctr",
        "aes128-ctr",
        "hmac-sha2-256",
        "hmac-sha2-256",
        "none",
        "none",
        "",
        "",
    ] {
        payload.extend_from_slice(&(list.len() as u32).to_be_bytes());
        payload.extend_from_slice(list.as_bytes());
    }
    payload.extend_from_slice(&[0; 5]);
    let padding = 8 - (payload.len() + 5) % 8 + 4;
    let mut greeting = b"SSH-2.0-OpenSSH_9.9\r\n".to_vec();
    greeting.extend_from_slice(&((payload.len() + padding + 1) as u32).to_be_bytes());
    greeting.push(padding as u8);
    greeting.extend_from_slice(&payload);
    greeting.extend(std::iter::repeat_n(0u8, padding));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let greeting = greeting.clone();
            std::thread::spawn(move || {
                let _ = s.write_all(&greeting);
                let mut buf = [0u8; 256];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

/// Ports the kernel lists as listening and reachable at 127.0.0.1 (other programs on this
/// machine may listen too).
fn kernel_listeners() -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    for (file, reachable) in [
        ("/proc/net/tcp", &["0100007F", "00000000"][..]),
        (
            "/proc/net/tcp6",
            &[
                "00000000000000000000000000000000",
                "0000000000000000FFFF00000100007F",
            ][..],
        ),
    ] {
        let Ok(table) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in table.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 3
                && cols[3] == "0A"
                && let Some((addr, port)) = cols[1].split_once(':')
                && reachable.contains(&addr)
                && let Ok(port) = u16::from_str_radix(port, 16)
            {
                ports.insert(port);
            }
        }
    }
    ports
}

/// A signature file in the temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("vigil-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn json_scan_finds_exactly_the_listeners() {
    let ours = listeners(6);
    let lo = ours.iter().min().unwrap().saturating_sub(1500).max(1);
    let hi = ours.iter().max().unwrap().saturating_add(1500);
    let before = kernel_listeners();
    let out = vigil()
        .args([
            "scan",
            "127.0.0.1",
            "--ports",
            &format!("{lo}-{hi}"),
            "--json",
        ])
        .output()
        .unwrap();
    let after = kernel_listeners();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let open: BTreeSet<u16> = report["open"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let addr: std::net::SocketAddr = r["addr"].as_str().unwrap().parse().unwrap();
            addr.port()
        })
        .collect();
    for p in &ours {
        assert!(open.contains(p), "listener {p} not found in {open:?}");
    }
    let truth: BTreeSet<u16> = before.union(&after).copied().collect();
    let phantom: Vec<&u16> = open.difference(&truth).collect();
    assert!(
        phantom.is_empty(),
        "reported open without a listener: {phantom:?}"
    );
    assert_eq!(report["stats"]["ports"], u64::from(hi - lo + 1));
}

#[test]
fn a_weak_key_exchange_fails_the_scan_with_status_1() {
    let port = weak_ssh().to_string();
    vigil()
        .args(["scan", "127.0.0.1", "-p", &port, "--banners"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "SSH server offers a weak key exchange",
        ))
        .stdout(predicate::str::contains("diffie-hellman-group1-sha1"))
        .stdout(predicate::str::contains("fix: "));
    // The threat is high: below a critical threshold the scan passes.
    vigil()
        .args([
            "scan",
            "127.0.0.1",
            "-p",
            &port,
            "--banners",
            "--fail-on",
            "critical",
            "--jsonl",
        ])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(r#""signature_id":"ssh-weak-kex""#))
        .stdout(predicate::str::contains(r#""type":"summary""#));
}

#[test]
fn a_clean_scan_exits_0() {
    let port = listeners(1)[0].to_string();
    vigil()
        .args(["scan", "127.0.0.1", "-p", &port])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(format!("{port}/tcp")))
        .stdout(predicate::str::contains("No threats found."));
}

#[test]
fn out_of_scope_targets_are_refused_before_any_packet_with_status_2() {
    // A metadata address typed on the command line is still a hard-denied class.
    vigil()
        .args(["scan", "169.254.169.254", "-p", "80"])
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("out of scope"));
    // Excludes win over the typed targets.
    vigil()
        .args(["scan", "127.0.0.1", "-p", "80", "--exclude", "127.0.0.0/8"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("excluded by 127.0.0.0/8"));
    // A name resolving to loopback is not loopback typed on purpose.
    vigil()
        .args(["scan", "localhost", "-p", "80"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("loopback"));
}

#[test]
fn bad_input_exits_2() {
    vigil()
        .args(["scan", "127.0.0.1", "-p", "0-10"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid port specification"));
    vigil()
        .args(["scan", "2130706433"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("ambiguous"));
    vigil()
        .args(["scan", "127.0.0.1", "--fail-on", "urgent"])
        .assert()
        .code(2);
}

#[test]
fn signatures_list_shows_the_built_in_set() {
    vigil()
        .args(["signatures", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ssh-weak-kex"))
        .stdout(predicate::str::contains("tls-expired"))
        .stdout(predicate::str::contains("default-credentials"));
    let out = vigil()
        .args(["signatures", "list", "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(list.as_array().unwrap().len() >= 30);
}

#[test]
fn signatures_check_validates_with_line_numbers() {
    let good = TempFile::new(
        "good.toml",
        "[[signature]]\nid = \"x\"\nname = \"x\"\nseverity = \"low\"\nkind = \"http\"\nfield = \"server\"\nliteral = \"IIS/5\"\nremediation = \"upgrade\"\n",
    );
    vigil()
        .args(["signatures", "check"])
        .arg(&good.0)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("1 signatures, valid"));
    let bad = TempFile::new(
        "bad.toml",
        "[[signature]]\nid = \"x\"\nname = \"x\"\nseverity = \"low\"\nkind = \"http\"\nfield = \"server\"\nregex = \"(unclosed\"\nremediation = \"r\"\n",
    );
    vigil()
        .args(["signatures", "check"])
        .arg(&bad.0)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("bad.toml:7: bad regex"));
    vigil()
        .args(["signatures", "check", "no-such-file.toml"])
        .assert()
        .code(2);
}

#[test]
fn a_user_signature_file_adds_threats() {
    let port = listeners(1)[0];
    let file = TempFile::new(
        "port.toml",
        &format!(
            "[[signature]]\nid = \"test-port\"\nname = \"Test port open\"\nseverity = \"critical\"\nkind = \"open_port\"\nfield = \"port\"\nregex = '^{port}$'\nremediation = \"close it\"\n"
        ),
    );
    vigil()
        .args(["scan", "127.0.0.1", "-p", &port.to_string(), "--signatures"])
        .arg(&file.0)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("Test port open"));
}

/// A loopback service that greets like vsftpd and keeps the connection open a moment.
fn ftp_greeter() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = s.write_all(b"220 (vsFTPd 3.0.3)\r\n");
                let mut buf = [0u8; 256];
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(3)));
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

#[test]
fn a_probe_file_given_at_run_time_identifies_services_and_reports_its_load() {
    let port = ftp_greeter();
    let probes = TempFile::new(
        "probes",
        "Probe TCP NULL q||\ntotalwaitms 1000\n\
         match ftp m|^220 \\(vsFTPd ([\\d.]+)\\)| p/vsftpd/ v/$1/ cpe:/a:vsftpd_project:vsftpd:$1/\n\
         match x m|(?=y)x|\n",
    );
    let out = vigil()
        .args([
            "scan",
            "127.0.0.1",
            "--banners",
            "--json",
            "--fail-on",
            "never",
            "-p",
        ])
        .arg(port.to_string())
        .arg("--service-probes")
        .arg(&probes.0)
        .assert()
        .code(0)
        .stderr(predicate::str::contains(
            "1 TCP probes (0 UDP probes not sent), 1 of 2 match lines loaded, 1 skipped",
        ))
        .stderr(predicate::str::contains("look-around 1"))
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let banner = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "banner")
        .expect("a banner finding");
    assert_eq!(banner["service"], "ftp");
    assert_eq!(banner["product"], "vsftpd");
    assert_eq!(banner["version"], "3.0.3");
    assert_eq!(
        banner["cpe"][0],
        "cpe:2.3:a:vsftpd_project:vsftpd:3.0.3:*:*:*:*:*:*:*"
    );
    assert_eq!(banner["method"], "probed");
    assert_eq!(banner["probe"], "NULL");
}

#[test]
fn bad_probe_files_and_intensities_exit_2() {
    let bad = TempFile::new("bad-probes", "Probe TCP NULL q||\n\nmatch ftp m|^220\n");
    vigil()
        .args([
            "scan",
            "127.0.0.1",
            "-p",
            "1",
            "--banners",
            "--service-probes",
        ])
        .arg(&bad.0)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("line 3"));
    vigil()
        .args([
            "scan",
            "127.0.0.1",
            "-p",
            "1",
            "--service-probes",
            "/nonexistent/probes",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("reading the probe file"));
    vigil()
        .args(["scan", "127.0.0.1", "-p", "1", "--intensity", "10"])
        .assert()
        .code(2);
}
