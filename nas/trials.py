"""A search's trials (`nas.search`): the seeded sampler, the objective that samples a candidate, predicts its latency
and proxy-trains it (stopped early where it cannot reach the front), and the loop that runs trials until the study holds
`search.n_trials` finished ones beside the study's other workers, with its progress bar and log lines; Ctrl-C and SIGTERM
stop it at safe points."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import math
import os
import signal
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import optuna
from optuna.trial import TrialState

from nas.arch import ArchConfig
from nas.checkpoint import save_checkpoint
from nas.config import SEED_MAX, RunConfig, Sampler
from nas.data import Dataset, absolute_root
from nas.errors import (PREEMPTION_SIGNALS, NasError, counted, error_text, interrupting_signal, module_logger,
                        signal_interrupt, storage_or_disk_problem)
from nas.latency import predict_latency
from nas.memory import eval_batch_size, memory_budget, training_refusal
from nas.model import build_model
from nas.results import train_seed
from nas.space import fastest_arch, sample_arch
from nas.study import (INTERRUPTED_REASON, STOPPED, counts, fail_lost_trials, requeue_interrupted, slot_taken,
                       study_budget_ms, worker_info)
from nas.sweep import SWEEP_DIED_TEXT, sweep_died
from nas.train import reset_autocast, seed_everything, train_candidate

log = module_logger("nas.search")  # the search's lines, under its logger's name (search.log shows it; users set its level)


# Architectures a search samples per trial it still needs before it gives up: over-budget samples are pruned without
# training and do not count as trials, so an almost-impossible latency budget would otherwise sample forever.
SAMPLES_PER_TRIAL = 50


def make_sampler(run: RunConfig, *, trials_before: int = 0) -> optuna.samplers.BaseSampler:
    """The configured, seeded Optuna sampler (constraint-aware where Optuna supports it).

    Each worker gets its own seed (`search.seed` offset by `search.worker`): workers seeded alike would
    propose the same random start-up architectures. So would a resumed study, whose sampler starts its random
    stream again: the seed is also offset by the `trials_before` the study already holds (0 for a new study, so a
    fresh run stays reproducible).
    """
    s = run.search
    # Kept in the samplers' seed range (search.seed is checked to be in it): many workers or trials would leave it.
    seed = (s.seed + 1_000_003 * s.worker + 7_919 * trials_before) % (SEED_MAX + 1)
    if s.sampler == Sampler.tpe:
        with warnings.catch_warnings():
            # multivariate/group are marked experimental; they handle the conditional per-mixer params.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.n_startup_trials, multivariate=True, group=True)
    if s.sampler == Sampler.nsga2:
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=s.population_size)
    return optuna.samplers.RandomSampler(seed=seed)


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial met every constraint (Optuna's convention: values <= 0)."""
    return all(c <= 0 for c in trial.constraints.values())


def _previous_result(study: optuna.Study, arch_id: str, run_dir: Path) -> tuple[int, tuple[float, float]] | None:
    """(number, values) of a finished trial of the same architecture whose weights are kept: a re-proposed arch reuses
    its result (same arch and seed give the same weights)."""
    if not (run_dir / "trials" / f"{arch_id}.pt").is_file():
        return None
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get("arch_id") == arch_id:
            return t.number, (float(t.values[0]), float(t.values[1]))
    return None


def early_stop_verdict(
    val_acc: float,
    latency_ms: float,
    references: Sequence[tuple[float, float, float]],
    *,
    min_reference: int,
    safety: float,
    slack: float,
) -> str | None:
    """Why a candidate with `val_acc` part-way through training cannot reach the front, or None.

    `references`: (final val acc, latency ms, val acc at the same point of training) of fully trained
    feasible trials. The candidate is allowed the largest gain from that point to the end seen among
    them, times `safety`, plus `slack`; it is hopeless if even then a reference no slower than it stays
    more accurate (it would be dominated).
    """
    if len(references) < min_reference:
        return None
    gain = max(0.0, max(final - mid for final, _, mid in references)) * safety + slack
    no_slower = [final for final, lat, _ in references if lat <= latency_ms]
    if not no_slower or val_acc + gain >= max(no_slower):
        return None
    return (f"stopped early: val acc {_pct(val_acc)} + allowed gain {100 * gain:.2f} pt < {_pct(max(no_slower))} "
            f"of a trial no slower ({counted(len(references), 'reference')})")


