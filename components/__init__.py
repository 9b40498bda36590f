"""Streamlit widgets, one concept per module. No business logic here."""
