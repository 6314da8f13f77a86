"""The review's domain (photodedup/duplicate_groups/) rule by rule: states, suggestions and reclaimable bytes of a
group, the decision commands on the real catalog of the ``review_library`` fixture, the overview's filter,
the compare text and the labels. What ``benchmarks/mutate.py --module groups`` runs first."""

from __future__ import annotations

import json

import pytest

from photodedup import duplicate_groups as g
from photodedup.catalog import Catalog, in_trash
from photodedup.duplicate_groups import Group, Member, decisions, evidence_words
from photodedup.duplicate_groups import labels as labels_module
from photodedup.duplicate_groups.compare import differences
from photodedup.errors import BadInputError


def m(file_id, **kw) -> Member:
    kw.setdefault("size", 100)
    return Member(file_id, kw.pop("path", f"/p/{file_id}.jpg"), kw.pop("evidence", "exact"), kw.pop("score", 1.0),
                  **kw)


# -- one group -------------------------------------------------------------------------------------
def test_a_member_is_no_keeper_and_not_in_the_trash_unless_told():
    member = Member(1, "/p/a.jpg", "exact", 1.0)
    assert (member.keeper, member.in_trash, member.decision, member.status) == (False, False, None, "ok")


def test_suggested_keeps_the_keeper_and_references_and_every_similar_shot():
    group = Group(1, "perceptual", 1, "", [m(1, keeper=True), m(2), m(3, reference=True), m(4, in_trash=True)])
    assert group.suggested() == {1: "keep", 2: "trash", 3: "keep"}
    group.category = "similar"
    assert group.suggested() == {1: "keep", 2: "keep", 3: "keep"}


def test_reclaimable_is_the_marked_trash_else_the_suggestion():
    members = [m(1, keeper=True, size=10), m(2, size=20), m(3, size=40, status="missing")]
    group = Group(1, "exact", 1, "", members)
    assert group.reclaimable == 20  # the suggestion, of files still there
    members[0].decision, members[2].decision = "trash", "keep"
    assert group.reclaimable == 10
    members[1].decision = "trash"
    members[1].in_trash = True
    assert group.reclaimable == 10  # already in the trash: nothing more to free
    group.dismissed = True
    assert group.reclaimable == 0


def test_states():
    group = Group(1, "exact", 1, "", [m(1), m(2)])
    assert group.state == "open"
    group.members[0].decision = "keep"
    assert group.state == "partial"
    group.members[1].decision = "trash"
    assert group.state == "reviewed"
    group.members[1].in_trash = True
    assert group.state == "applied"
    group.dismissed = True
    assert group.state == "dismissed"


def test_the_summary_scores_a_group_by_its_weakest_non_keeper():
    group = Group(1, "mixed", 1, "why", [m(1, keeper=True, score=0.5), m(2, score=0.9, evidence="perceptual"),
                                         m(3, score=0.95)])
    summary = group.summary()
    assert (summary["score"], summary["evidence"], summary["count"], summary["size"]) == (
        0.9, ["exact", "perceptual"], 3, 300)
    assert Group(2, "exact", 1, "", [m(1, keeper=True, score=0.5)]).summary()["score"] == 1.0


def test_in_trash_is_a_missing_file_that_apply_moved():
    assert in_trash({"status": "missing", "reason": "in the trash: /t/x.jpg", "trashed_to": "/t/x.jpg"})
    assert not in_trash({"status": "missing", "reason": "gone", "trashed_to": None})
    assert not in_trash({"status": "missing", "reason": None, "trashed_to": None})
    assert not in_trash({"status": "ok", "reason": "in the trash: /t/x.jpg", "trashed_to": "/t/x.jpg"})


def test_dismissed_and_taken_out_need_every_pair_marked():
    pairs = {("a", "b"), ("a", "c")}
    assert g._dismissed(["a", "b", None], pairs)
    assert not g._dismissed(["a", "a"], set())  # identical files are never "not duplicates"
    assert not g._dismissed(["a", "b", "c"], pairs)  # (b, c) is not marked
    members = [m(1, md5="a"), m(2, md5="b"), m(3, md5="c")]
    assert g._taken_out(members[0], members, pairs)
    assert not g._taken_out(members[1], members, pairs)
    assert not g._taken_out(m(4), members, pairs)  # no md5
    assert not g._taken_out(members[0], members[:1], pairs)  # no other content


@pytest.mark.parametrize("member, words", [
    (m(1, keeper=True), "the suggested keeper"),
    (m(1, evidence="keeper"), "the suggested keeper"),
    (m(1, match={"how": "mirrored, 3 bits"}), "mirrored, 3 bits"),
    (m(1), "exact copy (same bytes)"),
    (m(1, evidence="perceptual", score=1 - 3 / 64), "perceptual (3 of 64 pHash bits differ)"),
    (m(1, evidence="semantic", score=0.99123), "semantic (0.991)"),
])
def test_evidence_words(member, words):
    assert evidence_words(member) == words


