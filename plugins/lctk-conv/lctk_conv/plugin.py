"""Entry point of lctk-conv: registers the conv backbone, image datasets, the PNG writer and evaluator."""

from lctk import hookimpl


@hookimpl
def register_backbones(register):
    from lctk_conv.model import ConvVAE

    register("conv", ConvVAE, help="convolutional VAE for images (Gaussian decoder, sigma_x 0.1)")


@hookimpl
def register_datasets(register):
    from lctk_conv import celeba, image_folder, mnist_like

    register("fashion-mnist", mnist_like.load_fashion_mnist, modality="image",
             help="Fashion-MNIST from the Debian package dataset-fashion-mnist or --data-dir")
    register("idx", mnist_like.load_idx, modality="image", help="any MNIST-format image set in --data-dir")
    register("celeba", celeba.load_celeba, modality="image",
             help="CelebA faces with 40 attributes from your own copy in --data-dir (64x64, cached)")
    register("image-folder", image_folder.load_image_folder, modality="image",
             help="images in --data-dir/CLASS/ folders, one attribute per class")


@hookimpl
def register_writers(register):
    from lctk_conv.writer import PNGWriter

    register("image", PNGWriter(), help="PNG grids")


@hookimpl
def register_evaluators(register):
    from lctk_conv.evaluator import ImageEvaluator

    register("image", ImageEvaluator, help="independent CNN classifier: accuracy and Frechet distance")
