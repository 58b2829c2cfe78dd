"""Offline analysis of images and videos with the worker's own code."""
