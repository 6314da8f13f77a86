"""Chaos rounds for apply, undo and scan: no photo is ever lost (issue 20).

    sudo PYTHONPATH=. python benchmarks/chaos.py --rounds 500 --seed 1

Each round builds a small library (exact copies, hard links, temporary-looking names such as
``x.jpg.partial`` and ``.x.jpg.<hex>.pdpart``, 251-byte names, a 0700 folder, Live Photo pairs: a .jpg
and a .mov of one stem, also beside copies, and .jpg.xmp sidecars), maybe reaches it by two more
paths (a symlink to it and a ``mount --bind`` of it; root only, else the reason is counted in
``bind_skipped``), scans each as a root (the real folder first, mostly), groups it and keeps each
group's keeper, then runs 2-5 random operations against one trash folder: on the same filesystem, on a
tmpfs (another filesystem; root only) or made by the tool inside the library. The operations run in
forked processes, each SIGKILLed at a random moment with probability ``--kill``: apply, undo (of the
last apply, or by a root named by any of its paths), scan (of some of the roots), apply while an
"editor" saves library files by rename, scan and apply at once (the catalog lock makes one refuse:
``lock_refusals``).

After the operations one apply runs to the end (it finishes or rolls back what a kill left), and then:
every name of the library holds its latest content exactly once, at its path or in the trash (an older
content, replaced by an edit, at most once); no temporary file is left anywhere; no file the catalog
calls ok is missing; a Live Photo's video and a sidecar are where their photo is (library or trash; unless
one of them was edited). Paths under an alias root count as the real folder's; one inode reached by
several names is counted once per name the library made. A final undo must then put every name back
byte for byte (a name whose path was taken by an edited file keeps the edit; its older content stays in
the trash).

Prints one JSON object: rounds, operations, kills, edits, lock refusals, problems (each with its round).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import av
import numpy as np
from PIL import Image

from photodedup.apply import apply, undo
from photodedup.catalog import Catalog
from photodedup.duplicate_groups import current_groups
from photodedup.duplicate_groups.decisions import keep_one
from photodedup.errors import PhotodedupError
from photodedup.group import GroupSettings, group
from photodedup.scan import scan


def md5(path: Path | str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.md5(handle.read()).hexdigest()
    except OSError:
        return None


def journal_entries(trash: Path) -> list[dict]:
    journal = trash / "journal.jsonl"
    lines = journal.read_text().splitlines() if journal.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{") and line.endswith("}")]


class Library:
    """The files of one round: ``versions[path]`` lists each name's contents (md5), the latest last."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root, self.rng = root, rng
        self.versions: dict[str, list[str]] = {}
        self.pixels = np.random.default_rng(rng.getrandbits(32))
        folders = [root, root / "a", root / "a" / "b", root / "private"]
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
        (root / "private").chmod(0o700)
        self.companions: dict[str, str] = {}  # a Live Photo's video or a sidecar -> its photo
        for i in range(rng.randint(3, 6)):
            original = self.photo(rng.choice(folders) / f"p{i}.jpg")
            live = rng.random() < 0.3 and self.video(original.with_suffix(".mov"), shade=i * 37, lead=original)
            xmp = rng.random() < 0.3 and self.sidecar(original.with_name(original.name + ".xmp"), lead=original)
            for j in range(rng.randint(0, 3)):
                kind = rng.choice(["copy", "long", "partial", "link"])
                folder = rng.choice(folders)
                if kind == "copy":
                    self.copy(original, copy := folder / f"p{i}_copy{j}.jpg")
                    if live and rng.random() < 0.8:  # the copy of a Live Photo, its video beside it
                        self.copy(live, copy.with_suffix(".mov"), lead=copy)
                    if xmp and rng.random() < 0.5:
                        self.copy(xmp, copy.with_name(copy.name + ".xmp"), lead=copy)
                elif kind == "long":
                    self.copy(original, folder / (f"p{i}_{j}_".ljust(247, "L") + ".jpg"))  # 251 bytes
                elif kind == "partial":
                    self.copy(original, original.with_name(original.name + ".partial"))
                elif not (target := folder / f"p{i}_link{j}.jpg").exists():
                    os.link(original, target)
                    self.versions[str(target)] = [md5(target)]
        for i in range(rng.randint(1, 3)):  # someone else's photos with the names a tool might use
            name = rng.choice([f"p{i}.jpg.partial", f".p{i}.jpg.{rng.getrandbits(48):012x}.pdpart", f"q{i}.tmp"])
            path = rng.choice(folders) / name
            if not path.exists():
                self.photo(path)

    def photo(self, path: Path) -> Path:
        image = Image.fromarray(self.pixels.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((96, 72))
        image.save(path, "JPEG", quality=90)
        self.versions[str(path)] = [md5(path)]
        return path

    def copy(self, source: Path, path: Path, lead: Path | None = None) -> None:
        if not path.exists():
            shutil.copyfile(source, path)
            self.versions[str(path)] = [md5(path)]
            if lead is not None:
                self.companions[str(path)] = str(lead)

    def video(self, path: Path, *, shade: int, lead: Path) -> Path:
        """A Live Photo's video: a short MOV with the stem of its still."""
        with av.open(str(path), "w") as out:
            stream = out.add_stream("mpeg4", rate=10)
            stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
            for k in range(3):
                pixels = np.full((24, 32, 3), (shade + k * 20) % 256, np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        self.versions[str(path)] = [md5(path)]
        self.companions[str(path)] = str(lead)
        return path

    def sidecar(self, path: Path, *, lead: Path) -> Path:
        path.write_text(f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><!-- {path.name} --></x:xmpmeta>')
        self.versions[str(path)] = [md5(path)]
        self.companions[str(path)] = str(lead)
        return path


class Editor(threading.Thread):
    """Saves library files by rename (write a new file, rename it over the old one) until stopped."""

    def __init__(self, lib: Library, rng: random.Random, count: int) -> None:
        super().__init__(daemon=True)
        self.lib, self.rng, self.count, self.done = lib, rng, count, threading.Event()
        self.edits = 0

    def run(self) -> None:
        names = sorted(self.lib.versions)
        while self.edits < self.count and not self.done.wait(self.rng.uniform(0, 0.05)):
            path = self.rng.choice(names)
            try:
                data = Path(path).read_bytes()
            except OSError:
                continue  # moved to the trash already
            data += f"edit {self.edits}".encode()
            temp = Path(path).with_name(f".editor-{self.edits}.tmp")
            temp.write_bytes(data)
            os.rename(temp, path)
            self.lib.versions[path].append(hashlib.md5(data).hexdigest())
            self.edits += 1


class Chaos:
    def __init__(self, args: argparse.Namespace, work: Path, mount: Path | None) -> None:
        self.args, self.work, self.mount = args, work, mount
        self.rng = random.Random(args.seed)
        self.durations: dict[str, list[float]] = {}
        self.stats = {"rounds": 0, "operations": 0, "kills": 0, "edits": 0, "lock_refusals": 0,
                      "other_refusals": 0, "crashes": 0, "moves": {}, "restored": 0, "trash": {},
                      "roots": {}, "bind_skipped": {}, "companions": 0, "companions_trashed": 0}
        self.problems: list[dict] = []
        self.aliases: dict[Path, Path] = {}
        self.bound: list[Path] = []

    # -- processes ------------------------------------------------------------------------------
    def fork(self, job) -> int:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                job()
            except PhotodedupError as error:
                code = 4 if "is writing" in str(error) else 3
            except BaseException:  # noqa: BLE001 - a crash is a finding: print it, report it
                traceback.print_exc()
                code = 1
            os._exit(code)
        return pid

    def run(self, kind: str, jobs: list, *, editor: Editor | None = None) -> None:
        """Run the jobs at once, each in its own process; SIGKILL each at a random moment with the
        chance ``--kill`` (within the time such a job usually takes)."""
        started = time.monotonic()
        pids = [self.fork(job) for job in jobs]
        if editor:
            editor.start()
        usual = statistics.median(self.durations.get(kind, [0.5]))
        kill_at = [started + self.rng.uniform(0, usual) if self.rng.random() < self.args.kill else None
                   for _ in pids]
        left = dict(zip(pids, kill_at, strict=True))
        while left:
            for pid, when in list(left.items()):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    del left[pid]
                    self.outcome(kind, status, time.monotonic() - started)
                elif when is not None and time.monotonic() >= when:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    del left[pid]
                    self.stats["kills"] += 1
            time.sleep(0.002)
        if editor:
            editor.done.set()
            editor.join()
            self.stats["edits"] += editor.edits
        self.stats["operations"] += len(jobs)

    def outcome(self, kind: str, status: int, seconds: float) -> None:
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            self.durations.setdefault(kind, []).append(seconds)
            self.durations[kind] = self.durations[kind][-20:]
        elif code == 4:
            self.stats["lock_refusals"] += 1
        elif code == 3:
            self.stats["other_refusals"] += 1
        else:
            self.stats["crashes"] += 1
            self.problems.append({"round": self.stats["rounds"], "problem": f"{kind} crashed (exit {code})"})

    # -- one round ------------------------------------------------------------------------------
    def round(self, number: int) -> None:
        rng = self.rng
        base = self.work / f"round{number}"
        lib = Library(base / "library", rng)
        db = base / "catalog.sqlite"
        where = rng.choice(["same", "inside"] + (["tmpfs", "tmpfs"] if self.mount else []))
        trash = {"same": base / "trash", "inside": lib.root / "trash",
                 "tmpfs": (self.mount / f"trash{number}") if self.mount else None}[where]
        self.stats["trash"][where] = self.stats["trash"].get(where, 0) + 1
        self.aliases = {}  # another path of the library -> its real path
        if rng.random() < 0.35:
            (link := base / "alias").symlink_to(lib.root)
            self.aliases[link] = lib.root
            self.stats["roots"]["symlink"] = self.stats["roots"].get("symlink", 0) + 1
        if rng.random() < 0.35:
            if (bind := self.bind(base / "bind", lib.root)) is not None:
                self.aliases[bind] = lib.root
        roots = [lib.root, *self.aliases]
        for root in roots[:1] + rng.sample(roots[1:], len(roots) - 1) if rng.random() < 0.7 else \
                rng.sample(roots, len(roots)):  # the real folder first, mostly; then each alias, as another root
            scan([root], catalog=db, workers=1)
        group(db, params=GroupSettings(evidence=("exact", "perceptual")))
        with Catalog(db) as cat:
            for found in current_groups(cat):
                keep_one(cat, found.id, found.keeper)

        def do_apply():
            return apply(db, trash_dir=trash)

        def undo_last():
            return undo(db, trash_dir=trash)

        def undo_all():
            return undo(db, trash_dir=trash, paths=[rng.choice(roots)])

        def do_scan():
            return scan(rng.sample(roots, rng.randint(1, len(roots))), catalog=db, workers=1)

        for _ in range(rng.randint(2, 5)):
            step = rng.choice(["apply", "apply", "apply+edit", "apply+scan", "undo", "scan"])
            if step == "apply":
                self.run("apply", [do_apply])
            elif step == "apply+edit":
                self.run("apply", [do_apply], editor=Editor(lib, rng, rng.randint(1, 2)))
            elif step == "apply+scan":
                self.run("apply+scan", [do_apply, do_scan] if rng.random() < 0.5 else [do_scan, do_apply])
            elif step == "undo":
                self.run("undo", [rng.choice([undo_last, undo_all])])
            else:
                self.run("scan", [do_scan])

        try:
            apply(db, trash_dir=trash)  # to the end: finishes or rolls back what a kill left
        except PhotodedupError as error:
            self.problem(number, f"the finishing apply failed: {error}")
        self.check(number, lib, trash, db, final=False)
        try:
            restored = undo(db, trash_dir=trash, paths=[rng.choice(roots)])
            self.stats["restored"] += len(restored.restored)
        except PhotodedupError as error:
            if "nothing to undo" not in str(error):
                self.problem(number, f"the final undo failed: {error}")
        self.check(number, lib, trash, db, final=True)
        if trash.exists():
            for entry in journal_entries(trash):
                if entry.get("state") in ("done", "aborted"):
                    key = f"{entry['op']}_{entry.get('method', 'aborted')}"
                    self.stats["moves"][key] = self.stats["moves"].get(key, 0) + 1
        self.unbind()
        shutil.rmtree(base, ignore_errors=True)
        if trash and self.mount and trash.is_relative_to(self.mount):
            shutil.rmtree(trash, ignore_errors=True)

    def bind(self, point: Path, folder: Path) -> Path | None:
        """``folder`` bind-mounted at ``point``, or None (the reason counted) where it cannot be mounted."""
        if os.geteuid() != 0:
            why = "not root"
        else:
            point.mkdir()
            done = subprocess.run(["mount", "--bind", str(folder), str(point)], capture_output=True, text=True)
            if done.returncode == 0:
                self.stats["roots"]["bind"] = self.stats["roots"].get("bind", 0) + 1
                self.bound.append(point)
                return point
            why = done.stderr.strip() or f"mount exited {done.returncode}"
        self.stats["bind_skipped"][why] = self.stats["bind_skipped"].get(why, 0) + 1
        return None

    def unbind(self) -> None:
        while self.bound:
            point = self.bound.pop()
            if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(point)], check=False)
            if os.path.ismount(point):
                raise RuntimeError(f"{point} is still mounted: not removing the round's folder")

    def real(self, path: str) -> str:
        """``path`` named through the library's real folder (an alias root's path mapped back)."""
        for alias, real in self.aliases.items():
            if path == str(alias) or path.startswith(str(alias) + "/"):
                return str(real) + path[len(str(alias)):]
        return path

    def problem(self, number: int, text: str, path: str | None = None, trash: Path | None = None) -> None:
        found = {"round": number, "problem": text}
        if path and trash and (trash / "journal.jsonl").exists():  # what the journal says of that name
            found["journal"] = [" ".join(str(e.get(k, "")) for k in ("op", "apply", "state", "method", "reason"))
                                for e in journal_entries(trash) if self.real(e.get("original", "")) == path]
        self.problems.append(found)

    def check(self, number: int, lib: Library, trash: Path, db: Path, *, final: bool) -> None:
        """Every name's latest content exactly once (library or trash), older ones at most once, no
        temporary or unknown file anywhere; after the final undo, every latest content at its path."""
        found: dict[str, list[str]] = {}
        trashed: set[str] = set()  # the names whose latest content is in the trash
        for dirpath, dirs, files in os.walk(lib.root):
            if Path(dirpath) == trash:
                dirs.clear()
                continue
            for name in files:
                path = os.path.join(dirpath, name)
                if path not in lib.versions:
                    self.problem(number, f"a file nobody made is in the library: {path}")
                    continue
                found.setdefault(path, []).append(md5(path))
        for dirpath, _dirs, files in os.walk(trash):
            rel = Path(dirpath).relative_to(trash).parts
            for name in files:
                if not rel:
                    continue  # journal, marker, lock
                original = self.real("/" + "/".join((*rel[1:], name)))
                if original not in lib.versions:
                    self.problem(number, f"a file nobody made is in the trash: {os.path.join(dirpath, name)}")
                    continue
                found.setdefault(original, []).append(content := md5(os.path.join(dirpath, name)))
                if content == lib.versions[original][-1]:
                    trashed.add(original)
        for path, versions in lib.versions.items():
            here = found.get(path, [])
            if here.count(versions[-1]) != 1:
                self.problem(number, f"{path}: its content is found {here.count(versions[-1])} times", path, trash)
            for older in versions[:-1]:
                if here.count(older) > 1:
                    self.problem(number, f"{path}: an older content is found {here.count(older)} times")
            if unknown := [m for m in here if m not in versions]:
                self.problem(number, f"{path}: unknown content {unknown}")
            if final and md5(path) != versions[-1]:
                self.problem(number, f"{path}: not restored by the final undo", path, trash)
        for companion, lead in lib.companions.items():  # a Live Photo's video and a sidecar go with their photo
            if final or len(lib.versions[companion]) > 1 or len(lib.versions[lead]) > 1:
                continue  # (an edit during an apply may keep one side where it is: it is checked above)
            self.stats["companions"] += 1
            self.stats["companions_trashed"] += companion in trashed
            if (companion in trashed) != (lead in trashed):
                where = lambda p: "in the trash" if p in trashed else "in the library"  # noqa: E731
                self.problem(number, f"{companion} is {where(companion)} but its photo {lead} is {where(lead)}",
                             companion, trash)
        with Catalog(db) as cat:
            for row in cat.files("ok"):
                if not os.path.lexists(row["path"]) and "/.editor-" not in row["path"]:  # (an editor's save)
                    self.problem(number, f"the catalog calls {row['path']} ok, and it is gone", row["path"], trash)


def tmpfs(work: Path) -> Path | None:
    """A small tmpfs mount (another filesystem for the trash), or None where it cannot be mounted."""
    if os.geteuid() != 0:
        return None
    point = work / "tmpfs"
    point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(point)], capture_output=True)
    return point if done.returncode == 0 else None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kill", type=float, default=0.5, help="chance that each operation is SIGKILLed")
    parser.add_argument("--work", type=Path, default=None, help="work folder [default: a new temporary one]")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)
    work = Path(tempfile.mkdtemp(prefix="photodedup-chaos-", dir=args.work))
    mount = tmpfs(work)
    chaos = Chaos(args, work, mount)
    started = time.monotonic()
    try:
        for number in range(args.rounds):
            chaos.round(number)
            chaos.stats["rounds"] += 1
    finally:
        if mount:
            subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(work, ignore_errors=True)
    result = {"seed": args.seed, "kill": args.kill, "other_filesystem": bool(mount), **chaos.stats,
              "seconds": round(time.monotonic() - started, 1), "problems": chaos.problems,
              "nothing_lost": not chaos.problems}
    print(json.dumps(result, sort_keys=True))
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["nothing_lost"] else 1)
