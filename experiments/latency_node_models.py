"""Ablation: predict hw=cpu latency from per-node profiles instead of per-unit ones (issue 3, nn-Meter style).

    python experiments/latency_predictor.py --nodes     # once: the per-node profiles of the 150 archs (committed)
    python experiments/latency_node_models.py           # this ablation (reads the committed CSVs; no timing)

Op shapes repeat across archs far more than whole blocks do (the results give the share of held-out segments whose
exact shape is among the fit archs' segments), so this fits one model over *segments*:
the runtime's nodes grouped by the module their name says (a conv, a norm, the attention core, a residual add),
each with the shape of the ops it runs (`nas.latency.ops`).
Nodes the runtime made itself (reorders, pieces of a decomposed LayerNorm) count for the named node before them.

Rows, each fitted on 50 archs' node profiles (`cpu_fit_nodes.csv`) and totals, checked on the other 100 archs:
0. totals only: the per-op-kind linear model on the 50 totals (no profile), for scale;
1. per-segment extra-trees on the segment's shape (fully grown, no bootstrap: a shape seen in the fit archs
   gets its measured mean back; an unseen one an interpolation), on log time;
2. the same plus the segment's neighbours' roles (the runtime's layout choices depend on them);
3. oracle: the held-out archs' own profiled node sums (`cpu_val_nodes.csv`), as in `latency_unit_models.py`;
4. row 2 on segment times rescaled so that each unit sums to its time in the earlier per-unit profile
   (`cpu_*_units.csv`): that profile's sessions sat closer to the committed medians, the node profile gives the split.
Rows 1-4 turn segment sums into a total the same way: a x (sum of segments) + b + c x (number of units), a, b, c >= 0
fitted on the 50 totals, like the per-unit rows. Every row runs against two sets of totals: the committed medians
(`cpu_fit.csv`, `cpu_val.csv`, another session) and the call times of the node-profile session itself; and on the
committed split plus the same 3 other 50/100 splits as `latency_unit_models.py`.
Writes experiments/results/latency/node_models_cpu.{json,md}.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import time
from pathlib import Path

import numpy as np

from _common import one_line_on_failed_write, write_results  # (also puts the project on sys.path)
from latency_unit_models import _totals_fit, prior_hw, resplit, resplits_table, rows_table

OUT = Path(__file__).resolve().parent / "results" / "latency"
KINDS = ("conv", "pwconv", "dwconv", "linear", "matmul", "bn", "ln", "relu", "gelu", "softmax", "add", "pool", "reduce")

# Module scope names in exported node names ('stages', 'stages.2', 'token_mixer', 'fc1'); op names start upper case.
_MODULE = re.compile(r"^[a-z_][a-z0-9_]*(?:\.\d+)?$")
# A reorder the runtime inserted is named '<source>_<layout>_<layout>_<destination>': it counts for its source.
_REORDER = re.compile(r"^(.*?)_[a-zA-Z0-9]+_[a-zA-Z0-9]+_(?:/|[A-Za-z])")
# Exported module paths -> the op names of `nas.latency.ops`.
_RENAME = (("downsample.0", "down.conv"), ("downsample.1", "down.norm"), ("token_mixer", "mixer"), ("stem.0", "stem.conv"),
           ("stem.1", "stem.norm"), ("head_norm", "head.norm"))


def segment_of_node(name: str) -> str | None:
    """The segment a node's name says ('stages.1.blocks.0.mlp.fc1', 'stages.2.blocks.0.mixer', ...), or None."""
    if name == "logits" or name.startswith("logits/"):
        return "head.fc"
    m = _REORDER.match(name)
    name = m.group(1) if m else name
    if not name.startswith("/"):
        return None
    mods: list[str] = []
    op = ""
    for comp in name[1:].split("/"):
        if not _MODULE.match(comp):
            op = comp
            break
        if mods and comp.startswith(mods[-1] + "."):  # 'stages' then 'stages.2': one scope
            mods[-1] = comp
        else:
            mods.append(comp)
    if not mods:
        return None
    seg = ".".join(mods)
    if re.fullmatch(r"stages\.\d+\.blocks\.\d+", seg):  # ops directly in a block: its two residual adds
        seg += ".add2" if op.startswith("Add_1") else ".add1"
    for old, new in _RENAME:
        seg = seg.replace(old, new)
    return seg


