"""Server-side tools: each built-in Assistants tool, executed by the server
(engine/server_tools.py)."""
