"""Chat endpoints: one client for OpenAI-compatible servers (OpenAI, vLLM, Ollama, LM Studio, `transformers serve`)
and Anthropic, with one translation of their errors into the workbench's.

Three features talk to an endpoint, all through `Endpoint`: dataset generation (`workbench.dataset.synth`), the LLM judge
(`workbench.compare.judge`) and the endpoint answer source of the comparison (`workbench.answers.answer.EndpointAnswerer`). Keys come from the
call, else `OPENAI_API_KEY` / `ANTHROPIC_API_KEY`; they live only inside the SDK client and are never formatted into
a message or written to a file.

Errors, the same for every feature:
- the server cannot be reached or times out -> `OfflineError` ("Cannot reach ... Start the server or check the URL");
- it refuses the key (401 / 403) -> `OfflineError`;
- it does not know the model or path (404) -> `ConfigError`;
- it rejects one request (400, 429, 5xx) or sends an unreadable body -> `EndpointRequestError` (an `OfflineError`),
  which callers that can go on without that one answer (generation, the judge) catch.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from workbench.common.errors import ConfigError, OfflineError

Provider = Literal["openai", "anthropic"]
PROVIDERS: tuple[str, ...] = ("openai", "anthropic")
Messages = Sequence[dict[str, str]]


class EndpointRequestError(OfflineError):
    """The endpoint was reached but failed this one request (HTTP 400 / 429 / 5xx, or an unreadable body).

    `reason` is the short part ("HTTP 400: ..."), for lists of failed requests.
    """

    def __init__(self, message: str, reason: str = "", *, ko: str | None = None) -> None:
        super().__init__(message, ko=ko)
        self.reason = reason or message


def resolve_api_key(provider: str, api_key: str | None = None) -> str | None:
    """The key passed in, else the provider's environment variable, else None."""
    if api_key:
        return api_key
    return os.environ.get("ANTHROPIC_API_KEY" if provider == "anthropic" else "OPENAI_API_KEY") or None


def short(text: Any, n: int = 200) -> str:
    """`text` on one line, at most `n` characters (for messages that quote a server's reply)."""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclasses.dataclass
