"""Speech in and out: audio formats, speech-to-text engines, text-to-speech voices.

May import ops, language, privacy, kb (the pack's phrases) and config; never a call's session.
"""
