"""The API server: the only door to the store. Validation, defaulting, CAS, watch fan-out."""
