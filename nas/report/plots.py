"""The plots: interactive plotly figures for report.html and matplotlib PNGs for report.md, with the colours
and legend they share."""

from __future__ import annotations

import html
import io
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from nas.report.values import _MISSING, _fmt_acc, _fmt_count, _fmt_ms, _to_float
from nas.report.files import _Member, _Run, _Trial
from nas.report.compressed import _INT8_VAL_SOURCE, _cut_text, _int8_points, _int8_source, _val_cut

# plotly and matplotlib (about a second to import) are imported where a page or a PNG is drawn: the rest of the
# toolkit reads the report's constants and notes (a search its run-marker prefix, compress.run its notes) without them.
if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

_DPI = 110
_KIND_ORDER = ("overhead", "conv", "pwconv", "dwconv", "linear", "matmul", "bn", "ln", "relu", "gelu",
               "softmax", "add", "pool", "reduce")
_MIXER_COLOURS = {"identity": "#d9d9d9", "pool": "#9ecae1", "sepconv": "#74c476", "conv": "#fd8d3c",
                  "attn": "#9e6ac8"}
# Used for segments of stacked bars and for mixers this module does not know yet (new search spaces).
_PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6",
            "#9d755d", "#bab0ac", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#17becf")
_FRONT_COLOUR = "#d62728"
_TRIAL_COLOUR = "#8c8c8c"
_INT8_COLOUR = "#2ca02c"


def _mixer_colours(names: Iterable[str]) -> dict[str, str]:
    """Fixed colours for known mixers; unknown ones get palette colours in sorted (stable) order."""
    unknown = sorted({n for n in names if n not in _MIXER_COLOURS})
    colours = dict(_MIXER_COLOURS)
    colours.update({n: _PALETTE[i % len(_PALETTE)] for i, n in enumerate(unknown)})
    return colours


def _text_colour(fill: str) -> str:
    red, green, blue = (int(fill[i:i + 2], 16) for i in (1, 3, 5))
    return "#000000" if 0.299 * red + 0.587 * green + 0.114 * blue > 140 else "#ffffff"


def _stage_parts(members: Sequence[_Member]) -> list[str]:
    """Segments of the by-stage bars in pipeline order: overhead, stem, stage0..N, head, anything else."""
    seen: list[str] = []
    for m in members:
        for key in (m.metrics or {}).get("latency_by_stage") or {}:
            if key not in seen:
                seen.append(key)

    def rank(key: str) -> tuple[int, int, str]:
        if key.startswith("stage") and key[5:].isdigit():
            return (2, int(key[5:]), key)
        fixed = {"overhead": 0, "stem": 1, "head": 3}
        return (fixed.get(key, 4), 0, key)

    return sorted(seen, key=rank)


def _stage_ms(member: _Member, part: str) -> float | None:
    if member.metrics is None:
        return None
    return _to_float((member.metrics.get("latency_by_stage") or {}).get(part)) or 0.0


def _kind_totals(member: _Member) -> dict[str, float]:
    totals: dict[str, float] = {}
    for op in (member.metrics or {}).get("latency_breakdown") or []:
        if isinstance(op, dict):
            kind = str(op.get("kind") or "other")
            totals[kind] = totals.get(kind, 0.0) + (_to_float(op.get("ms")) or 0.0)
    return totals


def _kinds(members: Sequence[_Member]) -> list[str]:
    present = {k for m in members for k in _kind_totals(m)}
    return [k for k in _KIND_ORDER if k in present] + sorted(present - set(_KIND_ORDER))


def _plottable(members: Sequence[_Member]) -> list[_Member]:
    return [m for m in members if m.val_acc is not None and m.latency_ms is not None]


def _row_label(member: _Member) -> str:
    return member.label if member.metrics is not None else f"{member.label} (no breakdown)"


def _predicted_text(ms: float | None, hw: object, decimals: int = 3) -> str:
    """'predicted latency 0.252 ms on edge_npu': a hover text's latency, which a point read alone ('latency 0.252 ms')
    gave as if timed, and on no chip."""
    on = f" on {hw}" if isinstance(hw, str) and hw else ""
    return f"predicted latency {_fmt_ms(ms, decimals)} ms{on}"


