"""Cloud provider adapters and the vocabulary they share.

Every adapter translates its SDK's exceptions into :class:`core.resilience.errors.ProviderError`
at its boundary, so retry, circuit breaking and fallback (in :mod:`core.resilience`) decide
on one vocabulary whatever the vendor.
"""