def _references(study: optuna.Study) -> list[tuple[float, float, float]]:
    """(final val acc, latency, mid-training val acc) of the study's fully trained feasible trials."""
    refs = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        a = t.user_attrs
        if a.get("judged_val_acc") is not None and not a.get("early_stop") and not a.get("duplicate") and is_feasible(t):
            refs.append((float(t.values[0]), float(t.values[1]), float(a["judged_val_acc"])))
    return refs


def make_objective(
    run: RunConfig, data: Dataset, run_dir: Path, *, on_step: Callable[[int, int], None] | None = None,
    on_failure: Callable[[str], None] | None = None,
) -> Callable[[optuna.Trial], tuple[float, float]]:
    """Objective: sample an arch, predict latency, skip it if over budget, else proxy-train it. `on_failure` is called
    with the reason of each candidate whose training failed (`search.max_failures_in_a_row` counts them).

    A candidate whose training batch would need more working memory (`nas.memory`) than `search.memory_budget_gb` fails
    up front with its reason (the kernel would kill the process without one); its evaluation runs in batches that fit."""
    budget_bytes = memory_budget(run.search.memory_budget_gb)  # once: the memory of later trials is this process's own
    said_budget = [run.search.latency_budget_ms]

    def run_trial(trial: optuna.Trial) -> tuple[float, float]:
        trial.set_user_attr("worker", worker_info(trial.number))  # first: lets others tell if this process dies
        for attr in ("fail_reason", "early_stop"):  # a retry inherits its failed original's attributes
            if trial.user_attrs.get(attr):
                trial.set_user_attr(attr, "")
        if slot_taken(trial.study, trial.number, run.search.n_trials):
            # Another worker asked for a trial at the same moment and is ahead in line.
            trial.set_user_attr("fail_reason", f"not run: the study already has {counted(run.search.n_trials, 'trial')} finished or running")
            raise optuna.TrialPruned()
        arch = sample_arch(trial, run.space, in_chans=data.in_chans, img_size=data.img_size, num_classes=data.num_classes)
        lat = predict_latency(arch, run.hw)
        # the study's budget, which a worker that joined after this one started may have tightened
        budget = study_budget_ms(trial.study, run.search.latency_budget_ms)
        if budget != said_budget[0]:
            said_budget[0] = budget
            log.info("search.latency_budget_ms is %g now, the study's (a worker joined with it): candidates predicted "
                     "slower are not trained, and the front is judged at it", budget)
        trial.set_user_attr("arch", arch.to_json())
        trial.set_user_attr("arch_id", arch.arch_id)
        trial.set_user_attr("latency_ms", lat.total_ms)
        trial.set_user_attr("params", lat.params)
        trial.set_user_attr("macs", lat.macs)
        # Optuna's constraint API (<= 0 is feasible); constraint-aware samplers (TPE, NSGA-II) read it. A re-queued
        # trial (its worker died, or it was interrupted) carries the value its first run set, for the same architecture.
        if "latency_budget" not in trial.constraints:
            trial.set_constraint("latency_budget", lat.total_ms - budget if budget else 0.0)
        if budget is not None and lat.total_ms > budget:
            # Infeasible: not worth training. Recorded as PRUNED with its constraint value, so
            # constraint-aware samplers learn to avoid the region.
            trial.set_user_attr("fail_reason", f"predicted {lat.total_ms:.3f} ms > budget {budget} ms")
            raise optuna.TrialPruned()
        previous = _previous_result(trial.study, arch.arch_id, run_dir)
        if previous is not None:
            trial.set_user_attr("duplicate", True)
            trial.set_user_attr("duplicate_of", previous[0])  # trials.csv names the trial whose result it reuses
            return previous[1]
        train_cfg = run.train
        if budget_bytes is not None:
            images = min(len(data.train), run.train.subset or len(data.train))
            refusal = training_refusal(arch, batch_size=min(run.train.batch_size, images), budget_bytes=budget_bytes,
                                       setting="train.batch_size")
            if refusal is not None:
                trial.set_user_attr("fail_reason", refusal)
                log.warning("trial %d (%s) failed: %s", trial.number, arch.arch_id, refusal)
                return math.nan, math.nan
            # Evaluation in smaller batches scores every image as the configured batch would: only the peak shrinks.
            fit = eval_batch_size(arch, batch_size=run.train.eval_batch_size, budget_bytes=budget_bytes)
            train_cfg = dataclasses.replace(run.train, eval_batch_size=fit)
        seed = train_seed(arch, search_seed=run.search.seed)
        seed_everything(seed)
        model = build_model(arch)
        model.set_normalization(data.mean, data.std)
        es = run.search.early_stop

        def judge(acc: float) -> bool:  # read the study now: other workers may have finished trials meanwhile
            reason = early_stop_verdict(acc, lat.total_ms, _references(trial.study), min_reference=es.min_reference,
                                        safety=es.safety, slack=es.slack)
            if reason:
                trial.set_user_attr("early_stop", f"{reason}, after {es.after_epochs} of {run.train.epochs} epochs")
            return reason is not None
        try:
            # Every candidate trains on the same subset (when train.subset is set): a fair comparison.
            result = train_candidate(model, data, train_cfg, augment=run.data, seed=seed, subset_seed=run.search.seed,
                                     on_step=on_step, judge=judge if es.enabled else None,
                                     judge_after_epochs=es.after_epochs)
        except NasError:
            raise  # bad input concerns every trial: stop with its message
        except Exception as e:  # NaN loss, shape error, out of memory, ...
            # A broken candidate is a result, not a crash: record why and let the search go on.
            reason = error_text(e)
            trial.set_user_attr("fail_reason", reason)
            log.warning("trial %d (%s) failed: %s", trial.number, arch.arch_id, reason)
            if on_failure is not None:
                on_failure(reason)
            return math.nan, math.nan
        trial.set_user_attr("train_seconds", result.seconds)
        trial.set_user_attr("images_per_s", result.images_per_s)
        trial.set_user_attr("train_precision", result.precision)  # `auto` depends on the CPU: record what ran
        if result.judged_val_acc is not None:
            trial.set_user_attr("judged_val_acc", result.judged_val_acc)
        if result.stopped:
            log.info("trial %d (%s) %s", trial.number, arch.arch_id, trial.user_attrs.get("early_stop", "stopped early"))
        save_checkpoint(
            run_dir / "trials" / f"{arch.arch_id}.pt", model, arch,
            meta={"trial": trial.number, "val_acc": result.val_acc, "seed": seed, "dataset": data.name,
                  "classes": list(data.classes), "metric": data.metric.value, "epochs_trained": result.epochs_done,
                  # where its images were, for compress.run to name when given other data (absolute: run from elsewhere)
                  "data_root": absolute_root(run.data.root)},
        )
        return result.val_acc, lat.total_ms

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        try:
            return run_trial(trial)
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM wherever it landed (training, evaluation, saving): Optuna fails the trial, the search
            # re-queues it (requeue_interrupted), and trials.csv says why. Autocast may be left on when the signal
            # struck inside its enter/exit: every later forward pass of this process would run in bf16.
            reset_autocast()
            trial.set_user_attr("fail_reason", INTERRUPTED_REASON)
            raise
        except SystemExit as e:
            # sys.exit from a handler of the process's own, for a signal the search does not take: as an interrupt, so
            # that Optuna fails the trial (a SystemExit it lets through, leaving the trial RUNNING for search.grace_s
            # until a rerun reaped it as a dead worker's) and it is queued again; run_trials raises `e` after that.
            reset_autocast()
            trial.set_user_attr("fail_reason", INTERRUPTED_REASON)
            raise _ExitInTrial(e) from e
        except optuna.TrialPruned:
            raise
        except Exception as e:
            # Not a broken candidate (run_trial records those and goes on): the disk, the study's database or bad input
            # stops the whole search. Optuna records no reason, and when the database cannot be written either the
            # trial stays RUNNING until a later run reaps it as a dead worker's: search.log's line lets it say why.
            problem = storage_or_disk_problem(e)
            reason = f"cannot write the run ({problem})" if problem else error_text(e)
            log.error("trial %d %s%s", trial.number, STOPPED, reason)
            with contextlib.suppress(Exception):  # the database may be what failed: the line above must do then
                trial.set_user_attr("fail_reason", STOPPED + reason)
            raise

    return objective


