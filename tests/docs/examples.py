#!/usr/bin/env python3
"""Runs the shell examples of the documentation against a real scimgate binary.

Usage: examples.py PATH_TO_SCIMGATE_BINARY

What is read: README.md, docs/*.md, docs/idp/*.md, plugins/README.md and plugins/examples*/*/README.md.
In each, every fenced block whose info string starts with `sh`, `bash`, `shell` or `console`
is run, and every `toml` block is checked as a scimgate configuration file. A block that
cannot run here carries, on the last non-blank line before its opening fence, the comment

    <!-- docs-test: skip: REASON -->

and is reported as skipped with its reason. Any other block that fails fails the run, and
the report names its file and line.

How a file runs: its runnable blocks run in order in ONE bash session (`set -euo
pipefail`), so a walk-through may set a variable in one block and use it in the next. The
session works in a fresh temporary folder that stands for the repository's root: `plugins/`,
`tests/` and `docs/` are symbolic links to the repository's (so `plugins/dist/…` resolves;
`bench/`, `scripts/` and the sources are left out, so that an unmarked block calling a
benchmark or cargo fails at once instead of building), `target/release/scimgate` and
`scimgate` on the `PATH` are the binary under test, and no `SCIMGATE_*` variable of the
caller's environment is passed on. The data folder starts empty (`./scimgate-data`).

The server: each file gets a free port. `127.0.0.1:8080` and `localhost:8080` in its blocks
are rewritten to it, and `SCIMGATE_LISTEN` points there, so a block that starts
`scimgate serve` itself (a walk-through) listens on it. When none of a file's runnable
blocks starts a server, the harness starts one in the file's folder before the first
block, as the examples assume a running server; it is stopped, with everything the
session left running in the background, when the file is done. `cargo run --release
--locked [-q] --` is rewritten to `scimgate`.

`sh`, `bash`, `shell` blocks: run as written; the block passes when the session gets past
it (exit status 0 of every command, under `set -e` and `pipefail`). Write curl examples
with `--fail-with-body` (or `-f`), so that an HTTP error fails them.

`console` blocks: a line starting with `$ ` is a command; a command whose line ends with
`\\`, `|`, `&&` or `||`, or whose quotes or here-document are still open, goes on over
the next lines (a leading `> ` there is dropped). The lines up to the next `$ ` are the
expected output (standard output and standard error together, as a terminal shows them):
when there are any, the command's output must match them line for line, `…` matching any
text within a line. A command without expected lines must only succeed. Use `console` where
the point of an example is what it prints, such as an HTTP status (`-w '%{http_code}'`).

`toml` blocks: written to a file and read by `scimgate token list --config FILE` on a
data folder the harness prepared, which loads the whole configuration as the server does
(unknown keys, wrong types and misplaced tables fail) without starting a server.

Every file must finish within FILE_TIMEOUT seconds; the whole run takes a few seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FILE_TIMEOUT = 40
RUN_TAGS = {"sh", "bash", "shell", "console"}
# What the blocks may read of the repository (see the top of this file).
SHARED = ("plugins", "tests", "docs")
SKIP_MARK = re.compile(r"^\s*<!--\s*docs-test:\s*skip:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,})\s*([^`\s]*)[^`]*$")
PORT_REF = re.compile(r"\b(?:127\.0\.0\.1|localhost):8080\b")
CARGO_RUN = re.compile(r"cargo run --release --locked (?:-q )?--(?= )")
STARTS_SERVER = re.compile(r"(?:^|[\s;&|(])(?:\S*/)?scimgate\s+serve\b", re.M)


@dataclass
class Command:
    text: str
    expected: list[str]
    offset: int  # line of the command in its block's body, 0-based


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    tag: str
    body: str
    skip: str | None = None
    commands: list[Command] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def documents() -> list[Path]:
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "docs/idp").glob("*.md")), REPO / "plugins/README.md"]
    files += sorted((REPO / "plugins").glob("examples*/*/README.md"))
    return [f for f in files if f.is_file()]


def blocks_of(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, tag = len(m.group(1)), m.group(2), m.group(3).lower()
        close = re.compile(rf"^\s*`{{{len(ticks)},}}\s*$")
        body = []
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            line = lines[j]
            body.append(line[indent:] if not line[:indent].strip() else line.lstrip())
            j += 1
        before = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        mark = SKIP_MARK.match(before)
        found.append(Block(path, i + 1, tag, "\n".join(body) + "\n", mark.group(1) if mark else None))
        i = j + 1
    return found


def incomplete(command: str) -> bool:
    """Whether a console command goes on over the next line."""
    stripped = command.rstrip()
    if stripped.endswith(("\\", "|", "&&", "||")):
        return True
    check = subprocess.run(["bash", "-n"], input=command, capture_output=True, text=True)
    return any(m in check.stderr for m in ("unexpected end of file", "unexpected EOF", "here-document"))


def parse_console(block: Block) -> None:
    current: Command | None = None
    open_command = False
    for n, line in enumerate(block.body.splitlines()):
        if open_command and current is not None:
            current.text += "\n" + (line[2:] if line.startswith("> ") else line)
        elif line.startswith("$ "):
            current = Command(line[2:], [], n)
            block.commands.append(current)
        elif current is None:
            if line.strip():
                raise ValueError(f"{block.where}: console output before the first '$ ' command")
            continue
        else:
            current.expected.append(line)
            continue
        open_command = incomplete(current.text)
    for command in block.commands:
        while command.expected and not command.expected[-1].strip():
            command.expected.pop()


def matches(expected: list[str], actual: str) -> bool:
    want = "\n".join(re.escape(line.rstrip()).replace("…", ".*") for line in expected)
    got = "\n".join(line.rstrip() for line in actual.rstrip().splitlines())
    return re.fullmatch(want, got) is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.time() + 15
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{tail(log)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the server did not answer /healthz within 15 s:\n{tail(log)}")


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return "(no output)"
    return "\n".join("    " + line for line in text[-lines:]) or "    (no output)"


def stop(proc: subprocess.Popen) -> None:
    """Ends `proc` and whatever it left running in the background: the process group this
    script gave it (`start_new_session`), by its id, and nothing else."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.time() + 5
        while time.time() < deadline:
            proc.poll()
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                proc.wait()
                return
            time.sleep(0.05)
    proc.wait()


