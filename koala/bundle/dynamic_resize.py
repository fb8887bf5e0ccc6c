"""Tracing Keras models whose bilinear UpSampling2D runs at a dynamic shape.

Why this patches private Keras code (`keras.src.ops.image.resize`): Keras 3.15 checks
`size[0] <= 0` in Python before resizing (keras-team/keras#22079). UpSampling2D resizes to
its input's dynamic shape times the factor, so on a graph traced without AutoGraph (as
keras.export.ExportArchive and tf.function of Keras internals trace: AutoGraph never converts
the `keras` package) that check raises "Using a symbolic tf.Tensor as a Python bool is not
allowed", and no model with such a layer exports at a photo's own working shape. There is
no public switch: the check sits inside keras.ops.image.resize, which the layer calls, and
tf.image.resize on our side cannot reach inside the model. Upstream fixed the regression
(keras-team/keras#23315); this module can go once the pinned Keras carries that fix.
"""

import contextlib

import keras


@contextlib.contextmanager
def resize_accepting_dynamic_sizes():
    """While tracing, keras.ops.image.resize accepts sizes that are graph tensors.

    Inside this block such calls skip only the size check and go to the same backend
    resize; static sizes and Keras symbolic tensors keep the full path.
    """
    from keras.src.ops import image as image_ops  # noqa: PLC0415  (the function patched)

    checked = image_ops.resize

    def resize(images, size, *args, **kwargs):
        if all(isinstance(side, int) for side in size) or isinstance(images, keras.KerasTensor):
            return checked(images, size, *args, **kwargs)
        return image_ops._resize(images, size, *args, **kwargs)

    image_ops.resize = resize
    try:
        yield
    finally:
        image_ops.resize = checked
