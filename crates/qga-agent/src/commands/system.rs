//! guest-get-vcpus, guest-set-vcpus, guest-get-memory-blocks, guest-set-memory-blocks,
//! guest-get-memory-block-info, guest-get-cpustats, guest-get-load.

use qga_schema::{
    GuestCpuStats, GuestGetCpustats, GuestGetLoad, GuestGetMemoryBlockInfo, GuestGetMemoryBlocks,
    GuestGetVcpus, GuestLinuxCpuStats, GuestLoadAverage, GuestLogicalProcessor, GuestMemoryBlock,
    GuestMemoryBlockInfo, GuestMemoryBlockResponse, GuestMemoryBlockResponseType,
    GuestSetMemoryBlocks, GuestSetVcpus, NoArgs, SetMemoryBlocksArgs, SetVcpusArgs,
};
use qga_sys::cpu::{self, ProcStat};
use qga_sys::memory::{self, BlockOutcome};
use qga_sys::sysroot::SysRoot;

use crate::agent::Agent;
use crate::error::{CommandError, strerror};
use crate::registry::Handle;

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

impl Handle for GuestGetVcpus {
    fn handle(
        _agent: &mut Agent,
        _args: NoArgs,
    ) -> Result<Vec<GuestLogicalProcessor>, CommandError> {
        let vcpus = cpu::list_vcpus(&SysRoot::host()).map_err(failed)?;
        Ok(vcpus
            .into_iter()
            .map(|v| GuestLogicalProcessor {
                logical_id: v.id,
                online: v.online,
                can_offline: Some(v.can_offline),
            })
            .collect())
    }
}

/// qemu-ga's rule: processors are handled in order until one fails; the number handled is
/// returned, and the failure only when it was the first one.
pub(crate) fn set_vcpus_with(
    vcpus: &[GuestLogicalProcessor],
    mut set: impl FnMut(i64, bool) -> Result<(), String>,
) -> Result<i64, CommandError> {
    let mut processed = 0;
    for v in vcpus {
        if let Err(e) = set(v.logical_id, v.online) {
            if processed == 0 {
                return Err(CommandError::Failed(e));
            }
            break;
        }
        processed += 1;
    }
    Ok(processed)
}

impl Handle for GuestSetVcpus {
    fn handle(_agent: &mut Agent, args: SetVcpusArgs) -> Result<i64, CommandError> {
        let root = SysRoot::host();
        set_vcpus_with(&args.vcpus, |id, online| {
            cpu::set_vcpu(&root, id, online).map_err(|e| e.to_string())
        })
    }
}

impl Handle for GuestGetMemoryBlocks {
    fn handle(_agent: &mut Agent, _args: NoArgs) -> Result<Vec<GuestMemoryBlock>, CommandError> {
        let blocks = memory::list_blocks(&SysRoot::host()).map_err(failed)?;
        Ok(blocks
            .into_iter()
            .map(|b| GuestMemoryBlock {
                phys_index: b.index,
                online: b.online,
                can_offline: Some(b.can_offline),
            })
            .collect())
    }
}

impl Handle for GuestSetMemoryBlocks {
    fn handle(
        _agent: &mut Agent,
        args: SetMemoryBlocksArgs,
    ) -> Result<Vec<GuestMemoryBlockResponse>, CommandError> {
        let root = SysRoot::host();
        Ok(args
            .mem_blks
            .iter()
            .map(|b| {
                let r = memory::set_block(&root, b.phys_index, b.online);
                GuestMemoryBlockResponse {
                    phys_index: b.phys_index,
                    response: match r.outcome {
                        BlockOutcome::Success => GuestMemoryBlockResponseType::Success,
                        BlockOutcome::NotFound => GuestMemoryBlockResponseType::NotFound,
                        BlockOutcome::NotSupported => {
                            GuestMemoryBlockResponseType::OperationNotSupported
                        }
                        BlockOutcome::Failed => GuestMemoryBlockResponseType::OperationFailed,
                    },
                    error_code: r.error_code.map(i64::from),
                }
            })
            .collect())
    }
}

