//! Process-level protocol tests: the real agent on a real unix socket, driven by the
//! client library (the analogue of QEMU's test-qga.c for the core commands).

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{Agent, exchange};
use qga_client::ClientError;
use qga_schema::{
    GuestGetHostName, GuestGetOsinfo, GuestGetTime, GuestGetTimezone, GuestGetUsers, GuestInfo,
    GuestPing, GuestSync, NoArgs, SyncArgs,
};

#[test]
fn test_sync_delimited_after_0xff() {
    let a = Agent::start(&[]);
    let out = exchange(
        &a,
        b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":7}}",
        2,
    );
    assert_eq!(
        out,
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n\u{ff}{\"return\": 7}\n"
    );
}

#[test]
fn test_client_sync_then_typed_commands() {
    let a = Agent::start(&[]);
    let mut c = a.client();
    c.sync().unwrap();
    c.execute::<GuestPing>(&NoArgs {}).unwrap();
    assert_eq!(c.execute::<GuestSync>(&SyncArgs { id: -42 }).unwrap(), -42);
    let t = c.execute::<GuestGetTime>(&NoArgs {}).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    assert!((now - t).abs() < 60_000_000_000, "time {t} vs {now}");
    let host = c.execute::<GuestGetHostName>(&NoArgs {}).unwrap();
    assert!(!host.host_name.is_empty());
    c.execute::<GuestGetTimezone>(&NoArgs {}).unwrap();
    c.execute::<GuestGetUsers>(&NoArgs {}).unwrap();
    let os = c.execute::<GuestGetOsinfo>(&NoArgs {}).unwrap();
    assert!(os.kernel_release.is_some() && os.machine.is_some());
}

#[test]
fn test_id_echoed_verbatim_for_all_json_types() {
    let a = Agent::start(&[]);
    let out = exchange(
        &a,
        "{'execute':'guest-ping','id':'\u{e9}\u{1F600}'}{\"execute\":\"guest-ping\",\"id\":{\"a\":[1,2.5,null,true]}}\
         {\"execute\":\"guest-ping\",\"id\":18446744073709551615}{\"execute\":\"guest-ping\",\"id\":0.1}"
            .as_bytes(),
        4,
    );
    assert_eq!(
        out,
        "{\"return\": {}, \"id\": \"\\u00E9\\uD83D\\uDE00\"}\n\
         {\"return\": {}, \"id\": {\"a\": [1, 2.5, null, true]}}\n\
         {\"return\": {}, \"id\": 18446744073709551615}\n\
         {\"return\": {}, \"id\": 0.10000000000000001}\n"
    );
}

#[test]
fn test_argument_and_command_errors() {
    let a = Agent::start(&[]);
    let out = exchange(
        &a,
        b"{\"execute\":\"guest-ping\",\"arguments\":{\"foo\":1}}\
          {\"execute\":\"guest-sync\"}\
          {\"execute\":\"guest-sync\",\"arguments\":{\"id\":\"x\"}}\
          {\"execute\":\"guest-sync\",\"arguments\":{\"id\":9223372036854775808}}\
          {\"execute\":\"guest-nope\",\"id\":1}\
          {\"execute\":\"guest-ping\",\"exec-oob\":1}",
        6,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        r#"{"error": {"class": "GenericError", "desc": "Parameter 'foo' is unexpected"}}"#
    );
    assert_eq!(
        lines[1],
        r#"{"error": {"class": "GenericError", "desc": "Parameter 'id' is missing"}}"#
    );
    assert_eq!(
        lines[2],
        r#"{"error": {"class": "GenericError", "desc": "Invalid parameter type for 'id', expected: integer"}}"#
    );
    assert_eq!(lines[3], lines[2]);
    assert_eq!(
        lines[4],
        r#"{"id": 1, "error": {"class": "CommandNotFound", "desc": "The command guest-nope has not been found"}}"#
    );
    assert_eq!(
        lines[5],
        r#"{"error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' is unexpected"}}"#
    );
}

#[test]
fn test_block_and_allow_lists() {
    let a = Agent::start(&["-b", "guest-ping,guest-get-time"]);
    let mut c = a.client();
    match c.execute::<GuestPing>(&NoArgs {}) {
        Err(ClientError::Agent(e)) => {
            assert_eq!(e.class.as_str(), "CommandNotFound");
            assert_eq!(
                e.desc,
                "Command guest-ping has been disabled: the command is not allowed"
            );
        }
        other => panic!("{other:?}"),
    }
    let info = c.execute::<GuestInfo>(&NoArgs {}).unwrap();
    let ping = info
        .supported_commands
        .iter()
        .find(|c| c.name == "guest-ping")
        .unwrap();
    assert!(!ping.enabled && ping.success_response);

    let a = Agent::start_with(
        &["-a", "guest-info"],
        &[],
        "[general]\nallow-rpcs=guest-ping;guest-sync\n",
    );
    let mut c = a.client();
    c.execute::<GuestPing>(&NoArgs {}).unwrap();
    let info = c.execute::<GuestInfo>(&NoArgs {}).unwrap();
    let enabled: Vec<&str> = info
        .supported_commands
        .iter()
        .filter(|c| c.enabled)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(enabled, ["guest-info", "guest-ping", "guest-sync"]);
}

#[test]
fn test_osinfo_from_qga_os_release() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("os-release");
    std::fs::write(
        &f,
        "ID=qemu-ga-test\nNAME=QEMU-GA\nPRETTY_NAME=\"QEMU Guest Agent test\"\nVERSION=\"Test version\"\n\
         VERSION_ID=1\nVARIANT='Unit test'\nVARIANT_ID=unit-test\n",
    )
    .unwrap();
    let a = Agent::start_with(&[], &[("QGA_OS_RELEASE", f.to_str().unwrap())], "");
    let os = a.client().execute::<GuestGetOsinfo>(&NoArgs {}).unwrap();
    assert_eq!(os.id.as_deref(), Some("qemu-ga-test"));
    assert_eq!(os.name.as_deref(), Some("QEMU-GA"));
    assert_eq!(os.pretty_name.as_deref(), Some("QEMU Guest Agent test"));
    assert_eq!(os.version.as_deref(), Some("Test version"));
    assert_eq!(os.version_id.as_deref(), Some("1"));
    // qemu-ga cuts single-quoted values at the first space; we do not (docs/compat.md).
    assert_eq!(os.variant.as_deref(), Some("Unit test"));
    assert_eq!(os.variant_id.as_deref(), Some("unit-test"));
}

