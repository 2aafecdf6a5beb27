"""README.md's "From Python" blocks run as written (the search block on the tiny dataset, into a temporary folder)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks(section: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"### {section}\n")
    end = text.index("\n#", start + 4)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_from_python_blocks_run_as_written(tiny_idx_root, tmp_path, capsys):
    first, second = _python_blocks("From Python")
    scope: dict = {}
    exec(compile(first, "README.md (From Python, block 1)", "exec"), scope)
    assert scope["latency"].total_ms > 0 and scope["hw"].name == "edge_npu"
    assert scope["model"](torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert scope["arch"].arch_id in capsys.readouterr().out
    # The search block, on the tiny dataset instead of Fashion-MNIST and into this test's folder.
    runs = '"search.runs_dir=/tmp/my-runs"'
    assert runs in second
    second = second.replace(runs, f'"search.runs_dir={tmp_path}", "data.root={tiny_idx_root}"')
    exec(compile(second, "README.md (From Python, block 2)", "exec"), scope)
    result = scope["result"]
    assert result.n_complete == 2 and result.pareto and (result.run_dir / "report.html").is_file()
    out = capsys.readouterr().out
    assert all(m["arch_id"] in out for m in result.pareto) and str(result.run_dir / "report.html") in out
    # nas.data.load_search_data's test split scores the member as the report did (its test_acc, the last line)
    assert scope["data"].test.y.shape[0] == 100
    assert abs(float(out.splitlines()[-1]) - result.pareto[0]["test_acc"]) < 1e-9


def _outputs_rows() -> dict[str, str]:
    """README's "Outputs" table: each row's file cell -> its content cell."""
    text = README.read_text()
    start = text.index("### Outputs (")
    end = text.index("\n\n", text.index("| file |", start))
    rows = {}
    for line in text[start:end].splitlines():
        if line.startswith("| `"):
            cells = line.split(" | ", 1)
            rows[cells[0].lstrip("| ")] = cells[1]
    return rows


def test_outputs_table_names_the_files_the_code_writes():
    from compress.pipeline import COMPRESSED_FILES
    from nas.report import REPORT_FILES

    rows = _outputs_rows()
    listed = {name for cell in rows for name in re.findall(r"`([^`]+)`", cell)}
    assert set(REPORT_FILES) <= listed, set(REPORT_FILES) - listed
    # The checkpoint row's compressed files are exactly those compress.pipeline writes (and cleans up on a rerun).
    checkpoint_row = rows["`checkpoints/<arch_id>/`"]
    compressed = re.findall(r"`([^`]+)`", checkpoint_row.split("when compressed also", 1)[1].split("(see below)")[0])
    expanded = set()
    for name in compressed:
        stem, _, other = name.partition("/")  # `model_int8.xml/.bin`: the OpenVINO pair
        expanded.add(stem)
        if other:
            expanded.add(stem.rsplit(".", 1)[0] + other)
    assert expanded == set(COMPRESSED_FILES)


def test_layout_names_every_module():
    """README's "Layout" block names each module of nas/ and compress/ (a new module added without its line drifts)."""
    text = README.read_text()
    start = text.index("## Layout\n")
    block = text[start:text.index("\n## ", start + 1)]
    root = README.parent
    named = set(re.findall(r"^((?:nas|compress)/\S+\.py)\s", block, flags=re.M))
    modules = {p.relative_to(root).as_posix() for pkg in ("nas", "compress") for p in (root / pkg).glob("*.py")
               if p.name != "__init__.py"}
    assert modules <= named, f"not in README's Layout: {sorted(modules - named)}"
    assert named <= modules, f"README's Layout names modules that are gone: {sorted(named - modules)}"
