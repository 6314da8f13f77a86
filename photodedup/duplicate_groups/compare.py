"""What differs between two members of a group, in words: the review page's side-by-side compare."""

from __future__ import annotations

from pathlib import Path

from photodedup import keeper as keeper_rules
from photodedup.duplicate_groups import Member


def _same_frame(a: Member, b: Member) -> bool:
    """Whether two members' content fills the same share of their canvas (within 2%)."""
    return (abs(a.content_width / a.width - b.content_width / b.width) <= 0.02
            and abs(a.content_height / a.height - b.content_height / b.height) <= 0.02)


def differences(a: Member, b: Member) -> list[str]:
    """What the tool knows differs between two members, in words (border, grayscale, crop, mirror, ...)."""
    out = []
    name = lambda m: Path(m.path).name  # noqa: E731
    framed = [m for m, other in ((a, b), (b, a))  # a border both show in the same proportion is the photo's own
              if keeper_rules.bordered(m) and not (keeper_rules.bordered(other) and _same_frame(m, other))]
    for m in framed:
        out.append(f"border: {name(m)} has a uniform border (content {m.content_width}x{m.content_height} "
                   f"in {m.width}x{m.height})")
    if a.grayscale is not None and b.grayscale is not None and a.grayscale != b.grayscale:
        out.append(f"grayscale: {name(a if a.grayscale else b)} is grayscale, {name(b if a.grayscale else a)} colour")
    ca, cb = keeper_rules.content_size(a), keeper_rules.content_size(b)
    if all(ca) and all(cb) and abs(ca[0] / ca[1] - cb[0] / cb[1]) > 0.02 and \
            abs(ca[0] / ca[1] - cb[1] / cb[0]) > 0.02:
        out.append(f"crop: the aspect ratios differ ({ca[0]}x{ca[1]} and {cb[0]}x{cb[1]}), so one shows less")
    for m in (a, b):  # what joined it, as the grouping measured it
        variant = m.match.get("variant")
        if variant and variant != "as is":
            out.append(f"{'mirror' if 'mirror' in variant else 'turn'}: {name(m)} is the keeper {variant}")
        if m.match.get("kind") == "verified":
            out.append(f"crop or overlay: {name(m)} matches on {m.match['coverage']:.0%} of the smaller picture "
                       f"({m.match['inliers']} matching features)")
    sa, sb = (ca, cb) if framed else ((a.width, a.height), (b.width, b.height))  # content inside an added border
    if sa != sb:
        out.append(f"resolution: {sa[0]}x{sa[1]} and {sb[0]}x{sb[1]}")
    if (a.format or "") != (b.format or ""):
        out.append(f"format: {a.format or '?'} and {b.format or '?'}")
    if (a.size or 0) != (b.size or 0):
        out.append("file size: {} and {}".format(*keeper_rules.human_sizes(a.size or 0, b.size or 0)))
    if (a.camera, a.taken_at) != (b.camera, b.taken_at):
        out.append(f"EXIF: {a.camera or 'no camera'}, {a.taken_at or 'no date'} and "
                   f"{b.camera or 'no camera'}, {b.taken_at or 'no date'}")
    if a.md5 and a.md5 == b.md5:
        out.append("identical bytes (same md5)")
    return out
