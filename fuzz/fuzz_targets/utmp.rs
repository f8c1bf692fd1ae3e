//! libFuzzer entry for the `utmp` target (body in crates/qga-fuzz/src/targets.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| qga_fuzz::targets::utmp(data));