class Reply:
    """One chat completion: the text and what the server reported about it."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None


class Endpoint:
    """One chat endpoint behind `complete(messages)` and `stream(messages)`.

    Args:
        base_url: the server's base URL (OpenAI-compatible ones usually end in /v1); empty: the provider's default.
        model: the model name the server serves.
        api_key: the key, else the provider's environment variable (local servers accept any key).
        provider: "openai" (any OpenAI-compatible server) or "anthropic".
        role: what the endpoint is for, in messages ("judge", "answer", "generator").
        timeout: seconds per request.
        sdk_retries: retries the SDK itself makes on connection errors and 429 / 5xx.

    Raises:
        ConfigError: an unknown provider, or Anthropic without a key.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, provider: str = "openai",
                 role: str = "", timeout: float = 60.0, sdk_retries: int = 0) -> None:
        if provider not in PROVIDERS:
            raise ConfigError(f"provider = {provider!r} is not one of {', '.join(PROVIDERS)}.",
                              ko=f"provider = {provider!r}은(는) {', '.join(PROVIDERS)} 중 하나가 아닙니다.")
        self.base_url, self.model, self.provider, self.role = base_url, model, provider, role
        key = resolve_api_key(provider, api_key)
        if provider == "anthropic":
            import anthropic

            if not key:
                raise ConfigError("Anthropic needs an API key: set ANTHROPIC_API_KEY or paste the key in the password field.",
                                  ko="Anthropic에는 API 키가 필요합니다: ANTHROPIC_API_KEY를 설정하거나 비밀번호 "
                                     "칸에 키를 붙여 넣으세요.")
            self._sdk: Any = anthropic
            self._client: Any = anthropic.Anthropic(api_key=key, base_url=base_url or None, timeout=timeout,
                                                    max_retries=sdk_retries)
        else:
            import openai

            self._sdk = openai
            # Local servers (vLLM, Ollama, transformers serve) accept any key; the client insists on one.
            self._client = openai.OpenAI(api_key=key or "not-needed", base_url=base_url or None, timeout=timeout,
                                         max_retries=sdk_retries)

    def where(self) -> str:
        """How messages name this endpoint: "judge endpoint http://127.0.0.1:8000/v1 (model 'm')"."""
        return f"{self.role or self.provider} endpoint {self.base_url or '(default)'} (model {self.model!r})"

    # --- errors ------------------------------------------------------------------------------------------------
    def _translate(self, exc: Exception) -> Exception:
        """The workbench error for an SDK error (see the module docstring)."""
        e = self._sdk
        if isinstance(exc, (e.APIConnectionError, e.APITimeoutError)):  # a timeout is a connection error in both SDKs
            return OfflineError(f"Cannot reach the {self.where()}: {exc.__class__.__name__}. "
                                f"Start the server or check the base URL.",
                                ko=f"{self.where()}에 연결할 수 없습니다: {exc.__class__.__name__}. 서버를 시작하거나 기본 URL을 "
                                   f"확인하세요.")
        if isinstance(exc, (e.AuthenticationError, e.PermissionDeniedError)):
            return OfflineError(f"The {self.where()} refused the API key (HTTP {exc.status_code}). Check the key.",
                                ko=f"{self.where()}이(가) API 키를 거부했습니다 (HTTP {exc.status_code}). 키를 확인하세요.")
        if isinstance(exc, e.NotFoundError):
            return ConfigError(f"The {self.where()} answered 404: {short(exc.message)}. Check the model name and the "
                               f"base URL (it usually ends in /v1).",
                               ko=f"{self.where()}이(가) 404로 답했습니다: {short(exc.message)}. 모델 이름과 기본 URL을 "
                                  f"확인하세요 (보통 /v1로 끝납니다).")
        if isinstance(exc, e.APIStatusError):
            reason = f"HTTP {exc.status_code}: {short(exc.message)}"
            return EndpointRequestError(f"The {self.where()} failed a request: {reason}.", reason,
                                        ko=f"{self.where()}의 요청이 실패했습니다: {reason}.")
        reason = f"unreadable reply ({exc.__class__.__name__}: {short(exc)})"
        return EndpointRequestError(f"The {self.where()} sent an {reason}.", reason,
                                    ko=f"{self.where()}이(가) 읽을 수 없는 답을 보냈습니다 ({reason}).")

    def _readable_errors(self) -> tuple[type[BaseException], ...]:
        # An unreadable body surfaces as the SDK's validation error or as a broken object (AttributeError ...).
        return (self._sdk.APIError, AttributeError, IndexError, TypeError, ValueError)

    # --- requests ----------------------------------------------------------------------------------------------
    def _kwargs(self, messages: Messages, max_tokens: int, temperature: float | None, top_p: float | None,
                seed: int | None, extra_body: dict[str, Any] | None) -> dict[str, Any]:
        kw: dict[str, Any] = dict(model=self.model, messages=list(messages), max_tokens=max_tokens)
        if extra_body:
            kw["extra_body"] = extra_body
        if self.provider == "anthropic":  # the anthropic SDK (2.x) takes no temperature; extra_body can still send one
            return kw
        if temperature is not None:
            kw["temperature"] = temperature
        if top_p is not None:
            kw["top_p"] = top_p
        if seed is not None:
            kw["seed"] = seed
        return kw

    def complete(self, messages: Messages, *, max_tokens: int = 512, temperature: float | None = None,
                 top_p: float | None = None, seed: int | None = None, extra_body: dict[str, Any] | None = None) -> Reply:
        """One chat completion.

        Raises:
            OfflineError / ConfigError / EndpointRequestError: as the module docstring says.
        """
        kw = self._kwargs(messages, max_tokens, temperature, top_p, seed, extra_body)
        try:
            if self.provider == "anthropic":
                resp = self._client.messages.create(**kw)
                usage = getattr(resp, "usage", None)
                return Reply("".join(getattr(b, "text", "") for b in resp.content),
                             int(getattr(usage, "input_tokens", 0) or 0), int(getattr(usage, "output_tokens", 0) or 0),
                             getattr(resp, "stop_reason", None))
            resp = self._client.chat.completions.create(**kw)
            usage = getattr(resp, "usage", None)
            choice = resp.choices[0] if resp.choices else None
            return Reply((choice.message.content or "") if choice else "", int(getattr(usage, "prompt_tokens", 0) or 0),
                         int(getattr(usage, "completion_tokens", 0) or 0), choice.finish_reason if choice else None)
        except self._readable_errors() as exc:
            raise self._translate(exc) from exc

    def stream(self, messages: Messages, *, max_tokens: int = 512, temperature: float | None = None,
               top_p: float | None = None, seed: int | None = None, into: Reply | None = None) -> Iterator[str]:
        """Text pieces as the server sends them (OpenAI-compatible servers only); `into`, when given, holds the whole
        reply and the usage at the end (token counts from the final usage event, else the number of pieces)."""
        if self.provider == "anthropic":
            reply = self.complete(messages, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
            if into is not None:
                into.text, into.prompt_tokens, into.completion_tokens, into.finish_reason = (
                    reply.text, reply.prompt_tokens, reply.completion_tokens, reply.finish_reason)
            if reply.text:
                yield reply.text
            return
        box = into if into is not None else Reply("")
        n_pieces = 0
        try:
            events = self._client.chat.completions.create(**self._kwargs(messages, max_tokens, temperature, top_p, seed, None),
                                                          stream=True, stream_options={"include_usage": True})
        except self._readable_errors() as exc:
            raise self._translate(exc) from exc
        try:  # closed also when the reader stops early (a page rerun): the server stops generating
            for event in events:
                usage = getattr(event, "usage", None)
                if usage is not None:
                    box.prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
                    box.completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
                if event.choices:
                    box.finish_reason = event.choices[0].finish_reason or box.finish_reason
                    delta = event.choices[0].delta.content if event.choices[0].delta else None
                    if delta:
                        box.text += delta
                        n_pieces += 1
                        yield delta
        except self._readable_errors() as exc:
            raise self._translate(exc) from exc
        finally:
            events.close()
        box.completion_tokens = box.completion_tokens or n_pieces


# --- the endpoint as an answer source -----------------------------------------------------------------------------
