"""Offline training and evaluation of the emotion CNN (``python -m training.train``)."""
