"""The installed package (a wheel, not the checkout) carries what its entry points need: every module and conf/."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parent.parent


def test_pyproject_lists_every_package_of_the_checkout() -> None:
    # pyproject.toml lists its packages by hand (conf/ is mapped in as nas.conf): a new subpackage must be added there.
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = find_packages(str(ROOT), include=["nas", "nas.*", "compress", "compress.*"])
    assert sorted(tool["packages"]) == sorted([*found, "nas.conf"])
    assert tool["package-dir"] == {"nas.conf": "conf"}


def _build_wheel(dest: Path) -> Path:
    # Built from a copy: an in-tree build would leave build/ and *.egg-info in the checkout.
    src = dest / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("nas", "compress", "conf"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    # By the build backend itself, as `pip wheel --no-build-isolation` calls it (pip's own start-up took seconds more).
    build = "import sys; from setuptools import build_meta; build_meta.build_wheel(sys.argv[1])"
    built = subprocess.run([sys.executable, "-c", build, str(dest / "dist")], cwd=src, capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (dest / "dist").glob("metaformer_nas-*.whl")
    return wheel


def test_wheel_ships_conf_and_its_entry_points_compose_from_it(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in sorted((ROOT / "conf").rglob("*.yaml")) + sorted((ROOT / "conf").rglob("*.fitted.yml")):
        assert f"nas/conf/{path.relative_to(ROOT / 'conf').as_posix()}" in names
    for pkg in ("nas", "compress"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            assert path.relative_to(ROOT).as_posix() in names

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"  # no checkout here: the configs can only come from the installed copy
    (work / "mine" / "hw").mkdir(parents=True)
    # A chip of the user's own, in a config folder of theirs (README "Installed as a package").
    (work / "mine" / "hw" / "my_npu.yaml").write_text(
        (ROOT / "conf" / "hw" / "edge_npu.yaml").read_text().replace("name: edge_npu", "name: my_npu"))
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)

    where = run("-c", "import nas.config as c; print(c.CONF_DIR)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()) == (site / "nas" / "conf").resolve()

    search = run("-m", "nas.search", "--cfg", "job", "hw=cpu", "space=metaformer_s")
    assert search.returncode == 0, search.stderr
    assert "name: cpu" in search.stdout and "fitted: cpu.fitted.yml" in search.stdout  # the calibrated profile
    trees = run("-c", "from nas.config import load_hw_profile; print(len(load_hw_profile('cpu').residual))")
    assert trees.returncode == 0 and int(trees.stdout) > 1, trees.stderr  # its fitted numbers, trees and all
    compress = run("-m", "compress.run", "--cfg", "job", "hw=edge_npu", "checkpoint=x")
    assert compress.returncode == 0, compress.stderr
    assert "name: edge_npu" in compress.stdout

    # Calibrating: into the user's file, never into a profile inside the installed package.
    from nas.arch import ArchConfig, StageConfig
    from nas.latency.measure import Measurement, write_measurements

    archs = [ArchConfig(stages=(StageConfig(mixer="conv", depth=1, width=w), StageConfig(mixer="pool", depth=d, width=32)))
             for w in (8, 16, 24) for d in (1, 2)]
    write_measurements(work / "m.csv", [Measurement(a, "vendor", "int8", 1, t, t, t, 1, "NPU")
                                        for a, t in zip(archs, (0.2, 0.3, 0.25, 0.35, 0.3, 0.4))])
    shipped = run("-m", "nas.latency.fit", "hw=edge_npu", "measurements=[m.csv]")
    assert shipped.returncode == 2 and shipped.stderr.strip() == (
        f"error: hw=edge_npu is a profile shipped inside the installed package ({site / 'nas' / 'conf' / 'hw' / 'edge_npu.yaml'}); "
        "pass out=<your config folder>/hw/my_edge_npu.yaml (named my_edge_npu after its file) and use it as "
        "--config-dir <your config folder> hw=my_edge_npu (a file named edge_npu.yaml there would clash with the "
        "shipped one)")
    # Following that hint calibrates the search: the copy is not hidden behind the shipped edge_npu.yaml (and a chip file
    # of the user's own composes through --config-dir).
    followed = run("-m", "nas.latency.fit", "hw=edge_npu", "measurements=[m.csv]", "out=mine/hw/my_edge_npu.yaml")
    assert followed.returncode == 0, followed.stderr
    used = run("-m", "nas.search", "--config-dir", "mine", "--cfg", "job", "hw=my_edge_npu")
    assert used.returncode == 0, used.stderr
    assert "name: my_edge_npu" in used.stdout and "fitted: my_edge_npu.fitted.yml" in used.stdout
    assert 'calibrated_on: "NPU"' in (work / "mine" / "hw" / "my_edge_npu.fitted.yml").read_text()
    fitted = run("-m", "nas.latency.fit", "--config-dir", "mine", "hw=my_npu", "measurements=[m.csv]")
    assert fitted.returncode == 0, fitted.stderr
    assert "\ncalibration:\n" in (work / "mine" / "hw" / "my_npu.fitted.yml").read_text()


@pytest.mark.parametrize(
    ("module", "args", "line"),
    [("nas.search", ["--config-dir", "mine", "hw=my_npuu"],
      "error: hw=my_npuu is not an option of hw (did you mean hw=my_npu?); available: cpu, cpu_int8, cpu_ort, cpu_xeon, cpu_xeonb, cpu_zen2, edge_npu, mobile_cpu, my_npu"),
     ("nas.search", ["-m", "hydra/launcher=joblib", "search.worker=0,1", "--config-dir=mine", "train.epoch=3"],
      "error: train.epoch is not a setting of train (did you mean train.epochs?)"),
     ("compress.run", ["-cd", "mine", "hw=my_npuu", "checkpoint=x"],
      "error: hw=my_npuu is not an option of hw (did you mean hw=my_npu?); available: cpu, cpu_int8, cpu_ort, cpu_xeon, cpu_xeonb, cpu_zen2, edge_npu, mobile_cpu, my_npu"),
     ("nas.latency.fit", ["--config-dir", "mine", "hw=my_npuu"],
      "error: hw=my_npuu is not an option of hw (did you mean hw=my_npu?); available: cpu, cpu_int8, cpu_ort, cpu_xeon, cpu_xeonb, cpu_zen2, edge_npu, mobile_cpu, my_npu"),
     ("nas.search", ["--config-dir", "notmine", "hw=my_npu"], "error: --config-dir notmine: folder {work}/notmine not found")],
)
def test_bad_input_beside_a_users_config_dir_is_one_line(module: str, args: list[str], line: str, tmp_path: Path) -> None:
    # README's way to add a chip is --config-dir; a typo beside it got Hydra's multi-line message and its search path.
    work = tmp_path / "work"
    (work / "mine" / "hw").mkdir(parents=True)
    (work / "mine" / "hw" / "my_npu.yaml").write_text(
        (ROOT / "conf" / "hw" / "edge_npu.yaml").read_text().replace("name: edge_npu", "name: my_npu"))
    runs = [f"search.runs_dir={tmp_path / 'runs'}"] if module == "nas.search" else []
    proc = subprocess.run([sys.executable, "-m", module, *args, *runs], cwd=work, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line.format(work=work)), proc.stderr
    assert not (tmp_path / "runs").exists()



_IMPORTED = """
import json, sys
import nas.latency.profile
first = sorted(sys.modules)
import nas.search, nas.report, nas.latency.fit, nas.latency.validate, compress.run, compress.predict
print(json.dumps([first, sorted(sys.modules)]))
"""


def test_importing_a_command_loads_neither_the_compression_nor_the_runtimes() -> None:
    # NNCF, OpenVINO, onnxruntime and scikit-learn take seconds to import and only some steps of a run use them: the
    # commands import them where those steps run. The latency tools' module, which their command lines run first,
    # imports neither torch nor Optuna either (fit and validate need neither).
    proc = subprocess.run([sys.executable, "-c", _IMPORTED], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    latency_tools, commands = ({name.split(".")[0] for name in names} for names in json.loads(proc.stdout))
    assert not latency_tools & {"nncf", "openvino", "onnxruntime", "onnx", "sklearn", "torch", "optuna", "scipy"}
    assert not commands & {"nncf", "openvino", "onnxruntime", "onnx", "sklearn"}
    assert {"torch", "optuna"} <= commands  # what the search's own module needs (the check sees imports)
