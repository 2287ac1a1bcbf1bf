"""On-disk dataset writers of FaceWorld, one module per layout."""
