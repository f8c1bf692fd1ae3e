//! The libvirt suite: virsh commands against a transient domain running our agent and, where
//! Debian's qemu-ga is installed, the same domain running the reference.

use std::time::Duration;

use qga_vmtests::env::TestEnv;
use qga_vmtests::image::{self, Image};
use qga_vmtests::libvirt::{self, Domain};
use qga_vmtests::report::{self, Run};
use qga_vmtests::suite::{CheckResult, Outcome};
use qga_vmtests::vm::{self, Accel, Flavour};

fn result(name: &str, outcome: Outcome, detail: String) -> CheckResult {
    CheckResult {
        transport: "libvirt".into(),
        name: name.into(),
        outcome,
        detail,
    }
}

fn run_flavour(env: &TestEnv, image: &Image, accel: Accel, flavour: Flavour) -> Run {
    let mut run = Run {
        label: flavour.name().to_string(),
        ..Run::default()
    };
    let dom = match Domain::create(env, image, accel, flavour) {
        Ok(d) => d,
        Err(e) => {
            run.results.push(result("virsh create", Outcome::Fail, e.0));
            return run;
        }
    };
    match dom.wait_agent(Duration::from_secs(120)) {
        Ok(d) => run.first_reply.push(("libvirt".into(), d)),
        Err(e) => {
            run.results.push(result("first-reply", Outcome::Fail, e.0));
            return run;
        }
    }
    let listed = libvirt::listed_commands(&dom);
    if flavour == Flavour::Reference {
        let out = libvirt::virsh(
            &[
                "qemu-agent-command",
                &dom.name,
                r#"{"execute":"guest-info"}"#,
            ],
            Duration::from_secs(30),
        );
        if let Some(v) = out
            .ok()
            .and_then(|o| serde_json::from_str::<serde_json::Value>(o.stdout.trim()).ok())
            && let Some(ver) = v.pointer("/return/version").and_then(|v| v.as_str())
        {
            run.label = format!("qemu-ga {ver}");
        }
    }
    run.results.extend(libvirt::run_cases(&dom, &listed));
    dom.destroy();
    run
}

#[test]
#[ignore = "needs the VM tier: run scripts/vmtest"]
fn virsh_commands_through_libvirt() {
    let env = TestEnv::from_env().expect("environment");
    let check = libvirt::virsh(&["uri"], Duration::from_secs(20)).expect("virsh");
    assert!(
        check.ok,
        "libvirtd is not reachable at {}: {}",
        libvirt::URI,
        check.stderr
    );
    let image = image::build(&env).expect("image");
    let (accel, why) = vm::choose_accel(&env, &image);
    println!("accelerator: {} ({why})", accel.name());
    let ours = run_flavour(&env, &image, accel, Flavour::Ours);
    let reference = image
        .has_reference
        .then(|| run_flavour(&env, &image, accel, Flavour::Reference));
    let failures = report::conclude(&env, "libvirt", &ours, reference.as_ref());
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}
