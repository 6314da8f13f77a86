"""Blind spots a held-out mutation sample found in photodedup/duplicate_groups/ (``benchmarks/mutate.py
--module groups --max 15 --seed 3``): the overview's totals and its filter without a kind, a keeper taken
out of its group, the mark the pixel check found, the members ``group --json`` prints, and a member of
unknown size (``--seed 4``). On the real catalog of the ``review_library`` fixture, or unit level on one
member or group."""

from __future__ import annotations

import os
from dataclasses import asdict

from photodedup import duplicate_groups as g
from photodedup.catalog import Catalog
from photodedup.duplicate_groups import Group, Member, decisions


def test_the_overview_totals_count_every_group_and_no_kind_shows_similar_shots_too(review_library):
    lib = review_library
    ids, paths = lib["ids"], lib["paths"]
    with Catalog(lib["catalog"]) as cat:
        _, (a, s) = cat.store_group_run({"method": "fixture"}, [
            ("mixed", ids["2019/a.jpg"], "oldest", [(ids["2019/a.jpg"], "exact", 1.0, ""),
                                                     (ids["2019/copies/a_copy.jpg"], "exact", 1.0, ""),
                                                     (ids["a_small.jpg"], "perceptual", 0.953, "")]),
            ("similar", ids["b.jpg"], "oldest", [(ids["b.jpg"], "similar", 1.0, ""),
                                                  (ids["b_q70.jpg"], "similar", 0.9, "")], "similar")])
        listed = lambda **kw: sorted(x["id"] for x in g.overview(cat, **kw)["groups"])  # noqa: E731
        assert (listed(), listed(kind="similar"), listed(kind="perceptual")) == (sorted([a, s]), [s], [a])
        totals = lambda: g.overview(cat)["totals"]  # noqa: E731
        trashed = sum(os.path.getsize(paths[n]) for n in ("2019/copies/a_copy.jpg", "a_small.jpg"))
        kinds = {"exact": 0, "perceptual": 0, "verified": 0, "semantic": 0, "similar": 1, "mixed": 1}
        assert totals() == {"groups": 2, "shown": 2, "reviewed": 0, "files": 5,
                            "reclaimable": trashed, "marked_trash": 0, "kinds": kinds,
                            "categories": {"duplicate": 1, "similar": 1}}
        decisions.keep_one(cat, a, ids["2019/a.jpg"])
        assert (totals()["reviewed"], totals()["marked_trash"]) == (1, trashed)


def test_a_keeper_taken_out_is_no_keeper_and_the_members_left_choose_again(review_library):
    lib = review_library
    ids = lib["ids"]
    with Catalog(lib["catalog"]) as cat:
        _, (t,) = cat.store_group_run({"method": "fixture"}, [
            ("perceptual", ids["b.jpg"], "oldest", [(ids[n], "perceptual", 0.95, "")
                                                    for n in ("b.jpg", "b_q70.jpg", "c.jpg")])])
        group = decisions.take_out(cat, t, ids["b.jpg"])
    assert [(m.file_id, m.keeper) for m in group.removed] == [(ids["b.jpg"], False)]
    assert group.keeper in (ids["b_q70.jpg"], ids["c.jpg"])
    assert [m.file_id for m in group.members if m.keeper] == [group.keeper]
    assert group.keeper_reason.endswith("(the first suggestion was taken out)")


def test_a_member_reads_the_mark_the_pixel_check_stored_in_its_match():
    found = {"added_mark": "lower right, 3% of the picture"}
    assert Member(1, "/p/a.jpg", "verified", 1.0, match=found).added_mark == "lower right, 3% of the picture"
    assert Member(1, "/p/a.jpg", "verified", 1.0, added_mark="upper left", match=found).added_mark == "upper left"
    assert Member(1, "/p/a.jpg", "verified", 1.0).added_mark is None


