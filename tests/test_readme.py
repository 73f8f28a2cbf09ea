"""Every transcript in README.md runs as written.

A ```` ```console ```` block is a transcript: each ``$ `` line is a command, the lines after it
(up to the next command) are what it prints, stdout and stderr together as a terminal shows
them. The block runs in one shell (``bash``) in a fresh temporary directory, ``letterlock`` and
``python`` on PATH, no ``LETTERLOCK_*`` variables and HOME in that directory. A command must
print exactly its lines and exit 0 (a transcript shows a failure as ``...; echo "exit status
$?"``). Fingerprints, message ids, key ids and times vary from run to run: they match a
pattern, and the same value in the README must be the same value in the run (alice's
fingerprint in ``id new`` is alice's fingerprint in ``inspect``).

A ```` ```python NAME ```` block is written to the file NAME before the transcripts run (the
README's library example is ``example.py``). A ```` ```console not-run ```` block is skipped:
only the set-up block, whose ``python3 tasks.py test`` would run this test suite again. A
```` ```console needs=rabbitmq ```` block talks to a server on this machine: it asks for it as
every broker test does (:func:`services.require`: it fails in CI when the server is down, and
is skipped elsewhere with the command that starts it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services import SERVICES, require

README = Path(__file__).resolve().parent.parent / "README.md"
VARIABLE = re.compile(
    r"SHA256:[A-Za-z0-9+/]{43}"  # fingerprints
    r"|(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])"  # message ids, recipient key ids
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"  # times
)
MARK = "\x01letterlock-readme "  # printed by the script between commands
_MARK = "\\001letterlock-readme "  # the same, as printf writes it


@dataclass(slots=True)
class Command:
    line: int
    command: str
    expected: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Transcript:
    line: int
    commands: list[Command] = field(default_factory=list)
    needs: tuple[str, ...] = ()  #: servers of tests/services.py it talks to


def parse(text: str) -> tuple[list[Transcript], dict[str, str]]:
    """The README's transcripts and its named files."""
    transcripts: list[Transcript] = []
    files: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = lines[index].strip()
        index += 1
        if not opening.startswith("```") or opening == "```":
            continue
        info = opening[3:].split()
        body = []
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index])
            index += 1
        start, index = index - len(body), index + 1
        if info[0] == "python" and len(info) == 2:
            files[info[1]] = "\n".join(body) + "\n"
        elif info[0] == "console" and all(word.startswith("needs=") for word in info[1:]):
            transcript = _transcript(start, body)
            transcript.needs = tuple(word.removeprefix("needs=") for word in info[1:])
            assert all(need in SERVICES for need in transcript.needs), opening
            transcripts.append(transcript)
    return transcripts, files


def _transcript(start: int, body: list[str]) -> Transcript:
    transcript = Transcript(line=start)
    for offset, line in enumerate(body):
        if line.startswith("$ "):
            transcript.commands.append(Command(line=start + offset + 1, command=line[2:]))
        else:
            assert transcript.commands, f"README.md:{start}: output before any command"
            transcript.commands[-1].expected.append(line)
    return transcript


TRANSCRIPTS, FILES = parse(README.read_text(encoding="utf-8"))


