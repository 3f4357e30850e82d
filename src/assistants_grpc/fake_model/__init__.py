"""A fake OpenAI chat-completions server for tests, benchmarks and users' CI.

It is a minimal HTTP/1.1 server (keep-alive, no third-party dependencies) that speaks what the
``openai`` package's chat-completions client expects:

* ``POST /v1/chat/completions`` (``/chat/completions`` too). With ``"stream": true`` the reply
  is ``text/event-stream`` over chunked transfer encoding: the head, each
  ``data: {chat.completion.chunk}`` frame, ``data: [DONE]`` and the end of the body are written
  (and flushed) one at a time, as simple servers do; with ``stream_options.include_usage`` the
  last chunk before ``[DONE]`` has ``choices: []`` and ``usage``. Otherwise a
  ``chat.completion`` JSON object is returned.
* ``POST /v1/embeddings``: deterministic vectors (a hashed bag of words and trigrams, see
  ``_embeddings.py``), float or base64, so texts sharing words are close.
* ``GET /v1/models`` (and ``/v1/models/{id}``), ``GET /health``.
* Errors use the OpenAI envelope ``{"error": {"message", "type", "param", "code"}}``.

Which reply a request gets, in order:

1. the next reply queued with :meth:`FakeModelServer.push` (any model);
2. the responder registered for the request's ``model`` with
   :meth:`FakeModelServer.set_responder` (a function of the request JSON, may be async);
3. the default responder, :func:`default_responder`:

   * if the last message is a ``tool`` message: the text ``"Tool results: "`` followed by the
     contents of the trailing ``tool`` messages joined by ``"; "``;
   * else, if the request has ``tools`` (and ``tool_choice`` is not ``"none"``) and the last
     user message starts with ``/tool NAME JSON`` lines (one per parallel call; JSON defaults
     to ``{}``): a :class:`ToolCallsReply` of those calls;
   * else the text ``"You said: " + <last user message text>``, cut to
     ``max_completion_tokens`` (or ``max_tokens``) word fragments with finish reason
     ``"length"`` when it is longer.

   A user ``content`` is a string or a list of parts; text parts are joined by newlines.

Usage reported by default: ``prompt_tokens`` = characters of all message contents // 4 (at
least 1), ``completion_tokens`` = the number of content/argument fragments emitted.

``FakeModelServer.disconnects`` counts responses whose client went away before the end (the
server watches the connection for EOF even while sleeping in ``HangReply``/``chunk_delay``).

Accepted connections get ``TCP_NODELAY`` (asyncio's default). ``FakeModelServer(nodelay=False)``
(``assistants-grpc fake-model --nagle``) leaves Nagle's algorithm on instead, like Python's
``http.server`` and several C++ HTTP libraries: a client that delays its ACKs on a reused
connection then gets each response's second small write ~40 ms late (the service's model client
does not; see ``assistants_grpc.engine.model_http``).

Run standalone with ``assistants-grpc fake-model --port N [--nagle]`` (:func:`main` /
:func:`serve`).
"""

from ._responses import (
    ErrorReply,
    HangReply,
    MalformedReply,
    Reply,
    Responder,
    TextReply,
    ToolCallsReply,
    default_responder,
)
from ._server import FakeModelServer, FakeModelThread, main, serve

__all__ = [
    "ErrorReply",
    "FakeModelServer",
    "FakeModelThread",
    "HangReply",
    "MalformedReply",
    "Reply",
    "Responder",
    "TextReply",
    "ToolCallsReply",
    "default_responder",
    "main",
    "serve",
]
