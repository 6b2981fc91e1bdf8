"""One module per reproduced study: configuration, run and report."""
