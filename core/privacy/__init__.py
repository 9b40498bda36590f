"""PII redaction (text, numbers read across utterances) and private (0600/0700) files.

Imports nothing else from core.
"""
