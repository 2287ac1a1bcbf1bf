"""head2head inference entries: self-, head and face reenactment videos from a trained checkpoint.

    python -m src.apps.head2head ckpt=<head2head last.ckpt> mode=self
    python -m src.apps.head2head ckpt=<ckpt> mode=head source=id001
    python -m src.apps.head2head ckpt=<ckpt> mode=face source=id001

See src/apps/head2head/run.py and conf/head2head_app.yaml.
"""