class _ExitInTrial(KeyboardInterrupt):
    """A SystemExit raised inside a trial (`exit`), carried through Optuna as an interrupt: `run_trials` raises
    `exit`."""

    def __init__(self, exit: SystemExit) -> None:
        super().__init__()
        self.exit = exit


def _how_far_over(run: RunConfig, data: Dataset, study: optuna.Study, budget: float) -> str:
    """'; the fastest of them was 0.196 ms, the space's fastest architecture 0.171 ms': how far the study's samples over
    `budget` were from it, and how close the space can come, for choosing the next budget. '' when none was over it."""
    over = [t.user_attrs["latency_ms"] for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
            if t.user_attrs.get("latency_ms", 0.0) > budget]  # not those pruned because another worker took the slot
    if not over:
        return ""
    _, space_ms = fastest_arch(run.space, run.hw, in_chans=data.in_chans, img_size=data.img_size,
                               num_classes=data.num_classes)
    return f"; the fastest of them was {min(over):.3f} ms, the space's fastest architecture {space_ms:.3f} ms"


def _failures_text(failures: Sequence[str], *, complete: int, target: int) -> str:
    """Why a search stopped after `failures` (the reasons of trials that failed in training in a row, as trials.csv's
    fail_reason gives them), with `complete` of its `target` trials finished."""
    reasons = f"each with: {failures[0]}" if len(set(failures)) == 1 else f"the last with: {failures[-1]}"
    return (f"stopped after {len(failures)} trials in a row failed in training, {reasons}; {complete} of "
            f"{counted(target, 'trial')} finished: failures this many in a row point at the training settings (train.*) or "
            "the data rather than the candidates (see fail_reason in trials.csv); fix them under a new search.study_name "
            "(a study keeps its train settings and images), or raise search.max_failures_in_a_row and rerun the same "
            "command (failed trials do not count towards search.n_trials)")


