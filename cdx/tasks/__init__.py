"""Tasks: one pure `run(cfg) -> dict` per `task=` (decode, score, search, analyze, pipeline, ...)."""
