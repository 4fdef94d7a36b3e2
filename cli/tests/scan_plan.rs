//! `vigil scan --plan`: the list scan. Refused addresses are proven refused without sending
//! anything; the only address that could be contacted in these tests is a loopback listener
//! that counts connections, and it must see none.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use assert_cmd::Command;
use predicates::prelude::*;

fn vigil() -> Command {
    Command::cargo_bin("vigil").expect("the vigil binary is built for tests")
}

/// A loopback listener that counts the connections it accepts, on a background thread that
/// ends with the test process.
fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, accepted)
}

#[test]
fn refused_addresses_are_listed_with_their_reasons_and_nothing_is_sent() {
    let (port, accepted) = counting_listener();
    vigil()
        .args([
            "scan",
            "--plan",
            "127.0.0.1",
            "169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "-p",
            &port.to_string(),
        ])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(2)
        .stdout(predicate::str::contains(
            "Plan only: nothing was sent to any target.",
        ))
        .stdout(predicate::str::contains("HOSTS (1)\n  127.0.0.1\n"))
        .stdout(predicate::str::contains(format!("PORTS (1): {port}")))
        .stdout(predicate::str::contains("REFUSED (2)"))
        .stdout(predicate::str::contains(
            "169.254.169.254 is a cloud metadata address, refused unless listed and its class unlocked",
        ))
        .stdout(predicate::str::contains(
            "64:ff9b::a9fe:a9fe carries 169.254.169.254 (NAT64), a cloud metadata address",
        ))
        .stdout(predicate::str::contains("would be refused as a whole"));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "--plan connected to the in-scope listener"
    );
}

#[test]
fn the_json_plan_names_every_refusal() {
    let (port, accepted) = counting_listener();
    let out = vigil()
        .args([
            "scan",
            "--plan",
            "--json",
            "127.0.0.1",
            "169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "::/0",
            "-p",
            &format!("{port},1-3"),
        ])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["sent"], false);
    assert_eq!(plan["would_scan"], false);
    assert_eq!(
        plan["hosts"],
        serde_json::json!([{"addr": "127.0.0.1", "name": null}])
    );
    assert_eq!(plan["ports"], format!("1-3,{port}"));
    assert_eq!(plan["port_count"], 4);
    assert_eq!(plan["probes"], 4);
    let refused = plan["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 4, "{refused:#?}");
    assert_eq!(refused[0]["addr"], "169.254.169.254");
    assert_eq!(refused[0]["kind"], "out_of_scope");
    assert_eq!(refused[0]["violation"]["kind"], "refused-class");
    assert_eq!(refused[0]["violation"]["class"], "metadata");
    for (i, form) in [(1, "nat64"), (2, "six-to-four")] {
        assert_eq!(refused[i]["violation"]["kind"], "refused-embedded");
        assert_eq!(refused[i]["violation"]["form"], form);
        assert_eq!(refused[i]["violation"]["ipv4"], "169.254.169.254");
        assert_eq!(refused[i]["violation"]["class"], "metadata");
    }
    assert_eq!(refused[3]["target"], "::/0");
    assert_eq!(refused[3]["kind"], "too_large");
    assert!(
        refused[3]["reason"]
            .as_str()
            .unwrap()
            .contains("holds 2^128 addresses"),
        "{}",
        refused[3]["reason"]
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
}

#[test]
fn a_clean_plan_exits_0_and_still_sends_nothing() {
    let (port, accepted) = counting_listener();
    vigil()
        .args([
            "scan",
            "--plan",
            "127.0.0.1",
            "127.0.0.2-3",
            "-p",
            &port.to_string(),
        ])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "HOSTS (3)\n  127.0.0.1\n  127.0.0.2\n  127.0.0.3\n",
        ))
        .stdout(predicate::str::contains(
            "A scan would make 3 connection attempts (3 hosts x 1 ports",
        ))
        .stdout(predicate::str::contains("REFUSED").not());
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
}

#[test]
fn a_name_is_resolved_once_and_its_refused_addresses_are_reported() {
    // `localhost` resolves locally to loopback, which a name alone never opens.
    vigil()
        .args(["scan", "--plan", "localhost", "-p", "80"])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(2)
        .stdout(predicate::str::contains("(of localhost)"))
        .stdout(predicate::str::contains("is a loopback address"));
    // Listed by address as well, the name may use it, and shows the pinned address.
    vigil()
        .args([
            "scan",
            "--plan",
            "localhost",
            "127.0.0.1",
            "::1",
            "-p",
            "80",
        ])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("  127.0.0.1\n"));
}

#[test]
fn plan_rejects_jsonl_and_bad_input_like_a_scan() {
    vigil()
        .args(["scan", "--plan", "--jsonl", "127.0.0.1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
    vigil()
        .args(["scan", "--plan", "2130706433"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("ambiguous"));
}
