// Stages: HAPS domain.
