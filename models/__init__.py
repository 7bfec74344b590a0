"""Featurizer, PyTorch risk models, trainer and versioned registry (imports only ``contracts``)."""
