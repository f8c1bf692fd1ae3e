//! The storage suite: one boot per agent with a disk on every bus QEMU emulates and a
//! device-mapper device (`storage_buses.rs`); guest-get-fsinfo and guest-get-disks checked
//! against QEMU's command line, compared bus by bus with the reference qemu-ga, and the
//! freeze hook, a SIGKILL while frozen, the freeze watchdog, and `hotplug-online`.

use std::time::{Duration, Instant};

use qga_vmtests::env::TestEnv;
use qga_vmtests::image::{self, Image};
use qga_vmtests::report::{self, Run};
use qga_vmtests::storage_buses::{self as sb, Replies};
use qga_vmtests::suite::{CheckFn, CheckResult, Ctx, Outcome};
use qga_vmtests::vm::{self, Accel, Flavour, Transport, Vm, VmOptions};

/// The checks after the per-bus ones, in order: the serial from a udev database entry, the
/// freeze checks that need the configured agent (the watchdog last of them: it leaves the
/// watchdog configured), then the CPU and DIMM hot-add of `hotplug-online`, here because
/// this boot neither suspends nor reboots: after a CPU hot-add the guest no longer resumes
/// from S3 (see `check_hotplug_online`).
const LATE_CHECKS: &[(&str, CheckFn)] = &[
    ("udev-db.serial", sb::check_udev_serial),
    ("fsfreeze-hook", sb::check_hook_calls),
    ("fsfreeze-hook.failure", sb::check_hook_failure),
    ("fsfreeze.kill-while-frozen", sb::check_kill_while_frozen),
    ("fsfreeze.watchdog", sb::check_watchdog),
    (
        "hotplug-online.cpu-and-dimm",
        qga_vmtests::ext_checks::check_hotplug_online,
    ),
];

fn result(name: &str, r: Result<String, String>, t: Instant) -> CheckResult {
    let (outcome, detail) = match r {
        Ok(d) => (Outcome::Pass, d),
        Err(d) => (Outcome::Fail, d),
    };
    CheckResult {
        transport: "storage".into(),
        name: name.into(),
        outcome,
        detail: format!("{detail} [{:.1?}]", t.elapsed()),
    }
}

fn run_flavour(
    env: &TestEnv,
    image: &Image,
    accel: Accel,
    flavour: Flavour,
) -> (Run, Option<Replies>) {
    let mut run = Run {
        label: flavour.name().to_string(),
        ..Run::default()
    };
    let options = VmOptions {
        name: format!("storage-{}", flavour.name()),
        flavour,
        accel,
        lifetime: Duration::from_secs(240),
        no_reboot: true,
        storage: true,
    };
    let t = Instant::now();
    let mut vm = match Vm::boot(env, image, options) {
        Ok(vm) => vm,
        Err(e) => {
            run.results.push(result("boot", Err(e.0), t));
            return (run, None);
        }
    };
    match vm.connect_agent(Transport::VirtioSerial, Duration::from_secs(120)) {
        Ok(mut c) => {
            run.first_reply
                .push(("virtio-serial".into(), vm.started.elapsed()));
            if flavour == Flavour::Reference
                && let Ok(info) = c.execute::<qga_schema::GuestInfo>(&qga_schema::NoArgs {})
            {
                run.label = format!("qemu-ga {}", info.version);
            }
        }
        Err(e) => {
            run.results.push(result("first-reply", Err(e.0), t));
            return (run, None);
        }
    }
    let mut ctx = Ctx::new(&mut vm, image, Transport::VirtioSerial);
    let t = Instant::now();
    let (found, r) = sb::setup(&mut ctx, env);
    run.results.push(result("setup", r, t));
    let (rows, replies) = sb::bus_checks(&mut ctx, &found, flavour == Flavour::Ours);
    run.results.extend(rows);
    for (name, f) in LATE_CHECKS {
        let t = Instant::now();
        let r = f(&mut ctx);
        if r.is_err() {
            ctx.drop_client();
        }
        run.results.push(result(name, r, t));
    }
    drop(ctx);
    vm.stop();
    let dump = env
        .work
        .join(format!("storage-{}-replies.json", flavour.name()));
    let _ = std::fs::write(
        &dump,
        serde_json::json!({"guest-get-fsinfo": replies.fsinfo, "guest-get-disks": replies.disks})
            .to_string(),
    );
    (run, Some(replies))
}

#[test]
#[ignore = "needs the VM tier: run scripts/vmtest"]
fn storage_buses_in_guest() {
    let env = TestEnv::from_env().expect("environment").for_storage();
    let image = image::build(&env).expect("image");
    println!("guest kernel: {}", image.kernel_release);
    let (accel, why) = vm::choose_accel(&env, &image);
    println!("accelerator: {} ({why})", accel.name());
    let (mut ours, our_replies) = run_flavour(&env, &image, accel, Flavour::Ours);
    let reference = image
        .has_reference
        .then(|| run_flavour(&env, &image, accel, Flavour::Reference));
    let compat = std::fs::read_to_string(&env.compat_doc).unwrap_or_default();
    let mut table = String::new();
    if let (Some(o), Some((r, Some(rr)))) = (&our_replies, &reference) {
        let (rows, t) = sb::compare(o, rr, &compat);
        ours.results.extend(rows);
        table = format!("Per bus, ours vs {}:\n{t}", r.label);
        println!("{table}");
    }
    let failures = report::conclude(&env, "storage", &ours, reference.as_ref().map(|(r, _)| r));
    if !table.is_empty() {
        let path = env.work.join("report-storage.txt");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::write(&path, format!("{table}\n{text}"));
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}
