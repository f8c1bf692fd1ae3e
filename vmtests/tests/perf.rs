//! In-VM transfer figures: guest-ping latency and guest-file-write/-read throughput over the
//! real virtio-serial port, for our agent and for Debian's qemu-ga in the same kind of guest
//! (one guest each, booted one after the other). Not part of CI (it measures, it does not
//! check much): run it by hand with `QGA_VM_SUITES=perf scripts/vmtest`. Under TCG the
//! absolute figures are low; the ratio is the point. The table goes to stdout and to
//! `target/vm-work/report-perf.txt`.

use std::fmt::Write as _;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use qga_client::Client;
use qga_schema::{FileHandleArgs, FileOpenArgs, GuestFileClose, GuestFileOpen};
use qga_vmtests::env::TestEnv;
use qga_vmtests::image;
use qga_vmtests::vm::{self, Flavour, Transport, Vm, VmOptions};

/// Bytes moved per transfer figure.
const FILE_SIZE: usize = 8 << 20;
/// Pings timed one by one.
const PINGS: usize = 300;
/// Chunk sizes of the transfer figures.
const CHUNKS: &[(usize, &str)] = &[(64 << 10, "64 KiB"), (1 << 20, "1 MiB")];

/// One figure: name, unit, value.
type Figure = (String, &'static str, f64);

fn open(c: &mut Client<UnixStream>, path: &str, mode: &str) -> i64 {
    c.execute::<GuestFileOpen>(&FileOpenArgs {
        path: path.into(),
        mode: Some(mode.into()),
    })
    .expect("guest-file-open")
}

fn close(c: &mut Client<UnixStream>, h: i64) {
    c.execute::<GuestFileClose>(&FileHandleArgs { handle: h })
        .expect("guest-file-close");
}

/// The data written and read back: deterministic, not compressible.
fn data() -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..FILE_SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `pipelined`: also the figures with four requests in flight, which only our agent gets:
/// qemu-ga over virtio-serial leaves the last of several pipelined requests unanswered until
/// more input arrives (docs/compat.md).
fn measure(vm: &mut Vm, pipelined: bool) -> Vec<Figure> {
    let mut figures = Vec::new();
    let mut c = vm
        .connect_agent(Transport::VirtioSerial, Duration::from_secs(120))
        .expect("agent answers");
    c.set_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let ping = b"{\"execute\":\"guest-ping\"}\n";
    for _ in 0..20 {
        c.send_raw(ping).expect("send");
        c.read_reply().expect("reply");
    }
    let mut lat: Vec<f64> = (0..PINGS)
        .map(|_| {
            let t = Instant::now();
            c.send_raw(ping).expect("send");
            c.read_reply().expect("reply");
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    figures.push(("ping p50".into(), "µs", lat[lat.len() / 2]));
    figures.push(("ping p99".into(), "µs", lat[lat.len() * 99 / 100]));
    let data = data();
    for &(chunk, label) in CHUNKS {
        // One request at a time, then four in flight (how `qga cp` copies with our agent).
        let depths: &[usize] = if pipelined { &[1, 4] } else { &[1] };
        for &depth in depths {
            let label = if depth == 1 {
                label.to_string()
            } else {
                format!("{label}, {depth} in flight")
            };
            let path = "/tmp/qga-perf.bin";
            let h = open(&mut c, path, "w");
            let t = Instant::now();
            let mut w = c.file_writer(h, depth).expect("writer");
            for part in data.chunks(chunk) {
                w.write(part).expect("guest-file-write");
            }
            assert_eq!(w.finish().expect("guest-file-write"), FILE_SIZE as u64);
            drop(w);
            close(&mut c, h);
            let secs = t.elapsed().as_secs_f64();
            figures.push((
                format!("write, {label} chunks"),
                "MB/s",
                FILE_SIZE as f64 / secs / 1e6,
            ));
            let h = open(&mut c, path, "r");
            let mut back = Vec::with_capacity(FILE_SIZE);
            let mut buf = Vec::new();
            let t = Instant::now();
            let mut r = c.file_reader(h, chunk as i64, depth).expect("reader");
            while r.next_chunk_into(&mut buf).expect("guest-file-read") {
                back.extend_from_slice(&buf);
            }
            drop(r);
            let secs = t.elapsed().as_secs_f64();
            close(&mut c, h);
            assert!(back == data, "the data read back differs ({label})");
            figures.push((
                format!("read, {label} chunks"),
                "MB/s",
                FILE_SIZE as f64 / secs / 1e6,
            ));
        }
    }
    figures
}

fn run(env: &TestEnv, image: &image::Image, accel: vm::Accel, flavour: Flavour) -> Vec<Figure> {
    let options = VmOptions {
        name: format!("perf-{}", flavour.name()),
        flavour,
        accel,
        lifetime: Duration::from_secs(400),
        no_reboot: true,
        storage: false,
    };
    let mut vm = Vm::boot(env, image, options).expect("boot");
    let figures = measure(&mut vm, flavour == Flavour::Ours);
    vm.stop();
    figures
}

#[test]
#[ignore = "measures, by hand: QGA_VM_SUITES=perf scripts/vmtest"]
fn transfer_figures_in_guest() {
    let env = TestEnv::from_env().expect("environment");
    let image = image::build(&env).expect("image");
    let (accel, why) = vm::choose_accel(&env, &image);
    let ours = run(&env, &image, accel, Flavour::Ours);
    let theirs = image
        .has_reference
        .then(|| run(&env, &image, accel, Flavour::Reference));
    let mut text = format!(
        "in-VM figures over virtio-serial, accelerator {} ({why}), {} MiB per transfer\n",
        accel.name(),
        FILE_SIZE >> 20
    );
    let _ = writeln!(
        text,
        "{:<34} {:>10} {:>10} {:>8}",
        "figure", "qga", "qemu-ga", "ratio"
    );
    for (name, unit, v) in &ours {
        let t = theirs
            .as_ref()
            .and_then(|t| t.iter().find(|f| f.0 == *name))
            .map(|f| f.2);
        let _ = writeln!(
            text,
            "{name:<34} {v:>10.2} {:>10} {:>8}  {unit}",
            t.map_or("-".into(), |t| format!("{t:.2}")),
            t.map_or("-".into(), |t| format!("{:.2}x", v / t)),
        );
    }
    println!("{text}");
    let _ = std::fs::write(env.work.join("report-perf.txt"), &text);
    let _ = std::fs::write(env.work.join("summary-perf.txt"), "1 0 0\n");
}
