"""Tests of nas.errors' helpers."""

from nas.errors import counted


def test_counted_gives_the_noun_in_the_number_it_takes():
    assert counted(1, "trial") == "1 trial"
    assert [counted(n, "image") for n in (0, 2, 1200)] == ["0 images", "2 images", "1,200 images"]
    assert counted(1, "class", plural="classes") == "1 class" and counted(3, "class", plural="classes") == "3 classes"
