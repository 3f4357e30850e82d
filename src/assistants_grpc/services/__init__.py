"""Use cases and rules: validation, the thread lock, the run state machine. No gRPC in here.

Services take and return the generated `assistants.v1` messages: they are the typed vocabulary
every caller shares, so a second copy as dataclasses would only add conversions.
"""
