"""Voice Copilot: router only."""

import streamlit as st

st.set_page_config(page_title="Voice Copilot", page_icon="🎧", layout="wide")
st.navigation(
    [
        st.Page("pages/live.py", title="Live", icon="🎙️", default=True),
        st.Page("pages/talk.py", title="Talk", icon="💬"),
        st.Page("pages/copilot.py", title="Live copilot", icon="🧭"),
        st.Page("pages/knowledge.py", title="Knowledge", icon="📚"),
        st.Page("pages/metrics.py", title="Metrics", icon="📈"),
        st.Page("pages/calls.py", title="Calls", icon="🗂️"),
        st.Page("pages/health.py", title="Health", icon="🩺"),
    ]
).run()
