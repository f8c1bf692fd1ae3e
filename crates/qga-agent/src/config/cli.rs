//! Command-line scanning with GNU `getopt_long` semantics, as qemu-ga uses them.
//!
//! A hand-written scanner rather than clap, because drop-in use needs getopt's exact behaviour:
//! `-F`'s optional argument must be attached (`-F/path`; `-F /path` is a bare `-F` plus an
//! ignored operand), long options may be abbreviated to any unique prefix (`--daemon`,
//! `--meth=unix-listen`), short options cluster (`-vdD`, `-vmunix-listen`), operands are
//! permuted and ignored, `--` ends the options, and the diagnostics are glibc's words.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use super::{
    DEFAULT_CONFIG_PATH, DEFAULT_FSFREEZE_HOOK, DEFAULT_PIDFILE, DEFAULT_STATEDIR,
    ISA_SERIAL_DEFAULT_PATH, VIRTIO_SERIAL_DEFAULT_PATH,
};

/// Whether an option takes an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HasArg {
    No,
    Required,
    /// Only attached: `-Fvalue` or `--long=value`.
    Optional,
}

#[derive(Debug)]
struct OptSpec {
    long: Option<&'static str>,
    short: u8,
    has_arg: HasArg,
}

const fn opt(long: &'static str, short: u8, has_arg: HasArg) -> OptSpec {
    OptSpec {
        long: Some(long),
        short,
        has_arg,
    }
}

/// qemu-ga's options. The order of the long names decides the order of the possibilities in
/// glibc's "ambiguous" message (observed: version before verbose, dump-conf before daemonize,
/// pidfile before path).
const OPTIONS: &[OptSpec] = &[
    opt("help", b'h', HasArg::No),
    opt("version", b'V', HasArg::No),
    opt("config", b'c', HasArg::Required),
    opt("dump-conf", b'D', HasArg::No),
    opt("logfile", b'l', HasArg::Required),
    opt("pidfile", b'f', HasArg::Required),
    opt("fsfreeze-hook", b'F', HasArg::Optional),
    opt("verbose", b'v', HasArg::No),
    opt("method", b'm', HasArg::Required),
    opt("path", b'p', HasArg::Required),
    opt("daemonize", b'd', HasArg::No),
    opt("block-rpcs", b'b', HasArg::Required),
    opt("allow-rpcs", b'a', HasArg::Required),
    opt("statedir", b't', HasArg::Required),
    opt("retry-path", b'r', HasArg::No),
    // `-s ARG` (Windows service control) is accepted and ignored on POSIX by qemu-ga; it has
    // no long form there.
    OptSpec {
        long: None,
        short: b's',
        has_arg: HasArg::Required,
    },
];

/// One scanned command-line element, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CliItem {
    /// An option, named by its short letter, with its argument if it has one.
    Opt(u8, Option<OsString>),
    /// A getopt diagnostic without the `program: ` prefix, e.g. `invalid option -- 'x'`.
    Error(String),
}

fn os(bytes: &[u8]) -> OsString {
    OsStr::from_bytes(bytes).to_os_string()
}

/// Scans `args` (without the program name). Operands are skipped; errors are reported in place
/// and scanning goes on, as glibc does, so that a later `-c` is still found.
pub(super) fn scan(args: &[OsString]) -> Vec<CliItem> {
    let mut items = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_bytes();
        i += 1;
        if arg == b"--" {
            break;
        }
        if let Some(body) = arg.strip_prefix(b"--") {
            items.push(long_option(body, args, &mut i));
        } else if let Some(cluster) = arg.strip_prefix(b"-").filter(|c| !c.is_empty()) {
            short_cluster(cluster, args, &mut i, &mut items);
        }
    }
    items
}

