//! The fuzz targets. Each takes arbitrary bytes and must not panic; `assert!`s are oracles.

use qga_proto::{Frame, Framer, Value, parse_request, reply_err, reply_ok};
use qga_sys::{cpu, diskstats, memory, mounts, net, osinfo, password, rtc, ssh, users};

/// Text of `data`, invalid UTF-8 replaced (the /proc parsers take `&str`).
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Splits `data` at its first NUL: a short parameter, then the main input.
fn param(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[], data),
    }
}

fn frames(chunks: &[&[u8]]) -> Vec<Frame> {
    let mut framer = Framer::new();
    let mut out = Vec::new();
    for c in chunks {
        framer.feed(c, &mut |f| out.push(f));
    }
    out
}

/// Whether `v` holds no infinite or NaN number: qemu-ga writes those as `inf`/`nan` (kept for
/// byte compatibility, see the golden case ping-id-1e400), which no JSON parser reads back.
fn finite(v: &Value) -> bool {
    match v {
        Value::Double(d) => d.is_finite(),
        Value::List(items) => items.iter().all(finite),
        Value::Dict(d) => d.entries.iter().all(|(_, v)| finite(v)),
        _ => true,
    }
}

/// Framer, lexer and parser: the frames do not depend on how the input is chunked; every
/// finite message written back by the reply writer parses again as exactly one message.
pub fn framer(data: &[u8]) {
    let whole = frames(&[data]);
    let cut = data
        .first()
        .map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let (a, b) = data.split_at(cut);
    assert_eq!(whole, frames(&[a, b]), "chunking changed the frames");
    if data.len() < 4096 {
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(
            whole,
            frames(&bytes),
            "byte-wise feeding changed the frames"
        );
    }
    for f in whole {
        if let Frame::Message(v) = f
            && finite(&v)
        {
            let reply = reply_ok(v, None);
            assert_eq!(reply.last(), Some(&b'\n'));
            assert!(reply.is_ascii(), "reply is not ASCII");
            let again = frames(&[&reply]);
            assert!(
                matches!(again.as_slice(), [Frame::Message(_)]),
                "written value does not parse back: {again:?}"
            );
        }
    }
}

/// Request envelope and argument decoding: every message goes through `parse_request`, and
/// its `arguments` through the decoder of every command in the table (decoding only;
/// nothing runs). Error replies are written as the agent would.
pub fn request(data: &[u8]) {
    for f in frames(&[data]) {
        let msg = match f {
            Frame::Message(v) => v,
            Frame::Error(e) => {
                let _ = reply_err(&e, None);
                continue;
            }
        };
        let req = match parse_request(msg) {
            Ok(r) => r,
            Err(e) => {
                let _ = reply_err(&e.error, e.id);
                continue;
            }
        };
        for spec in qga_agent::registry::COMMANDS {
            if let Err(e) = spec.decode_args(req.arguments.clone()) {
                let _ = reply_err(&qga_proto::QgaError::from(e), req.id.clone());
            }
        }
    }
}

/// The configuration file: GLib key-file syntax and qemu-ga's keys; a configuration that
/// loads dumps (`-D`) to a key file that loads again.
pub fn config(data: &[u8]) {
    if let Ok(kf) = qga_sys::keyfile::KeyFile::parse(data) {
        for g in kf
            .groups()
            .map(|g| String::from_utf8_lossy(g).into_owned())
            .collect::<Vec<_>>()
        {
            let keys: Vec<String> = kf
                .keys(&g)
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect();
            for k in keys {
                let _ = kf.string(&g, &k);
                let _ = kf.boolean(&g, &k);
            }
        }
    }
    if let Ok(cfg) = qga_agent::config::from_keyfile_bytes(data) {
        let dumped = qga_agent::config::dump(&cfg);
        assert!(
            qga_agent::config::from_keyfile_bytes(dumped.as_bytes()).is_ok(),
            "dumped configuration does not load: {dumped:?}"
        );
    }
}

/// `/proc/self/mountinfo` and `/proc/self/mounts`, with octal escapes.
pub fn mountinfo(data: &[u8]) {
    let t = text(data);
    let dev = |p: &str| p.len().is_multiple_of(3).then_some((8, p.len() as u32));
    let _ = mounts::parse_mountinfo(&t, &dev);
    let _ = mounts::parse_mounts(&t, &dev, &|p: &str| p.ends_with('/'));
    let _ = mounts::decode_octal(&t);
}

/// `/proc/diskstats`.
pub fn diskstats(data: &[u8]) {
    let t = text(data);
    let all = diskstats::parse_diskstats(&t);
    assert!(all.len() <= t.lines().count());
}

/// `/proc/net/dev`, `/proc/net/route`, `/proc/net/ipv6_route`.
pub fn net(data: &[u8]) {
    let (name, rest) = param(data);
    let t = text(rest);
    let _ = net::net_dev_stats(&t, &String::from_utf8_lossy(name));
    let _ = net::parse_route(&t);
    let _ = net::parse_ipv6_route(&t);
}

/// `/proc/stat`, sysfs cpu entry names, memory block sizes, `/etc/adjtime`.
pub fn cpu(data: &[u8]) {
    let t = text(data);
    let _ = cpu::parse_proc_stat(&t);
    for line in t.lines() {
        let _ = cpu::cpu_entry_id(line);
        let _ = memory::parse_hex_size(line);
    }
    let _ = rtc::adjtime_is_local(&t);
}

/// `/etc/os-release` and its value quoting.
pub fn osinfo(data: &[u8]) {
    let t = text(data);
    let _ = osinfo::parse_os_release(&t);
    for line in t.lines() {
        let _ = osinfo::os_release_value(line);
    }
}

/// utmp records (`/var/run/utmp`).
pub fn utmp(data: &[u8]) {
    for e in users::parse_utmp(data) {
        assert!(e.user.len() <= 32 * 3, "user name longer than ut_user");
    }
}

/// `/etc/shadow` and `/etc/passwd` updates (user name before the first NUL), and the
/// SHA-512 crypt salt handling.
pub fn passwd(data: &[u8]) {
    let (user, rest) = param(data);
    let user = String::from_utf8_lossy(user);
    let t = text(rest);
    if let Some(out) = password::set_password_field(&t, &user, "$6$s$h", Some(19000)) {
        assert_eq!(
            out.split('\n').count(),
            t.split('\n').count(),
            "line count changed"
        );
    }
    // 5000 rounds of SHA-512: only short inputs, or the target does little else.
    if data.len() < 24 {
        let _ = password::crypt_sha512(user.as_bytes(), &t);
    }
}

/// authorized_keys text: listing, adding, removing, and key checks.
pub fn ssh(data: &[u8]) {
    let t = text(data);
    let keys = ssh::keys_from_text(&t);
    let _ = ssh::check_keys(&keys);
    let added = ssh::add_to_text(Some(&t), &keys);
    let _ = ssh::remove_from_text(&added, &keys);
    let _ = ssh::add_to_text(None, &keys);
}

/// Base64 (strict alphabet, lenient padding), vsock addresses, the state file's counter.
pub fn misc(data: &[u8]) {
    let t = text(data);
    if let Ok(bytes) = qga_proto::b64::decode(&t) {
        let again = qga_proto::b64::decode(&qga_proto::b64::encode(&bytes));
        assert_eq!(again.as_deref(), Ok(bytes.as_slice()), "base64 round trip");
    }
    let _ = qga_sys::chan::parse_vsock_addr(&t);
    let _ = qga_agent::state::parse_fd_counter(&t);
}
