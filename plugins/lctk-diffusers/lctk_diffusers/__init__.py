"""lctk-diffusers: a diffusers ``AutoencoderKL`` folder (``save_pretrained``: config.json + safetensors),
imported by ``lctk import-backbone PATH --format diffusers-autoencoderkl``. The model is built from its config
and the safetensors weights are read by lctk; pickled ``.bin`` weights are refused."""