# -- the compare text ------------------------------------------------------------------------------
def photo(file_id, w=400, h=300, **kw) -> Member:
    kw.setdefault("content_width", w)
    kw.setdefault("content_height", h)
    return m(file_id, width=w, height=h, format=kw.pop("format", "JPEG"), **kw)


def test_equal_members_differ_in_nothing_and_identical_bytes_are_said():
    assert differences(photo(1), photo(2)) == []
    assert differences(photo(1, size=None), photo(2, size=None)) == []
    assert differences(photo(1, md5="x"), photo(2, md5="x")) == ["identical bytes (same md5)"]
    assert differences(photo(1, md5=None), photo(2, md5=None)) == []


def test_grayscale_size_format_and_exif_differences():
    a = photo(1, grayscale=1, size=1000, camera="Canon", taken_at="2020-01-01", format="PNG")
    b = photo(2, grayscale=0, size=2000)
    assert differences(a, b) == ["grayscale: 1.jpg is grayscale, 2.jpg colour", "format: PNG and JPEG",
                                 "file size: 1.0 KB and 2.0 KB", "EXIF: Canon, 2020-01-01 and no camera, no date"]
    assert differences(photo(1, grayscale=None), photo(2, grayscale=1)) == []
    assert differences(photo(1, size=None), photo(2, size=5)) == ["file size: 0 B and 5 B"]
    assert differences(photo(1, camera="Canon"), photo(2, camera="Canon", taken_at="2021")) == [
        "EXIF: Canon, no date and Canon, 2021"]


def test_a_crop_is_an_aspect_change_beyond_two_percent_in_either_orientation():
    assert differences(photo(1, 400, 300), photo(2, 400, 250)) == [
        "crop: the aspect ratios differ (400x300 and 400x250), so one shows less", "resolution: 400x300 and 400x250"]
    assert differences(photo(1, 400, 300), photo(2, 300, 400)) == ["resolution: 400x300 and 300x400"]  # turned
    assert differences(photo(1, 400, 300), photo(2, 404, 300)) == ["resolution: 400x300 and 404x300"]  # 1%


def test_an_added_border_is_named_and_the_content_compared():
    framed = photo(2, 440, 330, content_width=400, content_height=300)
    assert differences(photo(1), framed) == ["border: 2.jpg has a uniform border (content 400x300 in 440x330)"]
    # both show the same border in the same proportion: the photo's own, said by neither
    a = photo(1, 440, 330, content_width=400, content_height=300)
    assert differences(a, framed) == []
    # both bordered, in other proportions: both named
    other = photo(3, 480, 330, content_width=400, content_height=300)
    assert [line.split(":")[0] for line in differences(a, other)] == ["border", "border"]  # the same content


def test_two_percent_is_the_edge_of_a_crop_and_of_the_same_frame():
    # aspect ratios 1.000 and 1.021: a crop; 1.000 and 1.019: the same picture
    assert differences(photo(1, 1000, 1000), photo(2, 1021, 1000))[0].startswith("crop:")
    assert not differences(photo(1, 1000, 1000), photo(2, 1019, 1000))[0].startswith("crop:")
    # both bordered: content filling 0.900 and 0.921 of the canvas height are other frames (both named) ...
    a = photo(1, 1000, 1000, content_width=900, content_height=900)
    taller = photo(2, 1000, 1000, content_width=900, content_height=921)
    assert [line.split(":")[0] for line in differences(a, taller)][:2] == ["border", "border"]
    wider = photo(3, 1000, 1000, content_width=921, content_height=900)
    assert [line.split(":")[0] for line in differences(a, wider)][:2] == ["border", "border"]
    # ... and 0.900 against 0.919 the same frame (named by neither)
    same = photo(4, 1000, 1000, content_width=919, content_height=919)
    assert not [line for line in differences(a, same) if line.startswith("border")]


def test_the_grouping_s_variant_and_verification_are_said():
    turned = photo(2, match={"variant": "turned 90"})
    mirrored = photo(3, match={"variant": "mirrored"})
    verified = photo(4, match={"kind": "verified", "coverage": 0.873, "inliers": 41})
    assert differences(photo(1, match={"variant": "as is"}), turned) == ["turn: 2.jpg is the keeper turned 90"]
    assert differences(mirrored, photo(1)) == ["mirror: 3.jpg is the keeper mirrored"]
    assert differences(photo(1), verified) == [
        "crop or overlay: 4.jpg matches on 87% of the smaller picture (41 matching features)"]


