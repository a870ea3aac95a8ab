"""toydiff: an interactive 2D toy-diffusion lab in JAX."""
