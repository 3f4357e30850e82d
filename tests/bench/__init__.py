"""`make bench`: the service's speed measured next to its baselines (see `__main__.py`)."""
