#!/usr/bin/env python3
"""Benchmarks the terminal wizard (issue 5): runs the release binary in a
pseudo-terminal of 80x24 on a fresh temporary home, over RUNS runs (default
10, after one warm-up run), and prints one JSON object with the medians of:

- first_frame_ms: from the spawn to the last byte of the first complete frame
  (the output holds the key-hint line's text, then no byte comes for 50 ms;
  the time is that of the last byte before the silence). Nothing answers the
  terminal queries, as on a console that never answers.
- first_frame_bytes: bytes written for that first frame (with the set-up
  sequences: alternate screen, bracketed paste, clear).
- focus_move_bytes: bytes written for one Tab (Generate -> the key field:
  the field takes the focus and the cursor, and the key-hint line changes to
  the typing hints); focus_back_bytes: Tab again (field -> Generate).
- button_focus_move_bytes: bytes for one Tab between two buttons (the
  Rotation tab of a home with an open rotation, Run -> Confirm): a focus move
  that changes nothing else on the screen.
- tab_switch_bytes: bytes for one tab switch ('2': Encryption ->
  Communication).
- ctrl_l_bytes: bytes for Ctrl-L (a repaint of the whole screen).
- idle_cpu_ms / idle_bytes: CPU time (utime + stime of /proc/PID/stat, all
  threads) used, and bytes written, while idle for IDLE seconds (default 5),
  with the home watched (the wizard always watches it).
- follow_ms: from the end of a shell-side `keyturn rotation skip` (the change
  is on disk) to the first byte of the open wizard's redraw (issue 13);
  follow_from_start_ms: from the start of that command.
- rss_kib: resident memory (VmRSS of /proc/PID/status) after the idle time;
  rss_peak_kib: VmHWM.

and, for the first frame and the focus move, how the bytes split between
printed text, SGR (colour and attribute) sequences, cursor moves and other
control sequences, so it shows what dominates.

Usage: scripts/bench-tui.py [RUNS] [IDLE_SECONDS]   (Python 3 standard
library only; Linux, for /proc). Builds with `cargo build --release` first.
Targets: first frame < 15 ms median and < 4.5 KB, focus move < 120 bytes,
zero CPU while idle, < 10 MiB resident.
"""

import fcntl
import json
import os
import re
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "keyturn")
HINT = b"q quit"  # the end of the key-hint line on the tabs
SILENCE = 0.050
COLS, ROWS = 80, 24
CLK_TCK = os.sysconf("SC_CLK_TCK")

CSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]")
OTHER_ESC = re.compile(rb"\x1b[^\[]")


def breakdown(data):
    """Bytes of text, SGR, cursor moves and other escape sequences."""
    out = {"text": 0, "sgr": 0, "cursor_moves": 0, "other_sequences": 0}
    for m in CSI.finditer(data):
        seq = m.group(0)
        final = seq[-1:]
        if final == b"m":
            out["sgr"] += len(seq)
        elif final in b"HfABCDG":
            out["cursor_moves"] += len(seq)
        else:
            out["other_sequences"] += len(seq)
    rest = CSI.sub(b"", data)
    for m in OTHER_ESC.finditer(rest):
        out["other_sequences"] += len(m.group(0))
    out["text"] = len(OTHER_ESC.sub(b"", rest))
    return out


def read_until_silent(fd, deadline, want=None, silence=SILENCE):
    """Reads until `want` was seen (else: any byte) and then `silence` passes
    with no byte, or until `deadline`. Returns (bytes, time of the last byte
    or None)."""
    data = b""
    last = None
    while True:
        now = time.monotonic()
        if now > deadline:
            break
        seen = bool(data) if want is None else want in data
        timeout = silence if seen else min(0.5, deadline - now)
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            if seen:
                break
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        data += chunk
        last = time.monotonic()
    return data, last


def read_for(fd, seconds):
    """Everything written in the next `seconds`."""
    data = b""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                data += os.read(fd, 65536)
            except OSError:
                break
    return data