def test_group_json_members_leave_out_only_the_empty_review_fields():
    plain = Member(1, "/p/a.jpg", "exact", 1.0, keeper=True)
    moved = Member(2, "/p/b.jpg", "exact", 1.0, decision="trash", in_trash=True)
    members = Group(1, "exact", 1, "oldest", [plain, moved]).as_dict()["members"]
    review_fields = {"decision", "in_trash", "companions", "other_names", "added_mark", "motion"}
    assert set(members[0]) == set(asdict(plain)) - review_fields and members[0]["width"] is None
    assert members[0]["status"] == "ok"
    assert set(members[1]) == set(asdict(moved)) - review_fields | {"decision", "in_trash"}


def test_a_member_of_unknown_size_frees_nothing():
    companion = Member(2, "/p/a.xmp", "sidecar", 1.0, size=None)
    assert Member(1, "/p/a.jpg", "exact", 1.0, size=None, companions=[companion]).total_size == 0
    assert Member(1, "/p/a.jpg", "exact", 1.0, size=5, companions=[companion]).total_size == 5


# -- session 6: behaviour no test pinned (read from the module, each test killing a mutant) ----------
def test_the_overview_sorts_by_reclaimable_bytes_or_by_the_weakest_score(review_library):
    lib = review_library
    ids = lib["ids"]
    with Catalog(lib["catalog"]) as cat:
        _, (weak, big) = cat.store_group_run({"method": "fixture"}, [
            ("perceptual", ids["b.jpg"], "oldest", [(ids["b.jpg"], "perceptual", 1.0, ""),
                                                    (ids["b_q70.jpg"], "perceptual", 0.5, "")]),
            ("exact", ids["2019/a.jpg"], "oldest", [(ids["2019/a.jpg"], "exact", 1.0, ""),
                                                     (ids["2019/copies/a_copy.jpg"], "exact", 1.0, ""),
                                                     (ids["a_small.jpg"], "exact", 0.99, "")])])
        order = lambda **kw: [s["id"] for s in g.overview(cat, **kw)["groups"]]  # noqa: E731
        # a_copy.jpg + a_small.jpg free more bytes than b_q70.jpg alone; b_q70.jpg is the weaker match
        assert os.path.getsize(lib["paths"]["b_q70.jpg"]) < os.path.getsize(lib["paths"]["2019/copies/a_copy.jpg"])
        assert (order(), order(sort="size"), order(sort="score")) == ([big, weak], [big, weak], [weak, big])


def test_a_member_keeps_the_status_its_row_holds_and_a_row_without_one_is_ok():
    row = {"id": 7, "path": "/p/gone.jpg", "status": "missing", "size": 5}
    assert Member.from_row(row, evidence="exact", score=1).status == "missing"
    assert Member.from_row(row | {"status": None}, evidence="exact", score=1).status == "ok"


def test_the_keeper_path_is_the_keeper_s_whichever_member_comes_first():
    members = [Member(1, "/p/a.jpg", "exact", 1.0), Member(2, "/p/b.jpg", "keeper", 1.0, keeper=True)]
    group = Group(5, "exact", 2, "largest", members)
    assert (group.keeper_path, group.as_dict()["keeper"], group.as_dict()["keeper_id"]) == ("/p/b.jpg", "/p/b.jpg", 2)


def test_perceptual_words_count_the_bits_of_a_far_match():
    far = Member(1, "/p/a.jpg", "perceptual", 1 - 33 / 64)
    assert g.evidence_words(far) == "perceptual (33 of 64 pHash bits differ)"


def test_a_companion_scores_one_and_shares_its_lead_s_keeper_flag(review_library):
    lib = review_library
    ids = lib["ids"]
    with Catalog(lib["catalog"]) as cat:
        cat.set_companions([(ids["c.jpg"], ids["b.jpg"], "sidecar")])
        group = g.find_group(cat, lib["groups"]["B"])
    (companion,) = next(member for member in group.members if member.file_id == ids["b.jpg"]).companions
    assert (companion.score, companion.keeper, companion.path) == (1.0, True, lib["paths"]["c.jpg"])
