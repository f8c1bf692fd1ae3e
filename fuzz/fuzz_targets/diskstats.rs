//! libFuzzer entry for the `diskstats` target (body in crates/qga-fuzz/src/targets.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| qga_fuzz::targets::diskstats(data));
