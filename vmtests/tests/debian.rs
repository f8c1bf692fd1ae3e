//! The install test (`scripts/debian-install-test`): our .deb installed with `dpkg -i` over
//! Debian's qemu-guest-agent in a real Debian guest, then the libvirt table there.

use std::path::PathBuf;
use std::time::Duration;

use qga_vmtests::debian::{self, DebianImage};
use qga_vmtests::env::TestEnv;
use qga_vmtests::libvirt::{self, Domain};
use qga_vmtests::report::{self, Run};
use qga_vmtests::suite::{CheckResult, Outcome};
use qga_vmtests::vm::Accel;

fn var(name: &str) -> PathBuf {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run scripts/debian-install-test"))
        .into()
}

#[test]
#[ignore = "needs the VM tier and a Debian image: run scripts/debian-install-test"]
fn dpkg_replaces_qemu_guest_agent_in_a_debian_guest() {
    let img = DebianImage {
        dir: var("QGA_DEB_IMAGE"),
    };
    let deb = var("QGA_DEB_PACKAGE");
    let accel = match std::env::var("QGA_VM_ACCEL").as_deref() {
        Ok("kvm") => Accel::Kvm,
        _ => Accel::Tcg,
    };
    let env = TestEnv {
        kernel_dir: img.dir.clone(),
        storage_kernel_dir: None,
        agent: deb.clone(),
        client: None,
        ref_agent: None,
        storage_ref_agent: None,
        busybox: PathBuf::new(),
        work: var("QGA_VM_WORK"),
        accel: accel.name().into(),
        compat_doc: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/compat.md"),
    };
    let mut run = Run {
        label: "qga .deb on Debian".into(),
        ..Run::default()
    };
    let fail = |name: &str, detail: String| CheckResult {
        transport: "debian".into(),
        name: name.into(),
        outcome: Outcome::Fail,
        detail,
    };
    match debian::boot(&env, &img, &deb, accel) {
        Err(e) => run.results.push(fail("virsh create", e.0)),
        Ok(dom) => boot_and_test(&dom, &mut run, &fail),
    }
    let failures = report::conclude(&env, "debian", &run, None);
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

fn boot_and_test(dom: &Domain, run: &mut Run, fail: &dyn Fn(&str, String) -> CheckResult) {
    match dom.wait_agent(Duration::from_secs(300)) {
        Ok(d) => run.first_reply.push(("libvirt".into(), d)),
        Err(e) => {
            run.results.push(fail("first-reply of Debian's agent", e.0));
            return;
        }
    }
    let version = libvirt::agent_json(dom, &serde_json::json!({"execute": "guest-info"}))
        .ok()
        .and_then(|r| r.get("version")?.as_str().map(str::to_string))
        .unwrap_or_default();
    run.results.extend(debian::run(dom, &version));
    dom.destroy();
}
