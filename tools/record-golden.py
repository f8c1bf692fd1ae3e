#!/usr/bin/env python3
"""Record golden wire data from the REAL qemu-ga (stdlib only).

Writes, under crates/qga-agent/tests/data/:

  wire-golden.json     byte-exact request/reply pairs (reference agent 10.0.2,
                       with 7.2's output in "differs_7_2" where it differs)
  cli-golden.json      command-line behaviour (-D, -b help, bad options, ...)
  qemu-ga-commands.json  guest-info supported_commands per agent version

How a wire case is recorded
---------------------------
For every case a FRESH agent process is started (the JSON parser state
survives client reconnects, so processes are never shared):

    QGA_CONF=<tmp>/qemu-ga.conf qemu-ga -m unix-listen -p <tmp>/sock -t <tmp>/state [agent_args]

<tmp>/qemu-ga.conf is an empty regular file unless the case has
"config_text" (10.x rejects `-c /dev/null`: "Not a regular file"; 7.2 has no
-c at all, so QGA_CONF is used for both).  The agent is never daemonized and
never bound to a virtio/serial port.  The script connects, sends the case's
writes one after the other and, after each write, reads until the agent has
been quiet for QUIET seconds (default 0.3): no reply byte arrived AND the
agent's CPU time (/proc/PID/stat utime+stime) did not move in that window, so
slow parsing of huge inputs is not mistaken for silence.  Then the agent is
SIGKILLed.

JSON encoding of bytes
----------------------
Every byte string ("input", "writes", "expect", ...) is stored as a JSON
string in which each byte 0..255 is the character U+0000..U+00FF (latin-1),
so raw 0xFF/0xFE/0x80 bytes survive.  Decode with
`s.encode("latin-1")` / Rust: `s.chars().map(|c| c as u8)`.

Wire case fields
----------------
  name          unique case name
  input         all bytes sent (concatenation of "writes")
  writes        only when the input was sent in several writes (the agent
                saw each write separately; QUIET pause after each)
  generator     INSTEAD of "input" for huge inputs, see below
  expect        all reply bytes of the reference agent
  expect_writes with "writes": the reply bytes that arrived after each write
  expect_sha256, expect_len, expect_prefix
                INSTEAD of "expect" when the output is longer than 64 KiB:
                sha256 hex of the whole output, its length, its first 4 KiB
  agent         "10.0.2" (the reference)
  agent_args    extra qemu-ga arguments (policy cases), optional
  config_text   contents of the config file, optional
  differs_7_2   7.2's output when it differs (or differs_7_2_sha256/_len/
                _prefix when long; differs_7_2_writes for per-write output)
  skip_7_2      reason when 7.2 cannot run the case (e.g. no -a option)
  note          free text, optional
  agent_stderr  agent stderr (normalised, see below) when not empty

Generators (field "generator", used instead of a literal "input")
-----------------------------------------------------------------
  {"generator": "repeat", "parts": [[TEXT, COUNT], ...]}
      input = TEXT1*COUNT1 + TEXT2*COUNT2 + ...  (TEXT is latin-1 as above).
      Example, an id nested 1030 deep:
      [['{"execute":"guest-ping","id":', 1], ['[', 1030], [']', 1030], ['}', 1]]
  "depth"/"bytes"/"tokens" members next to it are informational only.
Generated inputs are always sent as one write.

CLI case fields (cli-golden.json)
---------------------------------
  {"name", "args", "env", "config_text", "stdout", "stderr", "exit"}
  stdout/stderr are UTF-8 text (decoded with replacement; not latin-1);
  args are the arguments after argv[0] (argv[0] is always "qemu-ga");
  the process runs in <tmp> with env QGA_CONF=<tmp>/qemu-ga.conf holding
  config_text ("" = empty file) plus "env".  "exit" is the exit status, or
  null when the process was still running after 1.5 s (then it is killed;
  cases that may start an agent always use -m unix-listen on <tmp>/sock).
  differs_7_2 = {"stdout","stderr","exit"} of 7.2 when any of them differ.

Normalisation (CLI output and agent_stderr)
-------------------------------------------
  <tmp> directory           -> @TMP@
  "(process:12345)"         -> "(process:@PID@)"
  "qga.state.GQL6Y3"        -> "qga.state.@RAND@" (GLib temp file name)
  GLib time "12:49:46.766"  -> "@TIME@"
  log prefix "1732620000.123456: " -> "@TS@: "

Usage
-----
  tools/record-golden.py [--qga10 PATH] [--qga72 PATH] [--only SUBSTR]
                         [--verify] [--list] [--out-dir DIR]
  Defaults: --qga10 /tmp/qga10b/root/usr/sbin/qemu-ga (extracted from the
  bookworm-backports .deb), --qga72 /usr/sbin/qemu-ga.
  --verify runs every wire case twice on 10.0.2 and fails on any mismatch.
"""

import argparse
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_OUT = os.path.join(REPO, "crates", "qga-agent", "tests", "data")
DEFAULT_QGA10 = "/tmp/qga10b/root/usr/sbin/qemu-ga"
DEFAULT_QGA72 = "/usr/sbin/qemu-ga"

QUIET = 0.3
DEFAULT_CAP = 16 << 20
LONG = 64 << 10
PREFIX = 4 << 10

# ---------------------------------------------------------------------------
# case construction helpers


def b(s):
    """str -> bytes, latin-1 (so '\xff' is byte 0xFF)."""
    return s.encode("latin-1") if isinstance(s, str) else s


def u(s):
    """str -> bytes, UTF-8 (for real non-ASCII characters)."""
    return s.encode("utf-8")


WIRE = []
NAMES = set()


def case(name, data, **kw):
    """data: bytes/str (one write) or list of them (several writes)."""
    assert name not in NAMES, name
    NAMES.add(name)
    if isinstance(data, list):
        writes = [b(x) for x in data]
    else:
        writes = [b(data)]
    c = {"name": name, "writes": writes}
    c.update(kw)
    WIRE.append(c)


def gen(name, parts, **kw):
    assert name not in NAMES, name
    NAMES.add(name)
    c = {"name": name, "generator": {"generator": "repeat", "parts": parts}}
    for k in ("depth", "bytes", "tokens"):
        if k in kw:
            c["generator"][k] = kw.pop(k)
    c.update(kw)
    WIRE.append(c)


def gen_bytes(g):
    return b"".join(b(t) * n for t, n in g["parts"])


