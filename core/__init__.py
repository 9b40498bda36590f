"""Voice Copilot's engine, grouped by where a call's data flows; no Streamlit here.

ops, language, privacy → store, kb → speech → pipeline → copilot → conversation →
resilience → providers → insights; ``config`` below all, ``services`` (the composition
root) above all. ``tests/unit/test_layering.py`` holds the exact rules.
"""