# -- decisions on the real catalog -------------------------------------------------------------------
def decisions_of(cat: Catalog, lib: dict) -> dict[str, str]:
    names = {i: n for n, i in lib["ids"].items()}
    return {names[i]: d["action"] for i, d in cat.decisions().items()}


def test_keep_one_marks_the_others_trash_and_reset_forgets(review_library):
    lib = review_library
    with Catalog(lib["catalog"]) as cat:
        group = decisions.keep_one(cat, lib["groups"]["A"], lib["ids"]["a_small.jpg"])
        assert group.state == "reviewed"
        assert decisions_of(cat, lib) == {"2019/a.jpg": "trash", "2019/copies/a_copy.jpg": "trash",
                                          "a_small.jpg": "keep"}
        assert decisions.reset(cat, lib["groups"]["A"]).state == "open"
        assert decisions_of(cat, lib) == {}


def test_not_duplicates_can_be_taken_back(review_library):
    lib = review_library
    with Catalog(lib["catalog"]) as cat:
        assert decisions.not_duplicates(cat, lib["groups"]["B"]).state == "dismissed"
        with pytest.raises(BadInputError, match="marked not duplicates"):
            decisions.keep_one(cat, lib["groups"]["B"], lib["ids"]["b.jpg"])
        assert decisions.not_duplicates(cat, lib["groups"]["B"], value=False).state == "open"
        assert decisions.not_duplicates(cat, lib["groups"]["A"]).state == "dismissed"


def test_accepting_suggestions_marks_open_groups_and_undo_takes_back_only_those(review_library):
    lib = review_library
    a, b = lib["groups"]["A"], lib["groups"]["B"]
    with Catalog(lib["catalog"]) as cat:
        preview = decisions.accept_suggestions(cat, [a, b], dry_run=True)
        assert decisions_of(cat, lib) == {}
        assert (preview["groups"], preview["files"], preview["skipped"]) == ([a, b], 3, [])
        assert sorted(t["path"] for t in preview["trash"]) == sorted(
            lib["paths"][n] for n in ("2019/copies/a_copy.jpg", "a_small.jpg", "b_q70.jpg"))
        decisions.decide(cat, b, lib["ids"]["b.jpg"], "keep")  # B is decided by hand: left alone
        done = decisions.accept_suggestions(cat, [a, b])
        assert (done["groups"], done["skipped"]) == ([a], [b])
        assert decisions_of(cat, lib)["a_small.jpg"] == "trash"
        assert decisions.undo_accept(cat, [a, b]) == {"groups": [a], "skipped": [b]}
        assert decisions_of(cat, lib) == {"b.jpg": "keep"}


def test_decide_sets_and_clears_one_member_and_refuses_what_it_must(review_library):
    lib = review_library
    a, ids = lib["groups"]["A"], lib["ids"]
    with Catalog(lib["catalog"]) as cat:
        assert decisions.decide(cat, a, ids["a_small.jpg"], "trash").state == "partial"
        decisions.decide(cat, a, ids["2019/a.jpg"], "keep")
        assert decisions_of(cat, lib) == {"a_small.jpg": "trash", "2019/a.jpg": "keep"}
        decisions.decide(cat, a, ids["a_small.jpg"], None)  # cleared, not set to something else
        assert decisions_of(cat, lib) == {"2019/a.jpg": "keep"}
        with pytest.raises(BadInputError, match="unknown action"):
            decisions.decide(cat, a, ids["a_small.jpg"], "delete")
        with pytest.raises(BadInputError, match="is not in group"):
            decisions.decide(cat, a, ids["b.jpg"], "trash")  # a member of another group
        decisions.not_duplicates(cat, lib["groups"]["B"])
        decisions.decide(cat, lib["groups"]["B"], ids["b.jpg"], None)  # clearing needs no reopening
        with pytest.raises(BadInputError, match="marked not duplicates"):
            decisions.decide(cat, lib["groups"]["B"], ids["b.jpg"], "keep")


def test_a_reference_file_can_be_kept_but_never_marked_trash(review_library):
    lib = review_library
    a, ids = lib["groups"]["A"], lib["ids"]
    with Catalog(lib["catalog"]) as cat:
        cat.conn.execute("UPDATE group_runs SET params = ?", (json.dumps({"prefer": [str(lib["root"] / "2019")]}),))
        cat.conn.commit()
        decisions.decide(cat, a, ids["2019/a.jpg"], "keep")
        with pytest.raises(BadInputError, match="reference folder"):
            decisions.decide(cat, a, ids["2019/copies/a_copy.jpg"], "trash")
        decisions.decide(cat, a, ids["a_small.jpg"], "trash")
        assert decisions_of(cat, lib) == {"2019/a.jpg": "keep", "a_small.jpg": "trash"}


