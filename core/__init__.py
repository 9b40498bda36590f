"""Voice Copilot core: the product without its user interface (never imports streamlit)."""
