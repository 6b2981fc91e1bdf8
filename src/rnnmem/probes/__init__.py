"""Probes: each measures one aspect of a recurrent model's memory (forgetting, connectivity,
long memory, capacity, Lyapunov exponents, semantic retention)."""
