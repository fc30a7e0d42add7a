"""Seeded world and workload generation for simulations, demos and benchmarks."""
