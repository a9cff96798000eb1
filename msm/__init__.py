"""msm: the core of the workbench (mandate registry, target positions, snapshots, expansion)."""
