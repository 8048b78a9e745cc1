"""The serving service as processes: the fused server, KServe's standard pair, hot swaps and graceful stops."""
