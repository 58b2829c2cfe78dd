"""Capture service: reads a camera, video, image folder or recording and hands frames to workers."""
