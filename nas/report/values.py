"""Single values of a run folder's files: read leniently (None where absent or malformed) and written as the
report shows them (accuracies, latencies, counts, p-values)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_MISSING = "–"  # shown for unknown values (null test accuracy, pruned trial without accuracy, ...)


def _to_float(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _to_int(value: Any) -> int | None:
    number = _to_float(value)
    return None if number is None else int(number)


def _fmt_acc(value: float | None) -> str:
    return _MISSING if value is None else f"{100.0 * value:.2f}%"


def _to_interval(value: Any) -> tuple[float, float] | None:
    """A [low, high] pair of accuracies from a run file, or None if absent or malformed."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    low, high = _to_float(value[0]), _to_float(value[1])
    return (low, high) if low is not None and high is not None and low <= high else None


def _fmt_acc_ci(value: float | None, interval: Any) -> str:
    """'90.45% [89.86–91.01]': an accuracy and its 95% interval (just the accuracy when the file has none)."""
    ci = _to_interval(interval)
    if value is None or ci is None:
        return _fmt_acc(value)
    return f"{_fmt_acc(value)} [{100 * ci[0]:.2f}–{100 * ci[1]:.2f}]"


def _change_of(change: Any) -> dict[str, Any] | None:
    """A run file's image-by-image comparison (`now_wrong`, `now_right`, `p_value` and what it was compared with), or
    None if absent or malformed."""
    if not isinstance(change, dict):
        return None
    wrong, right, p = _to_int(change.get("now_wrong")), _to_int(change.get("now_right")), _to_float(change.get("p_value"))
    if wrong is None or right is None or p is None:
        return None
    return {**change, "now_wrong": wrong, "now_right": right, "p_value": p}


def _fmt_p(p: float) -> str:  # as nas.stats.format_p (no nas imports here)
    if p < 1e-4:
        return "p<0.0001"
    return f"p={p:.4g}" if p < 0.05 <= float(f"{p:.2g}") else f"p={p:.2g}"


def _fmt_ms(value: float | None, decimals: int = 3) -> str:
    return _MISSING if value is None else f"{value:.{decimals}f}"


def _ms_decimals(values: Iterable[float | None], *, least: int = 3, most: int = 6) -> int:
    """The fewest decimals, from `least` up to `most`, at which distinct latencies print differently: two members at
    0.2404 and 0.2396 ms both read '0.240' at 3, as if equal (or sorted wrongly). Rounding keeps the order, so
    distinct strings also read in the right order. `most` (1 ns) is past what a latency prediction means: values
    closer than that are shown equal."""
    distinct = sorted({v for v in values if v is not None})
    for decimals in range(least, most):
        if len({f"{v:.{decimals}f}" for v in distinct}) == len(distinct):
            return decimals
    return most


def _fmt_count(value: int | None) -> str:
    if value is None:
        return _MISSING
    if abs(value) >= 1_000_000:
        return f"{value / 1e6:.2f}M"
    if abs(value) >= 1_000:
        return f"{value / 1e3:.1f}k"
    return str(value)


def _fmt_kib(size_bytes: float | None) -> str:
    """'973': a file's size on disk in whole KiB, as both report tables show it."""
    return _MISSING if size_bytes is None else f"{size_bytes / 1024:.0f}"


def _counted(n: int, noun: str, *, plural: str | None = None) -> str:  # as nas.errors.counted (no nas imports here)
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def _fmt_budget(budget: float | None) -> str:
    return "none" if budget is None else f"{budget:g} ms"
