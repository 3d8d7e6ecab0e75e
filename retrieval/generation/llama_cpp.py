"""A local GGUF model run in-process by llama.cpp.

It renders the versioned prompt and constrains decoding with a grammar that
only admits sentences ending in a valid ``[n].`` citation, or the fixed
abstention sentence: small local models cite reliably only when they cannot do
otherwise. The grammar is asked about the model's choice before the whole
vocabulary (:mod:`retrieval.generation.lazy_grammar`), which writes a third faster.

Stopping is prompt: llama.cpp's abort callback is armed while the model reads
the prompt (seconds on a small machine, with no token to check a flag at), so a
cancelled request releases the model within one graph node; while it writes,
the flag is checked at every token. llama-cpp-python keeps the KV state of the
longest token prefix shared with the previous request, so the fixed system
prompt is read once per process; ``warm_prompt`` reads it at start-up, so the
first question does not pay for it either.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from core.cancel import Cancellation
from core.errors import GenerationError
from core.records import Passage
from retrieval.generation.lazy_grammar import LazyGrammar
from retrieval.prompts import ABSTAIN_ANSWER, GROUNDED_ANSWER_V1, PromptTemplate, chat_messages


def citation_grammar(passage_count: int, *, max_sentences: int = 4) -> str:
    """GBNF: 1..max_sentences sentences, each ending in ``[n].`` with 1 <= n <= passage_count."""
    numbers = " | ".join(f'"{n}"' for n in range(1, passage_count + 1))
    abstain = ABSTAIN_ANSWER.replace('"', '\\"')
    return "\n".join(
        [
            "root ::= abstain | answer",
            f'abstain ::= "{abstain}"',
            f'answer ::= sentence (" " sentence){{0,{max_sentences - 1}}}',
            'sentence ::= [A-Za-z0-9"(] body " [" cite "]."',
            # No sentence end inside a sentence; a full stop only between digits (55.50).
            'body ::= ([^\\[\\]\\n.!?] | [0-9] "." [0-9]){4,300}',
            f"cite ::= {numbers}",
        ]
    )


class LlamaCppGenerator:
    """A GGUF model run in-process by llama.cpp."""

    def __init__(
        self,
        *,
        model_path: Path,
        threads: int = 2,
        context_tokens: int = 4096,
        max_tokens: int = 256,
        prompt: PromptTemplate = GROUNDED_ANSWER_V1,
        use_grammar: bool = True,
        warm_prompt: bool = False,
    ) -> None:
        if not model_path.is_file():
            raise GenerationError(f"model file not found: {model_path}")
        import llama_cpp
        from llama_cpp import Llama

        self._llama = Llama(model_path=str(model_path), n_ctx=context_tokens, n_threads=threads, verbose=False)
        self._max_tokens = max_tokens
        self._prompt = prompt
        self._use_grammar = use_grammar
        self._name = f"llama.cpp:{model_path.name}"
        self._lock = threading.Lock()  # one llama.cpp context serves one request at a time
        # The request whose prompt is being read; llama.cpp asks between graph nodes whether to abort it.
        self._reading: Cancellation | None = None
        self._set_abort = llama_cpp.llama_set_abort_callback
        self._abort_check = llama_cpp.ggml_abort_callback(self._should_abort)  # kept: C holds only a pointer
        self._no_abort_check = llama_cpp.ggml_abort_callback()  # NULL: no Python call per node while writing
        if warm_prompt:
            self.warm(prompt)

    @property
    def name(self) -> str:
        return self._name

    def warm(self, prompt: PromptTemplate | None = None) -> None:
        """Reads ``prompt``'s fixed prefix (the system text) now, so the next question reuses its KV state."""
        messages: Any = chat_messages(prompt or self._prompt, question="", passages=())
        with self._lock:
            self._llama.create_chat_completion(messages=messages, max_tokens=1, temperature=0.0)

    def _should_abort(self, _data: ctypes.c_void_p) -> bool:
        reading = self._reading
        return reading is not None and reading.cancelled

    def _arm(self, cancel: Cancellation | None) -> None:
        self._reading = cancel
        self._set_abort(self._llama.ctx, self._abort_check if cancel is not None else self._no_abort_check, None)

    def generate(
        self,
        *,
        question: str,
        passages: Sequence[Passage],
        history: Sequence[tuple[str, str]] = (),
        cancel: Cancellation | None = None,
        prompt: PromptTemplate | None = None,
    ) -> Iterator[str]:
        from llama_cpp import LogitsProcessorList

        messages: Any = chat_messages(prompt or self._prompt, question=question, passages=passages, history=history)
        with self._lock:
            # Greedy decoding (temperature 0) is what lets the grammar check the model's choice first.
            grammar = LazyGrammar(self._llama, citation_grammar(len(passages))) if self._use_grammar else None
            self._arm(cancel)
            try:
                stream = self._llama.create_chat_completion(
                    messages=messages,
                    logits_processor=LogitsProcessorList([grammar]) if grammar is not None else None,
                    stream=True,
                    max_tokens=self._max_tokens,
                    temperature=0.0,
                )
                for chunk in stream:
                    self._arm(None)  # the prompt is read: from here the flag is checked at every token
                    if cancel is not None and cancel.cancelled:
                        break  # leaving the loop closes the stream and releases the lock
                    delta: Any = chunk["choices"][0]["delta"]  # type: ignore[index]
                    piece = delta.get("content") if isinstance(delta, dict) else None
                    if isinstance(piece, str) and piece:
                        yield piece
            except (RuntimeError, ValueError) as exc:
                if cancel is not None and cancel.cancelled:
                    return  # llama.cpp aborted reading the prompt because the request was cancelled
                raise GenerationError(f"llama.cpp failed: {type(exc).__name__}") from exc
            finally:
                self._arm(None)
                if grammar is not None:
                    grammar.close()
