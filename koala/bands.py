"""Row bands of a large image on every core: one thread pool for the pixel loops.

numpy's ufuncs, OpenCV and zlib release the GIL on large arrays, so bands of rows processed
in threads share the cores without copies (koala.photo's lightness and recombine,
koala.inference.png's deflate).
"""

import concurrent.futures
import functools
import os


@functools.lru_cache(maxsize=1)
def pool():
    """The process's band workers, one per core."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                                                 thread_name_prefix="koala-bands")


def band_rows(height, width, most_pixels):
    """Rows per band: at most `most_pixels` pixels, and at least one band per core when the
    image is big enough to share."""
    shared = -(-height // (os.cpu_count() or 1))
    return max(1, min(most_pixels // max(1, width), shared))


def each_band(height, rows, work):
    """work(slice of rows) for every band of `rows` rows, in the pool; returns when all are
    done (re-raising a band's error)."""
    bands = [slice(top, min(top + rows, height)) for top in range(0, height, rows)]
    if len(bands) == 1:
        work(bands[0])
        return
    for done in [pool().submit(work, band) for band in bands]:
        done.result()
