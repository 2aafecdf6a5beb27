"""README.md's "From Python" blocks run as written (the search block on the tiny dataset, into a temporary folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parent.parent / "README.md"
BENCHMARKS = README.parent / "experiments" / "README.md"  # the measurement histories README.md links to


def _docs_text() -> str:
    """README.md and experiments/README.md, whose settings, paths and commands are checked alike (the benchmarks'
    narratives moved there name settings and files as README did)."""
    return README.read_text() + "\n" + BENCHMARKS.read_text()


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
    _check_outputs_table_against(result.run_dir)


def _check_outputs_table_against(run_dir: Path) -> None:
    """README's "Outputs" table lists each file of a finished `compress=none` run folder, and that folder holds each
    file the table lists (but those of other runs: a `-m` sweep's, a running search's, a compression's)."""
    rows = _outputs_rows()
    listed = {name for cell in rows for name in re.findall(r"`([^`]+)`", cell)}
    named = {name for cell in rows.values() for name in re.findall(r"`([^`]+)`", cell)}  # `.config.yaml.sha256`, say
    member_row = rows["`checkpoints/<arch_id>/`"]
    files = r"`([\w.]+\.(?:pt|json|onnx|csv))`"  # the member's files the row names, not its `data.root` and such
    in_member = set(re.findall(files, member_row))
    arch_id = next((run_dir / "checkpoints").iterdir()).name
    expected = {n.replace("<arch_id>", arch_id).rstrip("/") for n in listed
                if not n.startswith((".running.", "multirun.", "retired/"))}
    expected |= {f"checkpoints/{arch_id}/{n}" for n in re.findall(files, member_row.split("when compressed")[0])}
    written = {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")}
    assert expected <= written, f"listed in README's Outputs but not written: {sorted(expected - written)}"

    def listed_kind(path: str) -> bool:
        top, *rest = path.split("/")
        if not rest:
            return top in listed or top in named or top in ("checkpoints", "trials")
        if top == "trials":
            return len(rest) == 1 and rest[0].endswith(".pt")
        return top == "checkpoints" and (len(rest) == 1 or (len(rest) == 2 and rest[1] in in_member))

    unlisted = sorted(w for w in written if not listed_kind(w))
    assert not unlisted, f"written but not in README's Outputs: {unlisted}"


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
    # a subpackage is named by its folder's line (nas/latency/) or module by module (nas/report/, its __init__ aside)
    modules |= {p.relative_to(root).as_posix() for pkg in ("nas", "compress") for p in (root / pkg).glob("*/*.py")
                if p.name != "__init__.py"
                and not re.search(rf"^{re.escape(p.parent.relative_to(root).as_posix())}/\s", block, flags=re.M)}
    assert modules <= named, f"not in README's Layout: {sorted(modules - named)}"
    assert named <= modules, f"README's Layout names modules that are gone: {sorted(named - modules)}"



def test_outputs_table_names_every_csv_column():
    """The trials.csv row of the Outputs table names each column the code writes, and the list of pareto.csv's columns
    below the table names each of its columns in the order written (`<name>_ci95` stands for its two columns,
    `<name>_ci95_low` and `_high`), so a user can find the one a sentence is about."""
    from nas.pareto_csv import FILE_COLUMNS, INT8_COLUMNS, PARETO_COLUMNS
    from nas.results import TRIAL_COLUMNS

    named = set(re.findall(r"`([^`]+)`", _outputs_rows()["`trials.csv`"]))
    missing = [c for c in TRIAL_COLUMNS if c not in named]
    assert not missing, f"README's trials.csv row does not name {missing}"
    columns = PARETO_COLUMNS + INT8_COLUMNS + FILE_COLUMNS
    # each column where it is first named (a gloss may name one again)
    listed = [name for name in dict.fromkeys(re.findall(r"`([^`]+)`", _pareto_csv_columns_list())) if name in columns]
    assert listed == list(columns), f"README's list of pareto.csv's columns is not {list(columns)}"


def _pareto_csv_columns_list() -> str:
    """The list of pareto.csv's columns below README's Outputs table: its lead line and bullets."""
    text = README.read_text()
    start = text.index("`pareto.csv`'s columns, in order", text.index("### Outputs ("))
    bullets = text.index("\n- ", start)
    return text[start:text.index("\n\n", bullets)]


def test_setting_names_in_readme_exist():
    """Each `<group>.<key>` setting README names in backticks is a key of the composed config (a renamed or removed
    setting drifts), but for module paths (`compress.run`), file names (`search.log`) and the misspelling it quotes."""
    import importlib

    from omegaconf import DictConfig, OmegaConf

    from nas.config import compose_search_config

    def python_name(dotted: str) -> bool:  # a module, or a name in one
        module, _, attr = dotted.rpartition(".")
        try:
            return hasattr(importlib.import_module(module), attr) or bool(importlib.import_module(dotted))
        except ImportError:
            return False

    def setting(dotted: str) -> bool:
        parent, _, key = dotted.rpartition(".")
        node = OmegaConf.select(cfg, parent)
        return isinstance(node, DictConfig) and key in node.keys()  # `in node` is False for ???

    names = set(re.findall(r"`((?:hw|space|data|train|final_train|search|compress)\.[a-z_][a-z_0-9.]*[a-z_0-9])",
                           _docs_text()))
    cfg = compose_search_config(["data=imagefolder"])  # the data schema holds both formats' keys
    unknown = sorted(n for n in names - {"train.epoch"}
                     if not (setting(n) or n.endswith((".pt", ".log")) or python_name(n)))
    assert not unknown, f"README names settings the config does not have: {unknown}"



def test_repository_paths_in_readme_exist():
    """Each file of the checkout README names (a module, a test, an experiment and its results, a config) is there;
    `{json,md}` names both; the user's own files (`conf/hw/my_npu.yaml`, `cpu_<name>.yaml`) and the installed package's
    `nas/conf` are left out."""
    root = README.parent
    paths = set()
    named = r"(?<![\w/.])((?:nas|compress|tests|experiments|conf)/[\w/.{},-]*\w)(?![\w<])"
    for path in re.findall(named, _docs_text()):
        stem, brace, rest = path.partition("{")
        if brace:
            alternatives, _, tail = rest.partition("}")
            paths |= {stem + a + tail for a in alternatives.split(",")}
        else:
            paths.add(path)
    mine = re.compile(r"(^|/)my|/my_")
    missing = sorted(p for p in paths - {"nas/conf"} if not mine.search(p) and not (root / p).exists())
    assert not missing, f"README names files the checkout does not have: {missing}"


# The overrides README shows being refused, with the error it quotes; every other `key=value` it shows must compose.
_SHOWN_REFUSED = {"train.epoch=3", "search.n_trials=abc", "train.subset=all", "search.latency_budget_ms=1ms",
                  "compress.prune.ratio=25%", "train.epochs=null"}
_GROUPS = ("hw", "space", "data", "train", "final_train", "search", "compress")


def _readme_commands() -> list[tuple[str, list[str]]]:
    """README's commands of nas.search, nas.report, compress.run and the latency tools, in its bash blocks and in
    backticks: (module, their key=value overrides), with a placeholder filled in (`hw=<chip>` as `hw=edge_npu`,
    `<k>` as 1, `<arch_id>` as `x`) and a `-m` sweep (`search.worker=0,1`) at its first value; those naming a folder
    (`--config-dir myconf`) or a launcher (submitit) the checkout does not have left out."""
    import shlex

    text = _docs_text()
    lines = [ln for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)
             for ln in block.replace("\\\n", " ").splitlines()]
    lines += [ln.replace("\n", " ") for ln in re.findall(r"`(python -m [^`]+)`", text)]
    modules = r"nas\.search|nas\.report|compress\.run|nas\.latency\.(?:profile|fit|validate)"
    commands = []
    for line in lines:
        found = re.match(rf"python -m ({modules})\s(.*)", line.split(" # ")[0].strip())
        if found is None or "--config-dir" in line or "submitit" in line:  # a folder, a plugin of the user's
            continue
        filled = re.sub(r"hw=<[^>]+>", "hw=edge_npu", re.sub(r"<[kn]>", "1", found.group(2)))  # `compress.top_k=<k>`
        words = shlex.split(re.sub(r"<[^>]+>", "x", filled))
        sweep = "-m" in words
        overrides = [w.split(",")[0] if sweep and not w.split("=", 1)[1].startswith("[") else w
                     for w in words if "=" in w and not w.startswith("hydra/") and not w.endswith("=...")]
        commands.append((found.group(1), overrides))
    return commands


def _readme_overrides() -> set[str]:
    """The `key=value` overrides of the search's groups that README's text shows in backticks, placeholders
    (`hw=<chip>`, `data.channels=1|3`, `compress.eval_images=N`, `data.root=...`) left out."""
    tokens = set(re.findall(r"`\+{0,2}([a-z_][\w.]*=[^`\s]*)`", _docs_text()))
    return {t for t in tokens if t.split(".")[0].split("=")[0] in _GROUPS
            and not re.search(r"[<|]|\.\.|=$|=N$", t)}


def _batches(overrides: set[str]) -> list[list[str]]:
    """`overrides` in as few lists as hold one value per key each (a compose costs about a second)."""
    batches: list[dict[str, str]] = []
    for override in sorted(overrides):
        key = override.split("=", 1)[0].lstrip("+")
        batch = next((b for b in batches if key not in b), None)
        if batch is None:
            batches.append(batch := {})
        batch[key] = override
    return [list(b.values()) for b in batches]


def test_readme_commands_and_overrides_compose():
    """Each override of the commands README shows, and each one its text names, composes (in batches of one value per
    key, to keep this fast; a failing batch is retried one override at a time to name the culprit); those it shows as
    refused are refused."""
    from hydra import compose, initialize_config_dir

    from nas.config import CONF_DIR, ConfigError, compose_compress_config, compose_search_config
    from nas.latency.profile import register_latency_configs

    def compose_latency_config(overrides: list[str]) -> None:
        register_latency_configs()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            compose(config_name="latency", overrides=overrides)

    commands = _readme_commands()
    assert {m for m, _ in commands} >= {"nas.search", "nas.report", "compress.run", "nas.latency.profile"}
    shown = _readme_overrides()
    assert _SHOWN_REFUSED <= shown, _SHOWN_REFUSED - shown
    for override in _SHOWN_REFUSED:
        with pytest.raises(ConfigError):
            compose_search_config([override])
    search = (shown - _SHOWN_REFUSED).union(*(o for m, o in commands if m in ("nas.search", "nas.report")))
    compress = set().union(*(o for m, o in commands if m == "compress.run"))
    latency = set().union(*(o for m, o in commands if m.startswith("nas.latency.")))
    for composer, overrides in ((compose_search_config, search), (compose_compress_config, compress),
                                (compose_latency_config, latency)):
        for batch in _batches(overrides):
            try:
                composer(batch)
            except Exception:
                for override in batch:  # an error naming the override at fault
                    composer([override])
                raise


def test_the_run_folder_layout_of_nas_results_names_the_lock_files_the_outputs_table_names():
    # nas.results' layout docstring named neither the run folder's lock files nor a member's .member.lock
    import ast

    from nas.checkpoint import MEMBER_LOCK

    rows = _outputs_rows()
    locks = {name for cell in [*rows, *rows.values()] for name in re.findall(r"`([^`]+\.lock)`", cell)}
    assert {".files.lock", ".config.yaml.lock", MEMBER_LOCK} <= locks, locks
    layout = ast.get_docstring(ast.parse((README.parent / "nas" / "results.py").read_text()))
    assert not [name for name in sorted(locks) if name not in layout], layout


@pytest.mark.parametrize("data_format", ["imagefolder", "idx"])
def test_deployment_contract_block_runs_as_written_and_predicts_what_compress_predict_does(tmp_path, monkeypatch,
                                                                                          data_format):
    """README's "Deployment contract" block, run on a member folder's files and a phone's photo (JPEG larger than twice
    the model's size, stored turned with an EXIF orientation) and a PNG, gives compress.predict's probabilities: a
    colour model gets RGB, one of idx data at 3 channels grey repeated (RGB there gave other predictions); the files
    take a batch of 2. model_int8.onnx is model.onnx copied: the block's calls, not int8, are checked here."""
    import json
    import runpy
    import shutil
    import sys

    import numpy as np
    import onnxruntime as ort
    from PIL import Image

    from compress.export import export_openvino
    from compress.predict import predict
    from nas.arch import ArchConfig, StageConfig
    from nas.checkpoint import export_onnx, io_contract, onnx_metadata
    from nas.config import DataConfig, DataFormat
    from nas.data import preprocessing
    from nas.model import build_model

    classes = ["bag", "coat", "shirt"]
    arch = ArchConfig(img_size=16, in_chans=3, num_classes=3,
                      stages=(StageConfig(mixer="sepconv", depth=1, width=16),
                              StageConfig(mixer="attn", depth=1, width=32, head_dim=16)))
    torch.manual_seed(0)
    model = build_model(arch).eval()
    model.set_normalization((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    folder = tmp_path / "member"
    data = DataConfig(name="d", format=DataFormat(data_format), img_size=16, channels=3)
    contract = io_contract(arch=arch, classes=classes, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), background=None,
                           preprocessing=preprocessing(data, in_chans=3, img_size=16))
    export_onnx(model, folder / "model.onnx", in_chans=3, img_size=16,
                metadata=onnx_metadata(arch=arch, contract=contract, precision="fp32", dataset="d", metric="accuracy"))
    shutil.copy(folder / "model.onnx", folder / "model_int8.onnx")
    export_openvino(folder / "model.onnx", folder / "model_int8.xml", in_chans=3, img_size=16)
    (folder / "metrics.json").write_text(json.dumps(contract))

    rng = np.random.default_rng(1)
    smooth = np.kron(rng.random((6, 10, 3)), np.ones((20, 20, 1)))  # 120x200: blocks of colour, as a photo has
    stored = Image.fromarray((smooth * 255).astype(np.uint8)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter clockwise: upright, the 200x120 of `smooth`
    monkeypatch.chdir(tmp_path)
    stored.save("photo.jpg", exif=exif, quality=95)
    Image.fromarray((rng.random((20, 30, 3)) * 255).astype(np.uint8)).save("shirt.png")

    (block,) = _python_blocks("Deployment contract")
    placeholder = '"runs/<study>/checkpoints/<arch_id>/"'
    assert placeholder in block
    scope: dict = {}
    exec(compile(block.replace(placeholder, repr(f"{folder}/")), "README.md (Deployment contract)", "exec"), scope)
    assert scope["images"].shape == (2, 3, 16, 16) and scope["images"].dtype == np.uint8
    assert scope["classes"] == classes  # read from model.onnx's own metadata
    if data_format == "idx":  # grey in 3 channels: what compress.predict feeds a model of idx data
        assert (scope["images"] == scope["images"][:, :1]).all()

    expected = predict(folder / "model_int8.onnx", ["photo.jpg", "shirt.png"], top=3)
    logits = scope["sess"].run(None, {"pixels": scope["pixels"]})[0]
    probabilities = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    for row, said in zip(probabilities, expected):
        assert [classes[i] for i in np.argsort(-row)] == list(said.classes)
        np.testing.assert_allclose(np.sort(row)[::-1], said.probabilities, atol=1e-5)
    np.testing.assert_allclose(scope["compiled"](scope["pixels"])[0], logits, atol=1e-4)  # the IR, as the last

    # Batch 1 for a compiler that needs static shapes, with the command README gives.
    command = re.search(r"`python -m (onnxruntime\.tools\.make_dynamic_shape_fixed [^`]+)`", README.read_text())
    module, *args = command.group(1).split()
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "argv", [module, *args])
    runpy.run_module(module, run_name="__main__")  # the command, in this process: no interpreter started (seconds)
    fixed = ort.InferenceSession(str(folder / "model_int8_b1.onnx"))
    assert fixed.get_inputs()[0].shape == [1, 3, 16, 16]
    np.testing.assert_allclose(fixed.run(None, {"pixels": scope["pixels"][:1]})[0], logits[:1], atol=1e-5)
    ir = scope["ov"].Core().read_model(str(folder / "model_int8.xml"))
    ir.reshape([1, 3, 16, 16])  # as README says for OpenVINO
    compiled = scope["ov"].Core().compile_model(ir, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    assert compiled.inputs[0].get_partial_shape().is_static
    np.testing.assert_allclose(compiled(scope["pixels"][:1])[0], logits[:1], atol=1e-4)


def test_readme_own_images_command_trains_in_several_steps_per_epoch_on_a_few_hundred_photos():
    """README's search command of one's own images (`data=imagefolder`) composes with batch sizes that give each epoch
    two optimizer steps or more from 100 photos (72 training images once test and val are held out) to thousands: with
    the defaults' 128 every first run on a few hundred photos was warned of a single step per epoch."""
    from nas.config import compose_search_config, to_run_config
    from nas.search import batch_warning

    own = [o for m, o in _readme_commands() if m == "nas.search" and "data=imagefolder" in o]
    assert own, "README shows no search command with data=imagefolder"
    for overrides in own:
        run = to_run_config(compose_search_config([o if not o.startswith("data.root=") else "data.root=/unused"
                                                   for o in overrides]))
        for images in (72, 240, 2160):  # 100, 334 and 3000 photos less their test and val images
            assert batch_warning(run, train_images=images) is None, (overrides, images)


def _anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives `markdown`'s headings: lower case, punctuation dropped, spaces as hyphens."""
    return {re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
            for title in re.findall(r"^#{1,6} (.+)$", markdown, flags=re.M)}


def test_links_to_the_benchmarks_name_their_headings():
    """Each `experiments/README.md#<anchor>` link of README.md (where a moved measurement history's summary points)
    leads to a heading there: a renamed heading would leave the summary pointing nowhere."""
    links = re.findall(r"\]\(experiments/README\.md#([^)\s]+)\)", README.read_text())
    assert links, "README.md links to no heading of experiments/README.md"
    anchors = _anchors(BENCHMARKS.read_text())
    assert not sorted(set(links) - anchors), (sorted(set(links) - anchors), sorted(anchors))
