"""The benchmark scripts of experiments/: the commands their committed results record still parse, and a render-only
mode rewrites the Markdown without touching the measured JSON."""

from __future__ import annotations

import argparse
import json
import runpy
import shlex
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"
RESULTS = EXPERIMENTS / "results"


class _Parsed(Exception):
    pass


def _recorded_commands() -> list[tuple[str, list[str]]]:
    out = []
    for path in sorted(RESULTS.rglob("*.json")):
        command = json.loads(path.read_text()).get("command")
        if isinstance(command, str) and command.startswith("python experiments/"):
            # default_run.py appends "  (runs: python -m nas.search ...)": what it ran, not its own arguments
            out.append((str(path.relative_to(RESULTS)), shlex.split(command.split("  (")[0])[1:]))
    return out


@pytest.mark.parametrize("name,argv", _recorded_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_recorded_command_parses_with_the_current_script(name, argv, monkeypatch):
    """A user reproducing a result runs its recorded command: the script must accept those arguments (a renamed option,
    or an argument with spaces recorded without quotes, fails here). Only the parsing runs, not the benchmark."""
    script, args = EXPERIMENTS / Path(argv[0]).name, argv[1:]
    assert script.is_file(), f"{name}: {argv[0]} does not exist"
    original = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, a=None, namespace=None):
        original(self, a, namespace)  # exits with status 2 on an unknown or malformed argument
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # latency_predictor.py sets it before parsing
    with pytest.raises(_Parsed):
        runpy.run_path(str(script), run_name="__main__")


def test_baselines_render_rewrites_the_markdown_only(tmp_path, monkeypatch):
    # A result written before the image-by-image comparison: rendering it must not add fields to its JSON.
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import baselines

    shutil.copy(RESULTS / "baselines_seeded.json", tmp_path / "baselines_seeded.json")
    before = (tmp_path / "baselines_seeded.json").read_bytes()
    monkeypatch.setattr(baselines, "RESULTS", tmp_path)
    assert baselines.main(["--render", "--name", "baselines_seeded"]) == 0
    assert (tmp_path / "baselines_seeded.json").read_bytes() == before
    md = (tmp_path / "baselines_seeded.md").read_text()
    assert "| convformer-L | 0.431 | 88.46% | searched-5cb7b4061d | 87.01% | -1.45 |" in md
    assert (tmp_path / "baselines_seeded.png").is_file()


def test_latency_predictor_report_counts_the_archs_per_input(monkeypatch):
    # The benchmark fits and validates across two inputs: its report says how many archs each input had, from the
    # archs themselves (it said "50 metaformer_t at 28x28x1, 50 metaformer_s at 64x64x3" whatever was measured).
    from nas.arch import ArchConfig, StageConfig

    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import latency_predictor

    def arch(in_chans: int, img_size: int) -> ArchConfig:
        return ArchConfig(stages=(StageConfig(mixer="conv", depth=1, width=8),), in_chans=in_chans, img_size=img_size)

    grey, colour, other = arch(1, 28), arch(3, 64), arch(3, 32)
    line = latency_predictor.sets_line(fit=[colour] * 2 + [grey] * 3, val=[grey] * 4 + [other, colour],
                                       measured_ms=[0.5, 0.1, 2.0])
    assert line == ("Fit on 5 archs (3 metaformer_t at 1x28x28, 2 metaformer_s at 3x64x64), validated on 6 other archs "
                    "(4 metaformer_t at 1x28x28, 1 at 3x32x32, 1 metaformer_s at 3x64x64; measured 0.100-2.000 ms).")


def test_memory_estimate_measures_under_the_searchs_default_allocator_settings(monkeypatch):
    # The benchmark measured with glibc's default malloc while a search, by default (train.keep_freed_memory: true),
    # has glibc keep freed memory (nas.train.keep_freed_memory), which moves tensors up to 32 MiB onto the heap: its
    # peaks were not those the estimate guards. Its processes now apply the search's default, and its results say so.
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import memory_estimate

    from nas.arch import ArchConfig, StageConfig
    from nas.config import TrainConfig

    assert memory_estimate.search_keeps_freed_memory() is True  # what a search with the default config applies
    tiny = ArchConfig(stages=(StageConfig("conv", 1, 16), StageConfig("pool", 1, 16)), img_size=16)
    grown, applied = memory_estimate.measure(tiny, 1, "eval", keep_freed_memory=True)  # a real fresh process
    assert grown >= 0 and applied is _glibc()  # the setting took effect there (it tunes glibc's malloc only)
    assert memory_estimate.measure(tiny, 1, "eval", keep_freed_memory=False)[1] is False

    calls, written = [], {}
    monkeypatch.setattr(memory_estimate, "measure", lambda arch, batch, mode, *, keep_freed_memory:
                        calls.append(keep_freed_memory) or (1, keep_freed_memory))
    monkeypatch.setattr(memory_estimate, "write_results", lambda name, result, *, render_md:
                        written.update(result=result, md=render_md(result)))
    assert memory_estimate.main(["--name", "x"]) == 0
    assert set(calls) == {TrainConfig().keep_freed_memory} == {True} and written["result"]["keep_freed_memory"] is True
    assert "Allocator: glibc's malloc told to keep freed memory (`nas.train.keep_freed_memory`), as a search" in written["md"]
    calls.clear()
    assert memory_estimate.main(["--name", "x", "--glibc-malloc-defaults"]) == 0
    assert set(calls) == {False} and written["result"]["keep_freed_memory"] is False
    assert "Allocator: glibc's default malloc settings, not the search's default" in written["md"]
    # the committed results, measured before: their Markdown says under which settings
    old = json.loads((RESULTS / "memory_estimate_fused.json").read_text())
    assert "measured before the script applied the search's" in memory_estimate.render_md(old)


def _glibc() -> bool:
    import platform

    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
