"""Benchmark: how far the int8 runtimes of this host (onnxruntime's fused kernels, OpenVINO) move an exported int8
file's logits off the torch int8 model, against the same file run operator by operator (onnxruntime's reference).

    python experiments/int8_saturation.py            # 6 small models (time: see results)
    python experiments/int8_saturation.py --render   # only rewrite the .md from the .json

On x86 CPUs without VNNI (no avx512_vnni, avx_vnni or amx_int8 among /proc/cpuinfo's flags) the int8 kernels of
onnxruntime (QDQ pairs fused into QLinearConv and the like) and OpenVINO add pairs of u8 x s8 products in 16 bits
(vpmaddubsw), which saturate; `compress.pipeline` records it in compressed_metrics.json (`int8.agreement`: "onnx",
"onnx_reference", "openvino", "int8_saturates") and warns (`int8_agreement_warning`). This script measures it: the
hand-made families of the default layout at scale S (`nas.families`: poolformer, convformer, caformer, vit, resnet;
all-conv and attention alike) and the median-MAC candidate of the default space (seed 0) are each trained briefly
from scratch (the default proxy recipe on a fixed subset of the Fashion-MNIST training split, same seed), quantized
by the project's PTQ (`compress.quantize.quantize_ptq`, NNCF, as the compression runs it before any QAT), exported as
the compression exports them (`compress.export`: QDQ ONNX, then OpenVINO IR), and run on a fixed half of the test
split by torch (the int8 model and its fp32 source), onnxruntime as deployed, onnxruntime operator by operator
(`reference=True`) and OpenVINO. Reported per model and runtime:
`compress.export.agreement` with the torch int8 model (max |logit difference| relative to its largest |logit|,
share of images with the same top-1 class), whether that is within `compress.pipeline.INT8_AGREEMENT_TOLERANCE`,
and test accuracy. The header records whether this host saturates (`nas.latency.measure.int8_saturates`) and which
VNNI flags its CPU has. Writes experiments/results/<name>.{json,md} (name: int8_saturation unless --name).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, command_line, compose_run, one_line_on_failed_write, write_results  # noqa: E402  (puts the project on sys.path)

FAMILY_MODELS = ("poolformer-S", "convformer-S", "caformer-S", "vit-S", "resnet-S")
SPACE_MODEL = "median candidate (default space, seed 0)"
RUNTIMES = {"onnx": "onnxruntime (fused int8 kernels)", "openvino": "OpenVINO",
            "onnx_reference": "onnxruntime operator by operator (reference)"}
"""The runtimes compared with the torch int8 model, as keys of compressed_metrics.json's `int8.agreement`."""
SEED = 0


def host_int8() -> dict:
    """What decides whether this host's int8 kernels saturate: `int8_saturates()` and the VNNI flags its CPU has."""
    from nas.latency.measure import VNNI_FLAGS, cpu_flags, int8_saturates

    try:
        flags = cpu_flags(Path("/proc/cpuinfo").read_text()) or []
    except OSError:
        flags = []
    return {"int8_saturates": int8_saturates(), "machine": platform.machine(),
            "vnni_flags_present": [f for f in VNNI_FLAGS if f in flags], "vnni_flags_checked": list(VNNI_FLAGS),
            "avx2": "avx2" in flags, "avx512f": "avx512f" in flags}


def models() -> dict:
    from nas.families import family_arch
    from train_speed import median_candidate

    return {**{name: family_arch(name) for name in FAMILY_MODELS}, SPACE_MODEL: median_candidate(seed=SEED)}


def within(agree: dict, tolerance: dict) -> bool:
    """Whether one runtime's agreement is inside the stated tolerance (as `compress.pipeline` judges it)."""
    return agree["max_rel_diff"] <= tolerance["max_rel_diff"] and agree["top1_agreement"] >= tolerance["top1_agreement"]


