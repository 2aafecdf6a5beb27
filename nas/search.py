"""Hardware-aware multi-objective architecture search: `python -m nas.search hw=edge_npu`.

An Optuna study maximises validation accuracy (proxy training) and minimises the latency predicted
for the target chip, under an optional latency budget (Optuna's constraint API). The study lives in
a storage (SQLite in the run folder by default), so rerunning the same command resumes it with its
finished trials kept; Ctrl-C stops after writing the files of the finished trials.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import hydra
import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from nas.arch import ArchConfig
from nas.checkpoint import save_checkpoint
from nas.config import RunConfig, Sampler, register_configs, to_run_config
from nas.data import Dataset, load_dataset
from nas.errors import ConfigError, exit_on_error
from nas.latency import predict_latency
from nas.model import build_model
from nas.results import write_run_files
from nas.space import fastest_arch, sample_arch
from nas.train import TrainingDiverged, seed_everything, train_candidate

log = logging.getLogger("nas.search")
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

# Config groups whose change makes old trials incomparable; a resumed study must match them.
_FINGERPRINT_KEYS = ("hw", "space", "data", "train")


@dataclass(frozen=True)
class SearchResult:
    """What `run_search` produced."""

    run_dir: Path
    study_name: str
    n_complete: int
    pareto: list[dict[str, Any]]
    interrupted: bool
    files: dict[str, Path]


def make_sampler(run: RunConfig) -> optuna.samplers.BaseSampler:
    """The configured, seeded Optuna sampler (constraint-aware where Optuna supports it)."""
    s = run.search
    if s.sampler == Sampler.tpe:
        with warnings.catch_warnings():
            # multivariate/group are marked experimental; they handle the conditional per-mixer params.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.n_startup_trials, multivariate=True, group=True)
    if s.sampler == Sampler.nsga2:
        return optuna.samplers.NSGAIISampler(seed=s.seed, population_size=max(2, s.population_size))
    return optuna.samplers.RandomSampler(seed=s.seed)


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial met every constraint (Optuna's convention: values <= 0)."""
    return all(c <= 0 for c in trial.constraints.values())


def _fingerprint(run: RunConfig) -> dict[str, Any]:
    d = asdict(run)
    fp = {k: d[k] for k in _FINGERPRINT_KEYS}
    fp["data"] = {k: v for k, v in fp["data"].items() if k != "root"}  # moving the data is fine
    fp["hw"] = {k: v for k, v in fp["hw"].items() if k != "description"}
    return json.loads(json.dumps(fp, default=str))


def open_study(run: RunConfig, run_dir: Path) -> optuna.Study:
    """Create or resume the study; refuse to resume one created with other settings."""
    url = run.search.storage or f"sqlite:///{run_dir / 'study.db'}"
    try:
        storage = optuna.storages.RDBStorage(url)
    except Exception as e:  # bad URL, unreachable server, missing driver
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"search.storage={url!r} cannot be opened: {first[:300]}") from None
    study = optuna.create_study(
        study_name=run.search.study_name, storage=storage, sampler=make_sampler(run),
        directions=["maximize", "minimize"], load_if_exists=True,
    )
    fp = _fingerprint(run)
    stored = study.user_attrs.get("config")
    if stored is None:
        study.set_user_attr("config", fp)
    elif stored != fp:
        changed = [k for k in _FINGERPRINT_KEYS if stored.get(k) != fp.get(k)]
        raise ConfigError(
            f"study {run.search.study_name!r} was created with other {', '.join(changed)} settings; "
            "rerun with the same ones to resume, or pass a new search.study_name=..."
        )
    if run.search.storage is None:
        # The run folder's SQLite file has one writer: RUNNING trials there belong to a process
        # that was killed. Close them as failed so the study's counts stay right. (Shared storages
        # with several workers need heartbeats instead; FrozenTrial exposes its id only privately.)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            storage.set_trial_user_attr(t._trial_id, "fail_reason", "process stopped while the trial ran")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return study


