"""Run engine: prompt building, token accounting and model calls."""
