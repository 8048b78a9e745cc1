"""Berg serving: KServe models for the fraud endpoint."""
