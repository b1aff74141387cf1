"""Console pages: one module per area, each exporting `routes: list[Route]`."""
