"""The fixed files of a run folder, computed from an Optuna study.

Run folder layout (`runs/<study_name>/`):
  study.db                 Optuna SQLite storage (default storage)
  config.yaml, search.log  the resolved config and the log of every run/worker (nas.search)
  trials/<arch_id>.pt      weights of every trained candidate (so the front needs no retraining)
  trials.csv               one row per trial
  pareto.csv, pareto.json  the non-dominated feasible trials, by latency (pareto.csv: with the int8 model of each
                           compressed member, from its compressed_metrics.json)
  checkpoints/<arch_id>/   per Pareto member: model.pt, arch.json, metrics.json, model.onnx, test_predictions.csv
                           (+ the compressed files of compress.pipeline when compression ran; final_train.partial.pt
                           while its final training has not finished, `PARTIAL_FILE`; .member.lock only while a
                           process final-trains, compresses or writes the member, `nas.checkpoint.member_lock`)
  retired/<arch_id>/       a member's folder as it was, moved here (not deleted) when it fell off the front or its
                           model.pt was replaced by other weights (`write_run_files`, `materialize_member`); .2, .3, ...
                           where the name is taken; nothing reads it
  report.html, report.md, pareto.png, latency_breakdown.png, mixers.png   (nas.report)
  .running.<pid>@<host>~<pid ns>   a search that has not finished (nas.run_folder.mark_started; the report names it)
  .files.lock, .config.yaml.lock, .replacing.lock   empty files a search locks (flock) while it writes the run
                           folder's files, keeps a hand edit of config.yaml aside, or puts in place the files a
                           killed run left; they stay
"""

from __future__ import annotations

import contextlib
import copy
import csv
import datetime as _dt
import functools
import hashlib
import io
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState
import torch
from torch import nn

from nas.arch import ArchConfig
from nas.checkpoint import (
    atomic_write_bytes, atomic_write_json, export_onnx, file_sha256, io_contract, json_bytes, load_checkpoint, member_lock,
    onnx_logits, onnx_metadata, read_checkpoint, replacing, replacing_described, replacing_folder, replacing_together,
    retire_files, retire_folder, save_checkpoint, scratch_folder, torch_logits,
)
from nas.config import (RunConfig, TrainConfig, changed_from_file, datasheet_warning, hw_profiles, smoke_file,
                        smoke_groups)
from nas.data import Dataset, absolute_root, per_class_test_images, preprocessing, split_digest, split_record
from nas.latency import describe_predictor, predict_latency
from nas.layout import COMPRESSED_FILES, COMPRESSED_JSON, RETIRED_FOLDER
from nas.latency.hardware import HardwareProfile, extent_warning, input_warning
from nas.latency.measure import (busy_timing, cpu_signature, host_mismatch, machine_info, time_onnx,
                                 uncalibrated_warning)
from nas.errors import CheckpointError, ConfigError, counted, module_logger, readable_text
from nas.memory import eval_batch_size, memory_budget, training_refusal
from nas.model import build_model
from nas.overrides import shell_override
from nas.pareto_csv import PARETO_CSV, fmt as _fmt, pareto_csv_bytes
from nas.rebuild import flat_settings, override_value, searched_compress
from nas.report import training_text
from nas.stats import interval_of, paired_change, share_interval
from nas.study import INTERRUPTED_REASON, SPEED_SETTINGS
from nas.train import (FitState, LossFn, accuracy, optimizer_state_problem, per_class_accuracy, resolve_precision,
                       resume_problem, rng_state_problem, seed_everything, train_candidate)

log = module_logger(__name__)  # lines naming a file that is not UTF-8 written readably (ReadableNames)

TRIAL_COLUMNS = (
    "number", "state", "arch_id", "val_acc", "latency_ms", "params", "macs", "feasible", "is_pareto",
    "duration_s", "norm", "act", "n_stages", "mixers", "summary", "fail_reason", "early_stop", "duplicate_of",
    "train_precision", "arch_json",
)


@dataclass(frozen=True)
class TrialRecord:
    """What the run folder keeps of one trial (read from the trial's user attributes)."""

    number: int
    state: str
    arch: ArchConfig | None
    val_acc: float | None
    latency_ms: float | None
    params: int | None
    macs: int | None
    feasible: bool
    duration_s: float | None
    fail_reason: str
    early_stop: str = ""  # why proxy training stopped early (search.early_stop); val_acc is then from that point
    # The earlier trial of the same arch whose result this one reuses (it trained nothing): its number, "?" for trials
    # recorded before the number was kept, "" when it trained itself.
    duplicate_of: str = ""
    train_precision: str = ""  # what the proxy training ran in (fp32 | bf16): train.precision=auto depends on the CPU

    @property
    def arch_id(self) -> str:
        return self.arch.arch_id if self.arch else ""


def trial_record(t: FrozenTrial, budget_ms: float | None = None) -> TrialRecord:
    """Turn an Optuna trial into a `TrialRecord` (tolerates trials that died before sampling).

    `budget_ms` is the run's current `search.latency_budget_ms`: a trial over it is infeasible even if it finished under
    a looser budget (a study resumed with a tighter one), so the front and pareto.json never exceed the budget they
    state."""
    attrs = t.user_attrs
    arch = ArchConfig.from_json(attrs["arch"]) if "arch" in attrs else None
    val_acc = float(t.values[0]) if t.state == TrialState.COMPLETE and t.values else None
    duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
    return TrialRecord(
        number=t.number, state=t.state.name, arch=arch, val_acc=val_acc,
        latency_ms=attrs.get("latency_ms"), params=attrs.get("params"), macs=attrs.get("macs"),
        feasible=all(c <= 0 for c in t.constraints.values())
        and (budget_ms is None or attrs.get("latency_ms") is None or attrs["latency_ms"] <= budget_ms),
        duration_s=duration,
        fail_reason=str(attrs.get("fail_reason", "")),
        early_stop=str(attrs.get("early_stop", "")) if t.state == TrialState.COMPLETE else "",
        duplicate_of=str(attrs.get("duplicate_of", "?" if attrs.get("duplicate") else "")),
        train_precision=str(attrs.get("train_precision", "")),
    )


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points for (maximise first, minimise second).

    A point is dominated if another is at least as good in both and better in one. Exact
    duplicates are kept once (the first).
    """
    front: list[int] = []
    seen: set[tuple[float, float]] = set()
    for i, (acc, lat) in enumerate(points):
        dominated = any(
            (a >= acc and l <= lat) and (a > acc or l < lat) for j, (a, l) in enumerate(points) if j != i
        )
        if not dominated and (acc, lat) not in seen:
            seen.add((acc, lat))
            front.append(i)
    return sorted(front, key=lambda i: points[i][1])


def hypervolume(points: Sequence[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by `points` (maximise first, minimise second) and bounded by `ref`.

    `ref` = (worst accuracy, worst latency) that still counts: points not better than it in both
    objectives add nothing. Units are accuracy x ms; compare hypervolumes only under one `ref`.
    """
    ref_acc, ref_lat = ref
    inside = sorted((lat, acc) for acc, lat in points if acc > ref_acc and lat < ref_lat)
    area, best_acc = 0.0, ref_acc
    # Sweep from fast to slow: each point adds the strip it improves accuracy by, up to ref latency.
    for lat, acc in inside:
        if acc > best_acc:
            area += (acc - best_acc) * (ref_lat - lat)
            best_acc = acc
    return area


