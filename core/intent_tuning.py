"""``python -m core.intent_tuning``: fine-tune the intent model (moved to :mod:`core.copilot.intent_tuning`)."""

from core.copilot.intent_tuning import main

if __name__ == "__main__":
    raise SystemExit(main())
