"""The pipeline's runtime code: plain modules, testable without KFP. Each component calls one function here."""
