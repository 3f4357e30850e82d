"""The route table of the HTTP face: one module per family of OpenAI endpoints, each a
`ROUTES` tuple of `Route(method, path, operation, handler)`.

Each family's handlers parse the request protos and render the answers through
`contract/openai_json.py`, and the app, the errors, the admission and the schema test pick it
up from here (a route with `own_body` reads its body itself: the multipart file upload).
`operation` is the operationId of OpenAI's OpenAPI document, which the schema test uses to
choose the operations the face serves.
"""

from __future__ import annotations

from assistants_grpc.http.routes import assistants, files, messages, runs, threads, vector_stores
from assistants_grpc.http.routes.table import Route

# Order matters where paths overlap: `/threads/runs` (create thread and run) must come before
# `/threads/{thread_id}`, which it would otherwise match with the id "runs".
FAMILIES = (assistants, runs, threads, messages, files, vector_stores)

ROUTES: tuple[Route, ...] = tuple(route for family in FAMILIES for route in family.ROUTES)

__all__ = ["FAMILIES", "ROUTES", "Route"]
