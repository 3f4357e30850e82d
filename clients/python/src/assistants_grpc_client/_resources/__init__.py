"""One module per service: the sync and the async resource side by side, sharing the request
building of `_convert.py`."""