def ping_id(idtext):
    return '{"execute":"guest-ping","id":' + idtext + "}"


def sync(idtext):
    return '{"execute":"guest-sync","arguments":{"id":' + idtext + "}}"


def cmd(name, args):
    return '{"execute":"%s","arguments":%s}' % (name, args)


PING = '{"execute":"guest-ping"}'
RECOVER = '\n{"execute":"guest-ping","id":"after"}\n'

# ---- guest-sync / guest-sync-delimited ------------------------------------
case("sync-int", sync("42"))
case("sync-negative", sync("-7"))
case("sync-zero", sync("0"))
case("sync-int64-max", sync("9223372036854775807"))
case("sync-int64-min", sync("-9223372036854775808"))
case("sync-uint64-2p63", sync("9223372036854775808"), note="valid uint64, not int64 -> type error")
case("sync-uint64-max", sync("18446744073709551615"))
case("sync-huge-2p64", sync("18446744073709551616"), note="double")
case("sync-float", sync("1.5"))
case("sync-float-integral", sync("1.0"))
case("sync-exp", sync("1e2"))
case("sync-minus-zero", sync("-0"))
case("sync-string-id", sync('"1"'))
case("sync-bool-id", sync("true"))
case("sync-null-id", sync("null"))
case("sync-object-id", sync('{"a":1}'))
case("sync-array-id", sync("[1]"))
case("sync-missing-id", cmd("guest-sync", "{}"))
case("sync-no-arguments", '{"execute":"guest-sync"}')
case("sync-extra-with-id", cmd("guest-sync", '{"id":1,"x":2}'))
case("sync-extra-without-id", cmd("guest-sync", '{"x":1}'))
case("sync-extra-before-id", cmd("guest-sync", '{"x":1,"id":1}'))
case("sync-with-request-id", '{"execute":"guest-sync","arguments":{"id":5},"id":"abc"}')
case("sync-error-with-request-id", '{"execute":"guest-sync","arguments":{},"id":[1,{"k":"v"}]}')
case("syncd-int", cmd("guest-sync-delimited", '{"id":42}'))
case("syncd-negative", cmd("guest-sync-delimited", '{"id":-1}'))
case("syncd-string-id", cmd("guest-sync-delimited", '{"id":"x"}'),
     note="an erroring sync-delimited gets no 0xFF prefix")
case("syncd-missing-id", cmd("guest-sync-delimited", "{}"))
case("syncd-error-then-ping", cmd("guest-sync-delimited", '{"id":"x"}') + PING)
case("ff-before-syncd", "\xff" + cmd("guest-sync-delimited", '{"id":7}'))
case("ff-before-sync", "\xff" + sync("7"))
case("ff-newline-syncd", "\xff\n" + cmd("guest-sync-delimited", '{"id":8}') + "\n")
case("ff-ff-syncd", "\xff\xff" + cmd("guest-sync-delimited", '{"id":9}'))
case("syncd-ping-proxmox", cmd("guest-sync-delimited", '{"id":123}') + "\n" + PING + "\n",
     note="Proxmox pipelines sync-delimited + command in one write")
case("ff-syncd-ping-one-write",
     "\xff" + cmd("guest-sync-delimited", '{"id":124}') + "\n" + '{"execute":"guest-ping","id":2}' + "\n")
case("syncd-twice", cmd("guest-sync-delimited", '{"id":1}') + cmd("guest-sync-delimited", '{"id":2}'))
case("syncd-then-unknown", cmd("guest-sync-delimited", '{"id":3}') + '{"execute":"guest-nope"}')
case("ff-alone", "\xff")
case("ff-alone-then-ping", ["\xff", PING])
case("ff-mid-command-name", '{"execute":"guest-\xffping"}')
case("ff-mid-command-name-recover", '{"execute":"guest-\xffping"}' + RECOVER)
case("ff-mid-message", '{"execute":"guest-ping",\xff"id":1}' + RECOVER)
case("ff-between-messages", PING + "\xff" + PING)
case("fe-before-ping", "\xfe" + PING)
case("run-0x80-before-ping", "\x80" * 8 + PING)
case("bom-before-ping", "\xef\xbb\xbf" + PING)
case("nul-before-ping", "\x00" + PING)
case("formfeed-before-ping", "\x0c" + PING)
case("vtab-before-ping", "\x0b" + PING)
case("ctrl-01-before-ping", "\x01" + PING)
case("esc-before-ping", "\x1b" + PING)
case("del-before-ping", "\x7f" + PING)
case("nul-mid-message", '{"execute":\x00"guest-ping"}' + RECOVER)
case("ctrl-mid-message", '{"execute":"guest-ping",\x01"id":1}' + RECOVER)
case("ws-tab-cr-lf", '\t{\r\n"execute"\t:\r"guest-ping"\n,"id"\r\n:\t1}\r\n')
case("three-requests-no-separator",
     '{"execute":"guest-ping","id":1}' + sync("2") + '{"execute":"guest-ping","id":3}')
case("two-requests-space", PING + " " + sync("9"))

# split writes (same output as whole, see expect_writes)
case("split-ping-3", ['{"execute":"gue', 'st-ping","id":', "7}"])
case("split-ping-whole", '{"execute":"guest-ping","id":7}')
case("split-sync-digits", ['{"execute":"guest-sync","arguments":{"id":12', "34}}"])
case("split-syncd-bytes", [cmd("guest-sync-delimited", '{"id":99}')[i:i + 9]
                           for i in range(0, len(cmd("guest-sync-delimited", '{"id":99}')), 9)])
case("split-inside-escape", ['{"execute":"guest-ping","id":"\\u00', 'e9"}'])
case("split-inside-utf8", [b'{"execute":"guest-ping","id":"\xe2\x82', b'\xac"}'])
case("split-keyword", ['{"execute":"guest-ping","id":tr', "ue}"])
case("split-two-messages-boundary", [PING[:-1], "}" + PING[:5], PING[5:]])

