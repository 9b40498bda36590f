"""``python -m core.demo``: the demo history (moved to :mod:`core.insights.demo`)."""

from core.insights.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
