"""Text-to-speech interface and offline implementation (espeak-ng)."""
