"""Data: ARFIMA processes, real series, the autocomplete corpus, copy and adding tasks, selective
copying and multi-query associative recall (MQAR)."""
