"""Offline evaluation: metrics, the streaming evaluator and its report."""
