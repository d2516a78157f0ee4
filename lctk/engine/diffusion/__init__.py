"""The constraint method ``diffusion``: a small conditional flow-matching denoiser over a run's latents
(`network`), its schedule and samplers (`schedule`), training (`training`) and the `Constraint` (`method`)."""
