"""The checks and warnings of a search's start (`nas.search`): images too small for a model, latency and memory budgets
that no candidate of the space can meet, `search.seed_archs` resolved and queued, and the one-line setup warnings
(`setup_warnings`) that search.log, pareto.json and the report give while the search goes on."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from nas.arch import MIN_IMG_SIZE, ArchConfig
from nas.config import (DataFormat, RunConfig, Sampler, SpaceConfig, datasheet_warning, dropped_efficiency_warning,
                        hw_profiles, ignored_efficiency_warning, name_warning)
from nas.data import (Dataset, SplitImageDigests, available_cpus, cross_class_copies_warning, held_out_copies_warning,
                      held_out_gaps_warning, imbalance_warning, nested_classes_warning, numbered_classes_warning)
from nas.errors import ConfigError, counted, module_logger
from nas.latency.hardware import HardwareProfile, element_size_warning, extent_warning, few_archs_warning, input_warning
from nas.latency.measure import host_mismatch, uncalibrated_warning
from nas.memory import (DEFAULT_BUDGET_SHARE, WORKING_MEMORY, fitting_batch_size, gib, machine_memory_bytes, memory_budget,
                        memory_warning)
from nas.space import arch_params, fastest_arch, leanest_arch

if TYPE_CHECKING:  # only the study's type: the checks need no Optuna
    import optuna

log = module_logger("nas.search")  # the search's lines, under its logger's name (search.log shows it; users set its level)


def check_image_size(data: Dataset, run: RunConfig | None = None) -> None:
    """Refuse images smaller than a model takes (at their native size: data.img_size is checked with the config), and
    a random shift (`max_shift` of data, train or final_train) as large as the images, which would blank many of them."""
    if data.img_size < MIN_IMG_SIZE:  # else every trial fails building its model, each with a traceback
        raise ConfigError(f"dataset {data.name!r} has {data.img_size}x{data.img_size} images; models take >= "
                          f"{MIN_IMG_SIZE}x{MIN_IMG_SIZE}: set data.img_size={MIN_IMG_SIZE} or larger")
    if run is None:
        return
    shifts = {"data.max_shift": run.data.max_shift, "train.max_shift": run.train.max_shift,
              "final_train.max_shift": run.final_train.max_shift}
    for name, shift in shifts.items():
        if shift is not None and shift >= data.img_size:
            raise ConfigError(f"{name}={shift} shifts {data.img_size}x{data.img_size} images entirely out of view; allowed: "
                              f"0..{data.img_size - 1} (a few pixels, e.g. 2 on 28x28)")


def check_budget(run: RunConfig, data: Dataset) -> None:
    """Refuse a latency budget that no architecture of the space can meet, and a memory budget in which none can train
    a batch of `train.batch_size`: every candidate would fail at once, and the search sampled 50 per trial asked for
    before it gave up (minutes of failures for nothing)."""
    memory = memory_budget(run.search.memory_budget_gb)
    if memory is not None:
        # a training set smaller than the batch trains in batches of its size (as the objective judges each candidate)
        batch = min(run.train.batch_size, len(data.train), run.train.subset or len(data.train))
        lean, need = leanest_arch(run.space, in_chans=data.in_chans, img_size=data.img_size,
                                  num_classes=data.num_classes, batch_size=batch)
        if need > memory:
            which = (f"search.memory_budget_gb={run.search.memory_budget_gb:g}" if run.search.memory_budget_gb is not None
                     else f"the memory budget of {gib(memory)} ({100 * DEFAULT_BUDGET_SHARE:.0f}% of the memory available; "
                     "search.memory_budget_gb sets it)")
            fit = fitting_batch_size(lean, batch_size=batch, budget_bytes=memory, training=True)
            raise ConfigError(
                f"{which} cannot train any architecture of space {run.space.name!r} at train.batch_size="
                f"{run.train.batch_size}" + (f" ({batch} images per step)" if batch < run.train.batch_size else "")
                + f": the leanest ({lean.summary()}) needs about {gib(need)} of {WORKING_MEMORY}; "
                + (f"set train.batch_size={fit} or lower, or raise the budget" if fit else "raise the budget")
            )
    budget = run.search.latency_budget_ms
    if budget is None:
        return
    arch, ms = fastest_arch(run.space, run.hw, in_chans=data.in_chans, img_size=data.img_size, num_classes=data.num_classes)
    if ms > budget:
        raise ConfigError(
            f"search.latency_budget_ms={budget} cannot be met: the fastest architecture of space "
            f"{run.space.name!r} is predicted at {ms:.3f} ms on {run.hw.name} ({arch.summary()}); raise the budget or shrink the space"
        )


def resolve_seed_archs(run: RunConfig, data: Dataset) -> list[ArchConfig]:
    """The architectures of `search.seed_archs`, shaped for `data` and checked against the space
    (`nas.families.seed_archs`, which the command line's first check runs before the data is known)."""
    from nas.families import seed_archs

    return seed_archs(run.search.seed_archs, space=run.space, in_chans=data.in_chans, img_size=data.img_size,
                      num_classes=data.num_classes)


def enqueue_seed_archs(study: optuna.Study, archs: Sequence[ArchConfig], space: SpaceConfig) -> int:
    """Queue `archs` as the study's first trials if the study is new; returns how many were queued.

    A resumed study keeps its history (the seeds only ever start a study). Workers starting together may
    both try: Optuna skips a queued trial whose parameters are already queued or done.
    """
    if not archs or study.get_trials(deepcopy=False):
        return 0
    for arch in archs:
        study.enqueue_trial(arch_params(arch, space), user_attrs={"seeded": True}, skip_if_exists=True)
    log.info("queued %s to evaluate first: %s", counted(len(archs), "seed architecture"), ", ".join(a.summary() for a in archs))
    return len(archs)


def seeds_left_out(study: optuna.Study, archs: Sequence[ArchConfig]) -> str | None:
    """One line naming the seed architectures a resumed `study` will not evaluate (seeds only start a new study);
    None for a new study or when it has evaluated them all. Ask before `enqueue_seed_archs`."""
    trials = study.get_trials(deepcopy=False)
    seen = {t.user_attrs.get("arch_id") for t in trials}
    missed = [a.summary() for a in archs if a.arch_id not in seen] if trials else []
    if not missed:
        return None
    return (f"search.seed_archs: {'; '.join(missed)} not queued: seeds only start a new study, and this one has "
            f"{counted(len(trials), 'trial')}; pass a new search.study_name to start from them")


def thread_warning(run: RunConfig, *, cpus: int, recipes: Sequence[str] = ("train", "final_train")) -> str | None:
    """One line when a training recipe of `run` (of those named in `recipes`: the ones this process runs) asks for more
    torch threads than the `cpus` this process may use: they then wait on each other and training runs many times
    slower. None when every recipe that trains fits."""
    over = [f"{name}.threads={t.threads}" for name, t in (("train", run.train), ("final_train", run.final_train))
            if name in recipes and t.threads > cpus and t.epochs > 0]
    if not over:
        return None
    return (f"{' and '.join(over)} {'is' if len(over) == 1 else 'are'} more than the {counted(cpus, 'CPU')} this process may use: "
            f"training will run many times slower; set {'it' if len(over) == 1 else 'them'} to {cpus} or fewer")


def trial_count_warning(run: RunConfig) -> str | None:
    """One line when `search.n_trials` of `run` ends the study before a setting that waits for trials acts: NSGA-II's
    first generation (`search.population_size` random trials, search.sampler=nsga2) takes them all, so it never breeds;
    or the early stop (enabled) waits for `search.early_stop.min_reference` fully trained trials, so it never stops a
    candidate. A warning, not an error: the study may be extended later with a larger n_trials. None when neither."""
    s = run.search
    lines = []
    if s.sampler == Sampler.nsga2 and s.population_size >= s.n_trials:
        lines.append(f"search.population_size={s.population_size} is not below search.n_trials={s.n_trials}: NSGA-II's "
                     "first generation takes every trial, so it never breeds (each trial is sampled at random)")
    if s.early_stop.enabled and s.early_stop.min_reference >= s.n_trials:
        lines.append(f"search.early_stop.min_reference={s.early_stop.min_reference} is not below search.n_trials="
                     f"{s.n_trials}: the early stop waits for that many fully trained trials, so it never stops a candidate")
    if not lines:
        return None
    return "; ".join(lines) + " until search.n_trials is raised; lower " + (
        "them" if len(lines) == 2 else "it") + " or raise search.n_trials"


def subset_warning(run: RunConfig, *, num_classes: int, recipes: Sequence[str] = ("train", "final_train")) -> str | None:
    """One line when a training recipe of `run` (of those named in `recipes`) trains on a `subset` of fewer images than
    the data's `num_classes`: some classes are then never trained on, and the accuracies it gives (the search's ranking,
    or the shipped weights') say little. None when every recipe that trains has enough."""
    few = [(name, t.subset) for name, t in (("train", run.train), ("final_train", run.final_train))
           if name in recipes and t.epochs > 0 and t.subset is not None and t.subset < num_classes]
    if not few:
        return None
    named = " and ".join(f"{name}.subset={subset}" for name, subset in few)
    unseen = num_classes - max(subset for _, subset in few)
    one = len(few) == 1
    return (f"{named} {'is' if one else 'are'} fewer images than the {num_classes} classes: at least {unseen} classes are "
            f"never seen in training, so the accuracies {'it gives' if one else 'they give'} say little; give "
            f"{'it' if one else 'them'} {num_classes} or more (null: the whole training split)")


def batch_warning(run: RunConfig, *, train_images: int, recipes: Sequence[str] = ("train", "final_train")) -> str | None:
    """One line when a training recipe of `run` (of those named in `recipes`) gets a single optimizer step per epoch:
    its `batch_size` is more than half of the `train_images` it trains on (its `subset` where that is fewer), as the
    defaults (batch 128, sized for Fashion-MNIST's 54k images) make of a folder of a hundred photos. Each candidate is
    then trained `epochs` steps in all, so the accuracies the recipe gives (the search's ranking, or the shipped
    weights') say little. None when every recipe that trains takes two steps or more per epoch."""
    one_step = []
    for name, t in (("train", run.train), ("final_train", run.final_train)):
        images = train_images if t.subset is None else min(t.subset, train_images)
        # fit() takes len // batch_size steps (at least 1): a single one per epoch below two batches' images
        if name in recipes and t.epochs > 0 and 0 < images < 2 * t.batch_size:
            one_step.append((name, t, images))
    if not one_step:
        return None
    one = len(one_step) == 1
    named = " and ".join(f"{name}.batch_size={t.batch_size}" for name, t, _ in one_step)
    steps = "; ".join(f"{name}: {counted(t.epochs, 'step')} in all on {counted(images, 'image')}, {name}.epochs={t.epochs}"
                      for name, t, images in one_step)
    return (f"{named} {'leaves' if one else 'leave'} a single optimizer step per epoch ({steps}), so the models are "
            f"barely trained and the accuracies {'it gives' if one else 'they give'} say little; lower the batch size "
            "below half the training images or raise the epochs")


def setup_warnings(run: RunConfig, data: Dataset, *, seeds_left_out: str | None = None,
                   recipes: Sequence[str] = ("train", "final_train"),
                   profiles: Sequence[HardwareProfile] | None = None,
                   digests: SplitImageDigests | None = None) -> list[str]:
    """The one-line warnings about the setup of a run of `run` on `data` (its chip profile, data and settings), in the
    order search.log gives them; [] when none applies. The run goes on after each; pareto.json keeps them with the
    warnings of loading the data (`setup_warnings`) and the report shows them: a user who reads only the report must
    learn that its latencies are extrapolated, or that val never looked at a class. `recipes`: the training recipes this
    process runs (`thread_warning`; with "train" it runs trials: `trial_count_warning`); the warnings about what the recipes' accuracies mean (`subset_warning`,
    `batch_warning`) are of both, which the study's results come from. `profiles`: the hardware profiles a hint may name (`nas.config.hw_profiles()`,
    read when None; a run reads them once: each read parses every hw file, the calibrated ones are large). `digests`:
    `nas.data_records.split_image_digests(data)`, which a search start computes once for the study's record too
    (hashed here when None)."""
    checks = (
        # hw=cpu calibrated on another CPU model: the profile may be wanted on purpose (a target machine elsewhere)
        host_mismatch(run.hw, others=hw_profiles() if profiles is None else profiles),
        uncalibrated_warning(run.hw),  # hw=cpu_ort before its fit: the datasheet roofline of a CPU
        few_archs_warning(run.hw),  # a chip fitted on a handful of measurements: the fit warned once, long before
        datasheet_warning(run.hw),  # a new chip's file relying on the generic NPU's numbers
        ignored_efficiency_warning(run.hw),  # hw=cpu hw.efficiency.add=0.5: a calibrated chip reads no efficiency
        dropped_efficiency_warning(run.hw),  # ~hw.efficiency.conv: priced at the peak, not the file's share of it
        element_size_warning(run.hw),  # bytes_per_element: 2 with precision: int8, a copied file half edited
        # as host_mismatch: until a refit at this input the extrapolated latencies are all there is
        input_warning(run.hw, in_chans=data.in_chans, img_size=data.img_size, space=run.space.name,
                      num_classes=data.num_classes),
        # a profile fitted on another space's archs: as input_warning
        extent_warning(run.hw, run.space, in_chans=data.in_chans, img_size=data.img_size, num_classes=data.num_classes),
        # a copied file that kept the original's name: the run goes by that name
        *(name_warning(group) for group in ("hw", "space")),
        thread_warning(run, cpus=available_cpus(), recipes=recipes),  # a config from a bigger machine
        memory_warning(run, machine=machine_memory_bytes(), recipes=recipes),  # a bigger machine's, or a typo
        # a short run of a study meant to grow, or a typo: of the trials this process runs, not a rebuild's
        trial_count_warning(run) if "train" in recipes else None,
        # These two of both recipes whatever this process runs: a rebuild from the study trains no candidate, yet its
        # report shows the val accuracies of the study's proxy training, and must keep the warnings the search's had.
        subset_warning(run, num_classes=data.num_classes),  # a dry run shrunk past the classes
        # a folder of a hundred photos under the batch size sized for Fashion-MNIST: one step per epoch, silently
        batch_warning(run, train_images=len(data.train)),
        seeds_left_out,
        imbalance_warning(data),
        numbered_classes_warning(data.classes),  # folders 0..42: logit 2 is class '10', which argmax users miss
        # data.root one folder above datasets side by side: each read as a class, and the search tells them apart
        nested_classes_warning(Path(run.data.root), data.classes)
        if DataFormat(run.data.format) == DataFormat.imagefolder else None,
        held_out_gaps_warning(data, run.data),  # a class val (or test) never sees
        held_out_copies_warning(data, digests=digests),  # test (or val) images the model trained on
        cross_class_copies_warning(data, digests=digests),  # one photo saved into two class folders
    )
    return [line for line in checks if line is not None]
