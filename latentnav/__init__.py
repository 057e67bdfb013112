"""latentnav: navigate generative latent spaces without falling into their holes."""

__version__ = "0.1.0"
