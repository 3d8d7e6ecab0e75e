"""The shape of the code: layers point one way, and importing a module changes no process state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_dependencies_point_from_the_roof_to_the_floor() -> None:
    """import-linter checks the layers contract in pyproject.toml (roof to floor, ingest and retrieval peers)."""
    linter = Path(sys.executable).with_name("lint-imports")
    completed = subprocess.run([str(linter)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    assert "Contracts: 1 kept, 0 broken" in completed.stdout


_IMPORT_PROBE = """
import json, os, sys
import torch, sentence_transformers  # third-party import effects are not ours to judge
before = dict(os.environ)
threads = torch.get_num_threads()
import api.app, clearance.compose, ingest.parse, index.embedding, retrieval.answer
from index.embedding import SentenceTransformerEmbedder, default_model_path
SentenceTransformerEmbedder(model_path=default_model_path())
changed = sorted(k for k in set(os.environ) | set(before) if os.environ.get(k) != before.get(k))
print(json.dumps({"env": changed, "threads_changed": torch.get_num_threads() != threads,
                  "unstructured_imported": "unstructured" in sys.modules}))
"""


def test_imports_and_the_embedder_change_no_process_state() -> None:
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    completed = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report == {"env": [], "threads_changed": False, "unstructured_imported": False}
