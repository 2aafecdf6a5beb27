"""report.html (one self-contained page, plotly.js embedded once) and report.md, with their tables."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from nas.report.values import _MISSING, _fmt_acc, _fmt_acc_ci, _fmt_count, _fmt_kib, _fmt_ms
from nas.report.files import _Member, _Run
from nas.report.notes import (_failures_text, _front_notes, _header_facts, _member_weakest, _missing_breakdown_note,
                              _no_members_note, _no_trials_note, _shows_final_val, _smoke_text, _state_counts_text,
                              _title, _vs_faster_text, _warnings_of)
from nas.report.compressed import _COMPRESSED_HEAD, _compressed_notes, _compressed_rows, _no_compressed_text
from nas.report.plots import (_kind_breakdown_figure, _mixer_colours, _pareto_figure, _stage_breakdown_figure,
                              _text_colour)

# plotly and matplotlib (about a second to import) are imported where a page or a PNG is drawn: the rest of the
# toolkit reads the report's constants and notes (a search its run-marker prefix, compress.run its notes) without them.
if TYPE_CHECKING:
    import plotly.graph_objects as go

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1200px;
     padding:0 1rem;color:#222;line-height:1.45}
h1{margin-bottom:.3rem} h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.15rem 1rem;margin:.8rem 0}
dl.facts dt{font-weight:600} dl.facts dd{margin:0}
.note{color:#666;font-style:italic}
.unfinished,.smoke,ul.warnings{background:#fff3cd;border:1px solid #e0c36a;padding:.5rem .8rem;border-radius:4px}
ul.warnings{padding-left:2rem}
.counts{background:#f4f4f4;padding:.4rem .7rem;border-radius:4px;display:inline-block}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.mixer{text-align:center;font-weight:600;min-width:5.5rem}
.legend span{display:inline-block;padding:.1rem .5rem;margin-right:.3rem;border-radius:3px}
code{font-size:.85rem}
"""


class _PlotlyEmbedder:
    """Turns figures into <div>s, inlining plotly.js with the first one only (one bundle per page)."""

    def __init__(self) -> None:
        self._bundled = False
        self._count = 0

    def __call__(self, fig: go.Figure, height_px: int) -> str:
        import plotly.io as pio

        # Numbered div ids, not Plotly's random ones: a rebuild from the same files writes the same report.html.
        self._count += 1
        div = pio.to_html(fig, include_plotlyjs=not self._bundled, full_html=False, div_id=f"plot{self._count}",
                          default_height=f"{height_px}px", config={"displaylogo": False, "responsive": True})
        self._bundled = True
        return div


