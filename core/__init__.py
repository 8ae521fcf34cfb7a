"""CKA Lens's pure computation: CKA, data, features, probes and the analysis pipeline (no UI)."""
