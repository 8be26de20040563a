//! End to end: `lastseen collect ad` reads the seeded Samba domain into LDIF, and `lastseen
//! run` correlates it with Central pages written here into the candidates worked out by hand
//! below. Both are the real binary, with one config.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{ESTATE, TestDc, VIP_GROUP};
use serde_json::{Value, json};

const TENANT: &str = "d2a7e1b4-3c55-4f0e-9a61-0b8c2e7f4a10";

/// A Central endpoint as `GET /endpoint/v1/endpoints` returns it.
fn endpoint(id: u32, hostname: &str, build: u32, last_seen: &str, login: &str) -> Value {
    json!({
        "id": format!("00000000-0000-4000-8000-{id:012}"),
        "type": "computer",
        "tenant": { "id": TENANT },
        "hostname": hostname,
        "health": { "overall": "good" },
        "os": {
            "isServer": false, "platform": "windows", "name": "Windows 10 Enterprise",
            "majorVersion": 10, "minorVersion": 0, "build": build
        },
        "tamperProtectionEnabled": true,
        "online": false,
        "lastSeenAt": last_seen,
        "associatedPerson": { "name": login, "viaLogin": login }
    })
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn lastseen(args: &[&str], config: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_lastseen"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "lastseen {args:?} failed:\n{stderr}"
    );
    stderr
}

#[test]
#[ignore = "needs samba: run .ci/run (or tests/services/samba.sh up)"]
fn seeded_domain_and_central_pages_give_the_expected_candidates() {
    let dc = TestDc::from_env();
    let dir = tempfile::tempdir().unwrap();

    // The seeded retired computers (OU=Disabled Computers and its sub-OU), and two live ones.
    let old = "2026-08-01T09:00:00.000Z";
    let endpoints = [
        // 10.0 (19044) in AD too; a non-VIP user; away 122 days: nothing argues against it.
        endpoint(1, "WS-OLD-0101", 19044, old, "CORP\\carol"),
        // managedBy Dave, a VIP three groups down (VIP-Assistants in VIP-Board in VIP-Executives).
        endpoint(2, "WS-OLD-0102", 19045, old, "CORP\\carol"),
        // managedBy the group VIP-Board, itself in VIP-Executives; Central has the full name,
        // AD's sAMAccountName is cut to 15 characters.
        endpoint(
            3,
            "kiosk-lobby-terminal-07.corp.example.test",
            19045,
            old,
            "CORP\\carol",
        ),
        // AD says 10.0 (19041), Central 19045: a re-imaged machine, maybe.
        endpoint(4, "WS-OLD-0099", 19045, old, "CORP\\carol"),
        // Logged on by Alice, a VIP through VIP-Board; AD build matches.
        endpoint(5, "WS-OLD-0103", 19045, old, "CORP\\alice"),
        // Not retired: in OU=Workstations and OU=Servers.
        endpoint(6, "WS-0001", 19045, old, "CORP\\carol"),
        endpoint(7, "SRV-APP01", 20348, old, "CORP\\carol"),
    ];
    let central = dir.path().join("central").join(TENANT);
    let page = json!({ "items": endpoints, "pages": { "size": 50, "maxSize": 500 } });
    write(&central.join("page-00001.json"), &page.to_string());
    let manifest = json!({
        "tenant_id": TENANT, "tenant_name": "Corp HQ", "collected_at": "2026-12-01T00:00:00Z",
        "pages": 1, "endpoints": endpoints.len(), "complete": true
    });
    write(&central.join("manifest.json"), &manifest.to_string());

    let config = dir.path().join("lastseen.toml");
    let text = format!(
        "as_of = \"2026-12-01T00:00:00Z\"\n\
         [inputs]\ncentral = [\"central\"]\nldif = [\"ad/corp.ldif\"]\n\
         [policy]\nmin_inactive_days = 30\n\
         disabled_ous = [\"OU=Disabled Computers,{ESTATE}\"]\nvip_groups = [{VIP_GROUP:?}]\n\
         [[domains]]\ndns = \"corp.example.test\"\nnetbios = \"CORP\"\ntenants = [{TENANT:?}]\n\
         [output]\npath = \"candidates.jsonl\"\n{}",
        dc.ad_section(&[ESTATE], "")
    );
    write(&config, &text);

    lastseen(&["collect", "ad"], &config);
    assert!(dir.path().join("ad/corp.ldif").exists());
    lastseen(&["run"], &config);

    let events: Vec<Value> = std::fs::read_to_string(dir.path().join("candidates.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let decisions: BTreeMap<String, (String, Vec<String>)> = events
        .iter()
        .map(|event| {
            let id = event["endpoint_id"].as_str().unwrap();
            let reasons = event["reasons"].as_array().unwrap();
            let reasons = reasons
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect();
            (
                id[id.len() - 1..].to_owned(),
                (event["decision"].as_str().unwrap().into(), reasons),
            )
        })
        .collect();

    let expected = |decision: &str, reasons: &[&str]| {
        (
            decision.to_owned(),
            reasons.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        decisions,
        BTreeMap::from([
            ("1".to_owned(), expected("delete", &[])),
            ("2".to_owned(), expected("manual_review", &["vip_user"])),
            ("3".to_owned(), expected("manual_review", &["vip_user"])),
            (
                "4".to_owned(),
                expected("manual_review", &["os_build_mismatch"])
            ),
            ("5".to_owned(), expected("manual_review", &["vip_user"])),
        ]),
        "{events:#?}"
    );

    // The evidence carries what the directory said.
    let kiosk = events
        .iter()
        .find(|e| e["endpoint_id"].as_str().unwrap().ends_with('3'))
        .unwrap();
    assert_eq!(
        kiosk["directory"]["dn"],
        format!("CN=KIOSK-LOBBY-TERMINAL-07,OU=Retired 2024,OU=Disabled Computers,{ESTATE}")
    );
    assert_eq!(kiosk["days_inactive"], 121);
}
