"""The agent's side of a call: replies (embedded and their memory) and the voice agent that speaks them.

May import pipeline (session events), speech, copilot (intent), kb, store and below.
"""
