"""The latent constraints engine: critics and actors trained on cached latents, never touching the backbone."""