def proc_cpu_ticks(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def quit_and_reap(pid, fd):
    """Sends q; the exit code, or None when it had to be killed."""
    os.write(fd, b"q")
    read_until_silent(fd, time.monotonic() + 5, want=b"\x1b[?1049l")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def rotation_home():
    """A home with an open rotation stopped at a manual step."""
    root = tempfile.mkdtemp(prefix="kt-bench-rot-")
    home = os.path.join(root, "home")
    kt = lambda *args: subprocess.run([BINARY, "--home", home, *args], capture_output=True)
    if kt("rotation", "start", "communication", "--setup", "single", "--generate").returncode != 0:
        raise RuntimeError("cannot start a rotation")
    kt("rotation", "run", "--wait", "1")  # exit 3: a step needs a person
    return root, home


def button_focus_move(home):
    """Bytes for Tab from Run to Confirm on the Rotation tab."""
    pid, fd, t0 = spawn(home)
    try:
        data, _ = read_until_silent(fd, t0 + 10, want=HINT)
        if b"Rotation" not in data:
            raise RuntimeError("the wizard did not open on the rotation")
        os.write(fd, b"\t")  # the checklist -> Run
        read_until_silent(fd, time.monotonic() + 2, want=None)
        os.write(fd, b"\t")  # Run -> Confirm
        data, _ = read_until_silent(fd, time.monotonic() + 2, want=None)
    finally:
        quit_and_reap(pid, fd)
        os.close(fd)
    return data


def follow(runs):
    """The open wizard's redraw after another shell's change, per run: (ms
    from the command's end, ms from its start)."""
    out = []
    for _ in range(runs):
        root, home = rotation_home()
        pid, fd, t0 = spawn(home)
        try:
            data, _ = read_until_silent(fd, t0 + 10, want=HINT)
            status = subprocess.run([BINARY, "--home", home, "rotation", "status", "--json"], capture_output=True)
            current = json.loads(status.stdout)["current"]
            start = time.monotonic()
            subprocess.run([BINARY, "--home", home, "rotation", "skip", current, "--reason", "bench"], capture_output=True, check=True)
            end = time.monotonic()
            ready, _, _ = select.select([fd], [], [], 10)
            first = time.monotonic() if ready else None
            read_until_silent(fd, time.monotonic() + 2, want=None)
            if first is not None:
                out.append(((first - end) * 1000, (first - start) * 1000))
        finally:
            quit_and_reap(pid, fd)
            os.close(fd)
            shutil.rmtree(root, ignore_errors=True)
    return out


def spawn(home):
    """keyturn in a new pty of COLS x ROWS; returns (pid, master fd, t0)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYTURN_", "TMUX")) and k != "NO_COLOR"}
    env.update(TERM="xterm-256color", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    argv = [BINARY, "--home", home]
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child: the pty becomes its controlling terminal
        try:
            os.close(master)
            os.login_tty(slave)
            os.execve(BINARY, argv, env)
        finally:
            os._exit(127)
    os.close(slave)
    return pid, master, t0


def one_run(idle_seconds):
    home_root = tempfile.mkdtemp(prefix="kt-bench-")
    pid, fd, t0 = spawn(os.path.join(home_root, "home"))
    result = {}
    try:
        data, last = read_until_silent(fd, t0 + 10, want=HINT)
        if HINT not in data or last is None:
            raise RuntimeError("no first frame within 10 s: %r" % data[-300:])
        result["first_frame_ms"] = (last - t0) * 1000
        result["first_frame_bytes"] = len(data)
        result["first_frame_split"] = breakdown(data)

        os.write(fd, b"\t")
        data, _ = read_until_silent(fd, time.monotonic() + 2, want=None)
        result["focus_move_bytes"] = len(data)
        result["focus_move_split"] = breakdown(data)
        os.write(fd, b"\t")
        data, _ = read_until_silent(fd, time.monotonic() + 2, want=None)
        result["focus_back_bytes"] = len(data)

        os.write(fd, b"2")
        data, _ = read_until_silent(fd, time.monotonic() + 2, want=b"Communication Key")
        result["tab_switch_bytes"] = len(data)
        result["tab_switch_split"] = breakdown(data)

        os.write(fd, b"\x0c")  # Ctrl-L
        data, _ = read_until_silent(fd, time.monotonic() + 2, want=None)
        result["ctrl_l_bytes"] = len(data)

        if idle_seconds:
            before = proc_cpu_ticks(pid)
            data = read_for(fd, idle_seconds)
            after = proc_cpu_ticks(pid)
            result["idle_cpu_ms"] = (after - before) * 1000 / CLK_TCK
            result["idle_bytes"] = len(data)
            result["rss_kib"] = proc_status(pid, "VmRSS")
            result["rss_peak_kib"] = proc_status(pid, "VmHWM")
            result["threads"] = proc_status(pid, "Threads")

        result["exit"] = quit_and_reap(pid, fd)
        pid = None
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
        shutil.rmtree(home_root, ignore_errors=True)
    return result


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    idle = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "keyturn"], cwd=ROOT, check=True)
    one_run(0)  # warm-up: page cache, dynamic loader
    results = [one_run(idle) for _ in range(runs)]
    root, home = rotation_home()
    try:
        moves = [button_focus_move(home) for _ in range(runs)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    follows = follow(runs)
    median = lambda key: statistics.median(r[key] for r in results)
    out = {
        "runs": runs,
        "size": f"{COLS}x{ROWS}",
        "first_frame_ms": round(median("first_frame_ms"), 2),
        "first_frame_ms_min_max": [round(min(r["first_frame_ms"] for r in results), 2),
                                   round(max(r["first_frame_ms"] for r in results), 2)],
        "first_frame_bytes": median("first_frame_bytes"),
        "focus_move_bytes": median("focus_move_bytes"),
        "focus_back_bytes": median("focus_back_bytes"),
        "button_focus_move_bytes": statistics.median(len(m) for m in moves),
        "tab_switch_bytes": median("tab_switch_bytes"),
        "ctrl_l_bytes": median("ctrl_l_bytes"),
        "follow_ms": round(statistics.median(f[0] for f in follows), 2) if follows else None,
        "follow_from_start_ms": round(statistics.median(f[1] for f in follows), 2) if follows else None,
        "follow_redrawn": f"{len(follows)}/{runs}",
        "idle_seconds": idle,
        "idle_cpu_ms": median("idle_cpu_ms"),
        "idle_bytes": median("idle_bytes"),
        "rss_kib": median("rss_kib"),
        "rss_peak_kib": median("rss_peak_kib"),
        "threads": median("threads"),
        "exit_codes": sorted({r.get("exit") for r in results}, key=str),
        "first_frame_split": results[len(results) // 2]["first_frame_split"],
        "focus_move_split": results[len(results) // 2]["focus_move_split"],
        "button_focus_move_split": breakdown(moves[len(moves) // 2]),
        "tab_switch_split": results[len(results) // 2]["tab_switch_split"],
    }
    out["targets_met"] = {
        "first_frame_under_15_ms": out["first_frame_ms"] < 15,
        "first_frame_under_4500_bytes": out["first_frame_bytes"] < 4500,
        "focus_move_at_most_120_bytes": out["focus_move_bytes"] <= 120,
        "zero_idle_cpu": out["idle_cpu_ms"] == 0,
        "rss_under_10_mib": out["rss_kib"] < 10 * 1024,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