def op_segment(op_name: str) -> str:
    """The segment an op of `nas.latency.ops` is measured in: itself, or its mixer for the attention core and the
    pooling's subtraction, or the head norm for the global pool; the input normalisation has its own."""
    parts = op_name.split(".")
    if op_name == "input_norm":
        return "input"
    if op_name == "head.pool":
        return "head.norm"
    if len(parts) == 6 and parts[4] == "mixer" and parts[5] in ("qk", "softmax", "av", "sub"):
        return ".".join(parts[:5])
    return op_name


def segment_times(nodes) -> dict[str, float]:
    """Node times (a `NodeProfile`'s nodes) summed per segment; unnamed nodes count for the named one before them."""
    acc: dict[str, float] = collections.defaultdict(float)
    seg = "input"
    for node in nodes:
        seg = segment_of_node(node.name) or seg
        acc[seg] += node.us
    return dict(acc)


def _role(seg: str) -> str:
    """A segment's role within its unit: 'mlp.fc1', 'mixer.dw', 'down.conv', 'stem.conv', 'head.fc', ..."""
    parts = seg.split(".")
    if parts[0] == "stages":
        return ".".join(parts[4:]) if parts[2] == "blocks" else ".".join(parts[2:])
    return seg


def arch_segments(arch) -> dict[str, np.ndarray]:
    """Each segment of `arch` (in execution order) with its shape: op kinds, work, sizes, resolution, norm, act."""
    from nas.latency.ops import enumerate_ops

    groups: dict[str, list] = collections.defaultdict(list)
    for op in enumerate_ops(arch):
        groups[op_segment(op.name)].append(op)
    res = arch.stage_resolutions()
    out = {}
    for seg, ops in groups.items():
        parts = seg.split(".")
        i = int(parts[1]) if parts[0] == "stages" else (0 if parts[0] in ("stem", "input") else len(arch.stages) - 1)
        s = arch.stages[i]
        mixer = s.mixer if parts[0] == "stages" and parts[2] == "blocks" else ""
        main = max(ops, key=lambda o: o.macs or o.vec_ops)
        kinds = {o.kind for o in ops}
        out[seg] = np.array(
            # Only what the segment's own ops depend on (widths and kernels are in the sizes and work), so that the
            # same op in two different blocks has the same shape.
            [main.kind == k for k in KINDS] + [k in kinds for k in KINDS]
            + [np.log1p(sum(o.macs for o in ops)), np.log1p(sum(o.vec_ops for o in ops)),
               np.log1p(sum(o.in_elems for o in ops)), np.log1p(sum(o.out_elems for o in ops)),
               np.log1p(sum(o.params for o in ops)), res[i], s.heads if mixer == "attn" and seg.endswith("mixer") else 0,
               arch.norm == "ln", arch.act == "gelu", any(o.foldable for o in ops)],
            dtype=float)
    return out


ROLES = ("input", "stem.conv", "stem.norm", "down.conv", "down.norm", "norm1", "mixer", "mixer.pw1", "mixer.act",
         "mixer.dw", "mixer.pw2", "mixer.conv", "mixer.pool", "mixer.qkv", "mixer.proj", "add1", "norm2", "mlp.fc1",
         "mlp.act", "mlp.fc2", "add2", "head.norm", "head.fc")


def _features(arch, *, context: bool) -> tuple[list[str], np.ndarray]:
    segs = arch_segments(arch)
    names = list(segs)
    X = []
    for k, seg in enumerate(names):
        row = [_role(seg) == r for r in ROLES]
        if context:  # the roles of the segments before and after it
            row += [k > 0 and _role(names[k - 1]) == r for r in ROLES] + [k + 1 < len(names) and _role(names[k + 1]) == r for r in ROLES]
        X.append(np.concatenate([np.array(row, dtype=float), segs[seg]]))
    return names, np.array(X)


