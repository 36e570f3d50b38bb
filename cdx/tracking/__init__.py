"""Outputs of a run: reports (terminal, HTML, W&B) and the W&B tracker."""
