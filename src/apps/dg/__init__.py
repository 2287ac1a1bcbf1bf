"""DG reenactment app: a source photo + a reference video (or webcam, or landmark CSVs) -> a reenacted video.

    python -m src.apps.dg idsg=<dg_idsg last.ckpt> rfg=<dg_rfg last.ckpt> source=me.jpg reference=talk.mp4

See src/apps/dg/run.py and conf/dg_app.yaml.
"""
