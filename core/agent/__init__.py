"""The voice agent: replies spoken back to the caller, streamed, with barge-in."""
