"""A call's audio path: frames → VAD/endpointing → session (STT, events) → store; recording, reaping.

May import speech, store, language, privacy, ops and config; never copilot, conversation or providers.
"""