def nothing_found_text(study: optuna.Study, run: RunConfig, run_dir: Path) -> str:
    """Why `study` holds no finished trial, in one line for stderr (`SearchResult.found_nothing_reason`): its trials by
    what became of them, the last failure's reason, and the run folder's files that say more. The log lines saying it go
    to stdout and search.log, so a `nas.search ... && deploy` that stopped at exit status 1 had no reason beside it."""
    trials = study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    over = [t for t in pruned if str(t.user_attrs.get("fail_reason", "")).startswith("predicted")]
    running = sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    parts = []
    if failed:
        last = max(failed, key=lambda t: t.number).user_attrs.get("fail_reason") or "no reason recorded"
        parts.append(f"{len(failed)} failed (last: {last})")
    if over:
        budget = study_budget_ms(study, run.search.latency_budget_ms)
        parts.append(f"{len(over)} over search.latency_budget_ms={budget:g} (not trained)")
    if len(pruned) > len(over):
        parts.append(f"{len(pruned) - len(over)} not run (the study was full)")
    if running:
        parts.append(f"{running} running or queued")
    said = ", ".join(parts) if parts else "it holds no trials yet"
    return (f"no trial finished in study {study.study_name!r}, so there is no model to deploy: {said}; see search.log "
            f"and the fail_reason column of trials.csv in {run_dir.resolve()}")


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
        self.target = total
        # a study may hold more than search.n_trials (a rerun with a lower one, other workers' trials): the bar then
        # shows them all as done ("6/6", not "6/4") and says the setting was reached
        self.trials = self.progress.add_task(self._description(done, "-"), total=max(total, done), completed=done)
        self.steps = self.progress.add_task("  training", total=1, visible=False)

    def _description(self, done: int, best: str) -> str:
        reached = f"search.n_trials={self.target} reached; " if done > self.target else ""
        return f"trials ({reached}best {best})"

    def __enter__(self) -> "_Progress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def on_step(self, step: int, total: int) -> None:
        if self.enabled and (step == 1 or step % 10 == 0 or step == total):
            self.progress.update(self.steps, completed=step, total=total, visible=True)

    def on_trial(self, done: int, best: str) -> None:
        self.progress.update(self.trials, completed=done, total=max(self.target, done),
                             description=self._description(done, best))


