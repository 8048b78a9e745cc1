"""Berg training pipeline: KFP v2 component specs (thin) over runtime modules testable without KFP."""
