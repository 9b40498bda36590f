"""Text normalisation and sentence embeddings shared by speech, KB, copilot and evaluation.

Imports nothing else from core.
"""