# ---- guest-ping ids -------------------------------------------------------
case("ping", PING)
case("ping-newline", PING + "\n")
case("ping-args-empty", '{"execute":"guest-ping","arguments":{}}')
case("ping-id-string", ping_id('"abc"'))
case("ping-id-empty-string", ping_id('""'))
case("ping-id-nonascii", u(ping_id('"\u00e9\u2603\u201c"')))
case("ping-id-nonbmp-raw", u(ping_id('"\U0001F600x"')))
case("ping-id-nonbmp-escaped", ping_id('"\\ud83d\\ude00"'))
case("ping-id-escapes", ping_id('"\\"\\\\\\/\\b\\f\\n\\r\\t"'))
case("ping-id-u0000-escape", ping_id('"a\\u0000b"'))
case("ping-id-c0-80", ping_id('"a\xc0\x80b"'), note="modified UTF-8 NUL accepted")
case("ping-id-del", ping_id('"a\x7fb"'))
case("ping-id-int", ping_id("1"))
case("ping-id-negative", ping_id("-42"))
case("ping-id-zero", ping_id("0"))
case("ping-id-2p63", ping_id("9223372036854775808"))
case("ping-id-2p64-1", ping_id("18446744073709551615"))
case("ping-id-2p64", ping_id("18446744073709551616"))
case("ping-id-minus-2p63-1", ping_id("-9223372036854775809"))
case("ping-id-int64-min", ping_id("-9223372036854775808"))
case("ping-id-bignum", ping_id("123456789012345678901234567890"))
case("ping-id-0.1", ping_id("0.1"))
case("ping-id-1E2", ping_id("1E2"))
case("ping-id-1e400", ping_id("1e400"))
case("ping-id-minus-1e400", ping_id("-1e400"))
case("ping-id-minus-zero", ping_id("-0"))
case("ping-id-minus-zero-float", ping_id("-0.0"))
case("ping-id-1.5", ping_id("1.5"))
case("ping-id-1e-7", ping_id("1e-7"))
case("ping-id-1.0", ping_id("1.0"))
case("ping-id-5e-324", ping_id("5e-324"))
case("ping-id-true", ping_id("true"))
case("ping-id-false", ping_id("false"))
case("ping-id-null", ping_id("null"))
case("ping-id-object", ping_id('{"a":{"b":[1,"x",null,true]},"c":-1.25}'))
case("ping-id-object-order", ping_id('{"z":1,"a":2,"m":3,"b":4,"y":5}'))
case("ping-id-array", ping_id('[1,2,[3,[]],{}]'))
case("ping-id-empty-object", ping_id("{}"))
case("ping-id-empty-array", ping_id("[]"))
case("ping-id-first", '{"id":"first","execute":"guest-ping"}')
case("single-quoted", "{'execute':'guest-ping','id':'it'}")
case("single-quoted-with-dquote", "{'execute':'guest-ping','id':'a\"b\\'c'}")
case("dquote-escaped-squote", ping_id('"a\\\'b"'))
case("duplicate-key", '{"execute":"guest-ping","execute":"guest-ping"}')
case("duplicate-key-in-id", ping_id('{"a":1,"a":2}'))
case("escaped-command-name", '{"execute":"guest\\u002dping"}')
case("unknown-command", '{"execute":"guest-nope"}')
case("unknown-command-id", '{"execute":"guest-nope","id":{"x":[1]}}')
case("unknown-command-empty", '{"execute":""}')
case("case-variant-upper", '{"execute":"GUEST-PING"}')
case("case-variant-mixed", '{"execute":"Guest-Ping"}')
case("case-variant-underscore", '{"execute":"guest_ping"}')
case("exec-oob", '{"exec-oob":"guest-ping"}')
case("exec-oob-and-execute", '{"execute":"guest-ping","exec-oob":"guest-ping"}')
case("exec-oob-id", '{"exec-oob":"guest-ping","id":1}')
case("missing-execute-args", '{"arguments":{}}')
case("missing-execute-empty", "{}")
case("missing-execute-id", '{"id":1}')
case("execute-int", '{"execute":1}')
case("execute-null", '{"execute":null}')
case("execute-array", '{"execute":["guest-ping"]}')
case("execute-object-id", '{"execute":{},"id":"e"}')
case("arguments-array", '{"execute":"guest-ping","arguments":[]}')
case("arguments-string", '{"execute":"guest-ping","arguments":"x"}')
case("arguments-null", '{"execute":"guest-ping","arguments":null}')
case("arguments-int-id", '{"execute":"guest-ping","arguments":1,"id":9}')
case("arguments-array-unknown-cmd", '{"execute":"guest-nope","arguments":[]}')
case("unknown-member", '{"execute":"guest-ping","foo":1}')
case("unknown-member-id", '{"execute":"guest-ping","foo":1,"id":2}')
case("unknown-member-no-execute", '{"foo":1}')
case("unknown-member-and-bad-args", '{"execute":"guest-ping","foo":1,"arguments":[]}')
case("empty-member-name", '{"execute":"guest-ping","":1}')
case("toplevel-number", "1")
case("toplevel-number-newline", "1\n")
case("toplevel-string", '"guest-ping"')
case("toplevel-array", '[{"execute":"guest-ping"}]')
case("toplevel-true", "true")
case("toplevel-true-space", ["true", " "], note="keyword reported only when the next byte arrives")
case("toplevel-null-newline", "null\n")
case("toplevel-tru-later", ["tru", "\n"])
case("toplevel-number-later", ["12", " "])

