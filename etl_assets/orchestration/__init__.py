"""Orchestration: the asset factory, the jobs of a module and the version allocator."""