def _hover(point: _Trial | _Member, hw: object = None, decimals: int = 3) -> str:
    """The Pareto plot's hover text of a trial or front member: its trial, mixers, summary, val acc, the latency
    predicted for the chip `hw` (at the `decimals` of the run's tables, so that a trial and a member of the same latency
    read alike), and size."""
    # Plotly renders a subset of HTML in hover labels, so the free-form text is escaped.
    lines = [f"trial {point.number if point.number is not None else _MISSING} · {point.arch_id}",
             f"mixers: {'-'.join(point.mixers) or _MISSING}", point.summary or _MISSING,
             f"val acc {_fmt_acc(point.val_acc)} · {_predicted_text(point.latency_ms, hw, decimals)}",
             f"params {_fmt_count(point.params)} · MACs {_fmt_count(point.macs)}"]
    return "<br>".join(html.escape(line) for line in lines)


# One legend for the HTML and PNG plots. The front and trials are the search's proxy val accuracy; an int8 star is the
# final-trained member's compressed file, so it may sit above the front without int8 having gained anything (after
# final_train=none, the proxy weights' compressed file: `_int8_label`).
_FRONT_LABEL = "Pareto front (proxy val acc, as searched)"
_INT8_LABEL = "compressed int8 of the final-trained member (val acc from its OpenVINO file)"
_INT8_LABEL_PROXY = "compressed int8 of the member's proxy weights (final_train=none; val acc from its OpenVINO file)"
_INT8_LABEL_MIXED = "compressed int8 of the member's model.pt (see 'Weights tested'; val acc from its OpenVINO file)"


def _int8_label(members: Sequence[_Member], hw: Any) -> str:
    """The int8 stars' legend: of final-trained weights, or, after final_train=none, of the search's proxy weights
    (the label said "final-trained" for those too); a run with both says to look at the header's 'Weights tested'. Stars
    scored on part of the val images (compress.eval_images) say on how many, as the note under the table does."""
    starred = {a for a, _, _ in _int8_points(members, hw)}
    proxy = {m.metrics.get("final_train") is None for m in members
             if m.arch_id in starred and m.metrics is not None and "final_train" in m.metrics}  # older files lack it
    label = _INT8_LABEL_MIXED if len(proxy) > 1 else _INT8_LABEL_PROXY if proxy == {True} else _INT8_LABEL
    # a star's val acc is from the runtime of its int8 test_acc (test_acc_source; OpenVINO in files before it)
    sources = {_int8_source((m.compressed or {}).get("int8")) for m in members if m.arch_id in starred}
    ran = (_INT8_VAL_SOURCE.get(next(iter(sources)), "") if len(sources) == 1
           else "its int8 file, run as its int8 row's note says")
    label = label.replace("its OpenVINO file", ran) if ran else label
    # compress.eval_images scored a star on part of the val images: the PNG has no hover text to say so, only this
    cuts = {_val_cut(m) for m in members if m.arch_id in starred}
    capped = [cut for cut in cuts if cut is not None]
    if not capped:
        return label
    if len(cuts) == 1:  # every star on the same part
        return label[:-1] + f", on {_cut_text(capped[0], 'val')})"
    some = "some " if None in cuts else ""  # stars scored on every val image beside capped ones, or other caps
    return label[:-1] + f", {some}on part of the val images: compress.eval_images, see the note under the table)"


def _latency_title(hw: object, what: str = "") -> str:
    """An axis title for the chip's predicted latencies: 'predicted latency on edge_npu (ms)', with `what` (' by stage')
    before the unit; a plot taken out of the report still says whose milliseconds they are. No chip: none named."""
    on = f" on {hw}" if isinstance(hw, str) and hw else ""
    return f"predicted latency{on}{what} (ms)"