# ---- lexer / parser errors (§8.4) -----------------------------------------
case("stray-rbrace", "}")
case("stray-rbracket", "]")
case("stray-colon", ":")
case("stray-comma", ",")
case("empty-array", "[]")
case("empty-object", "{}")
case("invalid-keyword-tru", ping_id("tru"))
case("keyword-True", ping_id("True"))
case("keyword-NaN", ping_id("NaN"))
case("keyword-Infinity", ping_id("Infinity"))
case("bareword-in-object", '{"execute":guest-ping}')
case("bareword-key", "{execute:1}")
case("comment", "/* c */" + PING)
case("num-leading-zero", ping_id("01"))
case("num-minus-rbrace", ping_id("-") )
case("num-1dot-rbrace", ping_id("1."))
case("num-1e-rbrace", ping_id("1e"))
case("num-dot5", ping_id(".5"))
case("num-plus1", ping_id("+1"))
case("num-hex", ping_id("0x10"))
case("num-1e-plus", ping_id("1e+"))
case("num-minus-minus", ping_id("--1"))
case("missing-colon", '{"execute" "guest-ping"}')
case("missing-sep-dict", '{"execute":"guest-ping" "id":1}')
case("missing-sep-list", ping_id("[1 2]"))
case("key-not-string", "{1:2}")
case("key-not-string-in-id", ping_id("{1:2}"))
case("trailing-comma-dict", '{"execute":"guest-ping",}')
case("trailing-comma-list", ping_id("[1,]"))
case("leading-comma-list", ping_id("[,1]"))
case("double-colon", '{"execute"::"guest-ping"}')
case("colon-in-list", ping_id("[1:2]"))
case("escape-x", ping_id('"\\x41"'))
case("escape-a", ping_id('"\\a"'))
case("escape-0", ping_id('"\\0"'))
case("escape-u12-quote", ping_id('"\\u12"'))
case("escape-u-nonhex", ping_id('"\\u12G4"'))
case("escape-ud800-alone", ping_id('"\\ud800"'))
case("escape-ud800-then-text", ping_id('"\\ud800x"'))
case("escape-udc00-alone", ping_id('"\\udc00"'))
case("escape-uFFFF", ping_id('"\\uFFFF"'))
case("escape-uDBFF-uDFFF", ping_id('"\\uDBFF\\uDFFF"'))
case("escape-uppercase-U", ping_id('"\\U0041"'))
case("utf8-c0-80", ping_id('"\xc0\x80"'))
case("utf8-c1-bf-overlong", ping_id('"\xc1\xbf"'))
case("utf8-e0-80-80-overlong", ping_id('"\xe0\x80\x80"'))
case("utf8-lone-continuation", ping_id('"a\x80b"'))
case("utf8-5byte", ping_id('"\xf8\x88\x80\x80\x80"'))
case("utf8-surrogate-ed-a0-80", ping_id('"\xed\xa0\x80"'))
case("utf8-fffe-ef-bf-be", ping_id('"\xef\xbf\xbe"'))
case("utf8-above-10ffff", ping_id('"\xf4\x90\x80\x80"'))
case("utf8-truncated", ping_id('"\xe2\x82"'))
case("utf8-ff-in-string", ping_id('"a\xffb"'))
case("utf8-fe-in-string", ping_id('"a\xfeb"'))
case("raw-tab-in-string", ping_id('"a\tb"'))
case("raw-lf-in-string", ping_id('"a\nb"'))
case("raw-cr-in-string", ping_id('"a\rb"'))
case("raw-nul-in-string", ping_id('"a\x00b"'))
case("raw-del-in-string", ping_id('"a\x7fb"') + "\n")
case("nonbmp-in-id-4byte", ping_id('"\xf0\x9f\x98\x80\xf0\x90\x80\x80"'))
case("unterminated-string-then-more", ['{"execute":"guest-ping","id":"abc', "def\"}"])
case("utf8-error-recover", ping_id('"\xe0\x80\x80"') + RECOVER)
case("tab-in-string-recover", ping_id('"a\tb"') + RECOVER)
case("keyword-True-recover", ping_id("True") + RECOVER)

# ---- argument errors --------------------------------------------------------
case("ping-extra-arg", cmd("guest-ping", '{"x":1}'))
case("info-extra-arg", cmd("guest-info", '{"x":1}'))
case("get-time-extra-arg", cmd("guest-get-time", '{"x":1}'))
case("get-osinfo-extra-arg", cmd("guest-get-osinfo", '{"x":1}'))
case("get-host-name-extra-arg", cmd("guest-get-host-name", '{"x":1}'))
case("get-timezone-extra-arg", cmd("guest-get-timezone", '{"x":1}'))
case("get-users-extra-arg", cmd("guest-get-users", '{"x":1}'))
case("get-vcpus-extra-arg", cmd("guest-get-vcpus", '{"x":1}'))
case("two-extra-args", cmd("guest-ping", '{"b":1,"a":2}'))
case("file-open-missing-path", cmd("guest-file-open", "{}"))
case("file-open-missing-path-with-mode", cmd("guest-file-open", '{"mode":"r"}'))
case("file-open-path-int", cmd("guest-file-open", '{"path":1}'))
case("file-open-path-null", cmd("guest-file-open", '{"path":null}'))
case("file-open-mode-null", cmd("guest-file-open", '{"path":"/nonexistent/qga-golden","mode":null}'))
case("file-open-mode-int", cmd("guest-file-open", '{"path":"/nonexistent/qga-golden","mode":1}'))
case("file-open-extra", cmd("guest-file-open", '{"path":"/nonexistent/qga-golden","extra":1}'))
for wname, wval in [("true", "true"), ("null", "null"), ("object", "{}"), ("array", "[]"),
                    ("1.5", "1.5"), ("SET", '"SET"'), ("3", "3"), ("minus1", "-1"),
                    ("set", '"set"'), ("0", "0"), ("end", '"end"'), ("bogus", '"bogus"'),
                    ("2p63", "9223372036854775808")]:
    case("file-seek-whence-" + wname,
         cmd("guest-file-seek", '{"handle":999999,"offset":0,"whence":%s}' % wval))
case("file-seek-missing-whence", cmd("guest-file-seek", '{"handle":999999,"offset":0}'))
case("file-seek-offset-string", cmd("guest-file-seek", '{"handle":999999,"offset":"0","whence":0}'))
case("file-close-no-handle", cmd("guest-file-close", '{"handle":999999}'))
case("file-read-no-handle", cmd("guest-file-read", '{"handle":999999}'))
case("file-read-count-string", cmd("guest-file-read", '{"handle":999999,"count":"1"}'))
case("file-write-no-handle", cmd("guest-file-write", '{"handle":999999,"buf-b64":"aGVsbG8="}'))
case("file-write-handle-string", cmd("guest-file-write", '{"handle":"x"}'))
case("file-flush-no-handle", cmd("guest-file-flush", '{"handle":999999}'))
case("exec-status-no-pid", cmd("guest-exec-status", '{"pid":999999}'))
case("exec-status-pid-string", cmd("guest-exec-status", '{"pid":"1"}'))
case("set-vcpus-missing-online", cmd("guest-set-vcpus", '{"vcpus":[{"logical-id":0}]}'))
case("set-vcpus-id-string", cmd("guest-set-vcpus", '{"vcpus":[{"logical-id":"x","online":true}]}'))
case("set-vcpus-object", cmd("guest-set-vcpus", '{"vcpus":{}}'))
case("set-vcpus-missing", cmd("guest-set-vcpus", "{}"))
case("set-vcpus-second-bad", cmd("guest-set-vcpus",
                                 '{"vcpus":[{"logical-id":0,"online":true},{"logical-id":1,"online":1}]}'))