def _rescaled(times: dict[str, float], unit_times: dict[str, float]) -> dict[str, float]:
    """Segment times scaled per unit so that each unit sums to its time in `unit_times` (another session's profile)."""
    from nas.latency.ops import unit_of

    sums: dict[str, float] = collections.defaultdict(float)
    for seg, us in times.items():
        sums[unit_of(seg)] += us
    return {seg: us * unit_times.get(unit_of(seg), 0.0) / sums[unit_of(seg)] if sums[unit_of(seg)] > 0 else 0.0
            for seg, us in times.items()}


def _rows(hw, archs_f: list, y_f: np.ndarray, archs_v: list, y_v: np.ndarray, profiles: dict,
          units: dict) -> tuple[dict[str, dict], dict]:
    """Each row's metrics for one split: fit on `archs_f` (totals `y_f` in us, their node profiles), check on `archs_v`."""
    from sklearn.ensemble import ExtraTreesRegressor

    from nas.latency import predict_latency_batch
    from nas.latency.fit import fit_profile

    from nas.latency.validate import accuracy_metrics

    rows: dict[str, dict] = {}
    info: dict[str, float] = {}
    rows["0. totals only (per-op-kind linear, for scale)"] = accuracy_metrics(
        predict_latency_batch(archs_v, fit_profile(archs_f, y_f / 1e3, hw).profile), y_v / 1e3)
    n_units = {a.arch_id: len(_units(a)) for a in archs_f + archs_v}
    for name, context, rescale in (("1. per-segment extra-trees on shape", False, False),
                                   ("2. per-segment extra-trees on shape + neighbours' roles", True, False),
                                   ("4. row 2 on segment times rescaled to the per-unit profile's unit times", True, True)):
        X, t = [], []
        unmatched = total = 0.0
        for a in archs_f:
            names, F = _features(a, context=context)
            times = segment_times(profiles[a.arch_id].nodes)
            if rescale:
                times = _rescaled(times, units[a.arch_id])
            unmatched += sum(us for seg, us in times.items() if seg not in names)
            total += sum(times.values())
            X.append(F)
            t += [times.get(seg, 0.0) for seg in names]
        if not rescale:
            info["unmatched_share"] = unmatched / total
        trees = ExtraTreesRegressor(n_estimators=200, min_samples_leaf=1, bootstrap=False, random_state=0)
        trees.fit(np.vstack(X), np.log1p(np.array(t)))

        def seg_sum(a) -> float:
            return float(np.expm1(trees.predict(_features(a, context=context)[1])).sum())

        sums_f = np.array([seg_sum(a) for a in archs_f])
        fit_total = _totals_fit(sums_f, np.array([n_units[a.arch_id] for a in archs_f]), y_f)
        pred = np.array([fit_total(seg_sum(a), n_units[a.arch_id]) for a in archs_v])
        rows[name] = accuracy_metrics(pred / 1e3, y_v / 1e3)
        info["n_segments"] = int(sum(len(x) for x in X))
        if not context and not rescale:  # how often a held-out segment's exact shape was among the fit segments
            seen = {row.tobytes() for row in np.vstack(X)}
            val_rows = np.vstack([_features(a, context=False)[1] for a in archs_v])
            info["seen_shape_share"] = float(np.mean([row.tobytes() in seen for row in val_rows]))

    nodes_f = np.array([sum(n.us for n in profiles[a.arch_id].nodes) for a in archs_f])
    fit_total = _totals_fit(nodes_f, np.array([n_units[a.arch_id] for a in archs_f]), y_f)
    pred = np.array([fit_total(sum(n.us for n in profiles[a.arch_id].nodes), n_units[a.arch_id]) for a in archs_v])
    rows["3. oracle: held-out archs' own profiled node sums"] = accuracy_metrics(pred / 1e3, y_v / 1e3)
    rows["4. row 2 on segment times rescaled to the per-unit profile's unit times"] = rows.pop(
        "4. row 2 on segment times rescaled to the per-unit profile's unit times")
    return rows, info