def _html_mixer_table(members: Sequence[_Member], n_stages: int) -> str:
    colours = _mixer_colours(mx for m in members for mx in m.mixers)
    used = sorted({mx for m in members for mx in m.mixers})
    head = "".join(f"<th>stage{i}</th>" for i in range(n_stages))
    rows = []
    for m in members:
        cells = []
        for i in range(n_stages):
            if i < len(m.mixers):
                fill = colours[m.mixers[i]]
                cells.append(f'<td class="mixer" style="background:{fill};color:{_text_colour(fill)}">'
                             f"{html.escape(m.mixers[i])}</td>")
            else:  # shallower architecture than the deepest member
                cells.append('<td class="mixer"></td>')
        rows.append(f"<tr><th>{html.escape(m.label)}</th>{''.join(cells)}</tr>")
    legend = "".join(f'<span style="background:{colours[n]};color:{_text_colour(colours[n])}">'
                     f"{html.escape(n)}</span>" for n in used)
    return (f'<p class="legend">{legend}</p><table><thead><tr><th>member (fastest first)</th>{head}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table>")


def _front_head(members: Sequence[_Member]) -> list[str]:
    """The front table's column titles, in report.html and report.md alike: arch_id, the number columns of
    `_front_numbers` ('val acc (final)' where `_shows_final_val`; the size of model.onnx, the float file, for a flash
    budget: the int8 file's is the compressed table's), summary and checkpoint."""
    return ["arch_id", "predicted latency (ms)", "measured on host (ms)", "val acc (search)",
            *["val acc (final)"] * _shows_final_val(members), "test acc", "test acc (ONNX)", "vs next faster (test)",
            "weakest class (test)", "params", "MACs", "model.onnx size (KiB)", "summary", "checkpoint"]


def _front_numbers(m: _Member, members: Sequence[_Member]) -> list[str]:
    """The front table's number cells of member `m` (of `members`, in latency order), between its arch_id and its
    summary, as both reports show them."""
    return [_fmt_ms(m.latency_ms, m.ms_decimals), _fmt_ms(m.measured_ms), _fmt_acc_ci(m.val_acc, m.val_ci),
            *[_fmt_acc_ci(m.val_final, m.val_final_ci)] * _shows_final_val(members),
            _fmt_acc_ci(m.test_acc, m.test_ci), _fmt_acc(m.test_acc_onnx), _vs_faster_text(m, members),
            _member_weakest(m), _fmt_count(m.params), _fmt_count(m.macs), _fmt_kib(m.onnx_bytes)]


def _html_front_table(members: Sequence[_Member]) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in _front_head(members)) + "</tr>"
    rows = []
    for m in members:
        link = (f'<a href="{html.escape(quote(m.checkpoint))}">{html.escape(m.checkpoint)}</a>'
                if m.checkpoint_exists else '<span class="note">missing</span>')
        rows.append(f"<tr><td><code>{html.escape(m.arch_id)}</code></td>"
                    + "".join(f'<td class="num">{html.escape(v)}</td>' for v in _front_numbers(m, members))
                    + f"<td><code>{html.escape(m.summary)}</code></td><td>{link}</td></tr>")
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _html_compressed_table(members: Sequence[_Member], header: dict[str, Any]) -> str:
    rows = _compressed_rows(members, header.get("hw"))
    if not rows:
        return _html_note(_no_compressed_text(header))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _COMPRESSED_HEAD)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_compressed_table(members: Sequence[_Member], header: dict[str, Any]) -> list[str]:
    rows = _compressed_rows(members, header.get("hw"))
    if not rows:
        return [f"_{_md_text(_no_compressed_text(header))}_"]
    lines = ["| " + " | ".join(_COMPRESSED_HEAD) + " |", "|" + "---|" * len(_COMPRESSED_HEAD)]
    return lines + ["| " + " | ".join(_md_text(c) for c in r) + " |" for r in rows]


def _html_note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>' if text else ""


def _html_warnings(run: _Run) -> str:
    """The Warnings section of report.html (`_warnings_of`): one item per warning, a list per group with its note; ''
    when there are none."""
    groups = _warnings_of(run)
    if not groups:
        return ""
    body = "".join(_html_note(note) + '<ul class="warnings">' + "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
                   + "</ul>" for warnings, note in groups)
    return f"<section><h2>Warnings</h2>{body}</section>"


def _render_html(run: _Run) -> str:
    embed = _PlotlyEmbedder()
    members = run.members
    facts = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in _header_facts(run))
    no_trials = _html_note(_no_trials_note(run))
    pareto = _pareto_figure(run)
    hw = run.header.get("hw")
    by_stage, by_kind = _stage_breakdown_figure(members, hw), _kind_breakdown_figure(members, hw)
    bar_height = 140 + 42 * len(members)
    parts = [
        f"<h1>{html.escape(_title(run))}</h1>",
        f'<p class="smoke"><strong>Smoke run:</strong> {html.escape(smoke)}</p>' if (smoke := _smoke_text(run.header)) else "",
        f'<p class="unfinished"><strong>Not finished:</strong> {html.escape(run.unfinished)}</p>' if run.unfinished else "",
        f'<dl class="facts">{facts}</dl>',
        f'<p class="counts">{html.escape(_state_counts_text(run.trials))}</p>',
        _html_note(f"Failed trials: {failures}") if (failures := _failures_text(run.trials)) else "",
        _html_warnings(run),
        "<section><h2>Pareto front: val accuracy vs. predicted latency</h2>", no_trials,
        embed(pareto, 520) if pareto is not None else "",
        "</section><section><h2>Latency breakdown of the front</h2>",
        _html_note(_missing_breakdown_note(members)),
        "<h3>By stage</h3>" + embed(by_stage, bar_height) if by_stage is not None else "",
        "<h3>By op kind</h3>" + embed(by_kind, bar_height) if by_kind is not None else "",
        "" if by_stage is not None or by_kind is not None else _html_note("No breakdown available."),
        "</section><section><h2>Which mixer each stage chose along the front</h2>",
        _html_mixer_table(members, run.max_stages) if members else _html_note(_no_members_note(run)),
        "</section><section><h2>Front members</h2>",
        _html_front_table(members) if members else _html_note(_no_members_note(run)),
        *map(_html_note, _front_notes(run)),
        "</section><section><h2>Compressed winners: fp32 → pruned → int8</h2>",
        _html_compressed_table(members, run.header), *map(_html_note, _compressed_notes(members)),
        "</section>",
    ]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(_title(run))}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(p for p in parts if p) + "\n</body></html>\n")