case("set-vcpus-can-offline-null", cmd("guest-set-vcpus",
                                       '{"vcpus":[{"logical-id":0,"online":true,"can-offline":null}]}'))
case("set-vcpus-element-extra", cmd("guest-set-vcpus",
                                    '{"vcpus":[{"logical-id":0,"online":true,"x":1}]}'))
case("set-vcpus-element-int", cmd("guest-set-vcpus", '{"vcpus":[1]}'))
EXEC_PATH = '"path":"/nonexistent/qga-golden"'
case("exec-capture-int", cmd("guest-exec", '{%s,"capture-output":1}' % EXEC_PATH))
case("exec-capture-string-bogus", cmd("guest-exec", '{%s,"capture-output":"bogus"}' % EXEC_PATH))
case("exec-capture-null", cmd("guest-exec", '{%s,"capture-output":null}' % EXEC_PATH))
case("exec-capture-array", cmd("guest-exec", '{%s,"capture-output":[]}' % EXEC_PATH))
case("exec-capture-object", cmd("guest-exec", '{%s,"capture-output":{}}' % EXEC_PATH))
case("exec-capture-1.5", cmd("guest-exec", '{%s,"capture-output":1.5}' % EXEC_PATH))
case("exec-capture-merged-extra", cmd("guest-exec", '{%s,"capture-output":"merged","x":1}' % EXEC_PATH),
     note="7.2: capture-output is a bool")
case("exec-missing-path", cmd("guest-exec", '{"arg":["a"]}'))
case("exec-arg-string", cmd("guest-exec", '{%s,"arg":"x"}' % EXEC_PATH))
case("exec-arg-int-element", cmd("guest-exec", '{%s,"arg":["a",1]}' % EXEC_PATH))
case("exec-env-null", cmd("guest-exec", '{%s,"env":null}' % EXEC_PATH))
case("exec-input-data-int", cmd("guest-exec", '{%s,"input-data":1}' % EXEC_PATH))
case("memblk-object", cmd("guest-set-memory-blocks", '{"mem-blks":{}}'))
case("memblk-missing-phys-index", cmd("guest-set-memory-blocks", '{"mem-blks":[{"online":true}]}'))
case("memblk-phys-index-string", cmd("guest-set-memory-blocks",
                                     '{"mem-blks":[{"phys-index":"x","online":true}]}'))
case("memblk-phys-index-float", cmd("guest-set-memory-blocks",
                                    '{"mem-blks":[{"phys-index":1.5,"online":true}]}'))
case("memblk-phys-index-bool", cmd("guest-set-memory-blocks",
                                   '{"mem-blks":[{"phys-index":true,"online":true}]}'))
case("memblk-phys-index-null", cmd("guest-set-memory-blocks",
                                   '{"mem-blks":[{"phys-index":null,"online":true}]}'))
case("memblk-phys-index-2p64", cmd("guest-set-memory-blocks",
                                   '{"mem-blks":[{"phys-index":18446744073709551616,"online":true}]}'))
case("memblk-negative-accepted-then-bad", cmd(
    "guest-set-memory-blocks", '{"mem-blks":[{"phys-index":-1,"online":true},{"phys-index":"x"}]}'),
    note="-1 passes the uint64 visitor; element 1 fails, so nothing runs")
case("memblk-uint64-max-accepted-then-bad", cmd(
    "guest-set-memory-blocks",
    '{"mem-blks":[{"phys-index":18446744073709551615,"online":true},{"online":true}]}'))
case("memblk-online-string", cmd("guest-set-memory-blocks",
                                 '{"mem-blks":[{"phys-index":0,"online":"yes"}]}'))
case("memblk-missing-online", cmd("guest-set-memory-blocks", '{"mem-blks":[{"phys-index":0}]}'))
case("memblk-extra", cmd("guest-set-memory-blocks",
                         '{"mem-blks":[{"phys-index":0,"online":true,"x":1}]}'))
case("fsfreeze-list-string", cmd("guest-fsfreeze-freeze-list", '{"mountpoints":"x"}'))
case("fsfreeze-list-int-element", cmd("guest-fsfreeze-freeze-list", '{"mountpoints":["/",1]}'))
case("fstrim-minimum-string", cmd("guest-fstrim", '{"minimum":"x"}'))
case("set-time-string", cmd("guest-set-time", '{"time":"x"}'))
case("set-time-float", cmd("guest-set-time", '{"time":1.5}'))
case("shutdown-mode-int", cmd("guest-shutdown", '{"mode":1}'))
case("shutdown-mode-bogus", cmd("guest-shutdown", '{"mode":"bogus"}'))
case("set-user-password-missing-crypted", cmd("guest-set-user-password",
                                              '{"username":"x","password":"eA=="}'))
case("ssh-get-keys-username-int", cmd("guest-ssh-get-authorized-keys", '{"username":1}'))
case("ssh-add-keys-missing-keys", cmd("guest-ssh-add-authorized-keys", '{"username":"x"}'))

# ---- guest-info -------------------------------------------------------------
case("guest-info", '{"execute":"guest-info"}')
case("guest-info-id", '{"execute":"guest-info","id":"i"}')
case("get-devices", '{"execute":"guest-get-devices"}', note="disabled stub in 7.2, absent in 10.x")

# ---- nesting / size limits (generated) ------------------------------------
PING_ID = '{"execute":"guest-ping","id":'
for d in (1000, 1022, 1023, 1024, 1025, 1030):
    gen("nest-id-array-%d" % d, [[PING_ID, 1], ["[", d], ["]", d], ["}", 1]], depth=d,
        note="depth = number of [ in the id; total nesting = depth + 1 (outer {)")
for d in (1024, 1025):
    gen("nest-toplevel-array-%d" % d, [["[", d], ["]", d]], depth=d)
gen("nest-id-object-1030", [[PING_ID, 1], ['{"a":', 1030], ["1", 1], ["}", 1030], ["}", 1]],
    depth=1030)
gen("nest-1030-recover", [[PING_ID, 1], ["[", 1030], ["]", 1030], ["}", 1], [RECOVER, 1]],
    depth=1030)

# token count: '{' '"execute"' ':' '"guest-ping"' ',' '"id"' ':' '[' = 8 tokens,
# then N x ('0' ','), then '0' ']' '}' = 3 tokens  -> total 2N + 11 tokens
for n in (1048560, 1048570, 1048571, 1048572, 1048576):
    gen("tokens-%d" % (2 * n + 11), [[PING_ID + "[", 1], ["0,", n], ["0]}", 1]], tokens=2 * n + 11,
        quiet=1.5, timeout=600)
