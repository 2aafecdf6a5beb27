"""How far a test accuracy can be trusted: its 95% interval from the number of test images (and a val accuracy's, from
the number of val images), and whether two models scored on the same images differ. Pure functions on class indices
and counts; the report and `compress.run` show their results.

A test split of 300 images knows an accuracy near 90% to about +-3.4 points, so two front members 1 point apart
are not shown to differ; 10,000 images narrow it to +-0.6. Two files scored on the same images (fp32 -> pruned ->
int8) are compared by the images whose verdict changed, which is much sharper than comparing their intervals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: two-sided 95%


def class_tally(predicted: np.ndarray, truth: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(right, total): per class index, how many of its images `predicted` gets right and how many there are."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"predicted has shape {predicted.shape} but truth {truth.shape}: one class per image in each")
    if truth.size and (truth.min() < 0 or truth.max() >= num_classes):
        # bincount would grow extra classes silently, and per-class figures would no longer line up with the names
        raise ValueError(f"truth holds class {int(truth.min()) if truth.min() < 0 else int(truth.max())}; "
                         f"allowed: 0..{num_classes - 1} (num_classes={num_classes})")
    total = np.bincount(truth, minlength=num_classes)
    right = np.bincount(truth[predicted == truth], minlength=num_classes)
    return right, total


def accuracy_interval(right: Sequence[int] | np.ndarray, total: Sequence[int] | np.ndarray, *, balanced: bool = False,
                      z: float = Z95) -> tuple[float, float] | None:
    """95% interval (z) of the accuracy of a model that got `right[c]` of the `total[c]` test images of each class c
    right; None without images. Plain accuracy pools the classes; `balanced` (the mean of the per-class accuracies,
    `data.metric=balanced_accuracy`) combines each present class's own uncertainty, so a class of 20 test images
    widens it as much as its weight says.

    Agresti-Coull, generalised to a mean of k groups as Price and Bonett (2004) do: each group's share is taken as
    (right + z^2/(2k)) / (n + z^2/k), which keeps a class with every image right (or wrong) from claiming no
    uncertainty; the interval is the mean of those shares +- z standard errors, clipped to [0, 1]. For a single group
    (plain accuracy) it is the usual Agresti-Coull interval (close to Wilson's).
    """
    # atleast_1d: one group given as plain numbers, accuracy_interval(45, 50), is one class
    right, total = np.atleast_1d(np.asarray(right, dtype=np.float64)), np.atleast_1d(np.asarray(total, dtype=np.float64))
    if right.shape != total.shape or (right < 0).any() or (right > total).any():
        raise ValueError(f"right={right.tolist()} must be per-class counts between 0 and total={total.tolist()}")
    present = total > 0
    if not present.any():
        return None
    right, total = (right[present], total[present]) if balanced else (right.sum(keepdims=True), total.sum(keepdims=True))
    # The pseudo-images are shared out over the k groups: each class given the z^2/2 of a lone binomial pulled the
    # mean's centre far more than its interval is wide, so a balanced accuracy of 100% on classes of 50, 3 and 3 test
    # images got an interval topping out near 90%, and 19.64% one of [23.17-58.10]: neither held its own accuracy.
    k = len(right)
    n = total + z * z / k
    share = (right + z * z / (2 * k)) / n
    half = z * float(np.sqrt((share * (1 - share) / n).sum())) / k
    center = float(share.mean())
    return max(0.0, center - half), min(1.0, center + half)


def share_interval(accuracy: float, *, images: int, z: float = Z95) -> tuple[float, float] | None:
    """`accuracy_interval` of a plain accuracy known only as a share of `images` (a trial's val accuracy: the search
    keeps its score, not its predictions): `accuracy` x `images` images right. None without images, or when that is not
    a whole number of images (the share was not scored on `images` images, and no count would be honest)."""
    right = accuracy * images
    # a share right/n stored as a float comes back within ~1e-16 x n of its count: far inside this tolerance
    if images <= 0 or not 0.0 <= accuracy <= 1.0 or abs(right - round(right)) > 1e-6:
        return None
    return accuracy_interval(round(right), images, z=z)


def interval_of(predicted: np.ndarray, truth: np.ndarray, num_classes: int, *,
                balanced: bool = False) -> tuple[float, float] | None:
    """`accuracy_interval` of predicted class indices against the true ones (`class_tally` first)."""
    return accuracy_interval(*class_tally(predicted, truth, num_classes), balanced=balanced)


def paired_change(before: np.ndarray, after: np.ndarray, truth: np.ndarray) -> dict[str, float | int]:
    """How two models' predictions on the same images differ: `now_wrong` (right before, wrong after), `now_right`
    (the reverse), and `p_value`, McNemar's exact two-sided test of "both are equally accurate" on those images: the
    chance of a split at least this uneven if each changed image were a coin flip. A small p (below 0.05) says the
    change in accuracy is real for this data; a large one says these test images cannot tell the two apart."""
    from scipy.stats import binomtest

    before_ok, after_ok = np.asarray(before) == np.asarray(truth), np.asarray(after) == np.asarray(truth)
    now_wrong, now_right = int((before_ok & ~after_ok).sum()), int((~before_ok & after_ok).sum())
    changed = now_wrong + now_right
    p = binomtest(min(now_wrong, now_right), changed, 0.5).pvalue if changed else 1.0
    return {"now_wrong": now_wrong, "now_right": now_right, "p_value": float(min(1.0, p))}


def format_p(p: float) -> str:
    """'p=0.17', 'p=0.0035' or 'p<0.0001': a p-value as the report and `compress.run` print it (a tiny p is not 0; a p
    just under 0.05, which the report calls real, is not rounded up to 'p=0.05')."""
    if p < 1e-4:
        return "p<0.0001"
    return f"p={p:.4g}" if p < 0.05 <= float(f"{p:.2g}") else f"p={p:.2g}"
