"""Networks shared by all systems: generators, discriminators, frozen perceptual backbones, checkpoint importers."""
