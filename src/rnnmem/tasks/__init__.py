"""Data: ARFIMA processes, real series, the autocomplete corpus, copy and adding tasks."""