def _pareto_figure(run: _Run) -> go.Figure | None:
    complete, members = run.complete, _plottable(run.members)
    if not complete and not members:
        return None
    import plotly.graph_objects as go

    decimals = max((m.ms_decimals for m in run.members), default=3)  # the tables' latency decimals, every member's
    fig = go.Figure()
    for feasible, name, symbol in ((True, "trials", "circle"), (False, "trials over budget", "x-thin-open")):
        group = [t for t in complete if t.feasible is feasible]
        if not group:
            continue
        fig.add_trace(go.Scatter(
            x=[t.latency_ms for t in group], y=[100.0 * (t.val_acc or 0.0) for t in group],
            mode="markers", name=name, hoverinfo="text",
            hovertext=[_hover(t, run.header.get("hw"), decimals) for t in group],
            marker={"color": _TRIAL_COLOUR, "symbol": symbol, "size": 8, "opacity": 0.7,
                    "line": {"width": 1.5, "color": _TRIAL_COLOUR}}))
    if members:
        fig.add_trace(go.Scatter(
            x=[m.latency_ms for m in members], y=[100.0 * (m.val_acc or 0.0) for m in members],
            mode="lines+markers", name=_FRONT_LABEL, hoverinfo="text",
            hovertext=[_hover(m, run.header.get("hw"), decimals) for m in members],
            line={"color": _FRONT_COLOUR, "width": 2, "shape": "hv"},
            marker={"color": _FRONT_COLOUR, "size": 11, "symbol": "diamond"}))
    points = _int8_points(run.members, run.header.get("hw"))
    if points:
        cuts = {m.arch_id: _val_cut(m) for m in run.members}  # a star scored on part of the val images says so
        fig.add_trace(go.Scatter(
            x=[p[1] for p in points], y=[100.0 * p[2] for p in points], mode="markers",
            name=_int8_label(run.members, run.header.get("hw")), hoverinfo="text",
            hovertext=[f"{html.escape(a)} int8<br>val acc {_fmt_acc(acc)}"
                       + (f" (on {_cut_text(cut, 'val')}: compress.eval_images)" if (cut := cuts.get(a)) else "")
                       + f"<br>{html.escape(_predicted_text(ms, run.header.get('hw'), decimals))}"
                       for a, ms, acc in points],
            marker={"color": _INT8_COLOUR, "size": 12, "symbol": "star"}))
    if run.budget_ms is not None:
        fig.add_vline(x=run.budget_ms, line_dash="dash", line_color="#555",
                      annotation_text=f"budget {run.budget_ms:g} ms", annotation_position="top right")
    fig.update_layout(xaxis_title=_latency_title(run.header.get("hw")), yaxis_title="val accuracy (%)",
                      template="plotly_white", margin={"l": 60, "r": 20, "t": 30, "b": 50},
                      legend={"orientation": "h", "y": -0.18})
    return fig


def _stacked_bar_figure(members: Sequence[_Member], segments: Sequence[tuple[str, list[float | None]]],
                        x_title: str) -> go.Figure:
    import plotly.graph_objects as go

    labels = [_row_label(m) for m in members]
    fig = go.Figure()
    for i, (name, values) in enumerate(segments):
        fig.add_trace(go.Bar(y=labels, x=values, name=name, orientation="h",
                             marker_color=_PALETTE[i % len(_PALETTE)],
                             hovertemplate="%{y}<br>" + html.escape(name) + ": %{x:.4f} ms<extra></extra>"))
    # Fastest member on top, matching the tables; categoryarray keeps rows that have no bars.
    fig.update_layout(barmode="stack", template="plotly_white", xaxis_title=x_title,
                      yaxis={"categoryorder": "array", "categoryarray": labels, "autorange": "reversed"},
                      margin={"l": 10, "r": 20, "t": 20, "b": 50}, legend={"traceorder": "normal"})
    return fig


def _stage_breakdown_figure(members: Sequence[_Member], hw: object = None) -> go.Figure | None:
    if not any(m.metrics is not None for m in members):
        return None
    segments = [(part, [_stage_ms(m, part) for m in members]) for part in _stage_parts(members)]
    return _stacked_bar_figure(members, segments, _latency_title(hw, " by stage"))


def _kind_breakdown_figure(members: Sequence[_Member], hw: object = None) -> go.Figure | None:
    if not any(_kind_totals(m) for m in members):
        return None
    totals = [(_kind_totals(m) if m.metrics is not None else None) for m in members]
    segments = [(kind, [None if t is None else t.get(kind, 0.0) for t in totals]) for kind in _kinds(members)]
    return _stacked_bar_figure(members, segments, _latency_title(hw, " by op kind"))


