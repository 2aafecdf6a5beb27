"""The report's wording shared by report.html and report.md: the header's facts, the trials' counts, and the
notes under the front's plots and table."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

# the names compress.pipeline writes, shared with it (no compress imports here: nas.layout holds constants alone)
from nas.layout import IR_FILES, RETIRED_FOLDER

from nas.report.values import _MISSING, _change_of, _counted, _fmt_acc, _fmt_budget, _fmt_ms, _fmt_p, _to_float
from nas.report.files import PARETO_JSON, _Member, _Run, _STAGES, _Trial

_STATE_ORDER = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")


def _vs_member_text(member: _Member, change: dict[str, Any] | None, members: Sequence[_Member]) -> str:
    """'+2.23 pt, p<0.0001 (a real gain)': this member's test accuracy minus that of the member `change` compares it
    with, and whether the test images tell them apart (McNemar's p on the images whose verdict differs)."""
    other = next((o for o in members if change and o.arch_id == change.get("arch_id")), None)
    if change is None or other is None or member.test_acc is None or other.test_acc is None:
        return _MISSING
    p, gain = change["p_value"], member.test_acc - other.test_acc
    # the direction in words: a slower member that is really less accurate is worth a second look
    verdict = "within noise" if p >= 0.05 else ("a real gain" if gain > 0 else "a real loss")
    return f"{100 * gain:+.2f} pt, {_fmt_p(p)} ({verdict})"


def _vs_faster_text(member: _Member, members: Sequence[_Member]) -> str:
    """The front table's 'vs next faster' cell: the gain over the next faster member (`members` in latency order), or
    over the one before it that has test predictions, named ('vs aaaa (bbbb has no test predictions): +1.20 pt, ...');
    'n/a (why)' where no comparison is recorded, and '–' for the fastest member, which has none to have."""
    i = next(j for j, o in enumerate(members) if o is member)
    if i == 0:
        return _MISSING
    nearest, change = members[i - 1], member.vs_faster
    other = next((o for o in members[:i] if change and o.arch_id == change.get("arch_id")), None)
    if change is None or other is None:
        if not member.has_predictions:
            return "n/a (no test predictions)"
        if not any(o.has_predictions for o in members[:i]):
            return f"n/a ({nearest.arch_id} has no test predictions)" if i == 1 else "n/a (no faster member has test predictions)"
        # pareto.json from before 2026-12-05, or hand-edited: rerunning the search (0 new trials) compares them
        return "n/a (pareto.json compares no members; rerun the search command to compare them)"
    if other.test_acc is None or member.test_acc is None:
        return f"n/a ({(other if other.test_acc is None else member).arch_id} has no test accuracy)"
    text = _vs_member_text(member, change, members)
    if other is nearest:
        return text
    skipped = members[members.index(other) + 1:i]
    reason = ", ".join(o.arch_id for o in skipped) + (" has" if len(skipped) == 1 else " have")
    return f"vs {other.arch_id} ({reason} no test predictions): {text}"


def _best_member_note(members: Sequence[_Member]) -> str:
    """Which members faster than the most accurate one the test images cannot tell from it: the cheap choices."""
    best_id = next((m.vs_best["arch_id"] for m in members if m.vs_best), None)
    best = next((m for m in members if m.arch_id == best_id), None)
    if best is None or best.latency_ms is None:
        return ""
    faster = [m for m in members if m.vs_best and m.latency_ms is not None and m.latency_ms < best.latency_ms]
    head = f"Best test accuracy: {best.arch_id} ({_fmt_acc(best.test_acc)}, {_fmt_ms(best.latency_ms, best.ms_decimals)} ms). "
    if not faster:
        # the fastest member is also the most accurate: the run's main finding (every slower member is dominated on the
        # test split), which only the 'vs next faster' cells hinted at
        slower = "; ".join(f"{m.arch_id} ({_fmt_ms(m.latency_ms, m.ms_decimals)} ms, {_vs_member_text(m, m.vs_best, members)})"
                           for m in members if m.vs_best and m.latency_ms is not None and m.latency_ms > best.latency_ms)
        return (head + f"It is also the fastest member: no slower member is more accurate on the test split: {slower}."
                if slower else "")
    close = [m for m in faster if m.vs_best["p_value"] >= 0.05]
    if not close:
        which = f"The faster member {faster[0].arch_id} is" if len(faster) == 1 else "Every faster member is"
        return head + f"{which} less accurate for real (p < 0.05, image by image)."
    listed = ", ".join(f"{m.arch_id} ({_fmt_ms(m.latency_ms, m.ms_decimals)} ms, {_vs_member_text(m, m.vs_best, members)})"
                       for m in close)
    return (head + f"Faster members the test images cannot tell from it (p >= 0.05, image by image): {listed}. "
            f"The fastest of them, {close[0].arch_id}, buys its speed at no accuracy loss this test split can show.")


def _change_text(change: Any) -> str | None:
    """'vs model.onnx: 41 test images now wrong, 34 now right (p=0.49, not shown to differ)': the images whose verdict
    changed from the file before, and McNemar's p (compressed_metrics.json's changed_vs_before; None if absent)."""
    if (change := _change_of(change)) is None:
        return None
    wrong, right, p = change["now_wrong"], change["now_right"], change["p_value"]
    if p >= 0.05:
        verdict = "not shown to differ"
    else:
        verdict = "a real drop" if wrong > right else "a real gain"
    return (f"vs {change.get('file') or 'the file before'}: {_counted(wrong, 'test image')} now wrong, {right:,} now right "
            f"({_fmt_p(p)}, {verdict})")


# Under the tables that show intervals: how to read them (nas.stats).
_CI_NOTE = ("Test accuracies in [brackets]: the 95% interval that the number of test images allows. Files of the same "
            "member, and members with each other, are compared image by image: 'now wrong / now right' counts the test "
            "images whose verdict changed from the file before, 'vs next faster' is the gain over the next faster member "
            "(or, named in the cell, over the next faster one that has test predictions), "
            "and p (McNemar's exact test) is the chance of a split at least that uneven if the two were equally "
            "accurate; below 0.05 the difference is real for this data.")


def _predicted_note(members: Sequence[_Member], header: dict[str, Any]) -> str:
    """What the front table's 'predicted latency' is: the chip's prediction at its hw.precision (pareto.json's
    hw_precision), so on an int8 chip the int8 model's time and not model.pt's float one. '' without members or for a
    pareto.json from before the field."""
    hw, precision = header.get("hw"), header.get("hw_precision")
    if not (members and isinstance(hw, str) and hw and isinstance(precision, str) and precision):
        return ""
    which = f" (the {precision} model's time on the chip, not model.pt's float one)" if precision != "fp32" else ""
    return (f"'predicted latency': each member's architecture on {hw} at its hw.precision, {precision}{which}, "
            "from the latency predictor, not timed.")


def _measured_note(members: Sequence[_Member], header: dict[str, Any] | None = None) -> str:
    """How and where 'measured on host' was timed (metrics.json's measured_latency_how / _on): a time means little
    without its runtime, threads and CPU. When members were not timed, why (pareto.json's measured_latency_missing,
    absent from runs before 2026-12-05: no note then): an all-'–' column read as a failure. '' when neither."""
    why = (header or {}).get("measured_latency_missing")
    if why and any(m.measured_ms is None for m in members):
        return f"'measured on host' is empty: {why}."
    seen: dict[str, list[str]] = {}  # each text, with the members timed so
    for m in members:
        if m.measured_ms is None or not isinstance(m.metrics, dict):
            continue
        how, on = m.metrics.get("measured_latency_how"), m.metrics.get("measured_latency_on")
        text = ", ".join(str(v) for v in (how, f"on {on}" if on else None) if v)
        if text:
            seen.setdefault(text, []).append(m.arch_id)
    if len(seen) > 1:
        # The texts differ (each member's spread is in its own, a busy machine's warning too): listed bare, the note
        # read as the first member's, then the second's, and so on, with no member named
        return "'measured on host': " + "; ".join(f"{', '.join(ids)}: {text}" for text, ids in seen.items()) + "."
    return f"'measured on host': {next(iter(seen))}." if seen else ""


# ... and when the front table shows val intervals (pareto.json's val_acc_ci95 and val_acc_final_ci95; none for
# balanced accuracy)
_VAL_CI_NOTE = ("Val accuracies in [brackets]: the 95% interval that the number of val images allows, which says how "
                "far each member's val accuracy, the score the search ranked it by{}, can be trusted.")


def _ci_note(members: Sequence[_Member]) -> str:
    """_CI_NOTE when a table of the report shows a test interval or a change count, _VAL_CI_NOTE when it shows a val
    interval (both, or '')."""
    stages = [(m.compressed or {}).get(stage) or {} for m in members for stage in _STAGES]
    shown = (any(m.test_ci or m.vs_faster for m in members)
             or any(s.get("test_acc_ci95") or s.get("changed_vs_before") for s in stages))
    final = " and the final-trained weights'" * any(m.val_final_ci for m in members)
    return " ".join([_CI_NOTE] * shown + [_VAL_CI_NOTE.format(final)] * any(m.val_ci or m.val_final_ci for m in members))


def _shows_final_val(members: Sequence[_Member]) -> bool:
    """Whether the front table has its 'val acc (final)' column: some member was final-trained (else every cell would
    be '–', read as a failure)."""
    return any(m.val_final is not None for m in members)


def _final_val_note(members: Sequence[_Member]) -> str:
    """What the 'val acc (final)' column is, under the front table that shows it ('' when it does not)."""
    if not _shows_final_val(members):
        return ""
    # The search's proxy score and the shipped weights' test accuracy sat side by side: the gain of the final training
    # on the images the search scored, and the val-test gap of the same weights, could not be read off the report.
    # which file's key each is: `val_acc` is the final-trained weights' in metrics.json but the proxy's in pareto.json
    note = ("'val acc (final)': the val accuracy of the shipped weights (model.pt) after the final training "
            "(metrics.json's val_acc, pareto.json's val_acc_final), on the same val images as 'val acc (search)' "
            "(pareto.json's val_acc), the proxy training's score the search ranked members by")
    if any(m.val_final is None for m in members):
        note += "; '–' for a member not final-trained, whose weights are the proxy's"
    return note + (". The search chose the members on these val images, so judge the shipped weights by their test "
                   "accuracy.")


def _state_counts_text(trials: Sequence[_Trial]) -> str:
    counts = Counter(t.state or "UNKNOWN" for t in trials)
    states = [s for s in _STATE_ORDER if counts[s]] + sorted(s for s in counts if s not in _STATE_ORDER)
    parts = ", ".join(f"{counts[s]} {s}" for s in states)
    stopped = sum(t.stopped_early for t in trials)
    if stopped:  # complete, but with the accuracy they had when stopped
        parts += f" ({stopped} of them stopped early as hopeless)"
    duplicates = sum(t.duplicate for t in trials)
    if duplicates:  # they count against search.n_trials but explored nothing new
        parts += f" ({duplicates} of them re-proposed an architecture already trained and reused its result)"
    return _counted(len(trials), "trial") + (f": {parts}" if parts else "")


_INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"  # how nas.study.INTERRUPTED_REASON starts (no nas imports here)


def _failure_reason(trial: _Trial, trials: Sequence[_Trial]) -> str:
    """`trial`'s fail_reason for the report: an interrupted trial whose architecture a later trial finished was run
    again by the rerun, so its "rerun the same command to resume" would ask for what is done."""
    reason = trial.fail_reason or "no reason recorded"
    if reason.startswith(_INTERRUPTED) and trial.number is not None and any(
            t.state == "COMPLETE" and t.arch_id == trial.arch_id and t.number is not None and t.number > trial.number
            for t in trials):
        return f"{_INTERRUPTED}, run again since (trials.csv: a later trial of its arch_id)"
    return reason


def _failures_text(trials: Sequence[_Trial], shown: int = 3) -> str:
    """'2 × RuntimeError: out of memory; 1 × ValueError: NaN loss': the most common reasons of the failed trials (from
    trials.csv), so a run whose trials failed says why without opening the CSV; '' when none failed."""
    reasons = Counter(_failure_reason(t, trials) for t in trials if t.state == "FAIL")
    if not reasons:
        return ""
    common = reasons.most_common(shown)
    text = "; ".join(f"{n} × {reason}" for reason, n in common)
    rest = sum(reasons.values()) - sum(n for _, n in common)
    return text + (f"; {rest} with other reasons (trials.csv, column fail_reason)" if rest else "")


def _no_trials_note(run: _Run) -> str:
    """Why the Pareto plot is empty: still running, or a finished search none of whose trials completed."""
    if run.complete:
        return ""
    if not run.trials or any(t.state == "RUNNING" for t in run.trials):
        return "No finished trials yet."
    pruned = all(t.state == "PRUNED" for t in run.trials)
    budget = run.budget_ms if pruned else None
    over = [t.latency_ms for t in run.trials if budget is not None and t.latency_ms is not None and t.latency_ms > budget]
    if over and len(over) == len(run.trials):  # the budget, not training, left nothing: say how far off it was
        return (f"No finished trials: all {_counted(len(over), 'trial')} sampled were predicted slower than the latency "
                f"budget ({_fmt_budget(budget)}), so none was trained; the fastest of them was {_fmt_ms(min(over))} ms "
                "(trials.csv, latency_ms).")
    return (f"No finished trials: none of the {_counted(len(run.trials), 'trial')} completed (trials.csv's fail_reason column says "
            "why for each).")


def _no_members_note(run: _Run) -> str:
    """Why the front is empty although trials may have finished (over the budget, or members left out of pareto.json)."""
    complete = run.complete
    if not complete:
        return "No Pareto members yet." if _no_trials_note(run).endswith("yet.") else "No Pareto members: no finished trials."
    if not any(t.feasible for t in complete):
        return (f"No Pareto members: none of the {_counted(len(complete), 'finished trial')} is within the latency budget "
                f"({_fmt_budget(run.budget_ms)}).")
    if names := _left_out_names(run):
        # a first run stopped in its final training lists no member at all: the note named none of the front's, which
        # the report of a run with some members listed names (_left_out_note)
        return (f"No Pareto members in {PARETO_JSON} although {_counted(len(complete), 'trial')} finished; on the Pareto "
                f"front (trials.csv, is_pareto): {names}. {_capital(_left_out_why(to='write'))}.")
    return (f"No Pareto members in {PARETO_JSON} although {_counted(len(complete), 'trial')} finished (a member not final-trained "
            "because the search was interrupted, or whose weights are missing, is left out: search.log names it); rerun "
            "the search command to write them.")


def _left_out_ids(run: _Run) -> list[str]:
    """The front's members that pareto.json lacks, by latency: its `members_missing`, or, in a file from before that
    field, the members trials.csv marks (is_pareto) that it does not list; [] when none is missing."""
    recorded = run.header.get("members_missing")
    if isinstance(recorded, list):
        return [str(a) for a in recorded]
    listed = {m.arch_id for m in run.members}
    on_front = {t.arch_id: t for t in reversed(run.trials) if t.on_front}  # a re-proposed duplicate: its first trial
    return [t.arch_id for t in sorted(on_front.values(), key=lambda t: t.latency_ms if t.latency_ms is not None else 0.0)
            if t.arch_id not in listed]


def _left_out_names(run: _Run) -> str:
    """'f3a0cbbb22 (trial 1, 0.329 ms), ...': the front's members that pareto.json lacks (`_left_out_ids`), by latency,
    each with its trial from trials.csv where that lists it; '' when none is missing."""
    trials: dict[str, _Trial] = {}
    for t in run.trials:
        if t.state == "COMPLETE":
            trials.setdefault(t.arch_id, t)  # a re-proposed duplicate repeats its arch_id
    return ", ".join(f"{a} (trial {t.number if t.number is not None else _MISSING}, {_fmt_ms(t.latency_ms)} ms)"
                     if (t := trials.get(a)) is not None else a for a in _left_out_ids(run))


def _left_out_why(*, rerun: str = "the search command", to: str = "add") -> str:
    """'not final-trained because the search was interrupted, ...; rerun the search command to add them': why the front's
    members that pareto.json lacks (`_left_out_names`) are left out, and the command (`rerun`) that writes them, `to`
    add them to the members listed ('write' where none is). Said alike by the report's notes and `python -m nas.report`'s
    stderr line."""
    return (f"not final-trained because the search was interrupted, or their weights are missing (search.log says "
            f"which); rerun {rerun} to {to} them")


def _capital(text: str) -> str:
    """`text` with its first letter a capital, to start a sentence (str.capitalize would lower the rest: a command)."""
    return text[:1].upper() + text[1:]


def _incomplete_front_line(run: _Run, *, rerun: str = "the search command") -> str | None:
    """The line `python -m nas.report` says on stderr when pareto.json (and so the report) lacks members of the front:
    an interrupted search lists those finished only. `rerun`: the command that adds them. None when it holds the whole
    front."""
    if not (missing := _left_out_ids(run)):
        return None
    return (f"incomplete front: {len(run.members) + len(missing)} on the Pareto front, {len(run.members)} of them in "
            f"pareto.json and the report; not in them: {_left_out_names(run)}, {_left_out_why(rerun=rerun)}")


def _say_incomplete_front(run: _Run, *, rerun: str = "the search command") -> None:
    """`_incomplete_front_line` on stderr, after what was printed on stdout (the files written, for scripts)."""
    if (line := _incomplete_front_line(run, rerun=rerun)) is not None:
        sys.stdout.flush()  # after the paths in a terminal too, where stdout is buffered apart
        print(line, file=sys.stderr)


def _left_out_note(run: _Run) -> str:
    """Front members trials.csv marks (is_pareto) that pareto.json lacks: left out for now (not final-trained because the
    search was interrupted, or their weights missing). Without this the table reads as the whole front, and a 'vs next
    faster' cell as a comparison with the member just faster on the front. '' when none is missing (or no member is
    listed at all: _no_members_note names them)."""
    names = _left_out_names(run)
    if not names or not run.members:
        return ""
    return f"Not in this table, though on the Pareto front (trials.csv, is_pareto): {names}. {_capital(_left_out_why())}."


def _missing_files_note(members: Sequence[_Member]) -> str:
    """Files the members' records describe that are gone from their folders (deleted by hand), and what makes them
    again: without it the tables listed them as the members' files. '' when none is gone."""
    gone = [f"{m.arch_id}: {', '.join(m.missing_files)}" for m in members if m.missing_files]
    if not gone:
        return ""
    # where a member lacks only its OpenVINO IR, the search converts it again from model_int8.onnx
    # (compress.pipeline.convert_ir_again): "by compressing the member again" promised minutes of pruning and QAT
    ir_only = [set(m.missing_files) <= set(IR_FILES) for m in members if m.missing_files]
    how = ("the OpenVINO IR converted again from the kept model_int8.onnx, without compressing the member again"
           if all(ir_only) else
           "model.onnx from the kept model.pt, without training; the int8 files by compressing the member again"
           + (", or, where only the OpenVINO IR (model_int8.xml, model_int8.bin) is gone, by converting it again from "
              "the kept model_int8.onnx" if any(ir_only) else ""))
    return (f"Files gone from the members' folders: {'; '.join(gone)}. Rerun the search command to make them again "
            f"({how}); until then their rows describe files that are not there.")


def _header_facts(run: _Run) -> list[tuple[str, str]]:
    h = run.header
    hw = str(h.get("hw") or _MISSING) + _changed_text(h.get("hw_changed"))
    if h.get("hw_description"):
        hw = f"{hw} — {h['hw_description']}"
    # Runs from before the predictor was named in pareto.json simply lack the line.
    predictor = [("Latency predictor", str(h["latency_predictor"]))] if h.get("latency_predictor") else []
    if h.get("latency_warning") and not isinstance(h.get("setup_warnings"), list):
        # a run from before 2026-12-05; later ones list it among the setup warnings, which the Warnings section shows
        predictor.append(("Latency warning", str(h["latency_warning"])))
    # Plain accuracy needs no line (and runs from before data.metric were scored by it).
    metric = ([("Accuracy", "balanced accuracy (data.metric): the mean over the classes of each class's accuracy; "
                            "every accuracy in this report is scored so")] if h.get("metric") == "balanced_accuracy" else [])
    return [("Hardware", hw), *predictor, ("Dataset", _dataset_text(h)), *metric,
            ("Search space", str(h.get("space") or _MISSING) + _changed_text(h.get("space_changed"))),
            ("Latency budget", _fmt_budget(run.budget_ms)),
            *([("Search training", searched)] if (searched := _search_training_text(h)) else []),
            ("Trials finished", str(h.get("n_trials_finished", _MISSING))),
            *([("Weights tested", weights)] if (weights := _weights_text(run.members, train_images=_train_images(h)))
              else []),
            # pareto.json's time: not the run's start nor this report's (compression and rebuilds come later), so named
            ("Front written (pareto.json)", str(h.get("created") or _MISSING))]


def _search_training_text(header: dict[str, Any]) -> str | None:
    """How the search trained each candidate, from pareto.json's `train` (its proxy recipe), and that the search's val
    accuracies are of these weights: train=smoke's 1 epoch on 512 images explains low ones. None in a pareto.json from
    before the field."""
    recipe = header.get("train")
    if not isinstance(recipe, dict):
        return None
    how = training_text(epochs=recipe.get("epochs"), subset=recipe.get("subset"), train_images=_train_images(header))
    return (f"{how} per candidate (train): the search's val accuracies (the plot's, 'val acc (search)') are of these "
            "proxy-trained weights")


def _smoke_text(header: dict[str, Any]) -> str:
    """The report's first line where the run took settings from smoke files (pareto.json's `smoke_settings`): their
    accuracies mean nothing, which only README's dry-run line said. '' where none did, and in a pareto.json from before
    the field."""
    groups = header.get("smoke_settings")
    if not isinstance(groups, list) or not groups:
        return ""
    # each with the settings of its set otherwise beside it (`smoke_changed`, none before the field): after
    # final_train=smoke final_train.epochs=3, 'final_train=smoke' alone named another recipe than the one that ran
    changed = header.get("smoke_changed")
    changed = [str(s) for s in changed] if isinstance(changed, list) else []
    named = [" ".join([f"{g}=smoke", *(s for s in changed if s.startswith(f"{g}."))]) for g in groups]
    which = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
    return (f"{which}: seconds-long settings to try the pipeline, so the accuracies in this report are not meaningful; "
            "do not choose or deploy a model by them")


def _train_images(header: dict[str, Any]) -> int | None:
    """The training split's image count pareto.json records (data.images.train); None where it records none."""
    data = header.get("data")
    images = data.get("images") if isinstance(data, dict) else None  # any shape in a hand-edited or older file
    n = images.get("train") if isinstance(images, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def training_text(*, epochs: Any, subset: Any, train_images: int | None) -> str:
    """How long a recipe trains, as the report and search.log say it: '2 epochs', and where its `subset` is fewer than
    the split's `train_images`, '2 epochs on 512 of the 54,000 training images' (final_train=smoke's 512 read as
    epochs over the whole split without it); 'its recipe' where `epochs` is not recorded."""
    how = (_counted(epochs, "epoch") if isinstance(epochs, int) and not isinstance(epochs, bool)
           else f"{epochs} epochs" if epochs is not None else "its recipe")
    if (isinstance(subset, int) and not isinstance(subset, bool) and train_images is not None
            and 0 < subset < train_images):
        how += f" on {subset:,} of the {train_images:,} training images"  # a subset epoch, not the split's
    return how


def _weights_text(members: Sequence[_Member], *, train_images: int | None = None) -> str | None:
    """Which weights the members' test accuracies are of: final-trained (`final_train`, its epochs, and its recipe's
    subset where that is fewer than the `train_images` of the split, as final_train=smoke's 512) or the search's
    proxy-trained ones (final_train=none), from each metrics.json; None when no member's says (no members, or files
    from before the field). Without it, a final_train=none run's test accuracies read as those of finished models."""
    final: dict[str, list[str]] = {}  # "6 epochs" -> arch_ids
    proxy: list[str] = []
    for m in members:
        if m.metrics is None or "final_train" not in m.metrics:
            continue
        info = m.metrics["final_train"]
        if isinstance(info, dict):
            subset = (info.get("recipe") or {}).get("subset") if isinstance(info.get("recipe"), dict) else None
            how = training_text(epochs=info.get("epochs"), subset=subset, train_images=train_images)
            final.setdefault(how, []).append(m.arch_id)
        else:
            proxy.append(m.arch_id)
    if not final and not proxy:
        return None
    mixed = len(final) + bool(proxy) > 1  # name the members only when they differ
    parts = [f"final-trained from scratch ({how}, final_train)" + (f": {', '.join(ids)}" if mixed else "")
             for how, ids in final.items()]
    if proxy:
        parts.append("the search's proxy-trained weights (final_train=none; not trained further)"
                     + (f": {', '.join(proxy)}" if mixed else ""))
    return "; ".join(parts)


_WARNINGS_NOTE = ("What the search that wrote pareto.json (or a rebuild of it) warned about its setup as it started, as "
                  "search.log has it; the search went on, so they concern the results below.")
_UNFINISHED_WARNINGS_NOTE = ("What the search(es) named above as not finished warned about their setup as they "
                             "started, as search.log has it (the tables below are of the state before them; the report "
                             "a search writes when it finishes lists its own).")
_UNFINISHED_BESIDES_NOTE = ("What the search(es) named above as not finished warned besides, about their own setup "
                             "as they started, as search.log has it (the report a search writes when it finishes lists "
                             "its own).")


def _warnings_of(run: _Run) -> list[tuple[list[str], str]]:
    """The setup warnings the report lists, in groups, each with the note that says whose they are (none when there are
    none): pareto.json's, those of the search that wrote it; but while searches have not finished and their markers
    recorded theirs, those instead (a search starting or stopping rewrites the report while pareto.json is still the
    previous run's, whose warnings would read as this one's), unless pareto.json was written after they started
    (`_Run.written_since`): a worker finishing beside them listed only theirs, as if they were its own, and not the ones
    it gave itself. It then lists its own, and theirs that it did not give."""
    own = _setup_warnings(run.header)
    if run.unfinished_warnings is None:
        return [(own, _WARNINGS_NOTE)] if own else []
    if not run.written_since:
        return [(run.unfinished_warnings, _UNFINISHED_WARNINGS_NOTE)] if run.unfinished_warnings else []
    besides = [w for w in run.unfinished_warnings if w not in own]
    return [(group, note) for group, note in ((own, _WARNINGS_NOTE), (besides, _UNFINISHED_BESIDES_NOTE)) if group]


def _setup_warnings(header: dict[str, Any]) -> list[str]:
    """pareto.json's `setup_warnings`, one line each (a line break in one would end its bullet); [] when there are none,
    also for runs from before 2026-12-05 that lack the field (their report has no Warnings section)."""
    raw = header.get("setup_warnings")
    if not isinstance(raw, list):
        return []
    return [" ".join(str(w).splitlines()) for w in raw if w]


def _changed_text(keys: Any) -> str:
    """' (changed from its file: norms, stages)' for a space or chip set on the command line, else ''."""
    if not keys or not isinstance(keys, list):
        return ""
    return f" (changed from its file: {', '.join(map(str, keys))}; config.yaml holds the values searched)"


def _dataset_text(header: dict[str, Any]) -> str:
    """`fashion_mnist (/usr/share/...): 10 classes, 1x28x28 images; 54,000 train / 6,000 val / 10,000 test (one test
    image = 0.01 pt)`; only the name for runs from before pareto.json described the data (or an unreadable entry)."""
    name = str(header.get("dataset") or _MISSING)
    d = header.get("data")
    try:
        c, hgt, wid = (int(v) for v in d["input"])
        n = {k: int(d["images"][k]) for k in ("train", "val", "test")}
        text = (f"{name} ({d['root']}): {_counted(int(d['classes']), 'class', plural='classes')}, {c}x{hgt}x{wid} images; "
                f"{n['train']:,} train / {n['val']:,} val / {n['test']:,} test")
    except (KeyError, TypeError, ValueError):
        return name
    try:  # runs from before 2026-12-04 lack per-class counts
        per_class = {split: {str(k): int(v) for k, v in d["per_class"][split].items()} for split in ("train", "test")}
    except (KeyError, TypeError, ValueError, AttributeError):
        per_class = None
    if per_class and header.get("metric") == "balanced_accuracy":
        text += _balanced_worth(per_class["test"])
    elif n["test"] > 0:
        text += f" (one test image = {_image_worth(n['test'])} pt)"
    if per_class is None:
        return text
    return text + "; images per class: " + ", ".join(f"{split} {_class_spread(per_class[split])}" for split in per_class)


def _image_worth(n: int) -> str:
    """The accuracy points one of `n` test images is worth: '0.01' of 10,000, '0.1' of 1,000 ('100' of one, not
    '1e+02')."""
    worth = 100 / n
    return f"{worth:.2g}" if worth < 100 else f"{worth:.0f}"


def _balanced_worth(test: dict[str, int]) -> str:
    """What one test image is worth in a balanced accuracy (the mean of the present classes' accuracies): 1 / (classes
    x its class's images), so a rare class's image weighs most; and which classes the mean leaves out (no test image)."""
    present = {k: v for k, v in test.items() if v > 0}
    if not present:
        return ""
    low, high = min(present, key=present.__getitem__), max(present, key=present.__getitem__)
    worth = {k: 100 / (len(present) * v) for k, v in present.items()}
    text = f" (balanced accuracy: one test image = {worth[high]:.2g} pt"  # classes of equal test images: one worth
    if worth[low] != worth[high]:
        text += f" ({high}) to {worth[low]:.2g} pt ({low})"
    absent = sorted(k for k, v in test.items() if v == 0)
    if absent:
        text += f"; {', '.join(absent)}: no test images, left out of the mean"
    return text + ")"


def _class_spread(counts: dict[str, int]) -> str:
    """`1,000 each`, or `40 (crack) to 2,400 (good)`: the fewest and most images of a class."""
    if not counts:
        return _MISSING
    low, high = min(counts, key=counts.__getitem__), max(counts, key=counts.__getitem__)
    if counts[low] == counts[high]:
        return f"{counts[low]:,} each"
    return f"{counts[low]:,} ({low}) to {counts[high]:,} ({high})"


def _title(run: _Run) -> str:
    return f"NAS report: {run.header.get('study_name') or 'unnamed study'}"


def _missing_breakdown_note(members: Sequence[_Member]) -> str:
    missing = [f"{m.arch_id} ({m.metrics_problem})" for m in members if m.metrics is None]
    return f"No latency breakdown for: {', '.join(missing)}." if missing else ""


def _tied_at_extreme(values: dict[str, float], shown: Any, *, lowest: bool) -> tuple[str, str]:
    """('Bag, Shirt', '0.00%'): every name whose value prints as the lowest (or highest) one does, and that printed
    value. Ties are judged as printed: two classes shown at '-4.00 pt' are tied to the reader even when float
    subtraction left them 1e-16 apart, and naming one would hide that the others fare as badly."""
    extreme = (min if lowest else max)(values.values())
    text = shown(extreme)
    return ", ".join(k for k, v in values.items() if shown(v) == text), text


def _weakest_class(per_class: Any) -> str:
    """'Shirt 66.10%': the class a model gets right least often (metrics.json's test_acc_per_class); every class tied
    at that score is named ('Bag, Shirt 0.00%'), since naming one would hide that the others fail as badly."""
    scores = {str(k): float(v) for k, v in per_class.items() if _to_float(v) is not None} if isinstance(per_class, dict) else {}
    if not scores:
        return _MISSING
    names, low = _tied_at_extreme(scores, _fmt_acc, lowest=True)
    return f"{names} {low}"


def _member_weakest(m: _Member) -> str:
    return _weakest_class((m.metrics or {}).get("test_acc_per_class"))


def _largest_class_drop(before: Any, after: Any) -> str | None:
    """'largest class drop vs the file before: Shirt -1.20 pt' between two files' test_acc_per_class (every class tied
    at that drop named: 'Bag, Shirt -4.00 pt'), or 'no class dropped vs the file before' (None if either lacks it)."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return None
    drops = {k: (float(before[k]) - float(after[k])) * 100 for k in before
             if _to_float(before.get(k)) is not None and _to_float(after.get(k)) is not None}
    if not drops:
        return None
    if round(max(drops.values()), 2) <= 0:  # a "drop" of +0.00 or +1.20 pt would read as a loss
        return "no class dropped vs the file before"
    # every class tied at the largest drop, as the weakest class names its ties
    names, shown = _tied_at_extreme({k: -v for k, v in drops.items()}, lambda d: f"{d:+.2f} pt", lowest=True)
    return f"largest class drop vs the file before: {names} {shown}"


def _front_notes(run: _Run) -> list[str]:
    """The notes under the front table, in their order in both reports; '' for one that does not apply."""
    members = run.members
    return [_left_out_note(run), _missing_files_note(members), _best_member_note(members), _int8_loss_note(members),
            _predicted_note(members, run.header), _measured_note(members, run.header), _final_val_note(members),
            _ci_note(members), _retired_note(run.retired, size_bytes=run.retired_bytes)]


def _int8_loss_note(members: Sequence[_Member]) -> str:
    """The members whose int8 file is really less accurate than their model.onnx (compressed_metrics.json's summary:
    test_acc_fp32 and test_acc_int8, pruning included, and int8_vs_fp32's McNemar p below 0.05). The front table's test
    accuracies and the best-member note are model.pt's: a run whose most accurate member lost 35 pt as int8 called it
    the one to take, the loss said only deep in the compressed table's int8 notes. '' when none did."""
    from nas.report.compressed import scored_images  # it imports this module

    lost = []
    for m in members:
        c = m.compressed or {}
        summary = c.get("summary") if isinstance(c.get("summary"), dict) else {}
        before, after = _to_float(summary.get("test_acc_fp32")), _to_float(summary.get("test_acc_int8"))
        change = _change_of(summary.get("int8_vs_fp32"))
        if c.get("error") or before is None or after is None or change is None or change["p_value"] >= 0.05 \
                or after >= before:
            continue
        n, of = scored_images(c).get("test", (None, None))
        # compress.eval_images: of fewer test images than the front table's, which its 50.77% beside 50.10% hid
        cut = f"; on {n:,} of the {of:,} test images" if (n, of) != (None, None) else ""
        lost.append(f"{m.arch_id} {_fmt_acc(before)} → {_fmt_acc(after)} ({100 * (after - before):+.2f} pt, "
                    f"{_fmt_p(change['p_value'])}{cut})")
    if not lost:
        return ""
    return ("Really less accurate as int8 (the compressed table's 'fp32 → int8 in all', pruning included; p < 0.05, "
            f"image by image): {'; '.join(lost)}. The test accuracies above are model.pt's: judge a member shipped as "
            "int8 by its int8 row.")


def _retired_note(count: int, *, size_bytes: int) -> str:
    """One line under the front table where former members' folders are kept in retired/, with the size of their files
    (`size_bytes`), which no run deletes; '' where none is."""
    if not count:
        return ""
    whose = "1 former member's folder is" if count == 1 else f"{count:,} former members' folders are"
    return (f"{whose} kept in {RETIRED_FOLDER}/ (weights and any compressed files, as they were; "
            f"{size_bytes / 2**20:,.1f} MiB): moved there when a member fell off the front or its model.pt was "
            "final-trained again; this report reads nothing of them and no run deletes them: delete those you no "
            "longer need.")