#[test]
fn test_new_connection_gets_fresh_parser_and_agent_survives_reset() {
    let mut a = Agent::start(&[]);
    {
        let mut s = UnixStream::connect(&a.sock).unwrap();
        s.write_all(b"{\"execute\":\"guest-ping\"}{\"execute\":")
            .unwrap();
        // Wait for the first reply, then close without reading it: qemu-ga exits here.
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(a.alive());
    let out = exchange(
        &a,
        b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":3}}",
        1,
    );
    assert_eq!(out, "{\"return\": 3}\n");
}

#[test]
fn test_many_connect_close_cycles() {
    let mut a = Agent::start(&[]);
    for _ in 0..200 {
        let s = UnixStream::connect(&a.sock).unwrap();
        drop(s);
    }
    assert!(a.alive());
    assert_eq!(
        exchange(&a, b"{\"execute\":\"guest-ping\"}", 1),
        "{\"return\": {}}\n"
    );
}

#[test]
fn test_sigterm_exits_zero() {
    let mut a = Agent::start(&[]);
    let pid = a.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = a.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn test_pipelined_requests_in_order() {
    let a = Agent::start(&[]);
    let mut c = a.client();
    let mut input = Vec::new();
    for i in 0..2000 {
        input.extend_from_slice(
            format!("{{\"execute\":\"guest-sync\",\"arguments\":{{\"id\":{i}}}}}").as_bytes(),
        );
    }
    let writer = {
        let mut s = c.get_mut().try_clone().unwrap();
        std::thread::spawn(move || s.write_all(&input).unwrap())
    };
    for i in 0..2000 {
        let r = c.read_reply().unwrap();
        assert_eq!(
            String::from_utf8(r.line).unwrap(),
            format!("{{\"return\": {i}}}")
        );
    }
    writer.join().unwrap();
}

#[test]
fn test_state_file_created() {
    let a = Agent::start(&[]);
    let text = std::fs::read_to_string(a.statedir().join("qga.state")).unwrap();
    assert_eq!(text, "[global]\nfd_counter=1000\n");
}

#[test]
fn test_oversized_message_one_error_and_bounded() {
    let a = Agent::start(&[]);
    let mut c = a.client();
    let mut s = c.get_mut().try_clone().unwrap();
    let w = std::thread::spawn(move || {
        s.write_all(b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":\"")
            .unwrap();
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..70 {
            s.write_all(&chunk).unwrap();
        }
        s.write_all(b"\"}}{\"execute\":\"guest-sync\",\"arguments\":{\"id\":9}}")
            .unwrap();
    });
    let r = c.read_reply().unwrap();
    assert_eq!(
        String::from_utf8(r.line).unwrap(),
        r#"{"error": {"class": "GenericError", "desc": "JSON token size limit exceeded"}}"#
    );
    let r = c.read_reply().unwrap();
    assert_eq!(String::from_utf8(r.line).unwrap(), r#"{"return": 9}"#);
    w.join().unwrap();
    let mut buf = [0u8; 1];
    c.get_mut()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        c.get_mut().read(&mut buf).is_err(),
        "no further replies expected"
    );
}
