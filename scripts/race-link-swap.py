#!/usr/bin/env python3
"""Issue 11, defect 3, against any keyturn binary: while `keyturn upgrade`
runs, project files are swapped again and again for a link to a file outside
the project. Counts the rounds in which the outside file's content ended up
in the project (it must be 0) and whether the outside file changed.

    python3 scripts/race-link-swap.py [--bin target/release/keyturn] [--rounds 30]
"""

import argparse
import os
import subprocess
import tempfile
import threading


def keyturn(binary, home, *args, stdin=b""):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    return subprocess.run([binary, "--home", home, *args], input=stdin, capture_output=True, env=env)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/release/keyturn")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    pulled_rounds = 0
    outside_changed = 0
    swaps = 0
    with tempfile.TemporaryDirectory() as root:
        home, project, stash = (os.path.join(root, d) for d in ("home", "project", "stash"))
        os.makedirs(project)
        os.makedirs(stash)
        key = keyturn(binary, home, "generate", "encryption").stdout
        keyturn(binary, home, "import", "encryption", stdin=key)
        token = lambda value: keyturn(binary, home, "encrypt", stdin=value.encode() + b"\n").stdout.decode().strip()
        outside = os.path.join(root, "outside.xml")
        outside_bytes = f'OUTSIDE-MARKER <v="{token("outside secret")}"/>\n'.encode()
        with open(outside, "wb") as f:
            f.write(outside_bytes)
        names = [f"f{i}.xml" for i in range(6)]
        for round_ in range(args.rounds):
            for name in names:
                with open(os.path.join(project, name), "w") as f:
                    # Many tokens: the upgrade spends a while on each file.
                    f.write("".join(f'<v n="{i}" t="{token(name)}"/>\n' for i in range(3)))
            key = keyturn(binary, home, "generate", "encryption").stdout
            keyturn(binary, home, "import", "encryption", stdin=key)
            stop = threading.Event()

            def swapper():
                nonlocal swaps
                n = 0
                link = os.path.join(root, "link.tmp")
                while not stop.is_set():
                    name = names[n % len(names)]
                    real, kept = os.path.join(project, name), os.path.join(stash, name)
                    try:
                        os.rename(real, kept)
                    except FileNotFoundError:
                        continue
                    if os.path.lexists(link):
                        os.remove(link)
                    os.symlink(outside, link)
                    os.rename(link, real)
                    stop.wait(0.0003)
                    os.rename(kept, real)
                    n += 1
                swaps += n

            thread = threading.Thread(target=swapper)
            thread.start()
            for _ in range(3):
                keyturn(binary, home, "upgrade", project)
            stop.set()
            thread.join()
            pulled = False
            for name in names:
                with open(os.path.join(project, name), "rb") as f:
                    if b"OUTSIDE-MARKER" in f.read():
                        pulled = True
            pulled_rounds += pulled
            with open(outside, "rb") as f:
                if f.read() != outside_bytes:
                    outside_changed += 1
                    with open(outside, "wb") as g:
                        g.write(outside_bytes)
    print(
        f'{{"binary": "{binary}", "rounds": {args.rounds}, "swaps": {swaps}, '
        f'"rounds_with_outside_content_pulled_in": {pulled_rounds}, "rounds_outside_file_changed": {outside_changed}}}'
    )


if __name__ == "__main__":
    main()
