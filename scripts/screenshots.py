#!/usr/bin/env python3
"""Drives the real keyturn binary in tmux (`keyturn demo`, 80x24) through
each tab and the main states, captures every screen with
`tmux capture-pane -e -p` (text with its SGR colours and attributes) and
renders it to a PNG with DejaVu Sans Mono. Run through
scripts/screenshots.sh, which builds keyturn and provides Pillow.

Usage: screenshots.py KEYTURN_BINARY OUT_DIR
"""

import os
import re
import subprocess
import sys
import tempfile
import time

from PIL import Image, ImageDraw, ImageFont

COLS, ROWS = 80, 24
FONT_SIZE = 15
FONT_DIRS = ["/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF"]
PAD = 10
TITLE_BAR = 26
TIMEOUT = 30.0

# A dark terminal theme (Tango-like palette, as GNOME Terminal's default).
BACKGROUND = (30, 30, 30)
FOREGROUND = (211, 215, 207)
PALETTE = [
    (46, 52, 54), (204, 0, 0), (78, 154, 6), (196, 160, 0),
    (52, 101, 164), (117, 80, 123), (6, 152, 154), (211, 215, 207),
    (112, 116, 112), (239, 41, 41), (138, 226, 52), (252, 233, 79),
    (114, 159, 207), (173, 127, 168), (52, 226, 226), (238, 238, 236),
]


def xterm_256(n):
    if n < 16:
        return PALETTE[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    level = 8 + (n - 232) * 10
    return (level, level, level)


class Cell:
    __slots__ = ("ch", "fg", "bg", "bold", "dim", "italic", "underline", "reverse")


SGR = re.compile(r"\x1b\[([0-9;:]*)m")
OTHER_ESCAPE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|.)")


def parse(captured, cols, rows):
    """The screen: rows x cols cells from capture-pane -e output."""
    state = {"fg": None, "bg": None, "bold": False, "dim": False, "italic": False, "underline": False,
             "reverse": False}

    # SGR codes that set or clear text attributes.
    ATTRIBUTES = {
        1: {"bold": True}, 2: {"dim": True}, 3: {"italic": True}, 4: {"underline": True}, 7: {"reverse": True},
        22: {"bold": False, "dim": False}, 23: {"italic": False}, 24: {"underline": False}, 27: {"reverse": False},
    }

    def apply(params):
        codes = [int(p) if p else 0 for p in re.split("[;:]", params)] if params else [0]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                state.update(fg=None, bg=None, bold=False, dim=False, italic=False, underline=False, reverse=False)
            elif c in ATTRIBUTES:
                state.update(ATTRIBUTES[c])
            elif 30 <= c <= 37:
                state["fg"] = PALETTE[c - 30]
            elif 90 <= c <= 97:
                state["fg"] = PALETTE[c - 90 + 8]
            elif 40 <= c <= 47:
                state["bg"] = PALETTE[c - 40]
            elif 100 <= c <= 107:
                state["bg"] = PALETTE[c - 100 + 8]
            elif c == 39:
                state["fg"] = None
            elif c == 49:
                state["bg"] = None
            elif c in (38, 48) and i + 1 < len(codes):
                key = "fg" if c == 38 else "bg"
                if codes[i + 1] == 5 and i + 2 < len(codes):
                    state[key] = xterm_256(codes[i + 2])
                    i += 2
                elif codes[i + 1] == 2 and i + 4 < len(codes):
                    state[key] = tuple(codes[i + 2:i + 5])
                    i += 4
            i += 1

    screen = []
    for line in captured.split("\n")[:rows]:
        row = []
        pos = 0
        while pos < len(line):
            if line[pos] == "\x1b":
                m = SGR.match(line, pos)
                if m:
                    apply(m.group(1))
                    pos = m.end()
                    continue
                m = OTHER_ESCAPE.match(line, pos)
                pos = m.end() if m else pos + 1
                continue
            cell = Cell()
            cell.ch = line[pos]
            for k, v in state.items():
                setattr(cell, k, v)
            row.append(cell)
            pos += 1
        screen.append(row[:cols])
    while len(screen) < rows:
        screen.append([])
    # Pad every row with blank cells in the current (default) style.
    for row in screen:
        while len(row) < cols:
            cell = Cell()
            cell.ch = " "
            cell.fg = cell.bg = None
            cell.bold = cell.dim = cell.italic = cell.underline = cell.reverse = False
            row.append(cell)
    return screen


def find_font(name):
    for d in FONT_DIRS:
        path = os.path.join(d, name)
        if os.path.exists(path):
            return path
    sys.exit(f"screenshots: {name} not found (Debian: apt-get install fonts-dejavu-core)")


