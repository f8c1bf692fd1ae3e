//! What `scripts/vmtest` hands to the tests, through environment variables.

use std::path::PathBuf;

use crate::Error;

/// The inputs of a VM test run.
#[derive(Debug, Clone)]
pub struct TestEnv {
    /// `QGA_VM_KERNEL_DIR`: the unpacked `linux-image-*-cloud-amd64` package.
    pub kernel_dir: PathBuf,
    /// `QGA_VM_STORAGE_KERNEL_DIR`: the unpacked generic `linux-image-*-amd64` package for
    /// the storage suite, whose AHCI and USB drivers the cloud kernel lacks (unset: the
    /// storage suite boots the cloud kernel and reports those buses as skipped).
    pub storage_kernel_dir: Option<PathBuf>,
    /// `QGA_VM_AGENT`: our agent, linked statically.
    pub agent: PathBuf,
    /// `QGA_VM_CLIENT`: our `qga` client, linked statically, put in the guest as
    /// `/usr/bin/qga` (unset: not in the image; the rows that need it fail).
    pub client: Option<PathBuf>,
    /// `QGA_VM_REF_AGENT`: Debian's qemu-ga for the reference run (unset or empty: none).
    pub ref_agent: Option<PathBuf>,
    /// `QGA_VM_STORAGE_REF_AGENT`: the storage suite's reference instead (qemu-ga 10.x from
    /// bookworm-backports when `scripts/vmtest` could fetch it; unset or empty: `ref_agent`).
    pub storage_ref_agent: Option<PathBuf>,
    /// `QGA_VM_BUSYBOX`: a static busybox.
    pub busybox: PathBuf,
    /// `QGA_VM_WORK`: where images, logs and the report go.
    pub work: PathBuf,
    /// `QGA_VM_ACCEL`: `kvm`, `tcg` or `auto` (probe KVM once, fall back to TCG).
    pub accel: String,
    /// `QGA_VM_COMPAT_DOC`: docs/compat.md, which explains the expected differences.
    pub compat_doc: PathBuf,
}

fn var(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| {
        Error::msg(format!(
            "{name} is not set: run the VM tier with scripts/vmtest"
        ))
    })
}

impl TestEnv {
    /// Reads the environment.
    pub fn from_env() -> Result<TestEnv, Error> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        Ok(TestEnv {
            kernel_dir: var("QGA_VM_KERNEL_DIR")?.into(),
            storage_kernel_dir: std::env::var("QGA_VM_STORAGE_KERNEL_DIR")
                .ok()
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            agent: var("QGA_VM_AGENT")?.into(),
            client: std::env::var("QGA_VM_CLIENT")
                .ok()
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            ref_agent: std::env::var("QGA_VM_REF_AGENT")
                .ok()
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            storage_ref_agent: std::env::var("QGA_VM_STORAGE_REF_AGENT")
                .ok()
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            busybox: std::env::var("QGA_VM_BUSYBOX")
                .unwrap_or_else(|_| "/bin/busybox".into())
                .into(),
            work: var("QGA_VM_WORK")?.into(),
            accel: std::env::var("QGA_VM_ACCEL").unwrap_or_else(|_| "auto".into()),
            compat_doc: root.join("../docs/compat.md"),
        })
    }

    /// The environment of the storage suite: its own kernel and reference agent where there
    /// are.
    pub fn for_storage(&self) -> TestEnv {
        let mut env = self.clone();
        if let Some(dir) = &self.storage_kernel_dir {
            env.kernel_dir = dir.clone();
        }
        if let Some(agent) = &self.storage_ref_agent {
            env.ref_agent = Some(agent.clone());
        }
        env
    }
}