def workspace(root: Path, binary: Path) -> Path:
    """A folder that looks like the repository's root, with the binary under test."""
    root.mkdir()
    for name in SHARED:
        (root / name).symlink_to(REPO / name)
    (root / "target/release").mkdir(parents=True)
    (root / "target/release/scimgate").symlink_to(binary)
    (root / ".bin").mkdir()
    (root / ".bin/scimgate").symlink_to(binary)
    (root / ".home").mkdir()
    return root


def environment(root: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIMGATE_")}
    env["PATH"] = f"{root / '.bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["HOME"] = str(root / ".home")
    env["SCIMGATE_LISTEN"] = f"127.0.0.1:{port}"
    env.pop("CURL_HOME", None)
    return env


def rewrite(text: str, port: int) -> str:
    return PORT_REF.sub(f"127.0.0.1:{port}", CARGO_RUN.sub("scimgate", text))


def script_for(blocks: list[Block], port: int, root: Path) -> tuple[str, list[tuple[int, int]]]:
    """The session's bash script, and which of its lines (1-based) start which line of the
    Markdown, to name the line of a failing command."""
    lines = [
        "set -eEuo pipefail",
        f"__progress={sh_quote(str(root / '.progress'))} __failed={sh_quote(str(root / '.failed'))}",
        """__at() { printf '%s\\n' "$1" > "$__progress"; }""",
        # The last failing command (set -E: also one inside a function or a $(…)).
        """trap 'printf "%s\\t%s\\n" "$LINENO" "$BASH_COMMAND" > "$__failed"' ERR""",
    ]
    starts: list[tuple[int, int]] = []

    def add(text: str, doc_line: int | None = None) -> None:
        if doc_line is not None:
            starts.append((len(lines) + 1, doc_line))
        lines.extend(text.split("\n"))

    for b, block in enumerate(blocks):
        add(f"__at {b}")
        if block.tag == "console":
            for c, command in enumerate(block.commands):
                add(f"__at {b}.{c}")
                out = sh_quote(str(root / ".outputs" / f"{b}.{c}"))
                add(f"{{ {rewrite(command.text, port)}\n}} >{out} 2>&1",
                    block.line + 1 + command.offset)
        else:
            add(rewrite(block.body, port).rstrip("\n"), block.line + 1)
    add("__at done")
    return "\n".join(lines) + "\n", starts


def doc_line(starts: list[tuple[int, int]], script_line: int) -> int | None:
    before = [(s, d) for s, d in starts if s <= script_line]
    if not before:
        return None
    s, d = before[-1]
    return d + script_line - s


def sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


class Run:
    def __init__(self, binary: Path, tmp: Path):
        self.binary = binary
        self.tmp = tmp
        self.failures: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self.passed = 0
        self.config_data: Path | None = None

    def fail(self, where: str, why: str) -> None:
        self.failures.append(where)
        print(f"FAIL {where}: {why}")

    def run_file(self, path: Path, blocks: list[Block]) -> None:
        runnable = [b for b in blocks if b.tag in RUN_TAGS and b.skip is None]
        if not runnable:
            return
        name = re.sub(r"[^A-Za-z0-9]+", "-", str(path.relative_to(REPO)))
        root = workspace(self.tmp / name, self.binary)
        port = free_port()
        env = environment(root, port)
        progress, outputs, log = root / ".progress", root / ".outputs", root / ".session.log"
        outputs.mkdir()
        server = None
        if not any(STARTS_SERVER.search(b.body) for b in runnable):
            server_log = root / ".server.log"
            with server_log.open("wb") as out:
                server = subprocess.Popen(
                    [str(self.binary), "serve"], cwd=root, env=env, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                wait_healthy(port, server, server_log)
            except RuntimeError as e:
                stop(server)
                for b in runnable:
                    self.fail(b.where, f"the harness could not start a server: {e}")
                return
        script = root / ".session.sh"
        text, starts = script_for(runnable, port, root)
        script.write_text(text)
        with log.open("wb") as out:
            session = subprocess.Popen(
                ["bash", str(script)], cwd=root, env=env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                status = session.wait(timeout=FILE_TIMEOUT)
            except subprocess.TimeoutExpired:
                status = None
        stop(session)
        if server is not None:
            stop(server)
        reached = progress.read_text().strip() if progress.exists() else "0"
        failed = root / ".failed"
        where = None
        if failed.exists() and "\t" in failed.read_text():
            number, command = failed.read_text().rstrip("\n").split("\t", 1)
            line = doc_line(starts, int(number)) if number.isdigit() else None
            where = (line, command)
        self.report(runnable, reached, status, log, outputs, where)

    def report(self, runnable: list[Block], reached: str, status: int | None,
               log: Path, outputs: Path, where: tuple[int | None, str] | None) -> None:
        failed_at = None if reached == "done" else reached
        failed_block = int(failed_at.split(".")[0]) if failed_at is not None else len(runnable)
        for b, block in enumerate(runnable):
            if b > failed_block:
                self.fail(block.where, "not run: an earlier block of this file failed")
                continue
            if b == failed_block:
                why = "timed out" if status is None else f"exit status {status}"
                if where is not None and status is not None:
                    line, command = where
                    at = f"{block.path.relative_to(REPO)}:{line}" if line else "?"
                    why += f" at {at}: {command}"
                detail = tail(log)
                if "." in failed_at:
                    c = int(failed_at.split(".")[1])
                    if where is None or status is None:
                        why += f" in command {c + 1}: $ {block.commands[c].text.splitlines()[0]}"
                    detail = tail(outputs / failed_at)
                if "plugins/dist/" in block.body and not list((REPO / "plugins/dist").glob("*.wasm")):
                    why += " (plugins/dist/ is empty: run plugins/build.sh first)"
                self.fail(block.where, f"{why}\n{detail}")
                continue
            bad = [
                (c, command) for c, command in enumerate(block.commands)
                if command.expected and not matches(
                    command.expected,
                    (outputs / f"{b}.{c}").read_text(encoding="utf-8", errors="replace"))
            ]
            if bad:
                c, command = bad[0]
                self.fail(block.where, (
                    f"command {c + 1} printed something else\n    $ {command.text.splitlines()[0]}\n"
                    "  expected:\n" + "\n".join("    " + line for line in command.expected)
                    + "\n  got:\n" + tail(outputs / f"{b}.{c}")))
                continue
            self.passed += 1
            print(f"ok   {block.where} ({block.tag})")

    def prepare_config_data(self) -> Path:
        """A data folder with a database, made by a real first start, for the toml checks."""
        if self.config_data is None:
            root = workspace(self.tmp / "toml", self.binary)
            port = free_port()
            log = root / ".server.log"
            with log.open("wb") as out:
                server = subprocess.Popen(
                    [str(self.binary), "serve"], cwd=root, env=environment(root, port),
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                wait_healthy(port, server, log)
            finally:
                stop(server)
            self.config_data = root / "scimgate-data"
        return self.config_data

    def check_toml(self, block: Block, n: int) -> None:
        data = self.prepare_config_data()
        config = data.parent / f"block-{n}.toml"
        config.write_text(block.body)
        env = environment(data.parent, 0)
        del env["SCIMGATE_LISTEN"]
        result = subprocess.run(
            [str(self.binary), "token", "list", "--config", str(config), "--data", str(data)],
            cwd=data.parent, env=env, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            self.fail(block.where, "not a valid scimgate configuration:\n    "
                      + (result.stderr.strip() or result.stdout.strip()))
        else:
            self.passed += 1
            print(f"ok   {block.where} (toml)")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    binary = Path(sys.argv[1]).resolve()
    if not os.access(binary, os.X_OK):
        print(f"examples.py: {binary} is not an executable", file=sys.stderr)
        return 2
    started = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="scimgate-docs-"))
    run = Run(binary, tmp)
    try:
        toml_count = 0
        for path in documents():
            blocks = blocks_of(path)
            for block in blocks:
                if block.skip is not None and block.tag in RUN_TAGS | {"toml"}:
                    run.skipped.append((block.where, block.skip))
                    print(f"skip {block.where}: {block.skip}")
                elif block.tag == "console":
                    try:
                        parse_console(block)
                    except ValueError as e:
                        run.fail(block.where, str(e))
                        block.skip = "malformed"
            run.run_file(path, [b for b in blocks if b.skip != "malformed"])
            for block in blocks:
                if block.tag == "toml" and block.skip is None:
                    toml_count += 1
                    run.check_toml(block, toml_count)
    finally:
        if run.failures and os.environ.get("DOCS_TEST_KEEP"):
            print(f"(kept {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    took = time.time() - started
    print(f"\n{run.passed} passed, {len(run.skipped)} skipped, {len(run.failures)} failed "
          f"in {took:.1f} s")
    for where, reason in run.skipped:
        print(f"  skipped {where}: {reason}")
    for where in run.failures:
        print(f"  FAILED  {where}")
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