def front_records(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Pareto members among completed, feasible trials, one per architecture, by latency."""
    by_arch: dict[str, TrialRecord] = {}
    for r in records:
        if r.state == "COMPLETE" and r.feasible and r.val_acc is not None and r.arch_id not in by_arch:
            by_arch[r.arch_id] = r
    candidates = list(by_arch.values())
    idx = pareto_front([(r.val_acc, r.latency_ms) for r in candidates])  # type: ignore[misc]
    return [candidates[i] for i in idx]


def trials_csv(records: Sequence[TrialRecord], front_ids: set[str]) -> str:
    """trials.csv text: one row per trial, columns `TRIAL_COLUMNS`."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TRIAL_COLUMNS)
    for r in records:
        a = r.arch
        w.writerow([
            r.number, r.state, r.arch_id, _fmt(r.val_acc), _fmt(r.latency_ms), _fmt(r.params), _fmt(r.macs),
            r.feasible, bool(a) and r.state == "COMPLETE" and r.arch_id in front_ids, _fmt(r.duration_s),
            a.norm if a else "", a.act if a else "", len(a.stages) if a else "",
            "-".join(a.mixers) if a else "", a.summary() if a else "", _fail_reason(r, records), r.early_stop, r.duplicate_of,
            r.train_precision, a.to_json() if a else "",
        ])
    return readable_text(buf.getvalue())  # a fail_reason naming a file that is not UTF-8, as test_predictions.csv


def _fail_reason(record: TrialRecord, records: Sequence[TrialRecord]) -> str:
    """`record`'s fail_reason for trials.csv: an interrupted trial (`INTERRUPTED_REASON`) that a later trial of its
    arch_id finished names that trial instead of "rerun the same command to resume", which the rerun had done."""
    if record.fail_reason != INTERRUPTED_REASON or not record.arch_id:
        return record.fail_reason
    retried = next((r.number for r in records if r.state == "COMPLETE" and r.arch_id == record.arch_id
                    and r.number > record.number), None)
    if retried is None:
        return record.fail_reason
    return f"{INTERRUPTED_REASON.split(';')[0]}; run again as trial {retried}"


PREDICTIONS_FILE = "test_predictions.csv"
PREDICTION_COLUMNS = ("index", "label", "predicted")
# Image-folder data only, after the others (a reader that takes the columns by position reads the first three as ever):
# the file behind each row, relative to data.root. Idx data (Fashion-MNIST) has no files, so its files keep the three.
PATH_COLUMN = "path"


def test_predictions_csv(predicted: np.ndarray, truth: np.ndarray, classes: Sequence[str],
                         paths: Sequence[str] | None = None) -> str:
    """test_predictions.csv text: per test image, in the test split's order, its true and predicted class name, and
    where `paths` are given (an image folder's test split, `Split.paths`) its file relative to data.root. A file or class
    name that is not UTF-8 is written as `nas.errors.readable_text` shows it (`caf\\xe9.png`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    rows = ((i, classes[t], classes[p]) for i, (t, p) in enumerate(zip(truth.tolist(), predicted.tolist())))
    if paths is None:
        w.writerow(PREDICTION_COLUMNS)
        w.writerows(rows)
    else:
        w.writerow((*PREDICTION_COLUMNS, PATH_COLUMN))
        w.writerows((*row, path) for row, path in zip(rows, paths))
    return readable_text(buf.getvalue())


def read_test_predictions(path: Path, truth: np.ndarray, classes: Sequence[str],
                          paths: Sequence[str] | None = None) -> np.ndarray | None:
    """The predicted class indices of a test_predictions.csv, or None when it is missing or was made on other test
    images (another length, other labels or class names, or, where both the file and `paths` name the files, other
    files): such a file cannot be compared image by image. A file without the path column (idx data, or written before
    2026-12-06) is compared by its labels alone."""
    index = {readable_text(name): i for i, name in enumerate(classes)}  # the names as `test_predictions_csv` wrote them
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        labels = [index[r["label"]] for r in rows]
        predicted = np.array([index[r["predicted"]] for r in rows], dtype=np.int64)
    except (OSError, KeyError, TypeError, csv.Error, UnicodeDecodeError):
        return None
    if labels != truth.tolist():
        return None
    written = [readable_text(p) for p in paths] if paths is not None else None  # as test_predictions_csv wrote them
    if written is not None and rows and rows[0].get(PATH_COLUMN) is not None and [r[PATH_COLUMN] for r in rows] != written:
        return None
    return predicted


def compare_members(members: Sequence[dict[str, Any]], predicted: dict[str, np.ndarray | None],
                    truth: np.ndarray) -> None:
    """Add to each pareto.json member (in latency order) how it differs, image by image, from the next faster member
    that has test predictions (`vs_faster`) and from the member with the best test accuracy (`vs_best`; the faster one
    of a tie): the other's arch_id, and `nas.stats.paired_change` from the other to this one (`now_wrong`: test images
    the other gets right and this one wrong). None where there is no other member or a member has no predictions to
    compare."""
    def change(other: dict[str, Any] | None, member: dict[str, Any]) -> dict[str, Any] | None:
        if other is None or other is member:
            return None
        before, after = predicted.get(other["arch_id"]), predicted.get(member["arch_id"])
        if before is None or after is None:
            return None
        return {"arch_id": other["arch_id"], **paired_change(before, after, truth)}

    scored = [m for m in members if m.get("test_acc") is not None]
    best = max(scored, key=lambda m: m["test_acc"], default=None)  # max keeps the first (faster) of a tie
    for i, m in enumerate(members):
        # one faster member without predictions must not leave the comparison blank: the one before it is compared, and
        # `arch_id` says which (the report names it)
        faster = next((o for o in reversed(members[:i]) if predicted.get(o["arch_id"]) is not None), None)
        m["vs_faster"] = change(faster, m)
        m["vs_best"] = change(best, m)


@dataclass(frozen=True)
class MemberMetrics:
    """Test-time numbers of one Pareto member (computed once, cached in its metrics.json)."""

    test_acc: float
    test_acc_onnx: float | None
    onnx_max_abs_diff: float | None
    measured_latency_ms: float | None  # model.onnx timed on this host, for profiles with a runtime here
    test_acc_per_class: dict[str, float | None] | None = None  # None in metrics.json written before 2026-12-04
    test_acc_ci95: tuple[float, float] | None = None  # None in metrics.json written before 2026-12-05


PARTIAL_FILE = "final_train.partial.pt"
"""A Pareto member's final training as of its last finished epoch, in the member's folder until that training's
weights are written (`final_train(partial=...)`): a rerun after a stop (Ctrl-C, SIGTERM, kill -9, the OOM killer) goes
on from there instead of from epoch 0. A run that does not train the member (final_train=none, or the recipe of the
weights it has) leaves it, for a later run of its recipe, and logs one line naming it; one of the recipe the member's
model.pt already has (a run stopped after writing the member's files, before deleting it) is finished work's leftover,
which that run deletes, in one line. Deleting it is safe: that training then starts from epoch 0."""
_PARTIAL_FORMAT = "metaformer-nas/final-train-partial-v1"


def _partial_key(arch: ArchConfig, data: Dataset, run: RunConfig, *, seed: int,
                 teachers: Sequence[nn.Module], loss_fn: LossFn | None = None) -> dict[str, Any]:
    """What a final training's `PARTIAL_FILE` is valid for: all that sets its weights, as JSON values. Not the speed
    settings (a rerun with other threads goes on), but the precision `auto` became on this CPU, and, with `teachers`,
    the distillation settings `loss_fn` carries (`compress.recover.teacher_loss`: alpha, temperature, and whether its
    teachers run in bf16)."""
    recipe = run.final_train
    key = {"arch": arch.arch_id, "seed": seed, "recipe": _recipe(asdict(recipe)),
           "precision": resolve_precision(recipe.precision),
           # the data group's augmentation, where the recipe leaves it to the data (max_shift: null)
           "augment": {"hflip": run.data.hflip, "max_shift": run.data.max_shift},
           "teachers": [t.arch.arch_id for t in teachers], "metric": data.metric.value,
           "train_images": split_digest(data.train)}  # other images (data.root, a split setting) train otherwise
    if teachers:  # a teacher retrained since (same arch, other weights) distills otherwise; absent without teachers, so
        # that a file written before the entry existed, of a training without teachers, still resumes
        key["teacher_weights"] = [_weights_digest(t) for t in teachers]
        # another alpha, temperature or teacher precision trains otherwise: a file without them (written before the
        # entry existed) is then of "another final training" and starts again, as one with other settings does
        key["distillation"] = getattr(loss_fn, "distillation", None)
    return json.loads(json.dumps(key))  # as read back (Precision enums as their names)


def _weights_digest(model: nn.Module) -> str:
    """A short digest (sha256, 16 hex digits) of `model`'s state_dict: each entry's name, dtype, shape and values, in
    order. The same in any memory layout (`compress.recover.teacher_loss(fast=True)` makes its teachers channels-last)
    and whether or not the weights require gradients: other weights of the same arch give another digest."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the bytes as they are, no copy
    return h.hexdigest()[:16]


def _teacher_archs(teachers: Sequence[ArchConfig | nn.Module], *, partial: Path | None) -> list[ArchConfig]:
    """The archs of `final_train`'s `teachers`; `ValueError` in one line for a teacher that is neither an `ArchConfig`
    nor a model carrying its `.arch`, and, with a `partial` file, for a teacher given by its arch alone: the file's key
    needs its weights (`_partial_key`)."""
    archs = []
    for i, teacher in enumerate(teachers):
        if isinstance(teacher, ArchConfig):
            if partial is not None:
                raise ValueError(f"teachers[{i}] is an ArchConfig ({teacher.arch_id}): final_train(partial=...) needs the "
                                 "teacher models (as nas.checkpoint.load_checkpoint returns them), whose weights tell a "
                                 "retrained teacher from the one a stopped training started with")
            archs.append(teacher)
        elif isinstance(teacher, nn.Module) and isinstance(getattr(teacher, "arch", None), ArchConfig):
            archs.append(teacher.arch)
        else:
            raise ValueError(f"teachers[{i}] is a {type(teacher).__name__}: allowed are models carrying their .arch "
                             "(as nas.checkpoint.load_checkpoint returns them) and ArchConfigs")
    return archs


def _partial_differences(found: Any, key: dict[str, Any]) -> list[str]:
    """The entries of `key` (one level into its dicts: `recipe.lr`) that `found` gives otherwise."""
    found = found if isinstance(found, dict) else {}
    out = []
    for name, value in key.items():
        then = found.get(name)
        if isinstance(value, dict) and isinstance(then, dict):
            out += [f"{name}.{k}" for k in sorted(set(value) | set(then)) if value.get(k) != then.get(k)]
        elif then != value:
            out.append(name)
    return out


def _read_partial(path: Path, *, key: dict[str, Any], model: nn.Module, epochs: int, train_images: int,
                  batch_size: int) -> FitState | None:
    """The `FitState` a final training's `PARTIAL_FILE` holds where it is one of the training `key` describes, of
    `model`'s weights, its counts those of that training's `epochs` over `train_images` images in batches of
    `batch_size`; None where there is none, and, with one warning naming it and why, where it is unreadable (cut
    short, damaged, counts edited by hand) or of another training (a changed recipe): it is then overwritten by the
    training's first epoch."""
    if not path.is_file():
        return None
    try:
        state, found = _partial_content(path, model=model)
    except ValueError as e:
        log.warning("%s is ignored and will be overwritten: it cannot be read as a final training's resume state (%s)",
                    path, e)
        return None
    if differences := _partial_differences(found, key):
        log.warning("%s is ignored and will be overwritten: it is of another final training (it differs in %s)",
                    path, ", ".join(differences))
        return None
    # after the key: counts of another recipe's epochs are that recipe's, said above; here they are of this one's
    if (problem := resume_problem(state, epochs=epochs, train_images=train_images, batch_size=batch_size)) is not None:
        # `fit` would refuse them with its own ValueError, deep in a traceback, instead of starting again
        log.warning("%s is ignored and will be overwritten: it cannot be read as a final training's resume state "
                    "(its counts are damaged: %s)", path, problem)
        return None
    return state


def _of_recipe(path: Path, *, arch: ArchConfig, recipe: dict[str, Any] | None) -> bool:
    """Whether the `PARTIAL_FILE` at `path` is of a final training of `arch` with `recipe` (its speed settings aside),
    from its key alone; False for no `recipe` and for a file that cannot be read. The file is three times the size of
    the model.pt it trains: memory-mapped (`mmap=True`), torch.load reads its key, not its weights and moments."""
    if recipe is None:
        return False
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        found = json.loads(payload["key"])
    except Exception:  # cut short, not torch's zip format, damaged: not known to be finished work; left, as before
        return False
    return (isinstance(found, dict) and found.get("arch") == arch.arch_id
            and found.get("recipe") == json.loads(json.dumps(_recipe(recipe))))  # as the key holds it (`_partial_key`)


def _partial_content(path: Path, *, model: nn.Module) -> tuple[FitState, Any]:
    """The state and key a `PARTIAL_FILE` holds; `ValueError` in words where it holds none of `model`'s."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # cut short, random bytes, pickled code that weights_only refuses, unreadable, ...
        raise ValueError(f"torch.load: {type(e).__name__}") from None
    if not isinstance(payload, dict) or payload.get("format") != _PARTIAL_FORMAT:
        raise ValueError(f"not of format {_PARTIAL_FORMAT}")
    try:
        state, found = FitState(**payload["state"]), json.loads(payload["key"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"its entries are damaged: {type(e).__name__}") from None
    shapes = {k: tuple(getattr(v, "shape", ())) for k, v in state.model.items()} if isinstance(state.model, dict) else None
    if shapes != {k: tuple(v.shape) for k, v in model.state_dict().items()}:
        raise ValueError("its weights are not of this arch")
    # hand-made or damaged where torch.load still reads it: `fit` would fail putting them back, deep in a traceback
    counts = [state.epochs_done, state.step, state.images_seen]
    if (any(type(n) is not int or n < 0 for n in counts)
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (state.seconds, state.train_loss))):
        raise ValueError("its counts are damaged")
    if (problem := rng_state_problem(state.rng) or optimizer_state_problem(state.optimizer, model)) is not None:
        raise ValueError(problem)
    return state, found


def _write_partial(path: Path, state: FitState, *, key: dict[str, Any], failed: list[str]) -> None:
    """`state` with its `key` written to `path` atomically: a stop while writing leaves the previous epoch's file.

    A write that fails (a full disk, a quota, a read-only folder) is said in one warning per training, the first
    (`failed` holds what went wrong), and the training goes on: the file only spares a rerun the finished epochs, and
    raising here lost the epochs trained since the last file written, and every epoch still to come, to a file that
    is three times the size of the `model.pt` the training is there to write (weights and two AdamW moments). A later
    epoch tries again (space freed since); the file on disk stays the last one written, of this training."""
    # by field, not dataclasses.asdict: that deep-copies every tensor, weights and optimizer moments, each epoch
    payload = {"format": _PARTIAL_FORMAT, "key": json.dumps(key),
               "state": {f.name: getattr(state, f.name) for f in fields(state)}}
    try:
        with replacing(path) as tmp:
            torch.save(payload, tmp)
    except OSError as e:
        if not failed:
            log.warning("could not write %s (%s): the final training goes on, but a stop before it ends goes on from "
                        "the last epoch saved there (if any), not from epoch %d", path, e.strerror or e, state.epochs_done)
        failed.append(str(e))


def final_train(arch: ArchConfig, data: Dataset, run: RunConfig, *, seed: int, loss_fn: LossFn | None = None,
                teachers: Sequence[ArchConfig | nn.Module] = (), partial: Path | None = None,
                ) -> tuple[nn.Module, dict[str, Any]]:
    """Train `arch` from scratch with the `final_train` recipe (seeded like its trial); returns the model
    and what metrics.json records of it. `loss_fn` replaces the recipe's loss (e.g. distillation from a teacher:
    pass the `teachers` it runs, as models carrying their `.arch` as `nas.checkpoint.load_checkpoint` returns them, or
    without `partial` their `ArchConfig`s). `ConfigError` before any training when its batch would not fit
    `search.memory_budget_gb` (`nas.memory`), the teachers' forward pass beside the student's step counted.

    `partial` (the member's `PARTIAL_FILE`): where the training's state is saved after every epoch, and where a
    training of the same arch, seed, recipe (its speed settings aside), teachers (their archs and weights: a teacher
    retrained since is another one), distillation settings (those `compress.recover.teacher_loss` gives its `loss_fn`:
    alpha, temperature, bf16 teachers) and training images goes on from instead of starting again (a stop during one
    of a member's long final trainings lost every finished epoch); the caller deletes it once the weights are written.
    Only for the recipe's loss or a distillation from `teachers` by `teacher_loss`: the file cannot tell other
    `loss_fn`s apart."""
    teacher_archs = _teacher_archs(teachers, partial=partial)
    recipe, budget = run.final_train, memory_budget(run.search.memory_budget_gb)
    if budget is not None:
        images = min(len(data.train), recipe.subset or len(data.train))
        batch = min(recipe.batch_size, images)
        # compress.recover.teacher_loss runs its teachers one after another, each freeing its activations but its
        # logits before the next starts: the largest one's forward pass is what waits beside the student's step
        refusal = training_refusal(arch, batch_size=batch, budget_bytes=budget, setting="final_train.batch_size",
                                   teachers=teacher_archs)
        if refusal is not None:  # the kernel would kill the process without a word; finished members are kept
            raise ConfigError(f"final training of Pareto member {arch.arch_id}: {refusal}")
        recipe = replace(recipe, eval_batch_size=eval_batch_size(arch, batch_size=recipe.eval_batch_size, budget_bytes=budget))
    seed_everything(seed)
    model = build_model(arch)
    model.set_normalization(data.mean, data.std)
    # as the report's 'Weights tested' says it: final_train=smoke's "2 epochs" are of 512 images, not of the whole split
    log.info("final training of %s: %s", arch.arch_id,
             training_text(epochs=recipe.epochs, subset=recipe.subset, train_images=len(data.train)))
    resume, on_state = None, None
    if partial is not None:
        # teachers as models here (`_teacher_archs`)
        key = _partial_key(arch, data, run, seed=seed, teachers=teachers, loss_fn=loss_fn)
        # the images `train_candidate` trains on (`subset_split`), which the file's counts are of
        train_images = len(data.train) if recipe.subset is None else min(recipe.subset, len(data.train))
        if (resume := _read_partial(partial, key=key, model=model, epochs=recipe.epochs, train_images=train_images,
                                    batch_size=recipe.batch_size)) is not None:
            log.info("resuming final training of %s at epoch %d/%d", arch.arch_id, resume.epochs_done, recipe.epochs)
        on_state = functools.partial(_write_partial, partial, key=key, failed=[])
    result = train_candidate(model, data, recipe, augment=run.data, seed=seed, loss_fn=loss_fn,
                             on_state=on_state, resume=resume)
    model.eval()
    model.meta = {"seed": seed, "val_acc": result.val_acc, "dataset": data.name, "classes": list(data.classes),
                  "metric": data.metric.value, "data_root": absolute_root(run.data.root)}  # as a trial's (nas.search)
    return model, {"epochs": run.final_train.epochs, "val_acc": result.val_acc, "seconds": result.seconds,
                   "images_per_s": result.images_per_s, "precision": result.precision}


def _recipe(recipe: dict[str, Any] | None) -> dict[str, Any] | None:
    """A final-training recipe without the settings that change only its speed (`nas.study.SPEED_SETTINGS`)."""
    if recipe is None:
        return None
    return {k: v for k, v in recipe.items() if k not in SPEED_SETTINGS["train"]}


def _retraining_text(cached: dict[str, Any], *, final: dict[str, Any]) -> str | None:
    """Why a member whose metrics.json is `cached` is final-trained again with the recipe `final` (`TrainConfig` as a
    dict), in words: the recipe's settings its model.pt was trained with otherwise ("its model.pt was final-trained with
    final_train.epochs=2, this run's recipe has final_train.epochs=30"), or that it held the search's proxy weights; None for a member
    without such a record (a new member, or one whose files are gone). Speed settings aside, as `materialize_member`
    compares them."""
    if cached.get("arch_id") is None:
        return None
    done = _recipe((cached.get("final_train") or {}).get("recipe"))
    if done is None:
        return "its model.pt held the search's proxy weights (final_train=none)"
    want = _recipe(final) or {}
    changed = [k for k in {**want, **done} if want.get(k) != done.get(k)]
    if not changed:
        return None
    then = " ".join(f"final_train.{k}={override_value(done.get(k))}" for k in changed)
    now = " ".join(f"final_train.{k}={override_value(want.get(k))}" for k in changed)
    return f"its model.pt was final-trained with {then}, this run's recipe has {now}"


def smoke_changed(run: RunConfig, groups: Sequence[str]) -> list[str]:
    """The settings of the smoke `groups` (`smoke_groups`) whose values in `run` are not their smoke file's, each as a
    command line sets it (`final_train.epochs=3`; `nas.rebuild.override_value`), the settings that change no accuracy
    aside (`nas.config.smoke_file`): chosen beside `final_train=smoke`, they make another recipe than its file's, and
    the report names them with it. [] where none is (outside a Hydra run a group is smoke only where none is)."""
    changed = []
    for group in groups:
        node = getattr(run, group)
        if (smoke := smoke_file(group, node)) is None:
            continue
        theirs = flat_settings(asdict(smoke))
        changed += [f"{group}.{key}={override_value(value)}" for key, value in flat_settings(asdict(node)).items()
                    if theirs.get(key) != value]
    return changed


def record_of_test_images(*, data: Dataset, run: RunConfig) -> dict[str, Any]:
    """metrics.json's `test_images`, which test images a member's test accuracies are of: `compress.run` refuses to
    test the model on others (another split of the folder would hand it images it was trained on), naming the classes
    whose test images changed from `per_class` (beside the class names of "output"; from 2026-12-06). The same for every
    member of a run: `write_run_files` makes it once and hands it to each `materialize_member` (hashing the test images,
    class by class, for each member repeated the same work). Not named test_*: pytest would collect it where imported."""
    return {"count": len(data.test), "digest": split_digest(data.test), "split": split_record(run.data, data),
            "per_class": per_class_test_images(data)}


def final_trained_otherwise(run_dir: Path, final_train: TrainConfig) -> dict[str, Any]:
    """{arch_id: its recorded final_train epochs} of the run folder's members whose weights were final-trained with
    another recipe than `final_train` (its speed settings aside), which `materialize_member` would train again from
    scratch; {} for `final_train=none` (a member keeps its weights then). Unreadable metrics.json files are skipped."""
    if not final_train.epochs:
        return {}
    want = _recipe(asdict(final_train))
    out: dict[str, Any] = {}
    for path in sorted((run_dir / "checkpoints").glob("*/metrics.json")):
        try:
            done = (json.loads(path.read_text()).get("final_train") or {}).get("recipe")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(done, dict) and _recipe(done) != want:
            out[path.parent.name] = done.get("epochs")
    return out


def train_seed(arch: ArchConfig, *, search_seed: int) -> int:
    """The seed a search trains `arch` with (and a member's final training starts from): same architecture and same
    search.seed give the same weights, so a re-proposed architecture reuses its result exactly."""
    return int(hashlib.sha1(f"{arch.arch_id}:{search_seed}".encode()).hexdigest()[:8], 16)


def _unusable(path: Path) -> str | None:
    """Why the checkpoint at `path` cannot be read ('missing', 'damaged (<why>)'); None when it can."""
    if not path.is_file():
        return "missing"
    try:
        read_checkpoint(path)
    except CheckpointError as e:
        return f"damaged ({e})"
    return None


def _trial_seed(path: Path, arch: ArchConfig, *, search_seed: int) -> int:
    """The seed the trial's checkpoint at `path` records, read once (`_unusable` then `read_checkpoint` read the file,
    weights and all, twice); where it is missing or damaged, the seed the search trains `arch` with (`train_seed`)."""
    if path.is_file():  # as `_unusable` judges it: a folder under that name is no trial's file
        try:
            return int(read_checkpoint(path)[2].get("seed", 0))
        except CheckpointError:  # damaged
            pass
    return train_seed(arch, search_seed=search_seed)


def materialize_member(run_dir: Path, record: TrialRecord, data: Dataset, run: RunConfig, *,
                       train: bool = True, test_images: dict[str, Any] | None = None,
                       ) -> tuple[dict[str, Any], np.ndarray] | None:
    """Write checkpoints/<arch_id>/ for one Pareto member and return its metrics.json content and its test predictions
    (test_predictions.csv); None (with a warning) when its folder is not up to date and the trial's weights to make it
    from are missing. With `train=False` (the search was interrupted) a member whose folder needs a final training is
    left out instead (None), for the rerun to train. A member made again (another final_train recipe) keeps its old
    files, whole, until the new ones are complete: a stop during its training leaves it as it was, usable and listed by
    a rerun with final_train=none. Once they are, its folder as it was (old model.pt, compressed files) moves to the
    run's retired/<arch_id>/ (`nas.checkpoint.replacing_folder`), said in search.log: replaced weights are never
    deleted. `test_images`: `record_of_test_images(data=data, run=run)`, made here when None (a caller writing several
    members makes it once).

    It works under the member folder's `nas.checkpoint.member_lock`: a process compressing the member meanwhile
    (`python -m compress.run` of it) is waited for, and the folder is judged once it has finished; the weights it
    compresses are not replaced under it."""
    assert record.arch is not None
    folder = run_dir / "checkpoints" / record.arch.arch_id
    made = [p for p in (folder.parent, folder) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)  # for its lock (the folder is written unless the member is left out)
    except OSError:  # a run folder that cannot be written: the writes below fail as before, naming their file
        pass
    try:
        with member_lock(folder, doing="making its files"):
            return _materialize_member(run_dir, record, data, run, train=train, test_images=test_images)
    finally:
        for p in reversed(made):  # a member left out (nothing written) leaves no empty folder behind
            try:
                p.rmdir()
            except OSError:  # not empty: written
                pass


def _materialize_member(run_dir: Path, record: TrialRecord, data: Dataset, run: RunConfig, *, train: bool,
                        test_images: dict[str, Any] | None) -> tuple[dict[str, Any], np.ndarray] | None:
    """`materialize_member` under the member's lock."""
    assert record.arch is not None
    arch = record.arch
    folder = run_dir / "checkpoints" / arch.arch_id
    metrics_path = folder / "metrics.json"
    source = run_dir / "trials" / f"{arch.arch_id}.pt"
    cached: dict[str, Any] = {}
    if metrics_path.is_file():
        try:
            cached = json.loads(metrics_path.read_text())
        except json.JSONDecodeError:
            cached = {}
    final = asdict(run.final_train) if run.final_train.epochs else None
    done = (cached.get("final_train") or {}).get("recipe")
    # final_train=none trains nothing: a member already final-trained keeps those weights (minutes of training), as
    # a report rebuilt with final_train=none only to skip training expects; replacing them by the proxy's lost them.
    kept_final = final is None and done is not None
    # model.pt holds the weights this run wants: only what is made from them may be missing (model.onnx deleted by
    # hand, its measured latency), and is made again from them rather than by training the member again (minutes, and
    # new weights would make the compression redo its work too)
    pt_problem = _unusable(folder / "model.pt")
    weights_kept = (
        cached.get("arch_id") == arch.arch_id and cached.get("test_acc") is not None
        and cached.get("metric", "accuracy") == data.metric.value  # its accuracies are scored the same way
        # same weights: trained with this recipe (its speed settings aside: a worker with other threads retrains nothing)
        and (_recipe(done) == _recipe(final) or kept_final)
        # readable: one cut short (a copy, the disk) taken as up to date stayed broken, and the compression that could not
        # load it deleted the member's int8 files
        and pt_problem is None
    )
    if cached and pt_problem not in (None, "missing"):
        log.warning("Pareto member %s is made again: its model.pt is %s", arch.arch_id, pt_problem)
    up_to_date = (
        weights_kept
        and (not run.search.export_onnx or (folder / "model.onnx").is_file())
        and (not (run.hw.runtime and run.search.export_onnx) or cached.get("measured_latency_ms") is not None)
    )
    truth = data.test.y.numpy()
    # what the member's files take and give: metrics.json states it, and model.onnx carries it in its metadata
    contract = io_contract(arch=arch, classes=data.classes, mean=data.mean, std=data.std,
                           preprocessing=preprocessing(run.data, in_chans=arch.in_chans, img_size=arch.img_size),
                           background=run.data.background, image_counts=data.image_counts)
    logits: np.ndarray | None = None
    # the test images in batches whose forward pass fits the memory budget (the same logits as one large batch)
    batch = eval_batch_size(arch, batch_size=run.train.eval_batch_size, budget_bytes=memory_budget(run.search.memory_budget_gb))
    # where this call writes the member's new files: its folder, or beside it until all are made (a final training)
    out = folder
    trained = False  # a final training ran: its PARTIAL_FILE goes once the files are in place
    # whether this call replaces model.pt, and the SHA-256 of the one it replaces (None where there was none): a
    # compression of it describes weights the member no longer has once the new ones are in (`_retire_stale_compression`)
    replaces_weights, weights_before = False, None
    folder_retired = False  # the member's folder as it was goes to retired/ once its new weights are made
    with contextlib.ExitStack() as new_files:
        if up_to_date:
            if kept_final:
                log.info("Pareto member %s keeps its final-trained weights (%s epochs): final_train=none trains nothing",
                         arch.arch_id, done.get("epochs"))
            test = MemberMetrics(cached["test_acc"], cached.get("test_acc_onnx"), cached.get("onnx_max_abs_diff"),
                                 cached.get("measured_latency_ms"), cached.get("test_acc_per_class"), cached.get("test_acc_ci95"))
            measured_on = cached.get("measured_latency_on")
            spread = cached.get("measured_latency_spread")
            timed_file = cached.get("measured_latency_file")
            final_info = cached.get("final_train")
        elif final is None and (damage := _unusable(source)) is not None:  # its proxy weights are the member's
            # trials/ pruned by hand, a worker's weights not copied here, or the file cut short (a copy, the disk)
            log.warning("Pareto member %s (trial %d) is left out of the run's files: its weights %s are %s and %s is "
                        "not up to date; restore the file (or its checkpoint folder) and rerun", arch.arch_id, record.number,
                        source, damage, folder)
            return None
        elif final is not None and not train:
            log.info("Pareto member %s (trial %d) is not final-trained: the search was interrupted; rerun the same command to "
                     "train it", arch.arch_id, record.number)
            return None
        else:
            # The new files are made beside the old ones, which stay whole and described by their metrics.json until
            # all are made (deleted first, a stop during the final training, minutes, lost a usable member until a
            # rerun trained it again), then renamed in, metrics.json last and the old one deleted first: killed between
            # the renames, a rerun must not find the old metrics.json "up to date" beside new weights (`replacing_described`).
            model = None
            unloadable = None
            if weights_kept:
                try:
                    model = load_checkpoint(folder / "model.pt")
                except CheckpointError as e:  # cut short or damaged: made again from the trial's weights
                    log.warning("Pareto member %s is made again from its trial's weights: %s", arch.arch_id, e)
                    unloadable = str(e)
            # a kept model.pt is not among the files replaced (those the block writes none of are deleted)
            replaced = [folder / "model.onnx", folder / PREDICTIONS_FILE] + ([] if model is not None else [folder / "model.pt"])
            if model is None:
                replaces_weights, weights_before = True, file_sha256(folder / "model.pt")
            if model is None and (folder / "model.pt").is_file():
                # Its weights are replaced (final_train.epochs=30 weights by a rerun with the default recipe, say):
                # deleted, minutes to hours of training went, and the int8 files a user may have shipped with them. The
                # folder as it was moves to retired/ instead once the new files are complete (until then it stays whole
                # and listed: a stop during the training changes nothing).
                # Where it goes (retired/<arch_id>/, or .2 where that is taken by then) is said once it has moved.
                folder_retired = True
                retrained = final is not None and _retraining_text(cached, final=final) is not None
                how = "is final-trained again" if retrained else "is made again"
                out = new_files.enter_context(replacing_folder(
                    folder, retired=run_dir / RETIRED_FOLDER, keep=(PARTIAL_FILE,),
                    on_retired=lambda dest: _say_retired(arch.arch_id, how, dest=dest)))
                if not retrained:  # (the line below says why otherwise)
                    log.info("Pareto member %s is made again (%s): its folder as it is moves to %s/ once the new files "
                             "are complete", arch.arch_id, _made_again_why(cached, metric=data.metric.value,
                                                                        pt_problem=pt_problem, unloadable=unloadable),
                             RETIRED_FOLDER)
            else:
                out = new_files.enter_context(replacing_described(*replaced, description=metrics_path))
            if model is not None:
                log.info("Pareto member %s: its files are made again from its model.pt, whose weights are kept (no training)",
                         arch.arch_id)
                final_info = cached.get("final_train")
            else:
                final_info = None
                if final is None:
                    model = load_checkpoint(source)
                else:
                    # a member trained again because the recipe changed (final_train.epochs=30 for a winner, say): said
                    # with what changed, where the log said only "final training of <arch_id>" as for a new member
                    if (why := _retraining_text(cached, final=final)) is not None:
                        log.info("Pareto member %s is final-trained again, from scratch: %s; its files stay as they are "
                                 "until the new ones are complete%s", arch.arch_id, why,
                                 f", then its folder as it was (weights, compressed files) moves to {RETIRED_FOLDER}/"
                                 if folder_retired else "")
                    # A final training starts from scratch: of the trial's file it needs the seed only, which the search
                    # derives from the arch (`train_seed`) where the file is missing or damaged
                    seed = _trial_seed(source, arch, search_seed=run.search.seed)
                    # its state after each epoch in the member's folder (not in `out`, deleted by a stop), for a rerun
                    model, final_info = final_train(arch, data, run, seed=seed, partial=folder / PARTIAL_FILE)
                    final_info["recipe"] = final
                    trained = True
                save_checkpoint(out / "model.pt", model, arch, meta={**model.meta, "final_train": final_info})
            logits = torch_logits(model, data.test, batch_size=batch)
            test_acc = accuracy(logits, data.test, balanced=data.balanced)
            onnx_acc = onnx_diff = measured = measured_on = spread = timed_file = None
            if run.search.export_onnx:
                onnx_path = export_onnx(model, out / "model.onnx", in_chans=arch.in_chans, img_size=arch.img_size,
                                        metadata=onnx_metadata(arch=arch, contract=contract, precision="fp32",
                                                               dataset=data.name, metric=data.metric.value))
                onnx_out = onnx_logits(onnx_path, data.test, batch_size=batch)
                onnx_acc = accuracy(onnx_out, data.test, balanced=data.balanced)
                onnx_diff = float(np.abs(onnx_out - logits).max())
                if run.hw.runtime:  # the target is this host: measure, next to the prediction
                    measured, spread = _measure_member(model, arch, onnx_path, run.hw)
                    if (noisy := busy_timing(spread)) is not None:
                        log.warning("Pareto member %s timed on this host at %.3f ms: %s", arch.arch_id, measured, noisy)
                    # as precisely as `calibrated_on` records a CPU: a generic model name ("AMD EPYC") alone does not
                    # say which of a pool's machines it was (`cpu_difference` compares the two)
                    measured_on = cpu_signature(machine_info())
                    timed_file = timed_file_record(onnx_path, run.hw)
            test = MemberMetrics(test_acc, onnx_acc, onnx_diff, measured, per_class_accuracy(logits, data.test, data.classes),
                                 interval_of(logits.argmax(1), truth, data.num_classes, balanced=data.balanced))
        predicted = None if logits is None else logits.argmax(1)
        predictions_path = folder / PREDICTIONS_FILE
        if predicted is None and (predicted := read_test_predictions(predictions_path, truth, data.classes,
                                                                     data.test.paths)) is None:
            # a member folder from before 2026-12-05: its model.pt's test predictions, for comparing members image by image
            logits = torch_logits(load_checkpoint(folder / "model.pt"), data.test, batch_size=batch)
            predicted = logits.argmax(1)
        predictions = test_predictions_csv(predicted, truth, data.classes, data.test.paths).encode()
        # also where the file's predictions are kept but it lacks the path column (written before 2026-12-06): the paths
        # are known now, and a rerun adds them without running the model again
        if logits is not None or not predictions_path.is_file() or predictions_path.read_bytes() != predictions:
            atomic_write_bytes(out / PREDICTIONS_FILE, predictions)
        # (into the new folder where the old one moves to retired/, to keep it as it was)
        atomic_write_bytes((out if folder_retired else folder) / "arch.json", (arch.to_json(indent=2) + "\n").encode())
        lat = predict_latency(arch, run.hw)
        metrics = {
            "arch_id": arch.arch_id,
            "trial": record.number,
            "summary": arch.summary(),
            "mixers": list(arch.mixers),
            "val_acc": final_info["val_acc"] if final_info else record.val_acc,  # of the weights in model.pt
            "val_acc_proxy": record.val_acc,  # what the search ranked the member by
            "final_train": final_info,
            "test_acc": test.test_acc,
            "test_acc_ci95": test.test_acc_ci95,  # 95% interval from the number of test images (nas.stats)
            "test_acc_per_class": test.test_acc_per_class,  # of model.pt, by class name
            "test_acc_onnx": test.test_acc_onnx,
            "onnx_max_abs_diff": test.onnx_max_abs_diff,
            "latency_ms": lat.total_ms,
            "latency_hw": run.hw.name,
            "measured_latency_ms": test.measured_latency_ms,
            "measured_latency_how": (f"{_timed_file(run.hw)} in {run.hw.runtime} {run.hw.precision}, {counted(run.hw.threads, 'thread')}, "
                                     "batch 1, median of 3 interleaved blocks of 20 calls"
                                     + (f" ({busy})" if spread is not None and (busy := busy_timing(spread)) else "")
                                     if test.measured_latency_ms is not None else None),
            # (p90 - p10) / median of its single calls: far above NOISY_SPREAD, the machine was busy (a folder from
            # before 2026-12-06 has none)
            "measured_latency_spread": spread if test.measured_latency_ms is not None else None,
            # The CPU it was timed on (`cpu_signature`: model name, family/model numbers, vector instructions; a folder
            # from before 2026-12-06 names the model only): the prediction holds for the profile's `calibrated_on` machine.
            "measured_latency_on": measured_on if test.measured_latency_ms is not None else None,
            # The file timed and how, where it is model.onnx (None for an int8 profile's export): the compressed table
            # times the same model.onnx again, interleaved with the compressed files, and the report relates the two
            "measured_latency_file": timed_file if test.measured_latency_ms is not None else None,
            "latency_by_stage": lat.by_stage(),
            "latency_by_kind": lat.by_kind(),
            "latency_breakdown": [
                {"name": l.name, "kind": l.kind, "stage": l.stage, "ms": l.ms, "bound": l.bound} for l in lat.layers
            ],
            "params": lat.params,
            "macs": lat.macs,
            "dataset": data.name,
            "metric": data.metric.value,  # how every accuracy here is scored (data.metric)
            **contract,
            # Which images the test accuracies are of (`record_of_test_images`)
            "test_images": test_images if test_images is not None else record_of_test_images(data=data, run=run),
        }
        atomic_write_json(out / "metrics.json", metrics)
    _retire_stale_compression(folder, run, retired=run_dir / RETIRED_FOLDER, replaced=replaces_weights,
                              before=weights_before)
    partial = folder / PARTIAL_FILE
    if trained:  # model.pt holds the weights now; a stop before this point resumes at the last epoch, training none
        partial.unlink(missing_ok=True)
    elif partial.is_file() and _of_recipe(partial, arch=arch, recipe=(final_info or {}).get("recipe")):
        # a run stopped after writing the member's files, before deleting it: no run trains this recipe again while
        # model.pt holds its weights, so the line below ("goes on from it") would not be true
        partial.unlink(missing_ok=True)
        log.info("Pareto member %s: %s is deleted, the state of a final training with the recipe its model.pt already "
                 "has (left by a run stopped after writing the member's files)", arch.arch_id, partial)
    elif partial.is_file():
        # kept for a later run of its recipe (`PARTIAL_FILE`), but a file three times the size of model.pt that nothing
        # in this run's log named: one line says what it is and that it may go
        log.info("Pareto member %s: %s is left as it is, the state of a final training stopped before it ended, which "
                 "this run does not go on from (it trains the member no further); a run that final-trains the member "
                 "with that training's recipe goes on from it, and deleting it is safe (that training then starts "
                 "from epoch 0)", arch.arch_id, folder / PARTIAL_FILE)
    return metrics, predicted


def _made_again_why(cached: dict[str, Any], *, metric: str, pt_problem: str | None, unloadable: str | None) -> str:
    """Why a member whose model.pt is there gets other weights though its final_train recipe is the same, in words."""
    if pt_problem is not None:
        return f"its model.pt is {pt_problem}"
    if unloadable is not None:
        return f"its model.pt cannot be loaded: {unloadable}"
    if cached.get("arch_id") is not None and cached.get("metric", "accuracy") != metric:
        return f"its accuracies were scored as {cached.get('metric', 'accuracy')}, this run's data.metric is {metric}"
    return "its metrics.json does not describe its model.pt"


def _retire_stale_compression(folder: Path, run: RunConfig, *, retired: Path, replaced: bool,
                              before: str | None) -> None:
    """Move the member's compressed files (`nas.layout.COMPRESSED_FILES`) to `retired/<arch_id>/` (`retire_files`)
    where they were made from other weights than its model.pt holds, with one line saying so: a member final-trained
    again (final_train.epochs=30 for a chosen winner) kept the int8 files of its old weights beside the new model.pt
    where the run compressed nothing (compress=none), and the report showed them as the member's; deleted, the int8 files
    a user may have shipped were lost. Judged by the weights' SHA-256 the compression records (`weights_sha256`), or,
    for a compression from before it, by whether the caller `replaced` model.pt with other bytes than those of the one it
    replaced, whose SHA-256 is `before` (None where there was none)."""
    try:
        record = json.loads((folder / COMPRESSED_JSON).read_text())
    except (OSError, ValueError):  # none, or unreadable: a compression reruns over it anyway
        return
    if not isinstance(record, dict):
        return
    now = file_sha256(folder / "model.pt")
    compressed_from = record.get("weights_sha256")
    stale = compressed_from != now if compressed_from is not None else replaced and before != now
    if not stale:
        return
    moved = [name for name in COMPRESSED_FILES if (folder / name).is_file()]  # compressed_metrics.json last
    dest = retire_files([folder / name for name in moved], name=folder.name, retired=retired)
    if dest is None:  # gone meanwhile
        return
    hw = record.get("hw") if isinstance(record.get("hw"), str) else run.hw.name
    # the settings it was compressed with (compress=smoke, say), but those choosing among members, which compress.run
    # refuses (it compresses the one checkpoint it is given)
    settings = [s for s in (searched_compress(record["config"]) if isinstance(record.get("config"), dict) else [])
                if not s.startswith(("compress.members=", "compress.top_k="))]
    # each setting is one shell argument already; the folder quoted for the shell and Hydra both (a space, an 'é')
    command = " ".join(["python -m compress.run", shell_override(key="checkpoint", value=str(folder)),
                        shell_override(key="hw", value=hw), *settings])
    log.info("Pareto member %s: its compressed files (%s) were made from the weights its model.pt held before and are "
             "moved to %s/%s/; compressing it again makes them from the new ones (a search with compress, or %s)",
             folder.name, ", ".join(moved), RETIRED_FOLDER, dest.name, command)


def not_measured_reason(hw: HardwareProfile, *, export_onnx: bool,
                        others: Sequence[HardwareProfile] = ()) -> str | None:
    """Why `materialize_member` times no member on this host for `hw`, in words (pareto.json's
    measured_latency_missing), naming the profiles of `others` that are timed here; None when members are timed.
    Without it the report's 'measured on host' column was all '–' on a chip such as edge_npu, with no word why."""
    if not hw.runtime:
        timed = sorted(p.name for p in others if p.runtime)
        return (f"hw={hw.name} has no runtime on this host (its hw.runtime is empty), so its latencies are predicted, "
                "not timed" + (f"; profiles timed here: {', '.join(f'hw={n}' for n in timed)}" if timed else ""))
    if not export_onnx:
        return f"search.export_onnx=false wrote no model.onnx to time in {hw.runtime}"
    return None


def timed_file_record(onnx_path: Path, hw: HardwareProfile) -> dict[str, Any] | None:
    """metrics.json's measured_latency_file: model.onnx's SHA-256 and the runtime, precision and threads it was timed
    in, for a float profile (`_measure_member` times model.onnx itself); None for an int8 one, which times an export
    made for the timing. The report tells by the digest that the compressed table's model.onnx is the same file."""
    if hw.precision == "int8":
        return None
    return {"file": "model.onnx", "sha256": file_sha256(onnx_path), "runtime": hw.runtime, "precision": hw.precision,
            "threads": hw.threads}


def _timed_file(hw: HardwareProfile) -> str:
    """What `_measure_member` times for a host profile, in words (metrics.json's measured_latency_how)."""
    if hw.precision != "int8":
        return "model.onnx"
    from nas.latency import profile  # at call time: the number export_int8 quantizes on, read where it is set

    return (f"an int8 QDQ export of model.pt (NNCF PTQ on {profile.INT8_CALIBRATION_IMAGES} random images, as latency "
            "profiling exports)")


def _measure_member(model: nn.Module, arch: ArchConfig, onnx_path: Path, hw: HardwareProfile) -> tuple[float, float]:
    """Median batch-1 latency (ms) on this host, and its spread (`nas.latency.measure.time_onnx`), of what `hw` predicts: model.onnx for a float profile; for an int8 one
    (model.onnx is float32, and timed in an int8 profile it ran in float) an int8 QDQ export of the model, made as
    `nas.latency.profile` makes the files its int8 profiles are fitted on (latency does not depend on the ranges)."""
    shape = (1, arch.in_chans, arch.img_size, arch.img_size)
    if hw.precision != "int8":
        return time_onnx(onnx_path, hw, input_shape=shape)
    from nas.latency.profile import export_int8  # compress's quantizer: imported only for int8 host profiles

    # In the member's folder, not /tmp: one left by a kill is cleared by the next search (or compress.run there).
    with scratch_folder(onnx_path.parent, "model_int8.onnx") as tmp:  # (a copy: the quantizer wraps the model it is given)
        return time_onnx(export_int8(copy.deepcopy(model), arch, tmp / "model_int8.onnx"), hw, input_shape=shape)


def write_run_files(run_dir: Path, study: optuna.Study, data: Dataset, run: RunConfig, *,
                    train: bool = True, warnings: Sequence[str] = (),
                    profiles: Sequence[HardwareProfile] | None = None) -> dict[str, Any]:
    """Write trials.csv, pareto.csv/json and the Pareto members' checkpoint folders; return pareto.json. With
    `train=False` (after Ctrl-C) members that need a final training are left out rather than trained. `warnings`: the
    one-line warnings the search gave about its setup (`nas.search_checks.setup_warnings`), kept in pareto.json for the report.
    `profiles`: the hardware profiles pareto.json's latency hints may name (`nas.config.hw_profiles()`, read once here
    when None; a search that has read them passes them: each read parses every hw file, the calibrated ones are large).

    Interrupted (Ctrl-C) during a member's final training, or once the members' files are made, it writes the pareto
    files of the members finished so far, so that the report agrees with trials.csv, and raises KeyboardInterrupt again;
    interrupted before the members (while trials.csv is written, say), it raises without writing them."""
    if profiles is None:
        profiles = hw_profiles()
    records = [trial_record(t, run.search.latency_budget_ms) for t in study.get_trials(deepcopy=False)]
    front = front_records(records)
    front_ids = {r.arch_id for r in front}
    atomic_write_bytes(run_dir / "trials.csv", trials_csv(records, front_ids).encode())
    members, predicted = [], {}
    truth = data.test.y.numpy()
    test_images = record_of_test_images(data=data, run=run) if front else None  # once: the same test split for every member
    try:
        for r in front:
            if (made := materialize_member(run_dir, r, data, run, train=train, test_images=test_images)) is None:
                continue
            m, predicted[r.arch_id] = made
            val_final = (m["final_train"] or {}).get("val_acc")  # of the shipped weights, where final training ran
            members.append({
                "number": r.number, "arch_id": r.arch_id, "val_acc": r.val_acc,
                # what the search ranked by, and how far the val images let one trust it; None for balanced accuracy,
                # whose interval needs each class's right count, which a trial does not keep (its score only)
                "val_acc_ci95": _val_interval(r.val_acc, data),
                "val_acc_final": val_final, "val_acc_final_ci95": _val_interval(val_final, data),
                "test_acc": m["test_acc"], "test_acc_ci95": m["test_acc_ci95"],
                "test_acc_onnx": m["test_acc_onnx"], "latency_ms": r.latency_ms,
                "measured_latency_ms": m["measured_latency_ms"], "params": r.params, "macs": r.macs,
                "summary": r.arch.summary() if r.arch else "", "mixers": list(r.arch.mixers) if r.arch else [],
                "checkpoint": f"checkpoints/{r.arch_id}", "arch": r.arch.to_dict() if r.arch else None,
            })
        compare_members(members, predicted, truth)
        # The checkpoints folder mirrors the current front: a member that fell off it moves to retired/, whole (deleted,
        # its final-trained weights and the int8 files a user may have shipped from it went, trials/ keeping the proxy's
        # only); a member left out above for missing weights keeps its folder. (Dot-named folders are no members.)
        ckpt_root = run_dir / "checkpoints"
        if ckpt_root.is_dir():
            for child in sorted(ckpt_root.iterdir()):
                if child.is_dir() and not child.is_symlink() and child.name not in front_ids and not child.name.startswith("."):
                    _retire_member(run_dir, child, why=_off_front_why(child.name, records, front))
    except KeyboardInterrupt:
        # the members finished so far are compared too: the report of an interrupted run otherwise showed no gains.
        # Also after the last member: once the members' files are being made, a stop leaves pareto files of this study
        # (`nas.search` tells a stop before them by pareto.json not being rewritten, and writes them without training).
        compare_members(members, predicted, truth)
        _write_pareto_files(run_dir, study, data, run, records, members, missing=unlisted(front, members),
                            warnings=warnings, profiles=profiles)
        raise
    return _write_pareto_files(run_dir, study, data, run, records, members, missing=unlisted(front, members),
                               warnings=warnings, profiles=profiles)


def _retire_member(run_dir: Path, folder: Path, *, why: str) -> None:
    """Move the member folder `folder` whole to the run's retired/ (`retire_folder`), with one line saying where and
    `why`; under its `member_lock`, so that a compression of it under way finishes first."""
    with member_lock(folder, doing="moving it to retired/"):
        dest = retire_folder(folder, retired=run_dir / RETIRED_FOLDER)
    _say_retired(folder.name, why, dest=dest)


def _say_retired(arch_id: str, why: str, *, dest: Path) -> None:
    """The line saying that the member `arch_id`'s folder, as it was, is moved to `dest` (retired/<arch_id>/ or .2, ...)
    because it `why` ("fell off the Pareto front", "is made again")."""
    log.info("Pareto member %s %s: its folder as it was is moved to %s/%s/", arch_id, why, RETIRED_FOLDER, dest.name)


def _off_front_why(arch_id: str, records: Sequence[TrialRecord], front: Sequence[TrialRecord]) -> str:
    """Why the architecture `arch_id` is not on the Pareto `front` of `records` (by latency) now, in words: "fell off the
    Pareto front (dominated by <arch_id>)", the member that is at least as accurate and as fast, faster or more accurate."""
    mine = [r for r in records if r.arch_id == arch_id and r.state == "COMPLETE" and r.val_acc is not None]
    if not mine:
        return "is no longer on the Pareto front (no finished trial of this study has its architecture)"
    if not any(r.feasible for r in mine):
        return "is no longer on the Pareto front (its latency is over search.latency_budget_ms now)"
    me = next(r for r in mine if r.feasible)
    for r in front:
        if (r.val_acc is not None and r.latency_ms is not None and me.latency_ms is not None
                and r.val_acc >= me.val_acc and r.latency_ms <= me.latency_ms):
            return f"fell off the Pareto front (dominated by {r.arch_id})"
    return "fell off the Pareto front"


def unlisted(front: Sequence[TrialRecord], members: Sequence[dict[str, Any]]) -> list[str]:
    """The arch_ids of the Pareto `front` (by latency) that `members` (pareto.json's) lacks: not final-trained because
    the search was interrupted (Ctrl-C, SIGTERM), or whose weights are missing; [] when `members` is the whole front."""
    listed = {m["arch_id"] for m in members}
    return [r.arch_id for r in front if r.arch_id not in listed]


def _val_interval(val_acc: float | None, data: Dataset) -> tuple[float, float] | None:
    """95% interval of a val accuracy from the number of val images (`share_interval`); None without one, and for
    balanced accuracy, whose interval needs each class's right count, which neither a trial nor the final training
    keeps (its score only)."""
    return None if data.balanced or val_acc is None else share_interval(val_acc, images=len(data.val))


def _write_pareto_files(run_dir: Path, study: optuna.Study, data: Dataset, run: RunConfig, records: Sequence[TrialRecord],
                        members: list[dict[str, Any]], *, missing: Sequence[str], warnings: Sequence[str],
                        profiles: Sequence[HardwareProfile]) -> dict[str, Any]:
    """pareto.json and pareto.csv of `members` (pareto.json's content is returned); `missing`: the front's arch_ids
    that `members` lacks (`unlisted`)."""
    # Set when hw is this host's CPU but was calibrated on another CPU model (predictions describe that one), or was
    # never calibrated (the datasheet roofline of a CPU), when its uncalibrated file leaves datasheet numbers to the
    # generic defaults, and (also) when its calibration was never measured at the data's input or on archs like the
    # space's (extrapolated).
    latency = [w for w in (host_mismatch(run.hw, others=profiles), uncalibrated_warning(run.hw), datasheet_warning(run.hw),
                           input_warning(run.hw, in_chans=data.in_chans, img_size=data.img_size, space=run.space.name,
                                         num_classes=data.num_classes),
                           extent_warning(run.hw, run.space, in_chans=data.in_chans, img_size=data.img_size,
                                          num_classes=data.num_classes))
               if w]
    pareto = {
        "study_name": study.study_name,
        "hw": run.hw.name,
        "hw_description": run.hw.description,
        # The number format every latency_ms is predicted at (the chip's hw.precision): edge_npu's are the int8 model's
        # times, hw=cpu's the float model's; the report says which under its front table.
        "hw_precision": run.hw.precision,
        "latency_predictor": describe_predictor(run.hw),
        "latency_warning": "; ".join(latency) or None,  # None when none applies
        # Every warning the search that wrote this file gave about its setup, one line each, in its order ([]: none);
        # the latency ones are among them (the search gives them too), so the report's Warnings section needs no other.
        "setup_warnings": list(dict.fromkeys([*warnings, *latency])),
        "space": run.space.name,
        # Keys set on the command line (space.norms=[bn], hw.mac_per_s=...): the name alone no longer says what ran.
        "space_changed": changed_from_file("space", run.space),
        "hw_changed": changed_from_file("hw", run.hw),
        "dataset": data.name,
        # What the accuracies were measured on: a report reader needs the test split's size to judge a gap.
        # absolute: compress.run of a member names it, from whatever folder it runs in
        "data": {"root": absolute_root(run.data.root), "classes": data.num_classes, "input": [data.in_chans, data.img_size, data.img_size],
                 "images": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
                 "per_class": {name: dict(zip(data.classes, torch.bincount(split.y, minlength=data.num_classes).tolist()))
                               for name, split in (("train", data.train), ("test", data.test))}},
        "metric": data.metric.value,  # how every accuracy of the run is scored (data.metric)
        "objectives": [f"maximize val_acc ({data.metric.value})" if data.balanced else "maximize val_acc", "minimize latency_ms"],
        # Why the members' 'measured on host' latencies are empty (None: they are timed): the report says so.
        "measured_latency_missing": not_measured_reason(run.hw, export_onnx=run.search.export_onnx, others=profiles),
        "latency_budget_ms": run.search.latency_budget_ms,
        # How each trial was trained (conf/train, its speed settings left out): the search's val accuracies are of these
        # proxy weights, and the report says so (train=smoke's 1 epoch on 512 images explains low ones).
        "train": _recipe(asdict(run.train)),
        # The groups that ran on their seconds-long smoke settings ([]: none): the report says at its top that its
        # accuracies are not meaningful, naming them with the settings of theirs set otherwise beside them.
        "smoke_settings": (smoke := smoke_groups(run)),
        "smoke_changed": smoke_changed(run, smoke),
        "n_trials_finished": sum(r.state == "COMPLETE" for r in records),
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),  # with its UTC offset (+00:00)
        # The front's members not in `members` (by latency; []: it is the whole front): an interrupted search lists
        # those finished only, and a reader of the file alone could not tell that any were missing.
        "members_missing": list(missing),
        "members": members,
    }
    replace_pareto_files(run_dir, pareto=pareto)
    return pareto


def replace_pareto_files(run_dir: Path, *, pareto: dict[str, Any]) -> None:
    """Write `pareto` as `run_dir`'s pareto.json and pareto.csv (its members flat, with the int8 columns of those whose
    compressed files are there: `nas.pareto_csv`), both made in a temporary folder first and renamed into place CSV
    first, pareto.json last (`replacing_together`): pareto.json is the run's record of its members, and once a new one
    is in place the CSV beside it is of it too. Written one after the other, a reader between them found an old CSV next
    to a new pareto.json. A kill between the two renames leaves the new CSV beside the old pareto.json (and the new one
    in a temporary folder that the next search removes): `python -m nas.report <run folder>` writes the CSV again from
    pareto.json, as the next search writes both."""
    csv_data = pareto_csv_bytes(run_dir, members=pareto["members"], header=pareto)
    json_data = json_bytes(pareto)  # as atomic_write_json writes it
    with replacing_together(run_dir / PARETO_CSV, run_dir / "pareto.json") as tmp:
        (tmp / PARETO_CSV).write_bytes(csv_data)
        (tmp / "pareto.json").write_bytes(json_data)