def test_a_member_in_the_trash_is_refused_by_every_decision(review_library):
    lib = review_library
    a, ids = lib["groups"]["A"], lib["ids"]
    with Catalog(lib["catalog"]) as cat:
        cat.mark_trashed(lib["paths"]["a_small.jpg"], lib["trash"] / "a_small.jpg")
        for decide in (lambda: decisions.decide(cat, a, ids["a_small.jpg"], "keep"),
                       lambda: decisions.take_out(cat, a, ids["a_small.jpg"])):
            with pytest.raises(BadInputError, match="is in the trash"):
                decide()
        with pytest.raises(BadInputError, match="in the trash; undo restores it first"):
            decisions.not_duplicates(cat, a)
        assert decisions.not_duplicates(cat, a, value=False).state != "dismissed"  # taking back is allowed


def test_take_out_refuses_a_copy_identical_to_every_other_member(review_library):
    lib = review_library
    ids = lib["ids"]
    with Catalog(lib["catalog"]) as cat:
        _, (twins,) = cat.store_group_run({"method": "fixture"}, [
            ("exact", ids["2019/a.jpg"], "oldest", [(ids["2019/a.jpg"], "exact", 1.0, ""),
                                                     (ids["2019/copies/a_copy.jpg"], "exact", 1.0, "")])])
        with pytest.raises(BadInputError, match="identical to every other member"):
            decisions.take_out(cat, twins, ids["2019/copies/a_copy.jpg"])


def test_not_duplicates_clears_the_decisions_of_files_still_in_the_library(review_library):
    lib = review_library
    a = lib["groups"]["A"]
    with Catalog(lib["catalog"]) as cat:
        decisions.keep_one(cat, a, lib["ids"]["a_small.jpg"])
        assert decisions.not_duplicates(cat, a).state == "dismissed"
        assert decisions_of(cat, lib) == {}


def test_the_overview_filters_by_evidence_kind(review_library):
    lib = review_library
    a, b = lib["groups"]["A"], lib["groups"]["B"]
    with Catalog(lib["catalog"]) as cat:
        ids = lambda **kw: [s["id"] for s in g.overview(cat, **kw)["groups"]]  # noqa: E731
        assert sorted(ids()) == sorted([a, b])
        assert ids(kind="exact") == [a]  # a mixed group holding an exact copy
        assert sorted(ids(kind="perceptual")) == sorted([a, b])
        assert ids(kind="mixed") == [a]
        assert ids(kind="semantic") == []
        summary = next(s for s in g.overview(cat)["groups"] if s["id"] == a)
        assert summary["score"] == pytest.approx(0.953)
        with pytest.raises(BadInputError, match="unknown kind 'blurry'"):
            g.overview(cat, kind="blurry")


def test_labels_hold_reviewed_groups_relative_to_the_root_or_absolute(review_library):
    lib = review_library
    with Catalog(lib["catalog"]) as cat:
        assert labels_module.labels(cat)["groups"] == []  # nothing reviewed
        decisions.keep_one(cat, lib["groups"]["A"], lib["ids"]["2019/a.jpg"])
        decisions.not_duplicates(cat, lib["groups"]["B"])
        relative = labels_module.labels(cat, root=lib["root"])
        assert relative["groups"] == [["2019/a.jpg", "2019/copies/a_copy.jpg", "a_small.jpg"]]
        assert relative["unrelated"] == ["b.jpg", "b_q70.jpg"]
        absolute = labels_module.labels(cat)
        assert absolute["unrelated"] == [lib["paths"]["b.jpg"], lib["paths"]["b_q70.jpg"]]


def test_a_companion_travels_with_its_lead_unless_it_is_a_member_itself(review_library):
    lib = review_library
    ids = lib["ids"]
    with Catalog(lib["catalog"]) as cat:
        cat.set_companions([(ids["c.jpg"], ids["b.jpg"], "sidecar"), (ids["b_q70.jpg"], ids["b.jpg"], "sidecar")])
        group = g.find_group(cat, lib["groups"]["B"])
    lead = next(member for member in group.members if member.file_id == ids["b.jpg"])
    assert [(c.file_id, c.evidence) for c in lead.companions] == [(ids["c.jpg"], "sidecar")]
    assert lead.item_words == "sidecars"


def test_identical_copies_in_a_group_marked_not_duplicates_stay_one_label(review_library):
    lib = review_library
    with Catalog(lib["catalog"]) as cat:
        decisions.not_duplicates(cat, lib["groups"]["A"])
        labels = labels_module.labels(cat, root=lib["root"])
    assert labels["groups"] == [["2019/a.jpg", "2019/copies/a_copy.jpg"]]
    assert labels["unrelated"] == ["a_small.jpg"]
