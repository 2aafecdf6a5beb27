"""nas.stats: accuracy intervals that hold their coverage, and McNemar's test on images that changed verdict."""

import numpy as np
import pytest

from nas.stats import Z95, accuracy_interval, class_tally, format_p, interval_of, paired_change, share_interval


def test_class_tally_counts_right_and_total_per_class():
    right, total = class_tally(np.array([0, 1, 1, 2, 0]), np.array([0, 1, 2, 2, 1]), 4)
    assert right.tolist() == [1, 1, 1, 0] and total.tolist() == [1, 2, 2, 0]
    predicted, truth = np.array([0, 1, 1, 2, 0]), np.array([0, 1, 2, 2, 1])
    assert interval_of(predicted, truth, 4, balanced=True) == accuracy_interval([1, 1, 1, 0], [1, 2, 2, 0], balanced=True)


@pytest.mark.parametrize("p, n", [(0.9, 300), (0.97, 100), (0.5, 40), (0.9, 10_000)])
def test_the_interval_holds_the_true_accuracy_about_95_percent_of_the_time(p, n):
    rng = np.random.default_rng(0)
    draws = rng.binomial(n, p, size=4000)
    covered = np.mean([lo <= p <= hi for lo, hi in (accuracy_interval([k], [n]) for k in draws)])
    assert 0.93 <= covered <= 0.975, covered


def test_balanced_interval_holds_its_coverage_with_a_rare_class():
    # 3 classes of 500, 500 and 20 test images: the rare one's uncertainty dominates the balanced accuracy's.
    rng = np.random.default_rng(1)
    p, n = np.array([0.95, 0.9, 0.7]), np.array([500, 500, 20])
    hits = 0
    for _ in range(3000):
        lo, hi = accuracy_interval(rng.binomial(n, p), n, balanced=True)
        hits += lo <= p.mean() <= hi
    assert 0.93 <= hits / 3000 <= 0.975
    lo, hi = accuracy_interval([475, 450, 14], n, balanced=True)
    lo_even, hi_even = accuracy_interval([475, 450, 350], [500, 500, 500], balanced=True)
    assert hi - lo > 2 * (hi_even - lo_even)  # 20 rare images know the mean far less well than 500 do


def test_interval_width_follows_the_number_of_test_images():
    lo, hi = accuracy_interval([9045], [10_000])
    assert lo < 0.9045 < hi and hi - lo == pytest.approx(2 * 1.96 * np.sqrt(0.9045 * 0.0955 / 10_000), rel=0.01)
    lo, hi = accuracy_interval([270], [300])
    assert 0.06 < hi - lo < 0.07  # +-3.4 points at 90% on 300 images
    # All right is not certainty, and the bounds stay within [0, 1].
    lo, hi = accuracy_interval([50], [50])
    assert hi == 1.0 and lo < 0.95 and accuracy_interval([0], [50])[0] == 0.0


def test_plain_accuracy_pools_the_classes_and_balanced_skips_classes_without_images():
    assert accuracy_interval([30, 60], [50, 100]) == accuracy_interval([90], [150])
    assert accuracy_interval([30, 0, 60], [50, 0, 100], balanced=True) == accuracy_interval([30, 60], [50, 100], balanced=True)
    assert accuracy_interval([0, 0], [0, 0]) is None
    with pytest.raises(ValueError, match=r"right=\[5\.0\] must be per-class counts between 0 and total=\[3\.0\]"):
        accuracy_interval([5], [3])


def test_paired_change_counts_changed_images_and_gives_mcnemars_exact_p():
    truth = np.zeros(30, dtype=int)
    before = np.array([0] * 20 + [1] * 10)
    after = np.array([1] * 10 + [0] * 10 + [1] * 10)  # 10 right -> wrong, none wrong -> right
    assert paired_change(before, after, truth) == {"now_wrong": 10, "now_right": 0, "p_value": pytest.approx(2 * 0.5**10)}
    # The same split the other way round is as (un)likely; an even split, or no change, is no evidence at all.
    assert paired_change(after, before, truth)["p_value"] == pytest.approx(2 * 0.5**10)
    even = paired_change(np.array([0, 1]), np.array([1, 0]), np.array([0, 0]))
    assert even == {"now_wrong": 1, "now_right": 1, "p_value": 1.0}
    assert paired_change(before, before, truth) == {"now_wrong": 0, "now_right": 0, "p_value": 1.0}
    # 7 vs 3 of 10 changed: P(X <= 3) for Binomial(10, 1/2) is 176/1024, doubled
    before, after = np.array([0] * 7 + [1] * 3), np.array([1] * 7 + [0] * 3)
    assert paired_change(before, after, np.zeros(10, dtype=int))["p_value"] == pytest.approx(2 * 176 / 1024)


