"""Blind spots a held-out mutation sample found in photodedup/keeper.py (``benchmarks/mutate.py --module
keeper --max 15 --seed 3``): a frame's margins at the rounding they may differ by, and members with no
size. Unit level on ``choose``."""

from __future__ import annotations

from photodedup import keeper
from tests.test_keeper_rules import keeper_of, member


def test_a_frame_s_margins_may_differ_by_exactly_the_rounding_between_the_axes():
    # the photo trims its own flat edge (bordered itself), and the frame's content has another shape than
    # the photo's canvas: only "one margin all round" can explain the frame's border
    photo = member(1, w=2000, h=1000, content=(1800, 900), path="/z")
    assert keeper.FRAME_ROUNDING == 2
    at_rounding = member(2, w=2200, h=1198, content=(1900, 800), path="/a")  # margins 200 and 198 px
    assert keeper_of(photo, at_rounding, rules="no-border,oldest") == (1, "no added border")
    beyond = member(3, w=2200, h=1197, content=(1900, 800), path="/a")  # 200 and 197: not one margin
    assert keeper_of(photo, beyond, rules="no-border,oldest") == (3, "all else equal: first by path")


def test_members_with_no_size_tie_on_size():
    assert keeper_of(member(1, size=None, path="/b"), member(2, size=None, path="/a"), rules="size") == (
        2, "all else equal: first by path")
    assert keeper_of(member(1, size=None, path="/b"), member(2, size=0, path="/a"), rules="size") == (
        2, "all else equal: first by path")
