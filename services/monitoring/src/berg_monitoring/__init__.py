"""Berg monitoring: drift, delayed-label quality and business metrics for Prometheus."""
