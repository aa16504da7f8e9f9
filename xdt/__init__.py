"""xdt: cross-domain transfer-learning experiment runner for recommender systems."""

__version__ = "0.1.0"