def measure(name: str, arch, *, run, data, test, folder: Path) -> dict:
    """Train, quantize (PTQ), export and run one model; its row."""
    from compress.export import (
        accuracy, agreement, export_int8_onnx, export_openvino, onnx_logits, openvino_logits, torch_logits,
    )
    from compress.pipeline import INT8_AGREEMENT_TOLERANCE, int8_agreement_warning
    from compress.quantize import quantize_ptq
    from nas.latency.measure import int8_saturates
    from nas.latency.ops import count_macs
    from nas.model import build_model
    from nas.train import seed_everything, train_candidate

    t0 = time.perf_counter()
    seed_everything(SEED)
    model = build_model(arch)
    model.set_normalization(data.mean, data.std)
    trained = train_candidate(model, data, run.train, augment=run.data, seed=SEED)
    model.eval()
    # PTQ as the compression runs it first (same calibration size and seed); no QAT: it would change which int8 model
    # is compared, not how the runtimes compute it
    quantized, note = quantize_ptq(model, data.train, size=run.compress.quantize.calibration_size, seed=run.compress.seed)
    onnx_path = export_int8_onnx(quantized, folder / "model_int8.onnx", in_chans=arch.in_chans, img_size=arch.img_size)
    xml = export_openvino(onnx_path, folder / "model_int8.xml", in_chans=arch.in_chans, img_size=arch.img_size)
    bs = run.train.eval_batch_size
    logits = {"torch_int8": torch_logits(quantized, test, batch_size=bs), "torch_fp32": torch_logits(model, test, batch_size=bs),
              "onnx": onnx_logits(onnx_path, test, batch_size=bs),
              "onnx_reference": onnx_logits(onnx_path, test, batch_size=bs, reference=True),
              "openvino": openvino_logits(xml, test, batch_size=bs)}
    agree = {k: agreement(logits["torch_int8"], logits[k]) for k in RUNTIMES}
    for k in RUNTIMES:
        agree[k]["within_tolerance"] = within(agree[k], INT8_AGREEMENT_TOLERANCE)
    row = {
        "name": name, "arch_id": arch.arch_id, "summary": arch.summary(), "macs": count_macs(arch),
        "mixers": sorted({st.mixer for st in arch.stages}), "attention": any(st.mixer == "attn" for st in arch.stages),
        "val_acc_fp32": trained.val_acc, "ptq_note": note,
        "test_acc": {k: accuracy(v, test, balanced=data.balanced) for k, v in logits.items()},
        "agreement": agree,
        # the line compress_checkpoint logs for such a file on this host (None: every runtime within tolerance)
        "warning": int8_agreement_warning(agree, saturates=int8_saturates()),
        "seconds": time.perf_counter() - t0,
    }
    print(f"{name:42s} " + "  ".join(f"{k}: {agree[k]['max_rel_diff']:.1%} / {agree[k]['top1_agreement']:.2%}"
                                     for k in RUNTIMES) + f"  ({row['seconds']:.0f} s)", flush=True)
    return row


def main(*, subset: int, test_size: int | None) -> dict:
    import nncf
    import onnxruntime
    import openvino
    import torch

    from compress.pipeline import INT8_AGREEMENT_TOLERANCE
    from nas.data import load_dataset
    from nas.latency.measure import machine_info
    from nas.train import subset_split

    started = time.perf_counter()
    run = compose_run(f"train.subset={subset}")  # the default proxy recipe (1 epoch) on a fixed subset
    data = load_dataset(run.data)
    test = subset_split(data.test, test_size, seed=SEED)
    rows = []
    with TemporaryDirectory(prefix="int8_saturation-") as tmp:
        for k, (name, arch) in enumerate(models().items()):
            folder = Path(tmp) / str(k)
            folder.mkdir()
            rows.append(measure(name, arch, run=run, data=data, test=test, folder=folder))
    return {
        "command": command_line("int8_saturation.py"),  # as run, --name included
        "machine": machine_info(), "host_int8": host_int8(), "python": platform.python_version(), "date": str(date.today()),
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "openvino": openvino.__version__,
                     "nncf": nncf.__version__},
        "train": {"subset": subset, "epochs": run.train.epochs, "threads": run.train.threads, "seed": SEED},
        "calibration_size": run.compress.quantize.calibration_size, "test_images": len(test),
        "tolerance": INT8_AGREEMENT_TOLERANCE, "runtimes": RUNTIMES, "rows": rows, "wall_s": time.perf_counter() - started,
    }


def _span(values: list[float], fmt: str) -> str:
    lo, hi = min(values), max(values)
    return format(lo, fmt) if lo == hi else f"{format(lo, fmt)} to {format(hi, fmt)}"


