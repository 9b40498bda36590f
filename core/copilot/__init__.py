"""What a support agent sees about a call: intent, sentiment, KB articles, summary, disposition, wrap-up.

Works on stored transcripts: may import kb, store, language, privacy and ops; never pipeline.
"""