def _pct(acc: float) -> str:
    """An accuracy as search.log's lines give it: a percent, as the report does (trials.csv and the JSON files keep
    fractions)."""
    return f"{100 * acc:.2f}%"


def _best_text(study: optuna.Study) -> str:
    best = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if is_feasible(t)]
    if not best:
        return "-"
    t = max(best, key=lambda t: (t.values[0], -t.values[1]))
    return f"val acc {_pct(t.values[0])} @ {t.values[1]:.3f} ms"


def _trial_text(trial: optuna.trial.FrozenTrial) -> str:
    attrs = trial.user_attrs
    mixers = "-".join(ArchConfig.from_json(attrs["arch"]).mixers) if "arch" in attrs else "?"
    head = f"{attrs.get('arch_id', '?')} {mixers} latency={attrs.get('latency_ms', math.nan):.3f} ms"
    if trial.state == TrialState.COMPLETE:
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        return f"{head}: val_acc={_pct(trial.values[0])} ({seconds:.0f} s)"
    return f"{head}: {trial.state.name.lower()} ({attrs.get('fail_reason', '')})"


def n_complete(study: optuna.Study) -> int:
    """How many finished trials `study` holds (all workers')."""
    return counts(study)[0]


class _DropInterruptTraceback(logging.Filter):
    """Optuna logs a trial stopped by Ctrl-C as failed, with the whole traceback of the KeyboardInterrupt and a second
    line "failed with value None"; the search says in one line that it was interrupted, so both are dropped. So are
    those of a trial that stopped the search on a one-line error (`NasError`) or the disk or study database failing
    under it (`storage_or_disk_problem`: a full disk): the search logs `trial N stopped the search: <why>` and the
    command ends with its one line, which Optuna's 30-line traceback came before. So are Optuna's two lines about a
    candidate that failed (in training, or refused for memory): the search logged its reason in one line and handed
    Optuna NaN, which Optuna then called "not acceptable" with the trial's whole parameter dict. A bug's stays."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = False

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        said = error is not None and (isinstance(error, (KeyboardInterrupt, NasError))
                                      or storage_or_disk_problem(error) is not None)
        # a candidate that failed in training: the search logged its reason and handed Optuna NaN to mark it failed
        said = said or "because of the following error: The value nan is not acceptable" in record.getMessage()
        follow_up = self.dropped and "failed with value" in record.getMessage()
        self.dropped = said
        return not (said or follow_up)


@contextlib.contextmanager
def _quiet_interrupts() -> Iterator[None]:
    """`_DropInterruptTraceback` on Optuna's trial logger while the trials run (removed after: no lasting state)."""
    logger, quiet = logging.getLogger("optuna.study._optimize"), _DropInterruptTraceback()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


@contextlib.contextmanager
def _interrupts_at_safe_points() -> Iterator[Callable[[], None]]:
    """While the trials run, Ctrl-C, SIGTERM, SIGUSR1 and SIGUSR2 (a scheduler's warning before its time limit:
    `nas.errors.PREEMPTION_SIGNALS`) only ask the search to stop; the callable it yields raises KeyboardInterrupt at the
    next safe point: the next training step, or the end of the trial (`Terminated` carrying the signal for the others,
    as `stop_on_sigterm` raises, so the command's exit status still says which signal it was). A KeyboardInterrupt
    raised wherever the signal struck could land inside Optuna or SQLAlchemy: one that struck as Optuna started a
    trial's heartbeat thread left that thread running, and the process, its files written, never exited. A second
    signal stops at once, as before. The handlers before are restored on leaving (no lasting state)."""
    requested: list[int] = []
    delivered: list[bool] = []

    def ask_to_stop(signum: int, frame: Any) -> None:
        if requested:  # asked twice: the user will not wait for the step to end
            raise signal_interrupt(signum)
        requested.append(signum)
        said = (f"{signal.Signals(signum).name}: stopping the search at its next training step or trial end (send it "
                "again to stop at once)")
        if signum == signal.SIGTERM and sweep_died():  # a sweep's worker sent itself SIGTERM: say why, not "SIGTERM"
            said = (f"{SWEEP_DIED_TEXT}: stopping the search as on SIGTERM, at its next training step or trial end "
                    "(send SIGTERM to stop at once)")
        # os.write: logging is not safe inside a signal handler (it may strike while a log line is being written)
        os.write(2, f"{said}\n".encode())

    def check() -> None:
        if requested:
            delivered.append(True)
            raise signal_interrupt(requested[0])

    previous: dict[int, Any] = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM, *PREEMPTION_SIGNALS):
            # SIGUSR1/SIGUSR2 where the process takes them at all: not one it ignores or handles outside Python
            if signum in (signal.SIGINT, signal.SIGTERM) or signal.getsignal(signum) not in (None, signal.SIG_IGN):
                previous[signum] = signal.signal(signum, ask_to_stop)
    except ValueError:  # not the main thread (a launcher running the job in a thread): signals cannot reach it
        pass
    try:
        yield check
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if requested and not delivered:  # asked after the last check (the study just filled): a stop all the same
        raise signal_interrupt(requested[0])


