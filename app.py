"""Voice Copilot: router only.

The page scripts are in ``views/``, never in a folder named ``pages/``: Streamlit would
serve such a folder as a legacy multipage app to direct URLs on a fresh server (see
docs/architecture.md, "The `pages/` folder and direct URLs"). Icons are Material
Symbols, drawn from Streamlit's own font: emoji need a system emoji font.
"""

import streamlit as st

st.set_page_config(page_title="Voice Copilot", page_icon=":material/headset_mic:", layout="wide")

live = st.Page("views/live.py", title="Live", icon=":material/mic:")


def _root() -> None:
    """The app's root URL opens Live at its own URL, so ``/`` and ``/live`` both work."""
    st.switch_page(live)


st.navigation(
    [
        st.Page(_root, title="Voice Copilot", default=True, visibility="hidden"),
        live,
        st.Page("views/talk.py", title="Talk", icon=":material/record_voice_over:"),
        st.Page("views/copilot.py", title="Live copilot", icon=":material/explore:"),
        st.Page("views/knowledge.py", title="Knowledge", icon=":material/menu_book:"),
        st.Page("views/metrics.py", title="Metrics", icon=":material/monitoring:"),
        st.Page("views/calls.py", title="Calls", icon=":material/call_log:"),
        st.Page("views/health.py", title="Health", icon=":material/stethoscope:"),
    ]
).run()