def test_a_tiny_p_value_is_printed_as_a_bound_not_as_zero():
    assert [format_p(p) for p in (1.0, 0.1734, 0.00035, 3e-12)] == ["p=1", "p=0.17", "p=0.00035", "p<0.0001"]
    assert format_p(0.04999) == "p=0.04999" and format_p(0.0504) == "p=0.05"  # below 0.05 never reads as 0.05


def test_one_group_as_plain_numbers_and_labels_out_of_range_are_handled():
    # README: "45 of 50 photos right says only that the accuracy lies between 78% and 96%" -- callable as written.
    low, high = accuracy_interval(45, 50)
    assert (low, high) == accuracy_interval([45], [50]) and round(low, 2) == 0.78 and round(high, 2) == 0.96
    with pytest.raises(ValueError, match=r"truth holds class 12; allowed: 0..9 \(num_classes=10\)"):
        class_tally(np.array([0, 1]), np.array([0, 12]), 10)
    with pytest.raises(ValueError, match="truth holds class -1"):
        class_tally(np.array([0, 1]), np.array([0, -1]), 10)
    with pytest.raises(ValueError, match="shape"):
        class_tally(np.array([0, 1, 2]), np.array([0, 1]), 10)


@pytest.mark.parametrize("right, total", [
    ([50, 3, 3], [50, 3, 3]),   # every test image right: the interval topped out near 90%
    ([0, 4, 0, 6], [1, 14, 1, 12]),  # a search's member on a folder with two 2-image classes: 19.64% [23.17-58.10]
    ([49, 3, 2], [50, 3, 3]),
])
def test_balanced_interval_holds_the_balanced_accuracy_itself_with_classes_of_few_test_images(right, total):
    # Each class got the pseudo-images of a lone binomial, which pull a 1- or 3-image class's share towards 50% while
    # the mean's interval narrows with the number of classes: the interval missed the accuracy it was printed beside.
    observed = float(np.mean(np.array(right) / np.array(total)))
    lo, hi = accuracy_interval(right, total, balanced=True)
    assert lo <= observed <= hi, (observed, lo, hi)


def test_balanced_interval_keeps_its_coverage_with_classes_of_a_few_test_images():
    rng = np.random.default_rng(2)
    p, n = np.array([0.99, 0.98, 0.97]), np.array([50, 3, 3])  # the old interval held the true 98% in none of these
    hits = 0
    for _ in range(2000):
        lo, hi = accuracy_interval(rng.binomial(n, p), n, balanced=True)
        hits += lo <= p.mean() <= hi
    assert 0.93 <= hits / 2000 <= 0.999


def test_a_share_of_known_images_gets_the_agresti_coull_interval_of_its_count():
    # A trial's val accuracy is kept as a share (the search keeps no predictions): 0.9 of 50 val images is 45 right.
    # Agresti-Coull by hand: n' = 50 + z^2, p' = (45 + z^2/2) / n', p' +- z sqrt(p'(1 - p') / n').
    n = 50 + Z95**2
    p = (45 + Z95**2 / 2) / n
    half = Z95 * (p * (1 - p) / n) ** 0.5
    assert share_interval(0.9, images=50) == pytest.approx((p - half, p + half), abs=1e-12)
    assert share_interval(45 / 50, images=50) == accuracy_interval(45, 50)
    assert share_interval(5423 / 6000, images=6000) == accuracy_interval(5423, 6000)  # a float share of a big split
    # no images, or a share that is no whole number of them (scored on other images): no interval, rather than a made-up count
    assert share_interval(0.9, images=0) is None and share_interval(0.123456, images=50) is None
    assert share_interval(1.5, images=2) is None
