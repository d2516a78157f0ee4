"""lctk-pythae: VAEs trained with pythae, imported by ``lctk import-backbone PATH --format pythae``.

The folder pythae's ``model.save`` / ``TrainingPipeline`` writes (``model_config.json`` + ``model.pt``) is read
with JSON and ``torch.load(..., weights_only=True)``; pythae's own loader, which unpickles, is never called.
"""