def _figure(width: float, height: float) -> Figure:
    """A new matplotlib figure of `width` x `height` inches. The object-oriented Figure API renders through Agg without
    pyplot, so drawing never switches the process-wide matplotlib backend (matplotlib.use) or keeps figures alive in
    pyplot's registry."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return buf.getvalue()


def _placeholder_png(text: str) -> bytes:
    fig = _figure(6, 2.5)
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=13, color="#666")
    ax.set_axis_off()
    return _png_bytes(fig)


def _pareto_png(run: _Run) -> bytes:
    complete, members = run.complete, _plottable(run.members)
    if not complete and not members:
        return _placeholder_png("no finished trials yet")
    fig = _figure(8, 5)
    ax = fig.add_subplot()
    for feasible, name, marker in ((True, "trials", "o"), (False, "trials over budget", "x")):
        group = [t for t in complete if t.feasible is feasible]
        if group:
            ax.scatter([t.latency_ms for t in group], [100.0 * (t.val_acc or 0.0) for t in group],
                       c=_TRIAL_COLOUR, marker=marker, s=30, alpha=0.7, label=name)
    if members:
        xs, ys = [m.latency_ms for m in members], [100.0 * (m.val_acc or 0.0) for m in members]
        ax.plot(xs, ys, color=_FRONT_COLOUR, marker="D", markersize=7, drawstyle="steps-post",
                label=_FRONT_LABEL, zorder=3)
        for m, x, y in zip(members, xs, ys):
            ax.annotate(m.arch_id, (x, y), textcoords="offset points", xytext=(5, -12), fontsize=7,
                        color=_FRONT_COLOUR)
    points = _int8_points(run.members, run.header.get("hw"))
    if points:
        ax.scatter([p[1] for p in points], [100.0 * p[2] for p in points], c=_INT8_COLOUR, marker="*", s=120,
                   label=_int8_label(run.members, run.header.get("hw")), zorder=4)
    if run.budget_ms is not None:
        ax.axvline(run.budget_ms, color="#555", linestyle="--", label=f"budget {run.budget_ms:g} ms")
    ax.set_xlabel(_latency_title(run.header.get("hw")))
    ax.set_ylabel("val accuracy (%)")
    ax.set_title("Pareto front: val accuracy vs. predicted latency")  # as report.md's and report.html's
    ax.grid(alpha=0.3)
    # Below the plot, not inside it: "lower right" hid the trials a front dominates, and "best" still drew its long
    # int8 label over a star where the points leave no corner free.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8)
    return _png_bytes(fig)


def _breakdown_png(run: _Run) -> bytes:
    """latency_breakdown.png: the front's predicted latency by stage and, below it, by op kind, as report.html's two
    plots (report.md had the stages alone: an op kind that takes most of a member's time, LayerNorm left to the host
    CPU of an NPU, showed only in the HTML)."""
    members = run.members
    if not any(m.metrics is not None for m in members):
        return _placeholder_png("no latency breakdown (no Pareto members with metrics.json)")
    kinds = _kinds(members)
    panels = [("by stage", [(part, [_stage_ms(m, part) or 0.0 for m in members]) for part in _stage_parts(members)])]
    if kinds:
        totals = [_kind_totals(m) for m in members]
        panels.append(("by op kind", [(kind, [t.get(kind, 0.0) for t in totals]) for kind in kinds]))
    height = 1.4 + 0.5 * len(members)
    fig = _figure(9, height * len(panels))
    for i, (what, segments) in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, i + 1)
        rows = range(len(members))
        left = [0.0] * len(members)
        for j, (name, widths) in enumerate(segments):
            ax.barh(rows, widths, left=left, color=_PALETTE[j % len(_PALETTE)], label=name, height=0.6)
            left = [a + b for a, b in zip(left, widths)]
        ax.set_yticks(list(rows), [_row_label(m) for m in members], fontsize=8)
        ax.invert_yaxis()  # fastest member on top, as in the tables
        ax.set_xlabel(_latency_title(run.header.get("hw")))
        ax.set_title(f"Predicted latency of the front {what}")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    if len(panels) > 1:
        fig.tight_layout()
    return _png_bytes(fig)


def _mixers_png(run: _Run) -> bytes:
    members, n_stages = run.members, run.max_stages
    if not members or n_stages == 0:
        return _placeholder_png("no Pareto members yet")
    from matplotlib.patches import Rectangle

    colours = _mixer_colours(mx for m in members for mx in m.mixers)
    fig = _figure(2.5 + 1.2 * n_stages, 1.0 + 0.45 * len(members))
    ax = fig.add_subplot()
    for row, m in enumerate(members):
        for col in range(n_stages):
            mixer = m.mixers[col] if col < len(m.mixers) else ""
            fill = colours[mixer] if mixer else "#ffffff"
            ax.add_patch(Rectangle((col, row), 1, 1, facecolor=fill, edgecolor="#ffffff", linewidth=2))
            if mixer:
                ax.text(col + 0.5, row + 0.5, mixer, ha="center", va="center", fontsize=9,
                        color=_text_colour(fill))
    ax.set_xlim(0, n_stages)
    ax.set_ylim(len(members), 0)  # first (fastest) member on top
    ax.set_xticks([c + 0.5 for c in range(n_stages)], [f"stage{c}" for c in range(n_stages)])
    ax.set_yticks([r + 0.5 for r in range(len(members))], [m.label for m in members], fontsize=8)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title("Mixer per stage along the front (fastest first)", pad=24)
    return _png_bytes(fig)