def run(transcript: Transcript, directory: Path) -> list[tuple[list[str], int]]:
    """Each command's output lines and exit status, from one shell running them in turn."""
    for name, content in FILES.items():
        (directory / name).write_text(content, encoding="utf-8")
    script = ["exec 2>&1"]
    for number, command in enumerate(transcript.commands):
        script += [
            f"printf '{_MARK}{number}\\n'",
            command.command,
            f"printf '\\n{_MARK}status %d\\n' $?",
        ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETTERLOCK_")}
    env.update(HOME=str(directory), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    env.pop("NO_COLOR", None)
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", "\n".join(script)],
        cwd=directory, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=300,
        start_new_session=True, check=False,
    )  # fmt: skip
    parts = done.stdout.decode("utf-8", "replace").split(MARK)[1:]
    results = []
    for output, status in zip(parts[0::2], parts[1::2], strict=True):
        text = output.split("\n", 1)[1]  # after the command's number
        text = text.removesuffix("\n").removesuffix("\n")  # the script's, then the command's
        results.append((text.split("\n") if text else [], int(status.split()[1])))
    return results


class Bindings:
    """The README's variable values and the run's, one to one."""

    def __init__(self) -> None:
        self.actual: dict[str, str] = {}

    def pattern(self, expected: str) -> re.Pattern[str]:
        parts, position = [], 0
        for match in VARIABLE.finditer(expected):
            parts.append(re.escape(expected[position : match.start()]))
            value = match.group()
            bound = self.actual.get(value)
            parts.append(re.escape(bound) if bound is not None else f"({VARIABLE.pattern})")
            position = match.end()
        parts.append(re.escape(expected[position:]))
        return re.compile("".join(parts))

    def match(self, expected: str, actual: str) -> bool:
        found = self.pattern(expected).fullmatch(actual)
        if found is None:
            return False
        unbound = [m.group() for m in VARIABLE.finditer(expected) if m.group() not in self.actual]
        for value, got in zip(dict.fromkeys(unbound), found.groups(), strict=False):
            if got in self.actual.values():
                return False  # two README values for one run value
            self.actual[value] = got
        return True


@pytest.mark.parametrize("transcript", TRANSCRIPTS, ids=lambda t: f"README.md:{t.line}")
def test_the_readme_transcript_runs_as_written(transcript: Transcript, tmp_path: Path) -> None:
    for need in transcript.needs:
        require(need)
    results = run(transcript, tmp_path)
    assert len(results) == len(transcript.commands), results
    bindings = Bindings()
    for command, (lines, status) in zip(transcript.commands, results, strict=True):
        where = f"README.md:{command.line}: $ {command.command}"
        shown = "\n".join(lines)
        assert status == 0, f"{where}\nexit status {status}, output:\n{shown}"
        assert len(lines) == len(command.expected), f"{where}\nprinted:\n{shown}"
        for expected, actual in zip(command.expected, lines, strict=True):
            assert bindings.match(expected, actual), (
                f"{where}\nexpected: {expected}\nprinted:  {actual}\nall output:\n{shown}"
            )


def test_the_readme_has_transcripts_and_they_cover_the_cli() -> None:
    commands = [c.command for t in TRANSCRIPTS for c in t.commands]
    assert "python example.py" in commands
    for step in ("id new", "trust pin", "seal", "inspect", "open"):
        assert any(f" {step} " in command for command in commands), step


def test_a_different_output_fails_the_comparison() -> None:
    bindings = Bindings()
    fingerprint = "SHA256:" + "A" * 43
    assert bindings.match(f"pinned {fingerprint}", "pinned SHA256:" + "B" * 43)
    assert not bindings.match(f"again {fingerprint}", "again SHA256:" + "C" * 43)
    assert not bindings.match("exit status 1", "exit status 2")
    assert not bindings.match("ciphertext: 58 bytes", "ciphertext: 59 bytes")


def test_the_demo_ends_with_three_cli_lines_that_work(tmp_path: Path) -> None:
    """The demo's last lines are commands to try next; typed as shown, they work."""
    import io

    from rich.console import Console

    from letterlock.cli import demo

    out = io.StringIO()
    assert demo.run(Console(file=out, width=100)) == 0
    *_, heading, first, second, third = out.getvalue().rstrip("\n").split("\n")
    assert "activate" in heading
    commands = [line.strip() for line in (first, second, third)]
    assert all(command.startswith(("letterlock ", "echo ")) for command in commands), commands
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETTERLOCK_")}
    env.update(
        HOME=str(tmp_path),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        LETTERLOCK_PASSPHRASE="typed at the prompt",
    )
    done = subprocess.run(
        ["bash", "-e", "-c", "\n".join(commands)], cwd=tmp_path, env=env, capture_output=True,
        timeout=120, start_new_session=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert "letterlock: verified" in done.stderr.decode()
    assert done.stdout.decode().endswith("hello\n")
    assert max(len(line) for line in (heading, first, second, third)) <= 80  # no wrapping
