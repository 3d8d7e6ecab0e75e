"""Any server speaking the OpenAI chat-completions API (Azure OpenAI, vLLM, Ollama)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from core.cancel import Cancellation
from core.errors import GenerationError
from core.records import Passage
from retrieval.prompts import GROUNDED_ANSWER_V1, PromptTemplate, chat_messages


class OpenAICompatibleGenerator:
    """Streams a chat completion from an OpenAI-compatible server."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        timeout_seconds: float = 30.0,
        max_tokens: int = 400,
        prompt: PromptTemplate = GROUNDED_ANSWER_V1,
    ) -> None:
        from openai import OpenAI

        self._client = OpenAI(base_url=base_url, api_key=api_key or "unused", timeout=timeout_seconds, max_retries=1)
        self._model = model
        self._max_tokens = max_tokens
        self._prompt = prompt

    @property
    def name(self) -> str:
        return f"openai:{self._model}"

    def generate(
        self,
        *,
        question: str,
        passages: Sequence[Passage],
        history: Sequence[tuple[str, str]] = (),
        cancel: Cancellation | None = None,
        prompt: PromptTemplate | None = None,
    ) -> Iterator[str]:
        import openai

        messages: Any = chat_messages(prompt or self._prompt, question=question, passages=passages, history=history)
        try:
            stream = self._client.chat.completions.create(
                model=self._model, messages=messages, stream=True, max_tokens=self._max_tokens, temperature=0.0
            )
            for chunk in stream:
                if cancel is not None and cancel.cancelled:
                    stream.close()  # closes the HTTP response: the server stops generating
                    return
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except openai.OpenAIError as exc:
            raise GenerationError(f"model server failed: {type(exc).__name__}") from exc
