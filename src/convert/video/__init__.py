"""Talking-head video preprocessing: any .mp4 -> the Head2Head dataset layout (`python -m src.convert.video`).

See src/convert/video/pipeline.py for the steps and docs/video_data.md for the whole story.
"""