def _md_cell(text: str) -> str:
    """`text` for a Markdown table cell: a '|' would end the cell and a newline the row."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


# Where Markdown reads '<' as opening raw HTML or an autolink (before a letter, '/', '!' or '?': a tag, a comment; or
# before an '@' in the same word: an e-mail link), and '&' as starting an entity ('&lt;', '&#60;'). Elsewhere both show
# as written, so 'p < 0.05' and 'p<0.0001' are left readable in the file.
_MD_MARKUP_LT = re.compile(r"<(?=[A-Za-z/!?]|\S*@)")
_MD_ENTITY_AMP = re.compile(r"&(?=#?\w+;)")


def _md_text(text: str) -> str:
    """Free text (a note, a warning, a table cell, a header fact) as report.md writes it, so that it shows as written
    where the Markdown is rendered, as report.html's html.escape makes it show there: a '<' that would open raw HTML
    ('hw=<name>', a description '<int8>' vanished) and an '&' that would start an entity ('&lt;' showed as '<') written
    as entities; and as `_md_cell`. Not for the text of a code span, which shows entities as written."""
    return _MD_MARKUP_LT.sub("&lt;", _MD_ENTITY_AMP.sub("&amp;", _md_cell(text)))


def _md_front_table(members: Sequence[_Member]) -> list[str]:
    head = _front_head(members)
    # text columns left-aligned, the number columns (all but the first and the last two) right-aligned
    lines = ["| " + " | ".join(head) + " |", "|---|" + "--:|" * (len(head) - 3) + "---|---|"]
    for m in members:
        # a code span shows its text as written (entities too): only the table's own escapes there
        link = f"[{_md_text(m.checkpoint)}]({quote(m.checkpoint)})" if m.checkpoint_exists else "missing"
        cells = [_md_cell(f"`{m.arch_id}`"), *map(_md_text, _front_numbers(m, members)),
                 _md_cell(f"`{m.summary}`") if m.summary else _MISSING, link]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _render_markdown(run: _Run) -> str:
    # every free text through _md_text, as report.html's through html.escape (a '<' in a note's 'hw=<name>' vanished)
    lines = [f"# {_md_text(_title(run))}", ""]
    if smoke := _smoke_text(run.header):  # first: it qualifies every accuracy below
        lines += [f"> **Smoke run:** {_md_text(smoke)}", ""]
    if run.unfinished:  # first: the tables below describe the state before a search that has not finished
        lines += [f"> **Not finished:** {_md_text(run.unfinished)}", ""]
    lines += [f"- **{k}:** {_md_text(v)}" for k, v in _header_facts(run)]
    lines += [f"- **Trials by state:** {_md_text(_state_counts_text(run.trials))}"]
    if failures := _failures_text(run.trials):
        lines += [f"- **Failed trials:** {_md_text(failures)}"]
    lines += [""]
    if note := _no_trials_note(run):
        lines += [f"_{_md_text(note)}_", ""]
    if groups := _warnings_of(run):  # first section: they qualify every number below
        lines += ["## Warnings", ""]
        for warnings, warnings_note in groups:
            lines += [f"_{_md_text(warnings_note)}_", ""] + [f"- {_md_text(w)}" for w in warnings] + [""]
    lines += ["## Pareto front", "", "![Pareto front: val accuracy vs. predicted latency](pareto.png)", "",
              "## Latency breakdown of the front", ""]
    note = _missing_breakdown_note(run.members)
    lines += [f"_{_md_text(note)}_", ""] if note else []
    lines += ["![Predicted latency by stage and by op kind](latency_breakdown.png)", "",
              "## Which mixer each stage chose along the front", "", "![Mixer per stage](mixers.png)", "",
              "## Front members", ""]
    lines += _md_front_table(run.members) if run.members else [f"_{_md_text(_no_members_note(run))}_"]
    lines += [f"\n_{_md_text(note)}_" for note in _front_notes(run) if note]
    lines += ["", "## Compressed winners: fp32 → pruned → int8", ""] + _md_compressed_table(run.members, run.header)
    for note in _compressed_notes(run.members):
        lines += ["", f"_{_md_text(note)}_"] if note else []
    return "\n".join(lines) + "\n"