gen("tokens-2097152", [[PING_ID + "[", 1], ["0,", 1048570], ["[]]}", 1]], tokens=2097152,
    quiet=1.5, timeout=600)
# token size: one string token just above / below 64 MiB
for nbytes in (67108860, 67108865):
    gen("bigstring-%d" % nbytes, [[PING_ID + '"', 1], ["a", nbytes], ['"}', 1]], bytes=nbytes,
        quiet=2.0, timeout=900, cap=8 << 20)
# whole message at the 64 MiB limit: token sizes 41 (prefix) + N+2 (string) + 1 + 1 = N+45;
# upstream rejects a token when (sum so far + its length + 1) > 64 MiB
for nbytes in (67108818, 67108819):
    gen("bigarg-%d" % nbytes, [['{"execute":"guest-ping","arguments":{"x":"', 1], ["a", nbytes],
                               ['"}}', 1]], bytes=nbytes, quiet=2.0, timeout=900, cap=8 << 20)
# message size: 65 string tokens of 1 MiB each (each token fine, message > 64 MiB)
gen("bigmessage-65x1MiB", [[PING_ID + "[", 1], ['"' + "b" * (1 << 20) + '",', 64],
                           ['"' + "b" * (1 << 20) + '"]}', 1]], bytes=65 * ((1 << 20) + 3) + 30,
    quiet=2.0, timeout=900, cap=8 << 20)

# ---- policy -----------------------------------------------------------------
case("block-ping", PING, agent_args=["-b", "guest-ping"])
case("block-ping-id", '{"execute":"guest-ping","id":1}', agent_args=["-b", "guest-ping"])
case("block-ping-guest-info", '{"execute":"guest-info"}', agent_args=["-b", "guest-ping"])
case("block-sync-bad-args", '{"execute":"guest-sync"}', agent_args=["-b", "guest-sync"],
     note="disabled check comes before argument checks")
case("block-syncd", cmd("guest-sync-delimited", '{"id":1}'), agent_args=["-b", "guest-sync-delimited"])
case("block-unknown-name-ping", PING, agent_args=["-b", "guest-nosuch"])
case("block-two", PING + '{"execute":"guest-get-time","arguments":{"x":1}}',
     agent_args=["-b", "guest-ping,guest-get-time"])
case("block-repeated-flag", PING + '{"execute":"guest-info","arguments":{"x":1}}',
     agent_args=["-b", "guest-ping", "-b", "guest-info"])
case("allow-ping-info-get-time", '{"execute":"guest-get-time"}',
     agent_args=["-a", "guest-ping,guest-info"])
case("allow-ping-info-ping", PING, agent_args=["-a", "guest-ping,guest-info"])
case("allow-ping-info-sync", sync("1"), agent_args=["-a", "guest-ping,guest-info"])
case("allow-ping-info-guest-info", '{"execute":"guest-info"}',
     agent_args=["-a", "guest-ping,guest-info"])
case("allow-block-overlap-ping", PING,
     agent_args=["-a", "guest-ping,guest-info", "-b", "guest-ping"])
case("allow-block-overlap-guest-info", '{"execute":"guest-info"}',
     agent_args=["-a", "guest-ping,guest-info", "-b", "guest-ping"])
case("config-block-semicolon", PING + '{"execute":"guest-get-time","arguments":{"x":1}}',
     config_text="[general]\nblock-rpcs=guest-ping;guest-get-time\n",
     note="list split on ',' only: one bogus name, nothing blocked")
case("config-block-comma", PING + '{"execute":"guest-get-time","arguments":{"x":1}}',
     config_text="[general]\nblock-rpcs=guest-ping,guest-get-time\n")
case("config-block-plus-cli", PING + '{"execute":"guest-info","arguments":{"x":1}}',
     config_text="[general]\nblock-rpcs=guest-ping\n", agent_args=["-b", "guest-info"])
case("config-allow", '{"execute":"guest-get-time","arguments":{"x":1}}' + PING,
     config_text="[general]\nallow-rpcs=guest-ping\n")

# ---- CLI cases ----------------------------------------------------------------
CLI = []
LISTEN = ["-m", "unix-listen", "-p", "@TMP@/sock", "-t", "@TMP@/state"]


def cli(name, args, config_text="", env=None):
    CLI.append({"name": name, "args": args, "env": env or {}, "config_text": config_text})


cli("version-short", ["-V"])
cli("version-long", ["--version"])
cli("help", ["-h"])
cli("unknown-option", ["-x"])
cli("block-help", ["-b", "help"])
cli("block-help-long", ["--block-rpcs=help"])
cli("block-question", ["-b", "?"])
cli("allow-help", ["-a", "help"])
cli("allow-question", ["-a", "?"])
cli("block-unknown-name", ["-b", "guest-nosuch"] + LISTEN)
cli("block-unknown-and-known", ["-b", "guest-ping,guest-nosuch"] + LISTEN)
cli("allow-unknown-name", ["-a", "guest-nosuch"] + LISTEN)
cli("dump-default", ["-D"])
cli("dump-listen", ["-D"] + LISTEN)
cli("dump-block", ["-D", "-b", "guest-ping,guest-info"])
cli("dump-block-repeated", ["-D", "-b", "guest-ping", "-b", "guest-info"])
cli("dump-allow", ["-D", "-a", "guest-ping"])
cli("dump-block-allow", ["-D", "-b", "guest-ping", "-a", "guest-ping,guest-info"])
cli("dump-verbose-retry", ["-D", "-v", "-r"])
cli("dump-logfile-hook", ["-D", "-l", "@TMP@/log", "-F"])
cli("dump-hook-path", ["-D", "-F@TMP@/hook"])
cli("dump-pidfile", ["-D", "-f", "@TMP@/pid"])
cli("dump-statedir", ["-D", "-t", "@TMP@/state"])
cli("dump-long-options", ["--dump-conf", "--method=unix-listen", "--path=@TMP@/sock",
                          "--statedir=@TMP@/state", "--block-rpcs=guest-ping"])