def check_budget(run: RunConfig, data: Dataset) -> None:
    """Refuse a latency budget that no architecture of the space can meet."""
    budget = run.search.latency_budget_ms
    if budget is None:
        return
    arch, ms = fastest_arch(run.space, run.hw, in_chans=data.in_chans, img_size=data.img_size, num_classes=data.num_classes)
    if ms > budget:
        raise ConfigError(
            f"search.latency_budget_ms={budget} cannot be met: the fastest architecture of space "
            f"{run.space.name!r} is predicted at {ms:.3f} ms on {run.hw.name} ({arch.summary()}); raise the budget or shrink the space"
        )


def _train_seed(arch: ArchConfig, seed: int) -> int:
    # Same architecture + same search seed -> same weights: duplicates can reuse results exactly.
    return int(hashlib.sha1(f"{arch.arch_id}:{seed}".encode()).hexdigest()[:8], 16)


def _previous_result(study: optuna.Study, arch_id: str, run_dir: Path) -> tuple[float, float] | None:
    if not (run_dir / "trials" / f"{arch_id}.pt").is_file():
        return None
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get("arch_id") == arch_id:
            return float(t.values[0]), float(t.values[1])
    return None


def make_objective(
    run: RunConfig, data: Dataset, run_dir: Path, *, on_step: Callable[[int, int], None] | None = None
) -> Callable[[optuna.Trial], tuple[float, float]]:
    """Objective: sample an arch, predict latency, skip it if over budget, else proxy-train it."""

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        arch = sample_arch(trial, run.space, in_chans=data.in_chans, img_size=data.img_size, num_classes=data.num_classes)
        lat = predict_latency(arch, run.hw)
        budget = run.search.latency_budget_ms
        trial.set_user_attr("arch", arch.to_json())
        trial.set_user_attr("arch_id", arch.arch_id)
        trial.set_user_attr("latency_ms", lat.total_ms)
        trial.set_user_attr("params", lat.params)
        trial.set_user_attr("macs", lat.macs)
        # Optuna's constraint API (<= 0 is feasible); constraint-aware samplers (TPE, NSGA-II) read it.
        trial.set_constraint("latency_budget", lat.total_ms - budget if budget else 0.0)
        if budget is not None and lat.total_ms > budget:
            # Infeasible: not worth training. Recorded as PRUNED with its constraint value, so
            # constraint-aware samplers learn to avoid the region.
            trial.set_user_attr("fail_reason", f"predicted {lat.total_ms:.3f} ms > budget {budget} ms")
            raise optuna.TrialPruned()
        previous = _previous_result(trial.study, arch.arch_id, run_dir)
        if previous is not None:
            trial.set_user_attr("duplicate", True)
            return previous
        seed = _train_seed(arch, run.search.seed)
        seed_everything(seed)
        model = build_model(arch)
        model.set_normalization(data.mean, data.std)
        try:
            result = train_candidate(model, data, run.train, augment=run.data, seed=seed, on_step=on_step)
        except (TrainingDiverged, RuntimeError, MemoryError) as e:
            # A broken candidate is a result, not a crash: record why and let the search go on.
            reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            trial.set_user_attr("fail_reason", reason)
            log.warning("trial %d (%s) failed: %s", trial.number, arch.arch_id, reason)
            return math.nan, math.nan
        trial.set_user_attr("train_seconds", result.seconds)
        trial.set_user_attr("images_per_s", result.images_per_s)
        save_checkpoint(
            run_dir / "trials" / f"{arch.arch_id}.pt", model, arch,
            meta={"trial": trial.number, "val_acc": result.val_acc, "seed": seed, "dataset": data.name},
        )
        return result.val_acc, lat.total_ms

    return objective


class _Progress:
    """Trial k/n bar plus the current candidate's training steps (rich, only on a terminal)."""

    def __init__(self, *, total: int, done: int, enabled: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        self.enabled = enabled and console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, disable=not self.enabled, transient=False,
        )
        self.trials = self.progress.add_task("trials", total=total, completed=done)
        self.steps = self.progress.add_task("  training", total=1, visible=False)

    def __enter__(self) -> "_Progress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def on_step(self, step: int, total: int) -> None:
        if self.enabled and (step == 1 or step % 10 == 0 or step == total):
            self.progress.update(self.steps, completed=step, total=total, visible=True)

    def on_trial(self, done: int, best: str) -> None:
        self.progress.update(self.trials, completed=done, description=f"trials (best {best})")


