"""Server-side tools: the executors the run loop hands `file_search` and `python` calls to
(`engine.server_tools` is their protocol)."""