cli("dump-config-semicolon", ["-D"], "[general]\nblock-rpcs=guest-ping;guest-get-time\n")
cli("dump-config-comma", ["-D"], "[general]\nblock-rpcs=guest-ping,guest-get-time\n")
cli("dump-config-plus-cli", ["-D", "-b", "guest-info"], "[general]\nblock-rpcs=guest-ping\n")
cli("dump-config-full", ["-D"],
    "[general]\nmethod=unix-listen\npath=/x/sock\nstatedir=/x/state\npidfile=/x/pid\n"
    "verbose=true\nretry-path=true\nlogfile=/x/log\nfsfreeze-hook=/x/hook\n")
cli("dump-config-cli-wins", ["-D", "-m", "isa-serial", "-p", "/y/ttyS1"],
    "[general]\nmethod=unix-listen\npath=/x/sock\n")
cli("dump-config-allow", ["-D"], "[general]\nallow-rpcs=guest-ping,guest-info\n")
cli("dump-config-unknown-key", ["-D"], "[general]\ndaemonize=0\nfoo=bar\n")
cli("dump-config-other-group", ["-D"], "[other]\nverbose=true\n")
cli("dump-config-bad-syntax", ["-D"], "this is not a key file\n")
cli("dump-config-bad-bool", ["-D"], "[general]\nverbose=maybe\n")
cli("config-dev-null", ["-c", "/dev/null", "-D"])
cli("config-missing-file", ["-c", "@TMP@/missing.conf", "-D"])
cli("config-explicit", ["-c", "@TMP@/qemu-ga.conf", "-D"], "[general]\nverbose=true\n")
cli("method-bogus", ["-m", "bogus", "-p", "@TMP@/x", "-t", "@TMP@/state"])
cli("listen-without-path", ["-m", "unix-listen", "-t", "@TMP@/state"])
cli("statedir-relative", ["-m", "unix-listen", "-p", "@TMP@/sock", "-t", "relative"])
cli("listen-normal-start", LISTEN)

# ---------------------------------------------------------------------------
# running agents


def cpu_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])
    except (OSError, IndexError, ValueError):
        return None


