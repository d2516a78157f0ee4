"""Entry point of lctk-pythae: registers the ``pythae`` importer."""

from lctk import hookimpl


@hookimpl
def register_importers(register):
    from lctk_pythae.importer import PythaeImporter

    register("pythae", PythaeImporter(), help="a pythae model folder: model_config.json + model.pt (VAE family)")
