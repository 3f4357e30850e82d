"""The OpenAI-compatible HTTP/JSON face: code written for the official `openai` SDK runs
against this server with only `base_url` changed (README "From the openai SDK").

It serves the same services and the same Guard as the gRPC face (`api/`), inside the same event
loop: `face.HttpFace` is a runtime `Face`; `app.build_app` the ASGI app; `routes/` the route
table, one module per family of endpoints; `call` the admission, parsing and answers every call
shares; `errors` OpenAI's error envelope and statuses; `streaming` the SSE streams.
"""

from assistants_grpc.http.app import build_app
from assistants_grpc.http.face import HttpFace, TlsFiles

__all__ = ["HttpFace", "TlsFiles", "build_app"]
