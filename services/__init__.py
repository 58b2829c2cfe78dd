"""The pipeline services, one package each: capture, inference, display."""