class Renderer:
    def __init__(self):
        self.regular = ImageFont.truetype(find_font("DejaVuSansMono.ttf"), FONT_SIZE)
        self.bold = ImageFont.truetype(find_font("DejaVuSansMono-Bold.ttf"), FONT_SIZE)
        self.title_font = ImageFont.truetype(find_font("DejaVuSans.ttf"), 13)
        self.cw = round(self.regular.getlength("M"))
        ascent, descent = self.regular.getmetrics()
        self.ch = ascent + descent + 1
        self.ascent = ascent

    def box(self, draw, ch, x, y, color):
        """Box-drawing characters as lines that join across cells."""
        lines = {
            "─": "lr", "│": "ud", "┌": "rd", "┐": "ld", "└": "ru", "┘": "lu",
            "├": "udr", "┤": "udl", "┬": "lrd", "┴": "lru", "┼": "lrud",
        }.get(ch)
        if lines is None:
            return False
        cx, cy = x + self.cw // 2, y + self.ch // 2
        if "l" in lines:
            draw.line([(x, cy), (cx, cy)], fill=color)
        if "r" in lines:
            draw.line([(cx, cy), (x + self.cw - 1, cy)], fill=color)
        if "u" in lines:
            draw.line([(cx, y), (cx, cy)], fill=color)
        if "d" in lines:
            draw.line([(cx, cy), (cx, y + self.ch - 1)], fill=color)
        return True

    def render(self, screen, cursor, title, path):
        cols, rows = len(screen[0]), len(screen)
        width = cols * self.cw + 2 * PAD
        height = rows * self.ch + 2 * PAD + TITLE_BAR
        img = Image.new("RGB", (width, height), BACKGROUND)
        draw = ImageDraw.Draw(img)
        # A title bar, as a terminal window has.
        draw.rectangle([0, 0, width, TITLE_BAR - 1], fill=(48, 48, 48))
        for i, colour in enumerate([(237, 106, 94), (245, 191, 79), (98, 197, 84)]):
            cx = 14 + i * 18
            draw.ellipse([cx - 6, TITLE_BAR // 2 - 6, cx + 6, TITLE_BAR // 2 + 6], fill=colour)
        tw = draw.textlength(title, font=self.title_font)
        draw.text(((width - tw) / 2, 6), title, fill=(200, 200, 200), font=self.title_font)
        top = TITLE_BAR + PAD
        for r, row in enumerate(screen):
            for c, cell in enumerate(row):
                x, y = PAD + c * self.cw, top + r * self.ch
                fg = cell.fg or FOREGROUND
                bg = cell.bg or BACKGROUND
                if cell.bold and cell.fg in PALETTE[:8]:
                    fg = PALETTE[PALETTE.index(cell.fg) + 8]  # bold brightens, as in most terminals
                if cell.reverse:
                    fg, bg = bg, fg
                if cursor == (c, r):
                    fg, bg = BACKGROUND, FOREGROUND
                if cell.dim:
                    fg = tuple((a + b) // 2 for a, b in zip(fg, bg))
                if bg != BACKGROUND:
                    draw.rectangle([x, y, x + self.cw - 1, y + self.ch - 1], fill=bg)
                if cell.ch != " " and not self.box(draw, cell.ch, x, y, fg):
                    font = self.bold if cell.bold else self.regular
                    draw.text((x, y + self.ascent), cell.ch, fill=fg, font=font, anchor="ls")
                if cell.underline:
                    draw.line([(x, y + self.ch - 2), (x + self.cw - 1, y + self.ch - 2)], fill=fg)
        # Few colours: a small PNG.
        img.quantize(colors=48, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            path, optimize=True)


class Tmux:
    servers = 0

    def __init__(self, binary, args, cols=COLS, rows=ROWS):
        Tmux.servers += 1
        self.socket = f"kt-shots-{os.getpid()}-{Tmux.servers}"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("KEYTURN_", "TMUX")) and k != "NO_COLOR"}
        self.env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8", TERM="xterm-256color", SHELL="/bin/sh")
        self.tmp = tempfile.mkdtemp(prefix="kt-shots-")
        command = " ".join("'" + a.replace("'", "'\\''") + "'" for a in [binary, *args])
        done = os.path.join(self.tmp, "done")
        self.done = done
        self.run("new-session", "-d", "-s", "kt", "-x", str(cols), "-y", str(rows),
                 f"{command}; echo $? > '{done}'; exec sleep 100000")
        self.socket_path = self.run("display-message", "-p", "#{socket_path}").strip()

    def run(self, *args):
        out = subprocess.run(["tmux", "-u", "-f", "/dev/null", "-L", self.socket, *args], env=self.env,
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"tmux {args}: {out.stderr}")
        return out.stdout

    def keys(self, *keys):
        self.run("send-keys", "-t", "kt", *keys)

    def text(self):
        return self.run("capture-pane", "-p", "-t", "kt")

    def wait(self, what, pred=None):
        pred = pred or (lambda s: what in s)
        start = time.monotonic()
        last = None
        while True:
            screen = self.text()
            if pred(screen) and screen == last:  # the same twice: no frame half written
                time.sleep(0.1)
                return screen
            last = screen
            if time.monotonic() - start > TIMEOUT:
                raise RuntimeError(f"timed out waiting for {what!r}:\n{screen}")
            time.sleep(0.05)

    def focus(self, label):
        """Tab until the button `label` is focused."""
        for _ in range(12):
            if f"[>{label}<]" in self.text():
                return
            self.keys("Tab")
            time.sleep(0.1)
        raise RuntimeError(f"cannot focus {label}")

    def shot(self, renderer, name, out_dir, title="keyturn demo"):
        captured = self.run("capture-pane", "-e", "-p", "-t", "kt")
        info = self.run("display-message", "-p", "-t", "kt",
                        "#{cursor_flag} #{cursor_x} #{cursor_y} #{pane_width} #{pane_height}").split()
        flag, cx, cy, w, h = (int(v) for v in info)
        screen = parse(captured, w, h)
        path = os.path.join(out_dir, name + ".png")
        renderer.render(screen, (cx, cy) if flag else None, f"{title} — {w}x{h}", path)
        print(f"{path}: {os.path.getsize(path) // 1024} KB")

    def quit(self):
        """Ctrl-C (quits from any state), then wait for the demo to remove its
        home and stop its services before the server goes."""
        self.keys("C-c")
        start = time.monotonic()
        while not os.path.exists(self.done) and time.monotonic() - start < TIMEOUT:
            time.sleep(0.05)
        self.run("kill-server")
        if os.path.exists(self.socket_path):  # tmux leaves its socket file
            os.remove(self.socket_path)


def main():
    binary, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    renderer = Renderer()
    hints = "q quit"

    t = Tmux(binary, ["demo"])
    try:
        t.wait("the first frame", lambda s: hints in s and "Default Key Loaded" in s)
        t.shot(renderer, "01-encryption-default-key", out_dir)
        t.keys("?")
        t.wait("Keys", lambda s: "Enter               press" in s)
        t.shot(renderer, "02-help", out_dir)
        t.keys("Escape")
        t.wait("help closed", lambda s: "Enter               press" not in s)
        t.keys("2")
        t.wait("Communication", lambda s: "Communication Key " in s and "(!) About" in s)
        t.shot(renderer, "03-communication", out_dir)
        t.keys("4")
        t.wait("Machines", lambda s: "exec-02" in s)
        t.shot(renderer, "04-machines", out_dir)
        t.keys("1")
        t.wait("Encryption", lambda s: "Encryption Key " in s)
        t.keys("Enter")
        t.wait("generated", lambda s: "Key generated successfully" in s)
        t.shot(renderer, "05-generated-key", out_dir)
        t.keys("Enter")
        t.wait("confirmation", lambda s: "Import the key?" in s)
        t.shot(renderer, "06-import-confirmation", out_dir)
        t.keys("Enter")
        t.wait("the rotation stops at a step", lambda s: "needs you" in s)
        t.shot(renderer, "07-rotation-under-way", out_dir)
        t.focus("Enter credential")
        t.keys("Enter")
        t.wait("credential form", lambda s: "Re-enter the credential" in s)
        t.keys("-l", "qa-bot")
        t.wait("user typed", lambda s: "qa-bot" in s)
        t.keys("Tab")
        time.sleep(0.2)
        t.keys("-l", "correct horse")
        t.wait("masked", lambda s: "********_" in s)
        t.shot(renderer, "08-credential-masked", out_dir)
        t.keys("Escape")
        t.wait("form closed", lambda s: "Re-enter the credential" not in s)
        t.keys("1")
        t.wait("custom key", lambda s: "Custom Key Loaded" in s)
        t.focus("Show")
        t.keys("Enter")
        t.wait("shown", lambda s: "Show key" in s)
        t.shot(renderer, "09-show-key", out_dir)
        t.keys("Escape")
        t.wait("hidden", lambda s: "Show key" not in s)
        t.run("resize-window", "-t", "kt", "-x", "64", "-y", "12")
        t.wait("too small", lambda s: "needs a terminal" in s)
        t.shot(renderer, "10-too-small", out_dir)
        t.run("resize-window", "-t", "kt", "-x", str(COLS), "-y", str(ROWS))
        t.wait("full again", lambda s: hints in s)
    finally:
        t.quit()

    t = Tmux(binary, ["--ascii", "demo"])
    try:
        t.wait("the first frame", lambda s: hints in s)
        t.keys("Enter")
        t.wait("generated", lambda s: "Key generated successfully" in s)
        t.keys("Enter")
        t.wait("confirmation", lambda s: "Import the key?" in s)
        t.shot(renderer, "11-ascii-import-confirmation", out_dir, title="keyturn --ascii demo")
        t.keys("Escape")
    finally:
        t.quit()


if __name__ == "__main__":
    main()
