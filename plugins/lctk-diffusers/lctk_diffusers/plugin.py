"""Entry point of lctk-diffusers: registers the ``diffusers-autoencoderkl`` importer."""

from lctk import hookimpl


@hookimpl
def register_importers(register):
    from lctk_diffusers.importer import AutoencoderKLImporter

    register("diffusers-autoencoderkl", AutoencoderKLImporter(),
             help="a diffusers AutoencoderKL folder from save_pretrained: config.json + diffusion_pytorch_model.safetensors")
