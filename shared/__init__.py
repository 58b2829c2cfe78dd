"""Emojify's common package: messages, wire format, settings, image maths, runtime helpers."""