def trials_done_text(done: int, target: int, done_word: str = "done") -> str:
    """How far a study is, as a run's first line says it: '3 of 4 trials done' while `done` < `target`
    (`search.n_trials`); once it is reached, '6 trials done, search.n_trials=4 reached: nothing to run', since a rerun
    with a lower n_trials than the study holds said '6 of 4 trials done'."""
    if done < target:
        return f"{done:,} of {counted(target, 'trial')} {done_word}"
    return f"{counted(done, 'trial')} {done_word}, search.n_trials={target} reached: nothing to run"


def trial_count_text(done: int, *, target: int) -> str:
    """How full the study is, as each trial's line in search.log says it: '3/4' while `done` (its finished trials) is at
    most `target` (`search.n_trials`); '7 done, search.n_trials=4 reached' where it holds more (other workers' trials
    finished meanwhile, under a higher n_trials of theirs), which read '7/4'."""
    return f"{done}/{target}" if done <= target else f"{done} done, search.n_trials={target} reached"


def run_trials(run: RunConfig, data: Dataset, run_dir: Path,
               study: optuna.Study) -> tuple[signal.Signals | None, str | None]:
    """Run trials until the study holds `search.n_trials` complete ones; returns the signal that interrupted them (SIGINT
    for Ctrl-C, SIGTERM, SIGUSR1, SIGUSR2; None when they were not) and the line saying why they ended before the study
    was full without one (too many failures in a row, the give-up, the time limit; None when it is full:
    `SearchResult.ended_early`).

    Safe with other workers on the same study: a trial starts only while finished + running trials
    leave room for it, trials of dead workers are failed and re-queued, and while the remaining
    slots are all running elsewhere this worker waits (their worker may still die).
    """
    s = run.search
    target = s.n_trials
    done = n_complete(study)
    if 0 < done < target:  # a full study's first line ('... reached: nothing to run') said it already, near word for word
        log.info("resuming study %r: %s", study.study_name, trials_done_text(done, target, "already finished"))
    deadline = time.monotonic() + s.timeout_s if s.timeout_s else math.inf
    attempts_left = SAMPLES_PER_TRIAL * max(1, target - done)
    poll_s = min(5.0, s.heartbeat_s / 2)
    waiting_logged = False
    ended_early: str | None = None
    try:
        with (_Progress(total=target, done=done, enabled=s.progress) as progress, _quiet_interrupts(),
              _interrupts_at_safe_points() as stop_if_asked):
            def on_step(step: int, total: int) -> None:
                stop_if_asked()
                progress.on_step(step, total)

            # reasons of the trials that failed in training since this process's last finished one: a recipe that fails
            # every candidate (train.lr=1e9: NaN loss) would otherwise train SAMPLES_PER_TRIAL of them per trial needed
            failures: list[str] = []
            objective = make_objective(run, data, run_dir, on_step=on_step, on_failure=failures.append)

            def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
                if trial.state != TrialState.PRUNED:
                    # What its training built (model, optimizer, autograd graph) is freed before the next trial. Not
                    # after a trial pruned before training (over the budget, or its slot taken), which built none: a
                    # full collection of this process's heap (torch, Optuna, Hydra) was a large share of its time.
                    gc.collect()
                if trial.state == TrialState.COMPLETE:
                    failures.clear()
                n = n_complete(study)
                best = _best_text(study)
                progress.on_trial(n, best)
                log.info("trial %d [%s] %s | best %s", trial.number, trial_count_text(n, target=target), _trial_text(trial),
                         best)
                stop_if_asked()  # the trial is told: stopping here loses nothing

            while attempts_left > 0 and time.monotonic() < deadline:
                stop_if_asked()
                fail_lost_trials(study, grace_s=s.grace_s, log_file=run_dir / "search.log")
                complete, running = counts(study)
                if complete >= target:
                    break
                if complete + running >= target:  # the last slots run in other workers
                    if not waiting_logged:
                        log.info("waiting: %s running in other workers %s the study's %d", counted(running, "trial"),
                                 "fills" if running == 1 else "fill", target)
                        waiting_logged = True
                    for _ in range(max(1, round(poll_s / 0.1))):  # short sleeps: a stop asked for is seen soon
                        stop_if_asked()
                        time.sleep(0.1)
                    continue
                waiting_logged = False
                attempts_left -= 1
                study.optimize(objective, n_trials=1, callbacks=[after_trial])  # gc: in after_trial
                if s.max_failures_in_a_row is not None and len(failures) >= s.max_failures_in_a_row:
                    ended_early = _failures_text(failures, complete=n_complete(study), target=target)
                    log.warning("%s", ended_early)
                    break
            else:  # out of time or attempts before the study was full: say which, a short run is not a finished one
                complete = n_complete(study)
                if complete >= target:  # time or attempts ran out with the last trial, which filled the study
                    pass
                elif time.monotonic() >= deadline:
                    ended_early = (f"search.timeout_s={s.timeout_s:g} reached: {complete} of {counted(target, 'trial')} "
                                   "finished; rerun the same command to go on")
                    log.info("%s", ended_early)
                else:
                    states = [t.state for t in study.get_trials(deepcopy=False)]
                    # the budget the trials applied: the study's, which a worker that joined later may have tightened
                    budget = study_budget_ms(study, s.latency_budget_ms)
                    tightened = budget != s.latency_budget_ms
                    said = (f" (the study's, which a worker joined with; this one's is "
                            f"{'none' if s.latency_budget_ms is None else f'{s.latency_budget_ms:g}'})" if tightened else "")
                    # A study keeps its budget (it may only tighten: nas.study.check_search) and its space: a rerun of
                    # this study with a looser budget or another space is refused, so either takes a new study.
                    advice = ("a worker's own setting cannot raise the study's (a budget may only tighten): to search at "
                              "a looser budget, or in a space narrowed to faster ones, start a new study "
                              "(search.study_name=...)" if tightened else
                              "raise it, or narrow the space to faster ones, in a new study (search.study_name=...): a "
                              "study keeps its budget and space")
                    why = (f"{states.count(TrialState.PRUNED)} in the study were over search.latency_budget_ms="
                           f"{budget:g}{said} (pruned without training{_how_far_over(run, data, study, budget)}); the "
                           f"budget admits few architectures of this space: {advice}" if budget is not None else
                           f"{states.count(TrialState.FAIL)} in the study failed: see fail_reason in trials.csv")
                    ended_early = (f"gave up after {SAMPLES_PER_TRIAL * max(1, target - done)} sampled architectures "
                                   f"with {complete} of {counted(target, 'trial')} finished: {why}")
                    log.warning("%s", ended_early)
    except (SystemExit, _ExitInTrial) as e:
        # sys.exit from a handler of the process's own (not the search's) during the trials: its trial is queued again
        # as after a stop, and the exit goes on to `nas.search`, which writes the run's files before it lets it through
        requeued = requeue_interrupted(study)
        log.warning("the process is exiting (a handler of its own called sys.exit): keeping %s%s; rerun the same "
                    "command to resume", counted(n_complete(study), "finished trial"),
                    f", trial {', '.join(map(str, requeued))} queued to run again" if requeued else "")
        raise e.exit if isinstance(e, _ExitInTrial) else e
    except KeyboardInterrupt as e:
        requeued = requeue_interrupted(study)  # the rerun trains the interrupted architecture first
        log.warning("interrupted: keeping %s%s; rerun the same command to resume", counted(n_complete(study), "finished trial"),
                    f", trial {', '.join(map(str, requeued))} queued to run again" if requeued else "")
        return interrupting_signal(e), None  # which one: the command's exit status says it
    return None, ended_early
