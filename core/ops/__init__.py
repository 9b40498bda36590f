"""Running the engine: structured logs, error reporting with scrubbing, thread helpers.

May import config and privacy only.
"""