def _units(arch) -> set[str]:
    from nas.latency.ops import enumerate_ops, unit_of

    return {unit_of(op.name) for op in enumerate_ops(arch)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args(argv)
    from nas.latency.measure import machine_info, read_measurements, read_node_times, read_unit_times

    started = time.perf_counter()
    hw = prior_hw()
    fit_rows, val_rows = read_measurements(OUT / "cpu_fit.csv"), read_measurements(OUT / "cpu_val.csv")
    profiles = {**read_node_times(OUT / "cpu_fit_nodes.csv"), **read_node_times(OUT / "cpu_val_nodes.csv")}
    units = {**read_unit_times(OUT / "cpu_fit_units.csv"), **read_unit_times(OUT / "cpu_val_units.csv")}
    archs_f, archs_v = [r.arch for r in fit_rows], [r.arch for r in val_rows]
    archs = archs_f + archs_v
    totals = {  # us per arch, fit archs first
        "committed medians (`cpu_fit.csv`, `cpu_val.csv`)": np.array([r.median_ms for r in fit_rows + val_rows]) * 1e3,
        "call times of the node-profile session (the `call` rows of `cpu_*_nodes.csv`)":
            np.array([profiles[a.arch_id].call_us for a in archs]),
    }
    variants = {}
    info: dict = {}
    for which, y in totals.items():
        rows, info = _rows(hw, archs_f, y[: len(archs_f)], archs_v, y[len(archs_f):], profiles, units)
        # The same splits as latency_unit_models.py.
        resplits = resplit(lambda *split: _rows(hw, *split, profiles, units)[0], archs, y, len(archs_f))
        variants[which] = {"rows": rows, "resplits": resplits}
    # How far the two sessions' totals agree, arch by arch, after one common scale (the measurement noise here).
    a, b = totals.values()
    ratio = b / a
    info["sessions_within_10pct"] = float(np.mean(np.abs(ratio / np.median(ratio) - 1) <= 0.10))
    info["sessions_median_ratio"] = float(np.median(ratio))
    result = {"command": "python experiments/latency_node_models.py", "machine": machine_info(), "date": time.strftime("%Y-%m-%d"),
              "seconds": time.perf_counter() - started, "n_fit": len(archs_f), "n_val": len(archs_v), **info,
              "variants": variants}
    write_results("node_models_cpu", result, render_md=render_md, folder=OUT)
    return 0


def render_md(r: dict) -> str:
    lines = [
        "# Per-node latency models, hw=cpu: segments of the runtime's node profile (issue 3)", "",
        f"Command: `{r['command']}` (reads the committed CSVs; no timing)  ",
        f"Machine: {r['machine']}; {r['date']}; {r['seconds']:.0f} s", "",
        f"Fit on {r['n_fit']} archs ({r['n_segments']} segment times from `cpu_fit_nodes.csv`; "
        f"{r['unmatched_share']:.2%} of their node time fell in no segment of the arch), checked on the other {r['n_val']} "
        f"archs. {r['seen_shape_share']:.0%} of the held-out archs' segments have the exact shape of a fit segment. "
        "See the module docstring for each row.", "",
        f"The node profiles were taken in a later session than the committed medians. Arch by arch, that session's call "
        f"times agree with the committed medians within +-10% for {r['sessions_within_10pct']:.0%} of the 150 archs "
        f"(after one common scale, {r['sessions_median_ratio']:.3f}). So each table is given twice: against the committed medians, "
        "and against the call times of the node-profile session itself.",
    ]
    for which, v in r["variants"].items():
        k = len(v["resplits"])
        lines += ["", f"## Totals: {which}", "", *rows_table(v["rows"]), "",
                  f"The same rows on {k} other 50/100 splits of the 150 archs (seeds 0-{k - 1}, as in `unit_models_cpu.md`): "
                  "within +-10% on each, then the mean of the committed split and these.", "",
                  *resplits_table(v["rows"], v["resplits"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with one_line_on_failed_write():
        sys.exit(main())
