"""Manager views from stored records: metrics, costs, one call's export, and the demo history.

analytics, costs and export read the store only; demo drives the real pipeline (through services).
"""
