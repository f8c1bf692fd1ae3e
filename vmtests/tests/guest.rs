//! The end-to-end suite in a real guest, over virtio-serial and isa-serial, for our agent
//! and (where Debian's qemu-ga is installed) the reference, with a side-by-side report.

use std::time::Duration;

use qga_vmtests::checks;
use qga_vmtests::env::TestEnv;
use qga_vmtests::image::{self, Image};
use qga_vmtests::report::{self, Run};
use qga_vmtests::suite::{self, CheckResult, Outcome};
use qga_vmtests::vm::{self, Accel, Flavour, Transport, Vm, VmOptions};

fn fail(transport: &str, name: &str, detail: String) -> CheckResult {
    CheckResult {
        transport: transport.into(),
        name: name.into(),
        outcome: Outcome::Fail,
        detail,
    }
}

fn run_flavour(env: &TestEnv, image: &Image, accel: Accel, flavour: Flavour) -> Run {
    let mut run = Run {
        label: flavour.name().to_string(),
        ..Run::default()
    };
    let options = VmOptions {
        name: format!("guest-{}", flavour.name()),
        flavour,
        accel,
        lifetime: Duration::from_secs(300),
        // The guest-shutdown reboot check needs the guest to come back.
        no_reboot: false,
        storage: false,
    };
    let mut vm = match Vm::boot(env, image, options) {
        Ok(vm) => vm,
        Err(e) => {
            run.results.push(fail("guest", "boot", e.0));
            return run;
        }
    };
    for t in [Transport::VirtioSerial, Transport::IsaSerial] {
        match vm.connect_agent(t, Duration::from_secs(120)) {
            Ok(_) => run
                .first_reply
                .push((t.name().to_string(), vm.started.elapsed())),
            Err(e) => run.results.push(fail(t.name(), "first-reply", e.0)),
        }
    }
    if flavour == Flavour::Reference
        && let Ok(mut c) = vm.connect_agent(Transport::VirtioSerial, Duration::from_secs(30))
        && let Ok(info) = c.execute::<qga_schema::GuestInfo>(&qga_schema::NoArgs {})
    {
        run.label = format!("qemu-ga {}", info.version);
    }
    for t in [Transport::VirtioSerial, Transport::IsaSerial] {
        run.results
            .extend(suite::run_suite(&mut vm, image, t, flavour));
    }
    // Every agent exit shows on the console (the respawn wrapper logs it): only the kills of
    // the restart checks may be there. Checked before the guest-shutdown checks end the
    // agents.
    let kills = run
        .results
        .iter()
        .filter(|r| r.name == "restart.agent" || r.name.ends_with(".handles-after-restart"))
        .count();
    let exits: Vec<String> = vm
        .console()
        .lines()
        .filter(|l| l.contains("exited with status"))
        .map(str::to_string)
        .collect();
    run.results.push(CheckResult {
        transport: "guest".into(),
        name: "console.agent-exits".into(),
        outcome: if exits.len() <= kills {
            Outcome::Pass
        } else {
            Outcome::Fail
        },
        detail: format!(
            "{} agent exits for {kills} kills: {}",
            exits.len(),
            exits.join(" | ")
        ),
    });
    // Last: guest-shutdown reboot, halt and powerdown (when the agent lists it).
    let listed = run
        .results
        .iter()
        .any(|r| r.name == "guest-shutdown.bad-mode" && r.outcome != Outcome::Skip);
    if listed {
        run.results.extend(checks::final_checks(&mut vm, image));
    }
    vm.stop();
    run
}

#[test]
#[ignore = "needs the VM tier: run scripts/vmtest"]
fn agent_end_to_end_in_guest() {
    let env = TestEnv::from_env().expect("environment");
    let image = image::build(&env).expect("image");
    let (accel, why) = vm::choose_accel(&env, &image);
    println!("accelerator: {} ({why})", accel.name());
    let ours = run_flavour(&env, &image, accel, Flavour::Ours);
    let reference = image
        .has_reference
        .then(|| run_flavour(&env, &image, accel, Flavour::Reference));
    let failures = report::conclude(&env, "guest", &ours, reference.as_ref());
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}
