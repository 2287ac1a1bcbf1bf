"""Applications built on trained systems (inference entries with their own Hydra configs)."""
