"""The core's file shared by many resources (nasd.shared_file), on real files with a real checking program and a
real reloading program run through the runner: the one apply per pass, the fallback entry by entry when the check
refuses the file, and what stays in effect when the checker or the reload fails.

The file here is a small one of ``key value`` lines. The checker is a shell script that refuses every line
holding ``bad`` (and, while a flag file ``names`` is beside it, says which lines: else it only says "refused",
as testparm does); the reloader appends the live file to ``loaded`` (what "the daemon" read) and fails while a
flag file ``reload.broken`` is beside it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Hashable, Iterable, Mapping

import pytest

from nasd.config import Config
from nasd.plugin import (CommandError, Context, FileFormat, PermanentError, SharedFile, TemporaryError, Verdict)
from nasd.runner import Runner

CHECKER = r"""#!/bin/sh
md5sum < "$1" >> "$(dirname "$0")/checked"
n=0; refused=0
while IFS= read -r line; do
  n=$((n+1))
  case "$line" in *bad*)
    refused=1
    if [ -e "$(dirname "$0")/names" ]; then echo "$1:$n: refused: $line" >&2; fi;;
  esac
done < "$1"
if [ $refused = 1 ]; then echo "refused" >&2; exit 1; fi
"""
RELOADER = r"""#!/bin/sh
if [ -e "$(dirname "$0")/reload.broken" ]; then echo "cannot reload: broken" >&2; exit 1; fi
cat "$1" >> "$(dirname "$0")/loaded"
echo "--" >> "$(dirname "$0")/loaded"
"""
HEADER = "# written by the test\n"


class Lines(FileFormat[str]):
    """``key value`` per line, keys in order; no file without entries; a value is claimed by one key only."""

    def __init__(self, path: Path, restore: bool = False):
        self.path = path
        self.restore_on_failed_reload = restore

    def parse(self, text: str) -> dict[str, str]:
        return dict(line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))

    def render(self, entries: Mapping[str, str]) -> str | None:
        return HEADER + "".join(f"{k} {v}\n" for k, v in sorted(entries.items())) if entries else None

    def claims(self, entry: str) -> Iterable[Hashable]:
        return (entry,)

    async def check(self, ctx: Context, staged: Path, text: str) -> Verdict:
        result = await ctx.runner.run(["checker", str(staged)], mutating=False, check=False)
        if result.returncode == 127 and "program not found" in result.stderr:
            raise TemporaryError("the checker is not installed", reason="CheckerMissing")
        if result.returncode == 0:
            return Verdict(True)
        lines = text.splitlines()
        named = {lines[int(n) - 1].split(" ", 1)[0] for n in re.findall(r":(\d+): refused", result.stderr)}
        return Verdict(False, reason="Refused", message=f"the checker refused it: {result.stderr.strip()}",
                       blamed=frozenset(named) or None)

    async def reload(self, ctx: Context, entries: Mapping[str, str], verdict: Verdict | None) -> bool:
        try:
            await ctx.runner.run(["reloader", str(self.path)], mutating=True)
        except CommandError as e:
            raise TemporaryError(f"reload failed: {e.stderr.strip()}", reason="ReloadFailed") from None
        return True


class Setup:
    def __init__(self, tmp_path: Path):
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        for name, script in (("checker", CHECKER), ("reloader", RELOADER)):
            (self.bin / name).write_text(script)
            (self.bin / name).chmod(0o755)
        self.path = tmp_path / "etc" / "shared.conf"
        self.path.parent.mkdir()
        self.owed = tmp_path / "state" / "reload-owed"
        self.runner = Runner(programs={"checker": str(self.bin / "checker"), "reloader": str(self.bin / "reloader")})
        self.ctx = Context(config=Config(stateDir=tmp_path / "state"), runner=self.runner)

    def file(self, restore: bool = False) -> SharedFile[str]:
        """What a pass observes: the file as it is now."""
        return SharedFile.read(self.path, Lines(self.path, restore), owed=self.owed)

    def checks(self) -> int:
        return sum(1 for s in self.runner.spawns if s.argv[0].endswith("checker"))

    def reloads(self) -> list[str]:
        """What each reload read, in order."""
        loaded = self.bin / "loaded"
        return loaded.read_text().split("--\n")[:-1] if loaded.exists() else []

    def write(self, **entries: str) -> None:
        self.path.write_text(HEADER + "".join(f"{k} {v}\n" for k, v in sorted(entries.items())))


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def content(**entries: str) -> str:
    return HEADER + "".join(f"{k} {v}\n" for k, v in sorted(entries.items()))


async def run(ctx: Context, file: SharedFile[str], keys: dict[str, str]) -> dict[str, str]:
    """Plan ``keys`` (all before any runs, as the core does for a group), then run each one's action in order:
    key -> "ok" or the reason it raised."""
    actions = {k: file.action(k, f"write {k}") for k, v in keys.items() if file.set(k, v)}
    out = {}
    for key, action in actions.items():
        try:
            assert action.func is not None
            await action.func(ctx)
            out[key] = "ok"
        except (PermanentError, TemporaryError) as e:
            out[key] = e.reason
    return out


async def test_entries_of_many_resources_cost_one_check_one_write_and_one_reload(setup):
    file = setup.file()
    assert await run(setup.ctx, file, {"a": "1", "b": "2", "c": "3"}) == {"a": "ok", "b": "ok", "c": "ok"}
    assert setup.path.read_text() == content(a="1", b="2", c="3")
    assert setup.path.stat().st_mode & 0o777 == 0o644
    assert setup.checks() == 1 and setup.reloads() == [content(a="1", b="2", c="3")]
    assert not file.staged_path.exists()


async def test_an_unchanged_file_is_neither_checked_nor_written_nor_reloaded(setup):
    setup.write(a="1", b="2")
    mtime = setup.path.stat().st_mtime_ns
    file = setup.file()
    assert file.synced and not file.set("a", "1") and not file.set("b", "2")
    assert setup.checks() == 0 and setup.reloads() == [] and setup.path.stat().st_mtime_ns == mtime


async def test_a_later_group_of_the_same_pass_makes_one_more_apply_for_what_it_adds(setup):
    file = setup.file()
    assert await run(setup.ctx, file, {"a": "1"}) == {"a": "ok"}
    assert await run(setup.ctx, file, {"b": "2"}) == {"b": "ok"}
    assert setup.reloads() == [content(a="1"), content(a="1", b="2")] and setup.checks() == 2
    # an action with nothing planned since the last apply does no work
    assert not await file.apply(setup.ctx, "a") and setup.checks() == 2


async def test_entries_the_checker_names_keep_their_last_good_version_and_the_others_are_put_in_effect(setup):
    (setup.bin / "names").touch()
    setup.write(a="1")
    file = setup.file()
    assert await run(setup.ctx, file, {"a": "bad-1", "b": "2", "c": "bad-3"}) == {
        "a": "Refused", "b": "ok", "c": "Refused"}
    assert setup.path.read_text() == content(a="1", b="2")  # a: the version in effect; c: never in effect
    assert setup.checks() == 2  # the whole file, then the file without what the checker named
    with pytest.raises(PermanentError, match=r"^the checker refused it: (.|\n)*refused: c bad-3"):
        file.raise_for("c")


async def test_a_checker_that_cannot_say_which_entry_is_bad_is_answered_by_halving_not_one_check_each(setup):
    keys = {f"k{i}": ("bad" if i == 5 else str(i)) for i in range(8)}
    file = setup.file()
    outcome = await run(setup.ctx, file, keys)
    assert outcome == {k: ("Refused" if k == "k5" else "ok") for k in keys}
    assert setup.path.read_text() == content(**{k: v for k, v in keys.items() if k != "k5"})
    checked = (setup.bin / "checked").read_text().splitlines()  # a checksum of each file the checker read
    assert len(checked) <= 1 + 2 * 3, len(checked)  # the whole file, then at most two checks per halving
    assert len(set(checked)) == len(checked)  # no file checked twice
    assert len(setup.reloads()) == 1


async def test_an_entry_whose_version_in_effect_is_refused_is_left_out_instead_of_holding_back_the_others(setup):
    (setup.bin / "names").touch()
    setup.write(ghost="bad-gone", a="1")  # what the file in effect holds; nothing plans "ghost" in this pass
    file = setup.file()
    assert await run(setup.ctx, file, {"a": "1", "b": "2"}) == {"b": "ok"}  # (a is in effect: no action)
    assert setup.path.read_text() == content(a="1", b="2")


async def test_a_checker_that_cannot_judge_keeps_the_file_and_every_changed_entry_says_so_until_it_is_back(setup):
    setup.write(a="1")
    (setup.bin / "checker").rename(setup.bin / "checker.away")
    file = setup.file()
    assert await run(setup.ctx, file, {"a": "1", "b": "2", "c": "3"}) == {"b": "CheckerMissing", "c": "CheckerMissing"}
    assert setup.path.read_text() == content(a="1") and setup.reloads() == []
    assert not file.staged_path.exists()
    (setup.bin / "checker.away").rename(setup.bin / "checker")  # back: the next pass puts both in effect
    assert await run(setup.ctx, setup.file(), {"a": "1", "b": "2", "c": "3"}) == {"b": "ok", "c": "ok"}
    assert setup.path.read_text() == content(a="1", b="2", c="3")


async def test_a_failed_reload_puts_the_previous_file_back_when_the_format_says_so(setup):
    setup.write(a="1")
    (setup.bin / "reload.broken").touch()
    file = setup.file(restore=True)
    assert await run(setup.ctx, file, {"a": "1", "b": "2"}) == {"b": "ReloadFailed"}
    assert setup.path.read_text() == content(a="1") and not setup.owed.exists()
    assert file.synced and file.applied == {"a": "1"}  # what is in effect, as before


async def test_a_failed_reload_otherwise_leaves_the_new_file_with_its_reload_owed_and_a_later_pass_makes_it(setup):
    setup.write(a="1")
    (setup.bin / "reload.broken").touch()
    assert await run(setup.ctx, setup.file(), {"a": "1", "b": "2"}) == {"b": "ReloadFailed"}
    assert setup.path.read_text() == content(a="1", b="2") and setup.owed.exists()
    (setup.bin / "reload.broken").unlink()
    checks = setup.checks()
    file = setup.file()  # (as after a restart: the marker says the file is not in effect)
    assert not file.synced
    assert await run(setup.ctx, file, {"a": "1", "b": "2"}) == {"a": "ok", "b": "ok"}
    assert setup.reloads() == [content(a="1", b="2")] and setup.checks() == checks  # the file was right already
    assert not setup.owed.exists()


async def test_a_claim_is_held_by_its_entry_until_that_moves_or_goes(setup):
    setup.write(a="x")
    file = setup.file()
    assert file.holder("x") == "a"  # (in effect: held before "a" is planned in this pass)
    file.set("a", "y")
    assert file.holder("x") is None and file.holder("y") == "a"
    file.remove("a")
    assert file.holder("y") is None


async def test_the_last_entry_removed_removes_the_file(setup):
    setup.write(a="1")
    file = setup.file()
    assert file.remove("a")
    await file.apply(setup.ctx, "a")
    assert not setup.path.exists() and setup.checks() == 0 and len(setup.reloads()) == 1