impl Handle for GuestGetMemoryBlockInfo {
    fn handle(_agent: &mut Agent, _args: NoArgs) -> Result<GuestMemoryBlockInfo, CommandError> {
        let size = memory::block_size(&SysRoot::host()).map_err(failed)?;
        Ok(GuestMemoryBlockInfo { size })
    }
}

/// `/proc/stat` times as guest-get-cpustats reports them (milliseconds).
pub(crate) fn cpu_stats(stat: &ProcStat, clk_tck: u64) -> Vec<GuestCpuStats> {
    let ms = |t: u64| cpu::ticks_to_ms(t, clk_tck);
    stat.cpus
        .iter()
        .map(|c| {
            let [iowait, irq, softirq, steal, guest, guestnice] = c.extra.map(|v| v.map(ms));
            GuestCpuStats::Linux(GuestLinuxCpuStats {
                cpu: c.cpu,
                user: ms(c.base[0]),
                nice: ms(c.base[1]),
                system: ms(c.base[2]),
                idle: ms(c.base[3]),
                iowait,
                irq,
                softirq,
                steal,
                guest,
                guestnice,
            })
        })
        .collect()
}

impl Handle for GuestGetCpustats {
    fn handle(_agent: &mut Agent, _args: NoArgs) -> Result<Vec<GuestCpuStats>, CommandError> {
        let text = SysRoot::host()
            .read_to_string("/proc/stat")
            .map_err(|e| CommandError::Failed(format!("open(\"/proc/stat\"): {}", strerror(&e))))?;
        let stat = cpu::parse_proc_stat(&text);
        if stat.truncated {
            log::warn!("Parsing cpu stat from /proc/stat failed, see \"man proc\"");
        }
        Ok(cpu_stats(&stat, cpu::clk_tck()))
    }
}

impl Handle for GuestGetLoad {
    fn handle(_agent: &mut Agent, _args: NoArgs) -> Result<GuestLoadAverage, CommandError> {
        let [load1m, load5m, load15m] = cpu::load_average().map_err(|e| {
            CommandError::Failed(format!("cannot query load average: {}", strerror(&e)))
        })?;
        Ok(GuestLoadAverage {
            load1m,
            load5m,
            load15m,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vcpu(id: i64, online: bool) -> GuestLogicalProcessor {
        GuestLogicalProcessor {
            logical_id: id,
            online,
            can_offline: None,
        }
    }

    #[test]
    fn test_set_vcpus_partial_processing() {
        let list = [vcpu(1, false), vcpu(2, false), vcpu(9, true), vcpu(3, true)];
        let fail_on_9 = |id: i64, _| {
            if id == 9 {
                Err("open(\"/sys/devices/system/cpu/cpu9/\"): No such file or directory".into())
            } else {
                Ok(())
            }
        };
        assert_eq!(set_vcpus_with(&list, fail_on_9).unwrap(), 2);
        let err = set_vcpus_with(&list[2..], fail_on_9).unwrap_err();
        assert_eq!(
            err.to_string(),
            "open(\"/sys/devices/system/cpu/cpu9/\"): No such file or directory"
        );
        assert_eq!(set_vcpus_with(&[], fail_on_9).unwrap(), 0);
    }

    #[test]
    fn test_cpu_stats_in_ms() {
        let stat = cpu::parse_proc_stat("cpu 1 1 1 1\ncpu3 1 2 3 4 5\n");
        let s = cpu_stats(&stat, 100);
        assert_eq!(
            s,
            [GuestCpuStats::Linux(GuestLinuxCpuStats {
                cpu: 3,
                user: 10,
                nice: 20,
                system: 30,
                idle: 40,
                iowait: Some(50),
                ..Default::default()
            })]
        );
    }
}
