//! Host name for guest-get-host-name.

/// `gethostname(2)`, non-UTF-8 bytes replaced; `None` if the call fails (qemu-ga then
/// reports `localhost`).
pub fn hostname() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .map(|name| name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_hostname_non_empty() {
        let name = hostname().unwrap();
        assert!(!name.is_empty());
        assert!(!name.contains('\0'));
    }
}
