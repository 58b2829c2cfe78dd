"""Inference worker: pulls JPEG frames from capture, classifies faces' emotions, pushes results."""