fn long_option(body: &[u8], args: &[OsString], next: &mut usize) -> CliItem {
    let (name, inline) = match body.iter().position(|&b| b == b'=') {
        Some(eq) => (&body[..eq], Some(&body[eq + 1..])),
        None => (body, None),
    };
    let shown = String::from_utf8_lossy(body);
    let exact = OPTIONS
        .iter()
        .find(|o| o.long.is_some_and(|l| l.as_bytes() == name));
    let spec = match exact {
        Some(spec) => spec,
        None => {
            let matches: Vec<&'static OptSpec> = OPTIONS
                .iter()
                .filter(|o| o.long.is_some_and(|l| l.as_bytes().starts_with(name)))
                .collect();
            match matches.as_slice() {
                [] => return CliItem::Error(format!("unrecognized option '--{shown}'")),
                [one] => *one,
                many => {
                    let list: Vec<String> = many
                        .iter()
                        .filter_map(|o| o.long)
                        .map(|l| format!("'--{l}'"))
                        .collect();
                    return CliItem::Error(format!(
                        "option '--{shown}' is ambiguous; possibilities: {}",
                        list.join(" ")
                    ));
                }
            }
        }
    };
    let long = spec.long.unwrap_or_default();
    match (spec.has_arg, inline) {
        (HasArg::No, None) => CliItem::Opt(spec.short, None),
        (HasArg::No, Some(_)) => {
            CliItem::Error(format!("option '--{long}' doesn't allow an argument"))
        }
        (HasArg::Optional, value) => CliItem::Opt(spec.short, value.map(os)),
        (HasArg::Required, Some(value)) => CliItem::Opt(spec.short, Some(os(value))),
        (HasArg::Required, None) => match args.get(*next) {
            Some(value) => {
                *next += 1;
                CliItem::Opt(spec.short, Some(value.clone()))
            }
            None => CliItem::Error(format!("option '--{long}' requires an argument")),
        },
    }
}

fn short_cluster(cluster: &[u8], args: &[OsString], next: &mut usize, items: &mut Vec<CliItem>) {
    for (pos, &c) in cluster.iter().enumerate() {
        let Some(spec) = OPTIONS.iter().find(|o| o.short == c) else {
            items.push(CliItem::Error(format!(
                "invalid option -- '{}'",
                char::from(c)
            )));
            continue;
        };
        let rest = &cluster[pos + 1..];
        match spec.has_arg {
            HasArg::No => items.push(CliItem::Opt(c, None)),
            HasArg::Optional => {
                items.push(CliItem::Opt(c, (!rest.is_empty()).then(|| os(rest))));
                return;
            }
            HasArg::Required if !rest.is_empty() => {
                items.push(CliItem::Opt(c, Some(os(rest))));
                return;
            }
            HasArg::Required => {
                items.push(match args.get(*next) {
                    Some(value) => {
                        *next += 1;
                        CliItem::Opt(c, Some(value.clone()))
                    }
                    None => CliItem::Error(format!(
                        "option requires an argument -- '{}'",
                        char::from(c)
                    )),
                });
                return;
            }
        }
    }
}