class Agent:
    def __init__(self, binary, args=(), config_text=""):
        self.tmp = tempfile.mkdtemp(prefix="qga-golden-")
        os.mkdir(os.path.join(self.tmp, "state"))
        self.sock_path = os.path.join(self.tmp, "sock")
        conf = os.path.join(self.tmp, "qemu-ga.conf")
        with open(conf, "w") as f:
            f.write(config_text)
        env = dict(os.environ, QGA_CONF=conf)
        self.errf = open(os.path.join(self.tmp, "stderr"), "w+b")
        argv = ["qemu-ga", "-m", "unix-listen", "-p", self.sock_path,
                "-t", os.path.join(self.tmp, "state")] + list(args)
        self.proc = subprocess.Popen(argv, executable=binary, env=env, cwd=self.tmp,
                                     stdin=subprocess.DEVNULL, stdout=self.errf,
                                     stderr=self.errf)
        self.sock = None

    def connect(self, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            if os.path.exists(self.sock_path):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(self.sock_path)
                    s.setblocking(False)
                    self.sock = s
                    return True
                except OSError:
                    s.close()
            time.sleep(0.01)
        return False

    def exchange(self, data, quiet, cap, deadline):
        """Send data (while reading), then read until quiet. Returns bytes."""
        out = bytearray()
        view = memoryview(data)
        sent = 0
        last_rx = time.monotonic()
        last_cpu = cpu_ticks(self.proc.pid)
        last_cpu_change = time.monotonic()
        while True:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError("case timed out")
            wlist = [self.sock] if sent < len(data) else []
            r, w, _ = select.select([self.sock], wlist, [], 0.05)
            if r:
                try:
                    chunk = self.sock.recv(1 << 20)
                except (BlockingIOError, InterruptedError):
                    chunk = None
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    out += chunk
                    last_rx = time.monotonic()
                    if len(out) >= cap:
                        return bytes(out), "cap"
                elif chunk == b"":
                    return bytes(out), "eof"
            if w:
                try:
                    sent += self.sock.send(view[sent:sent + (1 << 20)])
                except (BlockingIOError, InterruptedError):
                    pass
                last_rx = time.monotonic()
            cpu = cpu_ticks(self.proc.pid)
            now = time.monotonic()
            if cpu != last_cpu:
                last_cpu = cpu
                last_cpu_change = now
            if cpu is None:
                return bytes(out), "exited"
            if sent >= len(data) and now - last_rx >= quiet and now - last_cpu_change >= quiet:
                return bytes(out), None

    def close(self):
        if self.sock:
            self.sock.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.errf.seek(0)
        err = self.errf.read()
        self.errf.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return err


def normalise(text, tmp=None):
    if tmp:
        text = text.replace(tmp, "@TMP@")
    text = re.sub(r"\(process:\d+\)", "(process:@PID@)", text)
    text = re.sub(r"\b\d\d:\d\d:\d\d\.\d\d\d\b", "@TIME@", text)
    text = re.sub(r"(?m)^\d{9,}\.\d+: ", "@TS@: ", text)
    # g_file_set_contents() temp file name: "qga.state.GQL6Y3"
    text = re.sub(r"(qga\.state)\.[A-Za-z0-9]{6}\b", r"\1.@RAND@", text)
    return text


def run_wire(binary, c):
    """Returns dict(writes_out=[bytes...], status, stderr) or dict(failed=reason)."""
    if "generator" in c:
        writes = [gen_bytes(c["generator"])]
    else:
        writes = c["writes"]
    agent = Agent(binary, c.get("agent_args", ()), c.get("config_text", ""))
    try:
        if not agent.connect():
            err = agent.close()
            return {"failed": "agent did not start (exit %s): %s" % (
                agent.proc.returncode, normalise(err.decode("latin-1"), agent.tmp).strip())}
        deadline = time.monotonic() + c.get("timeout", 60)
        outs = []
        status = None
        for w in writes:
            o, status = agent.exchange(w, c.get("quiet", QUIET), c.get("cap", DEFAULT_CAP),
                                       deadline)
            outs.append(o)
            if status:
                break
        while len(outs) < len(writes):
            outs.append(b"")
        err = agent.close()
        return {"outs": outs, "status": status,
                "stderr": normalise(err.decode("latin-1"), agent.tmp)}
    except BaseException:
        agent.close()
        raise


def s(bs):
    return bs.decode("latin-1")


def put_output(d, key, data):
    if len(data) > LONG:
        d[key + "_sha256"] = hashlib.sha256(data).hexdigest()
        d[key + "_len"] = len(data)
        d[key + "_prefix"] = s(data[:PREFIX])
    else:
        d[key] = s(data)


def run_cli(binary, c):
    tmp = tempfile.mkdtemp(prefix="qga-golden-cli-")
    try:
        os.mkdir(os.path.join(tmp, "state"))
        conf = os.path.join(tmp, "qemu-ga.conf")
        with open(conf, "w") as f:
            f.write(c["config_text"])
        env = dict(os.environ, QGA_CONF=conf)
        env.update({k: v.replace("@TMP@", tmp) for k, v in c["env"].items()})
        argv = ["qemu-ga"] + [a.replace("@TMP@", tmp) for a in c["args"]]
        p = subprocess.Popen(argv, executable=binary, env=env, cwd=tmp,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=1.5)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            out, err = p.communicate()
            rc = None
        return {"stdout": normalise(out.decode("utf-8", "replace"), tmp),
                "stderr": normalise(err.decode("utf-8", "replace"), tmp), "exit": rc}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def agent_version(binary):
    out = subprocess.run(["qemu-ga", "-V"], executable=binary, capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"QEMU Guest Agent (\S+)", out)
    return m.group(1)


def guest_info(binary):
    r = run_wire(binary, {"writes": [b'{"execute":"guest-info"}']})
    return json.loads(r["outs"][0].decode())["return"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qga10", default=DEFAULT_QGA10)
    ap.add_argument("--qga72", default=DEFAULT_QGA72)
    ap.add_argument("--out-dir", default=DEFAULT_OUT)
    ap.add_argument("--only", help="only cases whose name contains this (prints, writes nothing)")
    ap.add_argument("--verify", action="store_true", help="run each wire case twice on 10.0.2")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()

    if a.list:
        for c in WIRE:
            print("wire", c["name"])
        for c in CLI:
            print("cli ", c["name"])
        print(len(WIRE), "wire cases,", len(CLI), "cli cases")
        return 0

    v10 = agent_version(a.qga10)
    v72 = agent_version(a.qga72)
    assert v10 == "10.0.2", v10
    assert v72.startswith("7.2"), v72
    print("reference %s = %s, other %s = %s" % (a.qga10, v10, a.qga72, v72), file=sys.stderr)

    wire_out = []
    problems = []
    for c in WIRE:
        if a.only and a.only not in c["name"]:
            continue
        t0 = time.monotonic()
        r10 = run_wire(a.qga10, c)
        if "failed" in r10:
            problems.append("%s: 10.0.2 %s" % (c["name"], r10["failed"]))
            print("FAIL", c["name"], r10["failed"], file=sys.stderr)
            continue
        if a.verify:
            again = run_wire(a.qga10, c)
            if again.get("outs") != r10["outs"]:
                problems.append("%s: not deterministic" % c["name"])
                print("NONDETERMINISTIC", c["name"], file=sys.stderr)
        r72 = run_wire(a.qga72, c)
        e = {"name": c["name"]}
        if "generator" in c:
            e["generator"] = {k: (s(b(v)) if isinstance(v, str) else v)
                              for k, v in c["generator"].items()}
            e["generator"]["parts"] = [[s(b(t)), n] for t, n in c["generator"]["parts"]]
        else:
            e["input"] = s(b"".join(c["writes"]))
            if len(c["writes"]) > 1:
                e["writes"] = [s(w) for w in c["writes"]]
        full10 = b"".join(r10["outs"])
        put_output(e, "expect", full10)
        if len(c.get("writes", ())) > 1:
            e["expect_writes"] = [s(o) for o in r10["outs"]]
        e["agent"] = v10
        for k in ("agent_args", "config_text", "note"):
            if k in c:
                e[k] = c[k]
        if r10["status"]:
            e["end"] = r10["status"]
        if r10["stderr"]:
            e["agent_stderr"] = r10["stderr"]
        if "failed" in r72:
            e["skip_7_2"] = r72["failed"]
        else:
            full72 = b"".join(r72["outs"])
            if full72 != full10:
                put_output(e, "differs_7_2", full72)
            if len(c.get("writes", ())) > 1 and r72["outs"] != r10["outs"]:
                e["differs_7_2_writes"] = [s(o) for o in r72["outs"]]
            if r72["stderr"] != r10["stderr"] and r72["stderr"]:
                e["agent_stderr_7_2"] = r72["stderr"]
        wire_out.append(e)
        dt = time.monotonic() - t0
        shown = e.get("expect", e.get("expect_prefix", ""))[:150]
        print("%-40s %5.1fs %s%s" % (c["name"], dt, json.dumps(shown),
                                     "  [7.2 differs]" if ("differs_7_2" in e or "differs_7_2_len" in e)
                                     else ""), file=sys.stderr)

    cli_out = []
    for c in CLI:
        if a.only and a.only not in c["name"]:
            continue
        r10 = run_cli(a.qga10, c)
        r72 = run_cli(a.qga72, c)
        e = dict(c)
        e.update(r10)
        e["agent"] = v10
        if r72 != r10:
            e["differs_7_2"] = r72
        cli_out.append(e)
        print("cli %-36s exit=%s %s" % (c["name"], r10["exit"],
                                         json.dumps((r10["stdout"] + r10["stderr"])[:120])),
              file=sys.stderr)

    if a.only:
        json.dump({"wire": wire_out, "cli": cli_out}, sys.stdout, indent=1)
        print()
        return 1 if problems else 0

    gi10 = guest_info(a.qga10)
    gi72 = guest_info(a.qga72)
    cmds = {}
    for gi in (gi10, gi72):
        cmds[gi["version"]] = [{"name": x["name"], "enabled": x["enabled"],
                                "success-response": x["success-response"]}
                               for x in gi["supported_commands"]]

    os.makedirs(a.out_dir, exist_ok=True)

    def dump(name, obj):
        path = os.path.join(a.out_dir, name)
        with open(path, "w") as f:
            json.dump(obj, f, indent=1, ensure_ascii=True)
            f.write("\n")
        print("wrote", path, file=sys.stderr)

    dump("wire-golden.json", wire_out)
    dump("cli-golden.json", cli_out)
    dump("qemu-ga-commands.json", cmds)
    print("%d wire cases, %d cli cases" % (len(wire_out), len(cli_out)), file=sys.stderr)
    for p in problems:
        print("PROBLEM:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
