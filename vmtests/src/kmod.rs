//! Kernel modules from an unpacked Debian kernel package (which has no `modules.dep`): finds
//! each module's file, reads the `depends=` entry of its `.modinfo` ELF section, and orders
//! the modules so each comes after its dependencies. A module the kernel has built in
//! (`modules.builtin`) needs no file: the cloud and the generic kernel differ there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::{Error, run_capture};

/// A module ready for the image: its name and its uncompressed bytes.
#[derive(Debug, Clone)]
pub struct Module {
    /// The module's name (`virtio_pci`).
    pub name: String,
    /// The `.ko` contents, decompressed.
    pub data: Vec<u8>,
}

/// Every module file under `moddir` (`lib/modules/<release>`), by module name.
fn index(moddir: &Path) -> Result<BTreeMap<String, PathBuf>, Error> {
    let mut out = BTreeMap::new();
    let mut stack = vec![moddir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, &e))? {
            let entry = entry.map_err(|e| Error::io(&dir, &e))?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
                continue;
            };
            for ext in [".ko", ".ko.xz", ".ko.zst", ".ko.gz"] {
                if let Some(stem) = file.strip_suffix(ext) {
                    out.insert(stem.replace('-', "_"), path.clone());
                }
            }
        }
    }
    Ok(out)
}

/// Reads a module file, decompressing `.xz`, `.zst` and `.gz` with the host's tools.
fn read_module(path: &Path) -> Result<Vec<u8>, Error> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some("xz")
    } else if name.ends_with(".zst") {
        Some("zstd")
    } else if name.ends_with(".gz") {
        Some("gzip")
    } else {
        None
    };
    match tool {
        Some(tool) => run_capture(std::process::Command::new(tool).arg("-dc").arg(path)),
        None => std::fs::read(path).map_err(|e| Error::io(path, &e)),
    }
}

/// The `key=value` strings of the `.modinfo` section of an ELF64 little-endian object.
pub fn modinfo(elf: &[u8]) -> Option<Vec<String>> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    if elf.get(..5)? != b"\x7fELF\x02" || *elf.get(5)? != 1 {
        return None;
    }
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let shentsize = usize::from(u16_at(0x3A)?);
    let shnum = usize::from(u16_at(0x3C)?);
    let shstrndx = usize::from(u16_at(0x3E)?);
    let section = |i: usize| -> Option<(u32, usize, usize)> {
        let h = shoff + i * shentsize;
        Some((
            u32_at(h)?,
            usize::try_from(u64_at(h + 24)?).ok()?,
            usize::try_from(u64_at(h + 32)?).ok()?,
        ))
    };
    let (_, stroff, strsize) = section(shstrndx)?;
    let strtab = elf.get(stroff..stroff + strsize)?;
    for i in 0..shnum {
        let (name, off, size) = section(i)?;
        let name = strtab.get(usize::try_from(name).ok()?..)?;
        let name = name.split(|&b| b == 0).next()?;
        if name == b".modinfo" {
            let data = elf.get(off..off + size)?;
            return Some(
                data.split(|&b| b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            );
        }
    }
    None
}

/// The names of the modules built into the kernel (`modules.builtin`: one path per line,
/// `kernel/fs/ext4/ext4.ko`).
pub fn builtin_names(list: &str) -> BTreeSet<String> {
    list.lines()
        .filter_map(|l| l.trim().rsplit('/').next())
        .filter_map(|f| f.strip_suffix(".ko"))
        .filter(|f| !f.is_empty())
        .map(|f| f.replace('-', "_"))
        .collect()
}

/// The modules `roots` and those of `optional` the kernel has need, dependencies first and
/// otherwise in the order given, each with its decompressed bytes. A root that is built in
/// is satisfied; a missing root is an error, a missing optional one is left out (a driver
/// the kernel lacks: the test that needs it says so).
pub fn resolve(moddir: &Path, roots: &[&str], optional: &[&str]) -> Result<Vec<Module>, Error> {
    let files = index(moddir)?;
    let builtin =
        builtin_names(&std::fs::read_to_string(moddir.join("modules.builtin")).unwrap_or_default());
    let wanted: Vec<String> = roots
        .iter()
        .chain(optional)
        .map(|r| r.replace('-', "_"))
        .filter(|r| !builtin.contains(r))
        .filter(|r| files.contains_key(r) || !optional.iter().any(|o| o.replace('-', "_") == *r))
        .collect();
    let mut loaded: BTreeMap<String, (Vec<u8>, Vec<String>)> = BTreeMap::new();
    let mut todo = wanted.clone();
    while let Some(name) = todo.pop() {
        if loaded.contains_key(&name) || builtin.contains(&name) {
            continue;
        }
        let path = files.get(&name).ok_or_else(|| {
            Error::msg(format!("module {name} not found in {}", moddir.display()))
        })?;
        let data = read_module(path)?;
        let info = modinfo(&data)
            .ok_or_else(|| Error::msg(format!("{}: no .modinfo section", path.display())))?;
        let deps: Vec<String> = info
            .iter()
            .filter_map(|kv| kv.strip_prefix("depends="))
            .flat_map(|d| d.split(','))
            .filter(|d| !d.is_empty())
            .map(|d| d.replace('-', "_"))
            .collect();
        todo.extend(deps.iter().cloned());
        loaded.insert(name, (data, deps));
    }
    // Depth-first topological order, roots in the order given (the crypto module ext4
    // asks the kernel for cannot be named as a dependency: it has to come first).
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    fn visit(
        name: &str,
        loaded: &BTreeMap<String, (Vec<u8>, Vec<String>)>,
        done: &mut BTreeSet<String>,
        order: &mut Vec<String>,
        depth: usize,
    ) {
        if depth > 64 || done.contains(name) || !loaded.contains_key(name) {
            return;
        }
        if let Some((_, deps)) = loaded.get(name) {
            for d in deps {
                visit(d, loaded, done, order, depth + 1);
            }
        }
        if done.insert(name.to_string()) {
            order.push(name.to_string());
        }
    }
    for name in &wanted {
        visit(name, &loaded, &mut done, &mut order, 0);
    }
    Ok(order
        .into_iter()
        .filter_map(|n| loaded.remove(&n).map(|(data, _)| Module { name: n, data }))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_builtin_names() {
        let names = builtin_names(
            "kernel/fs/ext4/ext4.ko\nkernel/drivers/nvme/host/nvme-core.ko\n\n  \nodd-line\n",
        );
        let want: BTreeSet<String> = ["ext4", "nvme_core"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(names, want);
    }
}