/// The `-h` text (our wording, qemu-ga's options), ending with a newline.
pub fn help_text(program: &str) -> String {
    format!(
        "\
Usage: {program} [-m METHOD -p PATH] [OPTION...]
Guest agent for QEMU virtual machines: answers QGA commands from the host.

  -c, --config=FILE        read settings from FILE, which must exist (otherwise
                           from $QGA_CONF or {DEFAULT_CONFIG_PATH}, if present)
  -m, --method=METHOD      channel type: virtio-serial (default), isa-serial,
                           unix-listen or vsock-listen
  -p, --path=PATH          channel device or socket; defaults: virtio-serial
                           {VIRTIO_SERIAL_DEFAULT_PATH},
                           isa-serial {ISA_SERIAL_DEFAULT_PATH}; vsock-listen takes CID:PORT
  -l, --logfile=FILE       append log messages to FILE instead of stderr
  -f, --pidfile=FILE       PID file written when daemonized
                           (default {DEFAULT_PIDFILE})
  -F, --fsfreeze-hook[=FILE]
                           run FILE with 'freeze' or 'thaw' around filesystem
                           freezes (default {DEFAULT_FSFREEZE_HOOK}); FILE must
                           be attached: -F/path/to/hook or --fsfreeze-hook=FILE
  -t, --statedir=DIR       directory for persistent state, an absolute path
                           (default {DEFAULT_STATEDIR})
  -v, --verbose            log debug messages too
  -V, --version            show the version and exit
  -d, --daemonize          detach and run in the background
  -b, --block-rpcs=LIST    disable the listed commands (separated by ',' or
                           ';'); --block-rpcs=help lists every command and exits
  -a, --allow-rpcs=LIST    enable only the listed commands (separated by ',' or
                           ';'); --allow-rpcs=help lists every command and exits
  -D, --dump-conf          print the effective settings as a configuration file
                           and exit
  -r, --retry-path         keep trying to reopen the channel when it is missing
                           or fails (device hot-plug, driver reload, ...)
  -h, --help               show this help and exit

The configuration file is a key file with a [general] group; its keys are the
long option names, except 'daemon' for --daemonize, plus 'version-string' to
override the version guest-info reports. Command-line values replace the file's;
command lists are added to the file's lists.
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{NO_CONF, argv, error, load_with, run_cfg};
    use crate::config::{Action, Config, load};
    use std::path::PathBuf;

    fn run(args: &[&str]) -> Vec<CliItem> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        scan(&args)
    }

    fn o(c: u8, v: Option<&str>) -> CliItem {
        CliItem::Opt(c, v.map(OsString::from))
    }

    fn e(s: &str) -> CliItem {
        CliItem::Error(s.to_owned())
    }

    #[test]
    fn test_scan_short_forms() {
        assert_eq!(
            run(&["-vdD", "-vmunix-listen", "-p/x", "-t", "/s"]),
            [
                o(b'v', None),
                o(b'd', None),
                o(b'D', None),
                o(b'v', None),
                o(b'm', Some("unix-listen")),
                o(b'p', Some("/x")),
                o(b't', Some("/s")),
            ]
        );
        assert_eq!(run(&["-p", "-D"]), [o(b'p', Some("-D"))]);
    }

    #[test]
    fn test_scan_fsfreeze_hook_forms() {
        assert_eq!(run(&["-F"]), [o(b'F', None)]);
        assert_eq!(run(&["-F/x"]), [o(b'F', Some("/x"))]);
        assert_eq!(run(&["-F", "/x"]), [o(b'F', None)]);
        assert_eq!(run(&["-F="]), [o(b'F', Some("="))]);
        assert_eq!(run(&["-FD"]), [o(b'F', Some("D"))]);
        assert_eq!(run(&["-DF/x"]), [o(b'D', None), o(b'F', Some("/x"))]);
        assert_eq!(run(&["--fsfreeze-hook"]), [o(b'F', None)]);
        assert_eq!(run(&["--fsfreeze-hook", "/q"]), [o(b'F', None)]);
        assert_eq!(run(&["--fsfreeze-hook=/y"]), [o(b'F', Some("/y"))]);
        assert_eq!(run(&["--fsfreeze-hook="]), [o(b'F', Some(""))]);
    }

    #[test]
    fn test_scan_long_forms_and_prefixes() {
        assert_eq!(
            run(&[
                "--meth=unix-listen",
                "--pa",
                "/p",
                "--dump",
                "--da",
                "--b=x",
                "--config=/c"
            ]),
            [
                o(b'm', Some("unix-listen")),
                o(b'p', Some("/p")),
                o(b'D', None),
                o(b'd', None),
                o(b'b', Some("x")),
                o(b'c', Some("/c")),
            ]
        );
    }

    #[test]
    fn test_scan_operands_ignored() {
        assert_eq!(run(&["stray", "-", "-D", "x"]), [o(b'D', None)]);
        assert_eq!(run(&["-D", "--", "-v"]), [o(b'D', None)]);
        assert_eq!(
            run(&["-s", "install", "-D"]),
            [o(b's', Some("install")), o(b'D', None)]
        );
    }

    #[test]
    fn test_scan_errors_glibc_text() {
        assert_eq!(
            run(&["-x", "-V"]),
            [e("invalid option -- 'x'"), o(b'V', None)]
        );
        assert_eq!(run(&["-m"]), [e("option requires an argument -- 'm'")]);
        assert_eq!(
            run(&["--method"]),
            [e("option '--method' requires an argument")]
        );
        assert_eq!(
            run(&["--meth"]),
            [e("option '--method' requires an argument")]
        );
        assert_eq!(run(&["--foo=bar"]), [e("unrecognized option '--foo=bar'")]);
        assert_eq!(
            run(&["--service=x"]),
            [e("unrecognized option '--service=x'")]
        );
        assert_eq!(
            run(&["--blacklist=x"]),
            [e("unrecognized option '--blacklist=x'")]
        );
        assert_eq!(
            run(&["--verb=1"]),
            [e("option '--verbose' doesn't allow an argument")]
        );
        assert_eq!(
            run(&["--ver=1"]),
            [e(
                "option '--ver=1' is ambiguous; possibilities: '--version' '--verbose'"
            )]
        );
        assert_eq!(
            run(&["--d"]),
            [e(
                "option '--d' is ambiguous; possibilities: '--dump-conf' '--daemonize'"
            )]
        );
        assert_eq!(
            run(&["--p"]),
            [e(
                "option '--p' is ambiguous; possibilities: '--pidfile' '--path'"
            )]
        );
    }

    #[test]
    fn test_load_fsfreeze_hook_forms() {
        let hook = |args: &[&str], conf| run_cfg(args, conf).fsfreeze_hook;
        let default = Some(PathBuf::from(DEFAULT_FSFREEZE_HOOK));
        assert_eq!(hook(&[], None), None);
        assert_eq!(hook(&["-F"], None), default);
        assert_eq!(hook(&["--fsfreeze-hook"], None), default);
        assert_eq!(hook(&["-F/x"], None), Some(PathBuf::from("/x")));
        assert_eq!(
            hook(&["--fsfreeze-hook=/y"], None),
            Some(PathBuf::from("/y"))
        );
        assert_eq!(hook(&["--fsf=/y"], None), Some(PathBuf::from("/y")));
        // `-F /z` is a bare -F plus an ignored operand.
        assert_eq!(hook(&["-F", "/z"], None), default);
        let conf = Some("[general]\nfsfreeze-hook=/h\n");
        assert_eq!(hook(&[], conf), Some(PathBuf::from("/h")));
        assert_eq!(hook(&["-F"], conf), default);
    }

    #[test]
    fn test_load_immediate_actions() {
        assert_eq!(load_with(&["-V"], None).unwrap(), Action::PrintVersion);
        assert_eq!(
            load_with(&["-D", "-V"], None).unwrap(),
            Action::PrintVersion
        );
        assert_eq!(
            load_with(&["-V", "-x"], None).unwrap(),
            Action::PrintVersion
        );
        assert_eq!(
            load_with(&["-V", "-h"], None).unwrap(),
            Action::PrintVersion
        );
        assert_eq!(
            load_with(&["-h", "-V"], None).unwrap(),
            Action::Help(help_text("qemu-ga"))
        );
        assert_eq!(
            load_with(&["-D", "-h"], None).unwrap(),
            Action::Help(help_text("qemu-ga"))
        );
        for args in [
            &["-b", "help"][..],
            &["-b", "?"],
            &["-a", "help"],
            &["-a", "?"],
            &["--block-rpcs=help"],
            &["--allow=?"],
            &["-m", "unix-listen", "-b", "help"],
            &["-D", "-bhelp"],
        ] {
            assert_eq!(
                load_with(args, None).unwrap(),
                Action::ListCommands,
                "{args:?}"
            );
        }
        // Only the whole argument is special, and not in the file.
        assert!(matches!(
            load_with(&["-b", "guest-ping,help"], None).unwrap(),
            Action::Run(_)
        ));
        assert!(matches!(
            load_with(&[], Some("[general]\nblock-rpcs=help\n")).unwrap(),
            Action::Run(_)
        ));
    }

    #[test]
    fn test_load_usage_errors() {
        let err = load_with(&["-x", "-V"], None).unwrap_err();
        assert!(err.is_usage());
        assert_eq!(
            err.to_string(),
            "qemu-ga: invalid option -- 'x'\nUnknown option, try 'qemu-ga --help' for more information."
        );
        let err = load(
            &[OsString::from("/usr/sbin/qemu-ga"), OsString::from("--ver")],
            Some(OsStr::new(NO_CONF)),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/usr/sbin/qemu-ga: option '--ver' is ambiguous; possibilities: '--version' '--verbose'\n\
             Unknown option, try '/usr/sbin/qemu-ga --help' for more information."
        );
        assert!(
            error(&["-D", "--dump-conf=1"], None)
                .starts_with("qemu-ga: option '--dump-conf' doesn't allow")
        );
        assert!(error(&["-c"], None).starts_with("qemu-ga: option requires an argument -- 'c'\n"));
    }

    #[test]
    fn test_load_operands_and_windows_option_ignored() {
        assert_eq!(
            run_cfg(&["stray", "-s", "install", "--", "-x"], None),
            Config::default()
        );
    }

    #[test]
    fn test_load_non_utf8_text_argument_err() {
        use std::os::unix::ffi::OsStringExt;
        let mut args = argv(&["-p"]);
        args.push(OsString::from_vec(b"/tmp/\xff".to_vec()));
        let err = load(&args, Some(OsStr::new(NO_CONF))).unwrap_err();
        assert_eq!(err.to_string(), "the argument of -p is not valid UTF-8");
        let mut args = argv(&["-D", "-l"]);
        args.push(OsString::from_vec(b"/tmp/\xff".to_vec()));
        assert!(matches!(
            load(&args, Some(OsStr::new(NO_CONF))).unwrap(),
            Action::DumpConf(_)
        ));
    }

    #[test]
    fn test_help_text_lists_every_option() {
        let text = help_text("qemu-ga");
        for opt in [
            "-c, --config",
            "-m, --method",
            "-p, --path",
            "-l, --logfile",
            "-f, --pidfile",
            "-F, --fsfreeze-hook",
            "-t, --statedir",
            "-v, --verbose",
            "-V, --version",
            "-d, --daemonize",
            "-b, --block-rpcs",
            "-a, --allow-rpcs",
            "-D, --dump-conf",
            "-r, --retry-path",
            "-h, --help",
        ] {
            assert!(text.contains(opt), "{opt}");
        }
        assert!(text.lines().all(|l| l.len() <= 80));
    }
}
