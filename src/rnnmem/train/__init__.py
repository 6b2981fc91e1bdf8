"""Training loops and multi-seed (batched) ensembles."""
