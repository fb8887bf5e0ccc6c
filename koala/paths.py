"""Paths as strings, the way tf.io.gfile takes them: local paths and gs:// / ram:// URLs alike.

pathlib would turn gs://bucket/x into gs:/bucket/x, so every path a user may give as a URL
(records, workdirs, bundles, exports) is joined here.
"""

import os
import pathlib
import posixpath


def is_url(path):
    return "://" in str(path)


def join(base, *names):
    """`names` under `base`, as a string: "/" for URLs, the OS separator for local paths."""
    return posixpath.join(str(base), *names) if is_url(base) else os.path.join(str(base), *names)


def read_text(path):
    """The text of a local file, or of a gs:// / ram:// URL through tf.io.gfile (TensorFlow is
    imported only for a URL: the LiteRT path stays TF-free)."""
    if is_url(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(str(path), "r") as stream:
            return stream.read()
    with open(path, encoding="utf-8") as stream:
        return stream.read()


def cache_dir():
    """Koala's one cache (converted backbone weights, LiteRT copies): $KOALA_CACHE, else
    $XDG_CACHE_HOME/koala, else ~/.cache/koala."""
    if os.environ.get("KOALA_CACHE"):
        return pathlib.Path(os.environ["KOALA_CACHE"])
    return pathlib.Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) \
        / "koala"
