"""Phase 1, problem definition, as code: the problem card and the metrics it names."""
