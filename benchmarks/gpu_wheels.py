"""The wheels the GPU machine lacks, for its Python 3.12, in one folder that travels with the project.

Usage: python3 benchmarks/gpu_wheels.py [--out .whl]   (``make gpu-wheels``; docs/GPU.md)

That machine (one H200; Python 3.12 with torch 2.11 + CUDA 13, torchvision, numpy 2, onnxruntime,
httpx, grpcio, protobuf, aiohttp, timm, huggingface-hub, scipy, scikit-image, opencv...) reaches no
registry, and a call carries at most 64 MiB: the project tree and this folder together. So: only what
it lacks, pinned to the versions tested here, ``--no-deps`` (each needed dependency is listed), and
nvidia-pytriton slimmed: its bundled libpython 3.13 and its Python-backend stubs for other Pythons than
3.12 are left out (tritonserver and the 3.12 stub need neither), 53 MB -> about 38 MB. The folder is
git-ignored and checked against the limit at the end.

numpy stays the machine's (2.x): Triton's Python-backend stub returned empty outputs with numpy 2 on this
project's CPU machine through its numpy conversions, which the torch variant never uses (DLPack in and
out); its test passed here with numpy 2.3 on every path (server, stub, client).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 64 * 1024 * 1024
PLATFORMS = ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_24_x86_64", "manylinux_2_27_x86_64",
             "manylinux_2_28_x86_64", "manylinux_2_31_x86_64", "manylinux_2_34_x86_64", "manylinux_2_35_x86_64",
             "manylinux1_x86_64", "manylinux_2_5_x86_64")
WHEELS = (
    # the model: open_clip (torch, torchvision, timm, huggingface-hub, safetensors, regex, tqdm are there)
    "open_clip_torch==3.3.0", "ftfy==6.3.1", "wcwidth==0.9.4",
    # the service (anyio, h11, click, annotated-doc are there)
    "fastapi==0.165.0", "starlette==1.10.0", "pydantic==2.14.4", "pydantic_core==2.50.5", "annotated-types==0.8.0",
    "typing-inspection==0.4.5", "typing_extensions==4.16.0", "opentelemetry-api==1.45.2",
    "importlib_metadata==10.2.0", "python-multipart==0.0.34", "uvicorn==0.54.0",
    # scan (perceptual hashes; scipy is there)
    "ImageHash==4.3.2", "PyWavelets==1.9.0",
    # Triton clients, HTTP and gRPC (grpcio, protobuf, aiohttp, urllib3, certifi, ml-dtypes are there)
    "tritonclient==2.73.0", "python-rapidjson==1.25", "geventhttpclient==2.6.1", "gevent==26.9.0",
    "greenlet==3.3.2", "zope.event==6.2", "zope.interface==8.7", "brotli==1.2.1",
    # Triton server (its Python API is not used: photodedup runs the bundled tritonserver)
    "nvidia-pytriton==0.7.0",
)
PYTRITON_KEEP_STUB = "3.12"


def download(out: Path, wheels: tuple[str, ...] = WHEELS) -> None:
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(out), *wheels],
                   check=True)


def slim_pytriton(wheel: Path) -> None:
    """Rewrite the wheel without libpython 3.13 and the stubs of other Pythons; RECORD updated to match."""
    def dropped(name: str) -> bool:
        if name.startswith("nvidia_pytriton.libs/libpython3"):
            return True
        parts = name.split("/")
        return (len(parts) > 3 and parts[:3] == ["pytriton", "tritonserver", "python_backend_stubs"]
                and parts[3] != PYTRITON_KEEP_STUB)

    slim = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as target:
        members = [info for info in source.infolist() if not dropped(info.filename)]
        if len(members) == len(source.infolist()):
            return  # already slim
        record = next(info for info in members if info.filename.endswith(".dist-info/RECORD"))
        lines = []
        for info in members:
            if info is record:
                continue
            data = source.read(info)
            target.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            lines.append(f"{info.filename},sha256={digest},{len(data)}")
        lines.append(f"{record.filename},,")
        target.writestr(record, "\n".join(lines) + "\n")
    slim.replace(wheel)


def tree_bytes() -> int:
    """What travels besides the wheels: tracked and untracked-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    return sum((ROOT / name.decode()).stat().st_size for name in listed if name and (ROOT / name.decode()).is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".whl")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    download(args.out)
    for wheel in args.out.glob("nvidia_pytriton-*.whl"):
        slim_pytriton(wheel)
    wheels = sorted(args.out.glob("*.whl"))
    names = {wheel.name.split("-")[0].lower() for wheel in wheels}
    if len(names) != len(wheels):
        print(f"two versions of one package in {args.out}: remove the folder and run again", file=sys.stderr)
        return 1
    size = sum(wheel.stat().st_size for wheel in wheels)
    tree = tree_bytes()
    print(f"{len(wheels)} wheels, {size / 2**20:.1f} MiB in {args.out}; project tree {tree / 2**20:.1f} MiB; "
          f"together {(size + tree) / 2**20:.1f} MiB of the 64 MiB one call carries")
    if size + tree > LIMIT:
        print("over the limit: split the folder over two calls (docs/GPU.md)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