def _best_text(study: optuna.Study) -> str:
    best = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if is_feasible(t)]
    if not best:
        return "-"
    t = max(best, key=lambda t: (t.values[0], -t.values[1]))
    return f"val acc {t.values[0]:.4f} @ {t.values[1]:.3f} ms"


def _trial_text(trial: optuna.trial.FrozenTrial) -> str:
    attrs = trial.user_attrs
    mixers = "-".join(ArchConfig.from_json(attrs["arch"]).mixers) if "arch" in attrs else "?"
    head = f"{attrs.get('arch_id', '?')} {mixers} latency={attrs.get('latency_ms', math.nan):.3f} ms"
    if trial.state == TrialState.COMPLETE:
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        return f"{head}: val_acc={trial.values[0]:.4f} ({seconds:.0f} s)"
    return f"{head}: {trial.state.name.lower()} ({attrs.get('fail_reason', '')})"


def _n_complete(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def run_search(cfg: DictConfig | RunConfig) -> SearchResult:
    """Run (or resume) the search described by `cfg` and write the run folder's files."""
    run = to_run_config(cfg)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_dir = Path(run.search.runs_dir) / run.search.study_name
    data = load_dataset(run.data)  # fails fast, before a study or folder is created
    check_budget(run, data)
    run_dir.mkdir(parents=True, exist_ok=True)
    study = open_study(run, run_dir)
    target = run.search.n_trials
    done = _n_complete(study)
    if done:
        log.info("resuming study %r: %d of %d trials already finished", study.study_name, done, target)
    interrupted = False
    started = time.perf_counter()
    if done < target:
        with _Progress(total=target, done=done, enabled=run.search.progress) as progress:
            objective = make_objective(run, data, run_dir, on_step=progress.on_step)

            def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
                n = _n_complete(study)
                best = _best_text(study)
                progress.on_trial(n, best)
                log.info("trial %d [%d/%d] %s | best %s", trial.number, n, target, _trial_text(trial), best)
                if n >= target:
                    study.stop()

            try:
                # Over-budget samples are pruned without training and do not count towards
                # n_trials; the cap on attempts keeps an almost-impossible budget from looping forever.
                study.optimize(
                    objective, n_trials=50 * (target - done), timeout=run.search.timeout_s,
                    callbacks=[after_trial], gc_after_trial=True,
                )
            except KeyboardInterrupt:
                interrupted = True
                log.warning("interrupted: keeping %d finished trials; rerun the same command to resume", _n_complete(study))
    pareto = write_run_files(run_dir, study, data, run)
    if not interrupted and run.compress.members.value != "none" and pareto["members"]:
        from compress.pipeline import compress_front  # the search orchestrates; compress builds on nas

        try:
            compress_front(run_dir, pareto["members"], hw=run.hw, data=data, cfg=run.compress, augment=run.data,
                           eval_batch_size=run.train.eval_batch_size)
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted while compressing: finished members are kept; rerun the same command to resume")
    from nas.report import write_reports

    files = write_reports(run_dir)
    n = _n_complete(study)
    log.info("%d trials finished (%.0f s this run); %d on the Pareto front", n, time.perf_counter() - started, len(pareto["members"]))
    return SearchResult(
        run_dir=run_dir.resolve(), study_name=study.study_name, n_complete=n, pareto=pareto["members"],
        interrupted=interrupted, files=files,
    )


register_configs()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="search")
def main(cfg: DictConfig) -> None:
    """CLI entry point: a thin wrapper that turns errors into one line and an exit code."""
    with exit_on_error():
        result = run_search(cfg)
    print(f"run folder: {result.run_dir}")
    if result.interrupted:
        sys.exit(130)


if __name__ == "__main__":
    main()
