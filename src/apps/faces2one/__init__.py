"""faces2one: video face texture transfer on PRNet position maps (src/apps/faces2one/pipeline.py).

python -m src.apps.faces2one source=<video> reference=<video> output=<out.mp4> prnet=<PRNet .ckpt>
"""
