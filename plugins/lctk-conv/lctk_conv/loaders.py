"""The image dataset loaders as registered: each also gets the continuous attributes computed from its pixels
(``ink``; see `lctk_conv.pixels`). Named here so that the plugin registers them as references."""

from lctk_conv import celeba, digits, image_folder, mnist_like
from lctk_conv.pixels import with_pixel_attributes

load_fashion_mnist = with_pixel_attributes(mnist_like.load_fashion_mnist)
load_idx = with_pixel_attributes(mnist_like.load_idx)
load_digits = with_pixel_attributes(digits.load_digits)
load_celeba = with_pixel_attributes(celeba.load_celeba)
load_image_folder = with_pixel_attributes(image_folder.load_image_folder)