def render(result: dict) -> str:
    rows, tol, host = result["rows"], result["tolerance"], result["host_int8"]
    vnni = ", ".join(host["vnni_flags_present"]) or "none"
    lines = [
        "# int8 runtimes on this host against the torch int8 model (saturation without VNNI)", "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}; Python {result['python']}; "
        + "; ".join(f"{k} {v}" for k, v in result["versions"].items()) + f"; {result['date']}; "
        f"total {result['wall_s'] / 60:.1f} min  ",
        f"Host int8: `int8_saturates` = {host['int8_saturates']}; VNNI flags present: {vnni} (checked: "
        f"{', '.join(host['vnni_flags_checked'])}); avx2: {host['avx2']}, avx512f: {host['avx512f']}", "",
        f"Each model trained from scratch for {result['train']['epochs']} epoch(s) on {result['train']['subset']:,} "
        f"Fashion-MNIST training images (default proxy recipe, seed {result['train']['seed']}), quantized by NNCF PTQ "
        f"(`compress.quantize.quantize_ptq`, {result['calibration_size']} calibration images, no QAT), exported as QDQ ONNX and "
        f"OpenVINO IR (`compress.export`), and run on {result['test_images']:,} test images. Agreement with the torch "
        "int8 model (`compress.export.agreement`): max |logit difference| relative to the torch int8 model's largest "
        f"|logit| / share of images with the same top-1 class; tolerance (`INT8_AGREEMENT_TOLERANCE`): at most "
        f"{tol['max_rel_diff']:.0%} and at least {tol['top1_agreement']:.0%}; outside it in bold.", "",
        "| model | mixers | MACs | " + " | ".join(f"{v}: rel diff / top-1" for v in result["runtimes"].values())
        + " | test acc torch fp32 | torch int8 | " + " | ".join(result["runtimes"]) + " |",
        "|---|---|--:|" + "--:|" * len(result["runtimes"]) + "--:|--:|" + "--:|" * len(result["runtimes"]),
    ]
    for r in rows:
        cells = []
        for k in result["runtimes"]:
            a = r["agreement"][k]
            cell = f"{a['max_rel_diff']:.1%} / {a['top1_agreement']:.2%}"
            cells.append(cell if a["within_tolerance"] else f"**{cell}**")
        accs = [r["test_acc"]["torch_fp32"], r["test_acc"]["torch_int8"], *(r["test_acc"][k] for k in result["runtimes"])]
        lines.append(f"| {r['name']} (`{r['summary'].replace('|', chr(92) + '|')}`) | {', '.join(r['mixers'])} | "
                     f"{r['macs']:,} | " + " | ".join(cells) + " | " + " | ".join(f"{a:.2%}" for a in accs) + " |")
    lines += ["", "## Findings", ""]
    for k, label in result["runtimes"].items():
        agree = [r["agreement"][k] for r in rows]
        gap = [(r["test_acc"][k] - r["test_acc"]["torch_int8"]) * 100 for r in rows]
        off = [r["name"] for r in rows if not r["agreement"][k]["within_tolerance"]]
        lines.append(
            f"- {label}: {len(rows) - len(off)} of {len(rows)} models within tolerance; max rel diff "
            f"{_span([a['max_rel_diff'] for a in agree], '.1%')}, same top-1 class {_span([a['top1_agreement'] for a in agree], '.2%')}; "
            f"test accuracy minus torch int8 {_span(gap, '+.2f')} pt" + (f" (outside: {'all' if len(off) == len(rows) else ', '.join(off)})" if off else "") + ".")
    for group, members in (("with attention", [r for r in rows if r["attention"]]),
                           ("all-conv", [r for r in rows if not r["attention"]])):
        if members:
            lines.append(f"- Models {group} ({len(members)}): max rel diff onnxruntime fused "
                         f"{_span([r['agreement']['onnx']['max_rel_diff'] for r in members], '.1%')}, OpenVINO "
                         f"{_span([r['agreement']['openvino']['max_rel_diff'] for r in members], '.1%')}.")
    warned = sum(r["warning"] is not None for r in rows)
    lines += [f"- `compress_checkpoint` would warn (`int8_agreement_warning`) for {warned} of {len(rows)} models on this host.",
              ""]
    return "\n".join(lines)


if __name__ == "__main__":
    with one_line_on_failed_write():
        ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))  # the first paragraph
        ap.add_argument("--subset", type=int, default=10000, help="training images per model (a fixed random subset)")
        ap.add_argument("--test-images", type=int, default=5000, help="test images (a fixed random subset; 0: all 10,000)")
        ap.add_argument("--name", default="int8_saturation", help="results file stem under experiments/results/")
        ap.add_argument("--render", action="store_true", help="only rewrite <name>.md from <name>.json")
        args = ap.parse_args()
        if args.render:
            write_results(args.name, json.loads((RESULTS / f"{args.name}.json").read_text()), render_md=render, write_json=False)
        else:
            write_results(args.name, main(subset=args.subset, test_size=args.test_images or None), render_md=render)
